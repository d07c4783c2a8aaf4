// Benchmark of the mirror-master work of issue 28 (never a test; nothing asserts a time):
//  - `releng mirror-lists` (the bundle's CLI) over a generated module of N files in D directories,
//    first run (writes the three lists) and a run with nothing new (reads, writes nothing), against
//    `find . -printf` over the same tree (what Rocky writes its fullfilelist with: a walk's floor);
//  - a torrent of a large file (lib/mirror/torrent.ts makeTorrent: SHA1 per piece) against
//    `sha1sum` of the same file (one SHA1 over the bytes: the hashing floor).
// Everything under /dev/shm (tmpfs): the disk is not what is measured.
//   npm run bench:mirror -- [--files 50000] [--dirs 500] [--torrent-mib 1024] [--rounds 3] [--keep]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { makeTorrent } from '../lib/mirror/torrent.ts';

const arg = (name: string, def: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : def; };
const files = arg('files', 50_000);
const dirs = arg('dirs', 500);
const torrentMiB = arg('torrent-mib', 1024);
const rounds = arg('rounds', 3);
const keep = process.argv.includes('--keep');
const repo = path.resolve(import.meta.dirname, '..');

function time(label: string, f: () => void): number {
  const t = performance.now();
  f();
  const s = (performance.now() - t) / 1000;
  process.stderr.write(`  ${label}: ${s.toFixed(2)} s\n`);
  return s;
}
async function timeAsync(label: string, f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  const s = (performance.now() - t) / 1000;
  process.stderr.write(`  ${label}: ${s.toFixed(2)} s\n`);
  return s;
}
const median = (l: number[]) => [...l].sort((a, b) => a - b)[Math.floor(l.length / 2)]!;

async function main() {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: repo, stdio: 'inherit' });
  const ws = await mkdtemp('/dev/shm/releng-bench-mirror-');
  try {
    // A module: releases/ with `files` files spread over `dirs` directories, and SHA256SUMS in each.
    const module = path.join(ws, 'pub', 'lix');
    process.stderr.write(`generating ${files} files in ${dirs} directories under ${module}\n`);
    for (let d = 0; d < dirs; d++) {
      const dir = path.join(module, 'releases', `d${d}`);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'SHA256SUMS'), `sums ${d}\n`);
    }
    for (let i = 0; i < files - dirs; i++) await writeFile(path.join(module, 'releases', `d${i % dirs}`, `f${i}.narinfo`), `file ${i}\n`);
    const project = path.join(ws, 'project');
    await mkdir(project);
    await writeFile(path.join(project, 'version.json'), JSON.stringify({ version: '1.0.0', official_release: true, release_name: 'b' }));
    await writeFile(path.join(project, 'releng.json'), JSON.stringify({
      project: 'lix', releaseJobs: { file: 'release.nix' }, profiles: { p: { systems: ['x86_64-linux'] } }, defaultProfile: 'p',
      environments: { m: { releasesBucket: `file://${module}/releases`, cacheBucket: `file://${module}/cache`, docsBucket: `file://${module}/docs`, mirror: { fileLists: { lix: { root: `file://${module}` } } } } },
    }));
    for (const b of ['cache', 'docs']) await mkdir(path.join(module, b));
    const releng = (...args: string[]) => {
      const r = spawnSync(process.execPath, [path.join(repo, 'dist', 'lib', 'releng.mjs'), ...args], { cwd: project, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
      if (r.status !== 0) throw new Error(`releng ${args.join(' ')}: ${r.stderr}`);
    };
    const cold: number[] = [];
    const warm: number[] = [];
    const find: number[] = [];
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`round ${r + 1}/${rounds}\n`);
      for (const n of ['fullfiletimelist-lix', 'fullfilelist', 'imagelist-lix']) await rm(path.join(module, n), { force: true });
      cold.push(time('releng mirror-lists (writes 3 lists)', () => releng('mirror-lists', '--environment', 'm')));
      warm.push(time('releng mirror-lists (nothing new)', () => releng('mirror-lists', '--environment', 'm')));
      find.push(time("find . -printf '%T@ %y %s %p'", () => execFileSync('sh', ['-c', "find . -printf '%T@\\t%y\\t%s\\t%p\\n' > /dev/null"], { cwd: module })));
    }
    // A large file's torrent.
    const big = path.join(ws, 'big.iso');
    process.stderr.write(`generating a ${torrentMiB} MiB file\n`);
    execFileSync('head', ['-c', `${torrentMiB}M`, '/dev/urandom'], { stdio: ['ignore', (await import('node:fs')).openSync(big, 'w'), 'inherit'] });
    const tor: number[] = [];
    const sha1: number[] = [];
    let pieces = '';
    for (let r = 0; r < rounds; r++) {
      tor.push(await timeAsync('makeTorrent', async () => { const t = await makeTorrent(big, 'big.iso', { webSeeds: ['http://127.0.0.1/big.iso'], trackers: [] }); pieces = `${t.pieces} pieces of ${t.pieceLength / 1024} KiB`; }));
      sha1.push(time('sha1sum', () => execFileSync('sha1sum', [big], { stdio: 'ignore' })));
    }
    const rate = (s: number) => `${(torrentMiB / s).toFixed(0)} MiB/s`;
    process.stdout.write([
      `## mirror (bench/mirror.ts), ${rounds} rounds, medians`, '',
      '| what | seconds |', '|---|---|',
      `| releng mirror-lists, ${files} files / ${dirs} dirs, writes the 3 lists | ${median(cold).toFixed(2)} |`,
      `| releng mirror-lists, same tree, nothing new | ${median(warm).toFixed(2)} |`,
      `| find -printf over the same tree (a walk's floor) | ${median(find).toFixed(2)} |`,
      `| torrent of ${torrentMiB} MiB (${pieces}) | ${median(tor).toFixed(2)} (${rate(median(tor))}) |`,
      `| sha1sum of the same file | ${median(sha1).toFixed(2)} (${rate(median(sha1))}) |`, '',
    ].join('\n'));
  } finally {
    if (!keep) await rm(ws, { recursive: true, force: true });
    else process.stderr.write(`kept ${ws}\n`);
  }
}

await main();
