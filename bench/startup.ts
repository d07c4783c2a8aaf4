// `npm run bench:startup`: how long releng takes to start (issue 14), never a test. Alternates
// the bundle (dist/, `npm run build` first) with the TypeScript sources under tsx
// (RELENG_FROM_SOURCE=1) and a bare `node -e 0`, for `releng --help`, `releng check` (local
// environment, embedded S3) and a no-op `releng upload` (everything already published), and
// prints medians (min–max) of process wall time. Optionally also another checkout (--before DIR,
// e.g. a `git worktree` of main before the bundle) for a before/after figure.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, scratchProject } from '../test/helpers/project.ts';
import { tagLikeReleng } from '../test/helpers/tagged.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    before: { type: 'string' },
    skip: { type: 'string', default: '' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log('usage: npm run bench:startup -- [--runs 7] [--before DIR] [--skip check,upload]');
  process.exit(0);
}
const runs = Number(flags.runs);
const skip = new Set(flags.skip!.split(',').filter(Boolean));
const bin = path.join(repoRoot, 'bin', 'releng');
// Always rebuild: bin/releng runs the sources when they are newer than the bundle.
execFileSync('npm', ['run', 'build', '--silent'], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
const env = { ...process.env, CI: 'true', NIX_CONFIG: 'substituters =\nexperimental-features = nix-command flakes' };

interface Arm { name: string; cmd: string; args: string[]; env?: Record<string, string> }

/** Wall time (ms) and CPU time of the process tree (user+sys, ms, from /usr/bin/time): CPU is what a loaded machine distorts least. */
function time(arm: Arm, cwd: string): { wall: number; cpu: number } {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'RELENG-CPU %U %S', arm.cmd, ...arm.args], { cwd, env: { ...env, ...arm.env }, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${arm.name} ${arm.args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const m = /RELENG-CPU ([\d.]+) ([\d.]+)/.exec(r.stderr);
  return { wall, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN };
}

function measure(label: string, arms: Arm[], cwd: string): string[] {
  const times = new Map<string, { wall: number; cpu: number }[]>(arms.map((a) => [a.name, []]));
  for (const a of arms) time(a, cwd); // warm-up (page cache, tsx's cache, Nix's eval cache)
  for (let i = 0; i < runs; i++) for (const a of arms) times.get(a.name)!.push(time(a, cwd));
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  return arms.map((a) => {
    const wall = times.get(a.name)!.map((t) => t.wall).sort((x, y) => x - y);
    const cpu = times.get(a.name)!.map((t) => t.cpu).sort((x, y) => x - y);
    const mid = Math.floor(wall.length / 2);
    return `| ${label} | ${a.name} | ${s(wall[mid]!)} | ${s(wall[0]!)}–${s(wall.at(-1)!)} | ${s(cpu[mid]!)} |`;
  });
}

const armsFor = (args: string[]): Arm[] => [
  { name: 'bundle (dist/)', cmd: bin, args },
  { name: 'sources (tsx)', cmd: bin, args, env: { RELENG_FROM_SOURCE: '1' } },
  ...(flags.before ? [{ name: `before (${flags.before})`, cmd: path.join(flags.before, 'bin', 'releng'), args }] : []),
];

const rows: string[] = [];
const uptime = () => execFileSync('uptime', { encoding: 'utf8' }).trim();
const before = uptime();
const scratch = mkdtempSync(path.join(os.tmpdir(), 'releng-startup-'));
rows.push(...measure('node -e 0', [{ name: 'node alone', cmd: process.execPath, args: ['-e', '0'] }], scratch));
rows.push(...measure('--help', armsFor(['--help']), scratch));
const p = await scratchProject();
try {
  if (!skip.has('check')) rows.push(...measure('check (local)', armsFor(['check']).filter((a) => !a.name.startsWith('before')), p.dir));
  if (!skip.has('upload')) {
    process.stderr.write('building and uploading examples/hello once (unmeasured)...\n');
    await tagLikeReleng(p);
    execFileSync(bin, ['build'], { cwd: p.dir, env, stdio: 'ignore' });
    execFileSync(bin, ['upload'], { cwd: p.dir, env, stdio: 'ignore' });
    rows.push(...measure('no-op upload', armsFor(['upload']), p.dir));
  }
} finally {
  await p.cleanup();
  rmSync(scratch, { recursive: true, force: true });
}
console.log(`machine: ${os.cpus()[0]?.model} × ${os.cpus().length}, node ${process.version}; ${runs} runs after 1 warm-up`);
console.log(`uptime before: ${before}`);
console.log(`uptime after:  ${uptime()}`);
console.log('');
console.log('| command | arm | wall, median | wall, min–max | CPU (user+sys), median |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(r);
