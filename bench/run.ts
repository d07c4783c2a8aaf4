// `npm run bench`: releng's uploader against the best reference, alternated in one run (issue 6).
// Generates workloads in a temp dir (tmpfs when there is one), starts ONE s3rver on 127.0.0.1 and
// runs A B A B ... (a warm-up, then N pairs, a fresh prefix per run), printing medians with
// min–max and the median of the pairwise ratios. Never part of the test suite.
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { embeddedCredentials, startLocalS3 } from '../lib/local/s3-server.ts';

const ALL = ['manual', 'cache', 'tarballs', 'noop', 'sha256'] as const;
const { values: flags } = parseArgs({
  options: {
    workloads: { type: 'string', default: ALL.join(',') },
    pairs: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    /** Scale the file counts (0.1 for a quick look); sizes stay. */
    scale: { type: 'string', default: '1' },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log('usage: npm run bench -- [--workloads manual,cache,tarballs,noop,sha256] [--pairs 5] [--warmup 1] [--scale 1] [--out FILE.md] [--keep]');
  process.exit(0);
}
const workloads = flags.workloads!.split(',').filter(Boolean);
for (const w of workloads) if (!(ALL as readonly string[]).includes(w)) throw new Error(`unknown workload ${w}; choose from ${ALL.join(', ')}`);
const pairs = Number(flags.pairs);
const warmup = Number(flags.warmup);
const scale = Number(flags.scale);

// What the bench runs besides node, and the Debian package of each (fail naming it, never skip).
for (const [program, pkg] of [['/usr/bin/time', 'time'], ['rclone', 'rclone'], ['openssl', 'openssl']] as const) {
  const found = program.startsWith('/') ? existsSync(program) : (process.env.PATH ?? '').split(':').some((d) => existsSync(path.join(d, program)));
  if (!found) throw new Error(`the bench needs ${program}: apt-get install -y ${pkg}`);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const base = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const ws = mkdtempSync(path.join(base, 'releng-bench-'));
const log = (m: string) => process.stderr.write(`${m}\n`);
log(`workspace ${ws}`);

// ---------- workloads ----------
/** Deterministic sizes and names (mulberry32), random contents. */
function rng(seed: number) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function writeRandom(file: string, size: number) {
  mkdirSync(path.dirname(file), { recursive: true });
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(Math.min(size, 1 << 20));
  for (let left = size; left > 0; left -= chunk.length) writeSync(fd, randomFillSync(chunk), 0, Math.min(left, chunk.length));
  closeSync(fd);
}
const KiB = 1024;
const MiB = 1024 * KiB;
function genManual(dir: string) {
  const r = rng(1);
  const n = Math.round(2000 * scale);
  for (let i = 0; i < n; i++) {
    const ext = ['html', 'html', 'html', 'css', 'js', 'png', 'svg'][i % 7];
    writeRandom(path.join(dir, `part${i % 8}`, `chapter${Math.floor(i / 8) % 12}`, `s${Math.floor(i / 96) % 4}`, `page-${i}.${ext}`), KiB + Math.floor(r() * 19 * KiB));
  }
}
function genCache(dir: string) {
  const r = rng(2);
  const n = Math.round(1000 * scale);
  const hash = (i: number) => (i.toString(32).padStart(6, '0') + 'abcdfghijklmnpqrsvwxyz0123456789').slice(0, 32);
  for (let i = 0; i < n; i++) {
    writeRandom(path.join(dir, 'nar', `${hash(i)}.nar.zst`), 50 * KiB + Math.floor(r() * 450 * KiB));
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `${hash(i)}.narinfo`), `StorePath: /nix/store/${hash(i)}-pkg-${i}\nURL: nar/${hash(i)}.nar.zst\nCompression: zstd\nNarHash: sha256:${'0'.repeat(52)}\nNarSize: ${i * 1000}\nReferences: \nSig: cache.example.org-1:${'A'.repeat(86)}==\n`);
  }
}
function genTarballs(dir: string) {
  for (let i = 0; i < 4; i++) writeRandom(path.join(dir, `release-${i}.tar.xz`), 100 * MiB);
}

// ---------- measurement ----------
interface Run { wallMs: number; cpuMs: number; ms?: number; maxRssKiB?: number; puts: number; heads: number; requests: number; out: any }
const requestLog = path.join(ws, 'requests.log');
writeFileSync(requestLog, '');
const rcloneConf = path.join(ws, 'rclone.conf');
const timeOut = path.join(ws, 'time.out');
// AWS_CA_BUNDLE makes rclone's S3 backend fail on plain http ("unsupported transport"); the bench is loopback http only.
const childEnv: NodeJS.ProcessEnv = { ...process.env, RCLONE_CONFIG: rcloneConf };
delete childEnv.AWS_CA_BUNDLE;

/** Runs a command; wall time measured here, peak RSS by /usr/bin/time, PUTs from s3rver's request log. */
async function runCmd(cmd: string, args: string[], opts: { json?: boolean } = {}): Promise<Run> {
  truncateSync(requestLog, 0);
  const t0 = performance.now();
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const p = spawn('/usr/bin/time', ['-f', '%M %U %S', '-o', timeOut, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
    let out = ''; let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (c) => resolve({ code: c ?? 1, stdout: out, stderr: err }));
  });
  const wallMs = performance.now() - t0;
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${code}):\n${stderr}${stdout}`);
  const lines = readFileSync(requestLog, 'utf8').split('\n').filter(Boolean);
  const out = opts.json ? JSON.parse(stdout.trim().split('\n').pop()!) : stdout;
  const [rss, user, sys] = readFileSync(timeOut, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { wallMs, ms: opts.json ? out.ms : undefined, maxRssKiB: rss, cpuMs: (user! + sys!) * 1000, puts: lines.filter((l) => l.startsWith('PUT ')).length, heads: lines.filter((l) => l.startsWith('HEAD ')).length, requests: lines.length, out };
}

interface Arm { name: string; command: (prefix: string) => [string, string[]]; json?: boolean; cleanup?: boolean }
interface Row { workload: string; arm: string; runs: Run[]; example: string }

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { median: mid, min: s[0]!, max: s[s.length - 1]! };
};

let counter = 0;
/** Warm-up, then `pairs` rounds of every arm in turn; each run gets a fresh prefix (deleted after, so the bucket stays small). */
async function alternate(workload: string, arms: Arm[], fixedPrefix?: (arm: Arm) => string): Promise<Row[]> {
  const rows: Row[] = arms.map((a) => ({ workload, arm: a.name, runs: [], example: '' }));
  for (let round = 0; round < warmup + pairs; round++) {
    for (const [i, arm] of arms.entries()) {
      const prefix = fixedPrefix ? fixedPrefix(arm) : `${workload}-${arm.name.split(' ')[0]}-${++counter}/`;
      const [cmd, args] = arm.command(prefix);
      const run = await runCmd(cmd, args, { json: arm.json });
      if (round >= warmup) rows[i]!.runs.push(run);
      rows[i]!.example = [cmd, ...args].map((a) => a.replace(ws, '$WS')).join(' ');
      if (!fixedPrefix) rmSync(path.join(ws, 's3', 'bench', prefix), { recursive: true, force: true });
      log(`  ${workload} ${round < warmup ? 'warm-up' : `pair ${round - warmup + 1}`} ${arm.name}: ${(run.ms ?? run.wallMs).toFixed(0)} ms (wall ${run.wallMs.toFixed(0)} ms, cpu ${run.cpuMs.toFixed(0)} ms), ${run.puts} PUTs, ${run.heads} HEADs, ${(run.maxRssKiB! / 1024).toFixed(0)} MiB peak${run.out?.treeMs !== undefined ? ` (tree ${run.out.treeMs.toFixed(0)}, list ${run.out.listMs.toFixed(0)}, plan ${run.out.planMs.toFixed(0)}, apply ${run.out.applyMs.toFixed(0)} ms)` : ''}`);
    }
  }
  return rows;
}

// ---------- main ----------
const uptimeBefore = (await runText('uptime')).trim();
log(`load before: ${uptimeBefore}`);
const dirs = { manual: path.join(ws, 'data/manual'), cache: path.join(ws, 'data/cache'), tarballs: path.join(ws, 'data/tarballs') };
const need = new Set(workloads.flatMap((w) => (w === 'noop' ? ['manual', 'cache'] : w === 'sha256' ? ['tarballs'] : [w])));
if (need.has('manual')) genManual(dirs.manual);
if (need.has('cache')) genCache(dirs.cache);
if (need.has('tarballs')) genTarballs(dirs.tarballs);
log(`generated ${[...need].join(', ')}`);

// The measured releng code, bundled so its start-up is plain node (tsx compiles on every start).
const childJs = path.join(ws, 'child.mjs');
await build({
  entryPoints: [path.join(here, 'child.ts')], outfile: childJs, bundle: true, platform: 'node', format: 'esm', target: 'node20',
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }, logLevel: 'error',
});

const s3 = await startLocalS3({ dir: path.join(ws, 's3'), buckets: ['bench'], requestLog });
writeFileSync(rcloneConf, `[s3rver]\ntype = s3\nprovider = Other\nenv_auth = false\naccess_key_id = ${embeddedCredentials.accessKeyId}\nsecret_access_key = ${embeddedCredentials.secretAccessKey}\nendpoint = ${s3.endpoint}\nforce_path_style = true\n`);
const node = process.execPath;
const releng = (dir: string, state?: string): Arm['command'] => (prefix) => [node, [childJs, 'upload', '--endpoint', s3.endpoint, '--bucket', 'bench', '--prefix', prefix, '--dir', dir, ...(state ? ['--state', state] : [])]];
const rclone = (dir: string, extra: string[]): Arm['command'] => (prefix) => ['rclone', ['copy', dir, `s3rver:bench/${prefix}`, ...extra]];
const putloop = (dir: string): Arm['command'] => (prefix) => [node, [childJs, 'putloop', '--endpoint', s3.endpoint, '--bucket', 'bench', '--prefix', prefix, '--dir', dir]];

const rows: Row[] = [];
const hashRows: Row[] = [];
try {
  for (const w of workloads) {
    log(`== ${w}`);
    if (w === 'manual' || w === 'cache' || w === 'tarballs') {
      const dir = dirs[w];
      // A fresh state dir per run: an upload of new files hashes them all (no memo to lean on).
      const arms: Arm[] = [
        { name: 'releng', command: (p) => releng(dir, path.join(ws, 'state', p))(p), json: true },
        { name: 'rclone', command: rclone(dir, ['--transfers', w === 'tarballs' ? '4' : '16', '--s3-no-head']) },
      ];
      if (w !== 'tarballs') arms.push({ name: 'ceiling (bare signed PUT loop)', command: putloop(dir), json: true });
      rows.push(...await alternate(w, arms));
    } else if (w === 'noop') {
      for (const sub of ['manual', 'cache'] as const) {
        const dir = dirs[sub];
        const state = path.join(ws, 'state', `noop-${sub}`);
        const prefixOf = (arm: Arm) => `noop-${sub}-${arm.name.split(' ')[0]}/`;
        const arms: Arm[] = [
          { name: 'releng', command: releng(dir, state), json: true },
          { name: 'rclone --checksum --fast-list', command: rclone(dir, ['--transfers', '16', '--checksum', '--fast-list']) },
        ];
        // The first upload (not measured) fills the prefixes, releng's record and hash memo.
        for (const a of arms) { const [c, args] = a.command(prefixOf(a)); await runCmd(c, args, { json: a.json }); }
        rows.push(...await alternate(`no-op ${sub}`, arms, prefixOf));
      }
    } else if (w === 'sha256') {
      const files = [0, 1, 2, 3].map((i) => path.join(dirs.tarballs, `release-${i}.tar.xz`));
      hashRows.push(...await alternate('sha256 (400 MiB)', [
        { name: 'releng sha256File', command: () => [node, [childJs, 'hash', ...files]], json: true },
        { name: 'openssl dgst -sha256', command: () => ['openssl', ['dgst', '-sha256', ...files]] },
      ], () => 'none/'));
    }
  }
} finally {
  await s3.stop();
}
const uptimeAfter = (await runText('uptime')).trim();
log(`load after: ${uptimeAfter}`);

// ---------- report ----------
const fmt = (ms: number) => (ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const timeOf = (r: Run) => r.ms ?? r.wallMs;
const lines: string[] = [];
lines.push(`machine: ${os.cpus()[0]?.model} × ${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, node ${process.version}; data on ${base}`);
lines.push(`date: ${new Date().toISOString()}; pairs ${pairs} after ${warmup} warm-up; scale ${scale}`);
lines.push(`load before: ${uptimeBefore}`);
lines.push(`load after:  ${uptimeAfter}`);
lines.push('');
lines.push('| workload | arm | median (min–max) | process wall median | process CPU median | PUTs/run | HEADs/run | peak RSS | ratio releng/arm (median of pairs) |');
lines.push('|---|---|---|---|---|---|---|---|---|');
const byWorkload = new Map<string, Row[]>();
for (const r of rows) byWorkload.set(r.workload, [...(byWorkload.get(r.workload) ?? []), r]);
for (const [w, rs] of byWorkload) {
  const a = rs[0]!;
  for (const r of rs) {
    const t = stats(r.runs.map(timeOf));
    const ratio = r === a ? '' : stats(a.runs.map((x, i) => timeOf(x) / timeOf(r.runs[i]!))).median.toFixed(2);
    const ratioWall = r === a ? '' : stats(a.runs.map((x, i) => x.wallMs / r.runs[i]!.wallMs)).median.toFixed(2);
    lines.push(`| ${w} | ${r.arm} | ${fmt(t.median)} (${fmt(t.min)}–${fmt(t.max)}) | ${fmt(stats(r.runs.map((x) => x.wallMs)).median)} | ${fmt(stats(r.runs.map((x) => x.cpuMs)).median)} | ${stats(r.runs.map((x) => x.puts)).max} | ${stats(r.runs.map((x) => x.heads)).max} | ${Math.round(stats(r.runs.map((x) => x.maxRssKiB!)).max / 1024)} MiB | ${ratio ? `${ratio} (wall ${ratioWall})` : ''} |`);
  }
}
if (hashRows.length) {
  const [a, b] = hashRows as [Row, Row];
  const mibs = (r: Run) => 400 / (timeOf(r) / 1000);
  lines.push('');
  lines.push('| hashing 400 MiB | median MiB/s (min–max) | median time | ratio releng/openssl throughput (median of pairs) |');
  lines.push('|---|---|---|---|');
  for (const r of [a, b]) {
    const s = stats(r.runs.map(mibs));
    const ratio = r === a ? stats(a.runs.map((x, i) => mibs(x) / mibs(b.runs[i]!))).median.toFixed(2) : '';
    lines.push(`| ${r.arm} | ${s.median.toFixed(0)} (${s.min.toFixed(0)}–${s.max.toFixed(0)}) | ${fmt(stats(r.runs.map(timeOf)).median)} | ${ratio} |`);
  }
}
lines.push('');
lines.push('commands ($WS = the workspace, PREFIX fresh per run):');
for (const r of [...rows, ...hashRows]) lines.push(`- ${r.workload} / ${r.arm}: \`${r.example.replace(/bench\/[^ ]*\/(?= |$)/, 'bench/PREFIX/')}\``);
const report = lines.join('\n');
console.log(report);
if (flags.out) writeFileSync(flags.out, report + '\n');
if (!flags.keep) rmSync(ws, { recursive: true, force: true });
else log(`kept ${ws}`);

async function runText(cmd: string): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn(cmd, [], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('close', () => resolve(out));
  });
}
