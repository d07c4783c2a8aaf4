// `npm run bench`: the commands users run — the real CLI from the built bundle (dist/) — against the
// best reference, on s3rver AND Ceph RGW in the same run (issue 16). Never part of the test suite.
//
// Builds the bundle, generates one synthetic release per upload workload (a project directory with
// releng.json, version.json, release/build-result.json, release/artifacts, release/manual and
// store paths in the local Nix store for the binary cache, signed with a key the environment
// trusts), starts s3rver and a throwaway RGW on 127.0.0.1, and alternates the arms A B A B (a
// warm-up, then N pairs). Times process wall, CPU and peak RSS with /usr/bin/time, and counts the
// requests each server saw (s3rver: its request log; RGW: its beast access log, one line per request).
import { spawn, execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import {
  existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync,
  copyFileSync, readSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { renderSha256Sums, sha256Text } from '../lib/hashing/checksums.ts';
import { embeddedCredentials, startLocalS3, type LocalS3 } from '../lib/local/s3-server.ts';
import { RGW_MEMSTORE_BYTES, startTestRgw, type TestRgw } from '../test/helpers/rgw.ts';
import { majorOf } from '../lib/config/version.ts';

// No substituter is reachable offline, and flakes are experimental in Debian's Nix (scripts/env.sh):
// without this every nix-build waits ~5 s on cache.nixos.org.
process.env.NIX_CONFIG ??= 'substituters =\nexperimental-features = nix-command flakes';

const ALL = ['manual', 'cache', 'tarballs', 'noop', 'verify', 'promote', 'startup', 'sha256'] as const;
const SERVERS = ['s3rver', 'rgw'] as const;
const { values: flags } = parseArgs({
  options: {
    workloads: { type: 'string', default: ALL.join(',') },
    servers: { type: 'string', default: SERVERS.join(',') },
    pairs: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    /** Scale the file counts of manual and cache (0.05 for a quick look); sizes stay. */
    scale: { type: 'string', default: '1' },
    /** Size of each of the 4 tarballs. */
    'tarball-mib': { type: 'string', default: '100' },
    /** Largest store path of the cache workload, KiB (sizes drawn from a tenth of it up to it): 50 keeps --scale 50's 50,000 paths near 1.4 GB. */
    'path-kib': { type: 'string', default: '500' },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(`usage: npm run bench -- [--workloads ${ALL.join(',')}] [--servers s3rver,rgw]
         [--pairs 5] [--warmup 1] [--scale 1] [--tarball-mib 100] [--path-kib 500] [--out FILE.md] [--keep]
The report (markdown) goes to stdout (and --out), progress to stderr. See bench/README.md.`);
  process.exit(0);
}
const workloads = flags.workloads!.split(',').filter(Boolean);
for (const w of workloads) if (!(ALL as readonly string[]).includes(w)) throw new Error(`--workloads: unknown workload ${w}; choose from ${ALL.join(', ')}`);
const servers = flags.servers!.split(',').filter(Boolean);
for (const s of servers) if (!(SERVERS as readonly string[]).includes(s)) throw new Error(`--servers: unknown server ${s}; choose from ${SERVERS.join(', ')}`);
const num = (name: string, v: string, min: number) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} ${v}: expected a number ≥ ${min}`);
  return n;
};
const pairs = num('pairs', flags.pairs!, 1);
const warmup = num('warmup', flags.warmup!, 0);
const scale = num('scale', flags.scale!, 0.001);
const tarballMiB = num('tarball-mib', flags['tarball-mib']!, 1);
const pathKiB = num('path-kib', flags['path-kib']!, 1);

/** The releases the workloads publish and measure. */
function kindsFor(ws: readonly string[]): Set<Kind> {
  const kinds = new Set<Kind>();
  for (const w of ws) {
    if (w === 'manual' || w === 'cache' || w === 'tarballs') kinds.add(w);
    if (w === 'noop') { kinds.add('manual'); kinds.add('cache'); }
    if (w === 'verify' || w === 'promote') { kinds.add('manual'); kinds.add('cache'); kinds.add('tarballs'); }
    if (w === 'sha256') kinds.add('tarballs');
    if (w === 'startup') kinds.add('manual');
  }
  return kinds;
}

/**
 * Bytes RGW holds at once in a run: every release's mirror (published first) and one arm's upload
 * of the largest. Manual pages are 1–20 KiB, three objects each; store paths a tenth of --path-kib
 * up to it. At --scale 10 with the default --path-kib 500 that is ~5.9 GiB, and a run of
 * 2026-12-08 filled the test cluster's memstore OSD and hung on a purge for 20 minutes.
 */
function rgwBytes(kinds: Set<Kind>): number {
  const KiB = 1024;
  const bytes: Record<Kind, number> = {
    manual: 3 * Math.max(1, Math.round(2000 * scale)) * 10.5 * KiB,
    cache: Math.max(1, Math.round(1000 * scale)) * 0.55 * pathKiB * KiB,
    tarballs: 4 * tarballMiB * KiB * KiB,
  };
  const held = [...kinds].map((k) => bytes[k]);
  return held.reduce((a, b) => a + b, 0) + Math.max(0, ...held);
}
if (servers.includes('rgw')) {
  const need = rgwBytes(kindsFor(workloads));
  // Three quarters: deleted objects' data lingers until RGW's garbage collector runs (drop() runs it).
  if (need > 0.75 * RGW_MEMSTORE_BYTES) {
    const gib = (n: number) => `${(n / 1024 ** 3).toFixed(1)} GiB`;
    throw new Error(`--servers rgw: this run would hold ~${gib(need)} on the test cluster's ${gib(RGW_MEMSTORE_BYTES)} memstore OSD at once (every release's mirror and one arm's upload); lower --path-kib (the cache's largest store path, e.g. 50) or --scale, or run the workloads on rgw one at a time`);
  }
}

// What the bench runs besides node, and the Debian package of each (fail naming it, never skip).
for (const [program, pkg] of [['/usr/bin/time', 'time'], ['rclone', 'rclone'], ['openssl', 'openssl'], ['nix-build', 'nix-bin'], ['git', 'git']] as const) {
  const found = program.startsWith('/') ? existsSync(program) : (process.env.PATH ?? '').split(':').some((d) => existsSync(path.join(d, program)));
  if (!found) throw new Error(`the bench needs ${program}: apt-get install -y ${pkg}`);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.dirname(here);
const base = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const ws = mkdtempSync(path.join(base, 'releng-bench-'));
const log = (m: string) => process.stderr.write(`${m}\n`);
log(`workspace ${ws}`);

// ---------- servers, stopped by pid also on error and SIGINT ----------
interface Server {
  name: 's3rver' | 'rgw';
  endpoint: string;
  creds: { accessKeyId: string; secretAccessKey: string };
  /** The file whose new lines are this server's requests, and how to read a request's method from a line. */
  requestLog: string;
  method(line: string): string | undefined;
  /** Server processes whose CPU time is summed per run. */
  pids: number[];
  /** Deletes a prefix of the bench bucket (unmeasured), so the bucket does not grow. */
  drop(prefix: string): Promise<void>;
  stop(): Promise<void>;
}
const started: Server[] = [];
let interrupted = false;
let cleaning: Promise<void> | undefined;
/** Stops the servers by pid and removes the workspace; every caller awaits the same run of it. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const s of started.splice(0)) await s.stop().catch((e) => log(`stopping ${s.name}: ${e}`));
    if (!flags.keep) rmSync(ws, { recursive: true, force: true });
    else log(`kept ${ws}`);
  })();
  return cleaning;
}
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    interrupted = true;
    log(`${signal}: stopping the servers`);
    void cleanup().then(() => process.exit(code));
  });
}

/** METHOD, or LIST for a GET of the bucket itself (a listing: ?list-type=2&prefix=...). */
function classify(m: RegExpExecArray | null): string | undefined {
  if (!m) return undefined;
  return m[1] === 'GET' && /^\/bench\/?(\?|$)/.test(m[2]!) ? 'LIST' : m[1];
}

async function startS3rver(): Promise<Server> {
  const requestLog = path.join(ws, 's3rver-requests.log');
  writeFileSync(requestLog, '');
  const s3: LocalS3 = await startLocalS3({ dir: path.join(ws, 's3rver'), buckets: ['bench'], requestLog });
  return {
    name: 's3rver', endpoint: s3.endpoint, creds: { ...embeddedCredentials }, requestLog, pids: s3.pid ? [s3.pid] : [],
    method: (l) => classify(/^([A-Z]+) (\S+)/.exec(l)),
    async drop(prefix) { rmSync(path.join(ws, 's3rver', 'bench', prefix), { recursive: true, force: true }); },
    stop: () => s3.stop(),
  };
}
async function startRgw(): Promise<Server> {
  const rgw: TestRgw = await startTestRgw({ buckets: ['bench'] });
  const pids = ['client.rgw.a', 'osd.0'].map((n) => Number(readFileSync(path.join(rgw.dir, 'run', `${n}.pid`), 'utf8').trim()));
  return {
    name: 'rgw', endpoint: rgw.endpoint, creds: rgw.users.admin, requestLog: path.join(rgw.dir, 'log', 'client.rgw.a.log'), pids,
    // beast's access log line (debug rgw 1, the default): `beast: 0x..: 127.0.0.1 - user [date] "PUT /bench/key HTTP/1.1" 200 ...`
    method: (l) => classify(/beast: .* "([A-Z]+) (\S+) HTTP\/1\.1"/.exec(l)),
    async drop(prefix) {
      await runCmd('rclone', ['purge', `rgw:bench/${prefix}`, '--fast-list', '--checkers', '16'], { quiet: true });
      // RGW frees a deleted object's data only when its garbage collector runs (rgw_gc_obj_min_wait,
      // 2 h by default): without this, the rounds' tarballs filled the 4 GiB memstore OSD and a PUT
      // hung for 120 s (the 2026-11-27 run stopped in the tarballs' 5th pair). Outside any timing.
      await rgw.admin(['gc', 'process', '--include-all']);
    },
    stop: () => rgw.stop(),
  };
}

// ---------- measurement ----------
interface Run { wallMs: number; cpuMs: number; serverCpuMs: number; maxRssKiB: number; req: Record<string, number>; stdout: string }
const rcloneConf = path.join(ws, 'rclone.conf');
const timeOut = path.join(ws, 'time.out');
const baseEnv: NodeJS.ProcessEnv = { ...process.env, RCLONE_CONFIG: rcloneConf, CI: 'true', NO_COLOR: '1' };
// AWS_CA_BUNDLE makes rclone's S3 backend fail on plain http ("unsupported transport"); the bench is loopback http only.
delete baseEnv.AWS_CA_BUNDLE;
let current: Server | undefined;
let runNumber = 0;

const ticks = (pid: number) => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100 Hz)
  } catch { return 0; }
};

/** Runs a command under /usr/bin/time; counts the requests and server CPU of the current server during it. */
async function runCmd(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; quiet?: boolean } = {}): Promise<Run> {
  const srv = opts.quiet ? undefined : current;
  const logStart = srv ? statSync(srv.requestLog).size : 0;
  const cpu0 = srv ? srv.pids.reduce((n, p) => n + ticks(p), 0) : 0;
  const t0 = performance.now();
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const p = spawn('/usr/bin/time', ['-f', '%M %U %S', '-o', timeOut, cmd, ...args], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? baseEnv });
    let out = ''; let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (c) => resolve({ code: c ?? 1, stdout: out, stderr: err }));
  });
  const wallMs = performance.now() - t0;
  // Each run's output, for reading afterwards with --keep (releng's log lines carry timestamps).
  mkdirSync(path.join(ws, 'logs'), { recursive: true });
  writeFileSync(path.join(ws, 'logs', `${String(++runNumber).padStart(4, '0')}-${path.basename(cmd)}-${args.find((a) => !a.startsWith('/')) ?? ''}.log`), `${cmd} ${args.join(' ')}\n${stdout}\n${stderr}`);
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${opts.cwd ?? '.'}) failed (${code}):\n${stderr.slice(-4000)}${stdout.slice(-2000)}`);
  const req: Record<string, number> = {};
  let serverCpuMs = 0;
  if (srv) {
    // Give the server a moment to write its last log lines (both append after answering).
    await new Promise((r) => setTimeout(r, 50));
    serverCpuMs = (srv.pids.reduce((n, p) => n + ticks(p), 0) - cpu0) * 10;
    const fd = openSync(srv.requestLog, 'r');
    const size = statSync(srv.requestLog).size;
    const buf = Buffer.alloc(size - logStart);
    readSync(fd, buf, 0, buf.length, logStart);
    closeSync(fd);
    for (const l of buf.toString('utf8').split('\n')) {
      const m = srv.method(l);
      if (m) req[m] = (req[m] ?? 0) + 1;
    }
  }
  const [rss, user, sys] = readFileSync(timeOut, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { wallMs, cpuMs: (user! + sys!) * 1000, serverCpuMs, maxRssKiB: rss!, req, stdout };
}

interface Arm {
  name: string;
  /** Returns the command for this round (prepares the state it needs, unmeasured). */
  prepare: (round: number) => Promise<{ cmd: string; args: string[]; cwd?: string; env?: NodeJS.ProcessEnv; after?: () => Promise<void> }>;
}
interface Row { server: string; workload: string; arm: string; runs: Run[]; example: string; objects?: number }
const rows: Row[] = [];

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { median: mid, min: s[0]!, max: s[s.length - 1]! };
};
const reqText = (r: Record<string, number>) => ['PUT', 'HEAD', 'GET', 'POST', 'DELETE'].map((m) => `${r[m] ?? 0}`).join('/') ;

/** Warm-up, then `pairs` rounds of every arm in turn (A B A B). */
async function alternate(server: Server, workload: string, arms: Arm[], objects?: number): Promise<void> {
  const mine: Row[] = arms.map((a) => ({ server: server.name, workload, arm: a.name, runs: [], example: '', objects }));
  for (let round = 0; round < warmup + pairs; round++) {
    for (const [i, arm] of arms.entries()) {
      const c = await arm.prepare(round);
      const run = await runCmd(c.cmd, c.args, { cwd: c.cwd, env: c.env });
      await c.after?.();
      if (round >= warmup) mine[i]!.runs.push(run);
      mine[i]!.example = [c.cmd, ...c.args].map((a) => a.split(ws).join('$WS')).join(' ') + (c.cwd ? `   (in ${c.cwd.split(ws).join('$WS')})` : '');
      log(`  ${server.name} ${workload} ${round < warmup ? 'warm-up' : `pair ${round - warmup + 1}`} ${arm.name}: wall ${run.wallMs.toFixed(0)} ms, cpu ${run.cpuMs.toFixed(0)} ms, server cpu ${run.serverCpuMs.toFixed(0)} ms, PUT/HEAD/GET/POST/DELETE ${reqText(run.req)}, LIST ${listCount(run.req)}, ${(run.maxRssKiB / 1024).toFixed(0)} MiB peak`);
    }
  }
  rows.push(...mine);
}
/** LIST requests: GETs on the bucket (query ?list-type / ?prefix): counted from the log lines separately. */
function listCount(r: Record<string, number>) { return r.LIST ?? 0; }
void listCount;

// ---------- workloads: synthetic releases ----------
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
const run = (cmd: string, args: string[], cwd?: string) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: baseEnv, maxBuffer: 64 * MiB }).trim();

const VERSION = '1.0.0';
const RELEASE_DIR = `bench/bench-${VERSION}`;
type Kind = 'manual' | 'cache' | 'tarballs';
interface Project { kind: Kind; dir: string; mirror: string; objects: number }

/** Store paths for a project's cache: `tiny` (one path), or `many` (N random files of 50–500 KiB and a root referencing them all). */
function storePaths(kind: 'tiny' | 'many'): string {
  const gen = path.join(ws, 'nix', kind);
  mkdirSync(gen, { recursive: true });
  let expr: string;
  if (kind === 'many') {
    const r = rng(2);
    const n = Math.max(1, Math.round(1000 * scale));
    for (let i = 0; i < n; i++) writeRandom(path.join(gen, `p-${i}`), Math.round(pathKiB * KiB / 10) + Math.floor(r() * pathKiB * KiB * 0.9));
    // The output names every path, so Nix records them as the root's references. They reach the
    // builder through a file (passAsFile), not argv or the environment: at --scale 10 and beyond
    // they exceed ARG_MAX ("Argument list too long").
    expr = `let paths = map (i: builtins.path { path = ./p-\${toString i}; name = "bench-part-\${toString i}"; }) (builtins.genList (i: i) ${n});
in builtins.derivation { name = "bench-root"; system = builtins.currentSystem; builder = "/bin/sh";
  refs = builtins.concatStringsSep "\\n" paths; passAsFile = [ "refs" ];
  args = [ "-c" "while IFS= read -r l; do echo \\"$l\\"; done < \\"$refsPath\\" > $out" ]; }`;
  } else {
    expr = `builtins.derivation { name = "bench-tiny"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo bench > $out" ]; }`;
  }
  writeFileSync(path.join(gen, 'default.nix'), expr + '\n');
  // An indirect GC root in the workspace keeps the paths for the run; gone with the workspace.
  return run('nix-build', [path.join(gen, 'default.nix'), '-o', path.join(ws, 'nix', `root-${kind}`)]);
}

/** Every file under dir, relative, sorted. */
function walk(dir: string, rel = ''): string[] {
  return readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(dir, path.join(rel, e.name)) : [path.join(rel, e.name)])).sort();
}

function hardlinkTree(from: string, to: string, skip: (rel: string) => boolean = () => false): number {
  let n = 0;
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(from, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (skip(r)) continue;
      if (e.isDirectory()) walk(r);
      else { mkdirSync(path.dirname(path.join(to, r)), { recursive: true }); linkSync(path.join(from, r), path.join(to, r)); n++; }
    }
  };
  walk('');
  return n;
}

const keyDir = path.join(ws, 'key');
function projectFor(kind: Kind, root: string): Project {
  const dir = path.join(ws, 'projects', kind);
  const rel = path.join(dir, 'release');
  const artifacts = path.join(rel, 'artifacts', RELEASE_DIR);
  mkdirSync(artifacts, { recursive: true });
  if (kind === 'manual') {
    const r = rng(1);
    const n = Math.max(1, Math.round(2000 * scale));
    for (let i = 0; i < n; i++) {
      const ext = ['html', 'html', 'html', 'css', 'js', 'png', 'svg'][i % 7];
      writeRandom(path.join(rel, 'manual', `part${i % 8}`, `chapter${Math.floor(i / 8) % 12}`, `s${Math.floor(i / 96) % 4}`, `page-${i}.${ext}`), KiB + Math.floor(r() * 19 * KiB));
    }
  } else {
    mkdirSync(path.join(rel, 'manual'), { recursive: true });
    writeFileSync(path.join(rel, 'manual', 'index.html'), '<!doctype html><title>bench</title>\n');
  }
  if (kind === 'tarballs') for (let i = 0; i < 4; i++) writeRandom(path.join(artifacts, `bench-${VERSION}-${i}.tar.xz`), tarballMiB * MiB);
  const manifest = `{\n  x86_64-linux = "${root}";\n}\n`;
  writeFileSync(path.join(artifacts, 'manifest.nix'), manifest);
  // The root manifest.nix (what `nix upgrade-nix` follows) is an artifact too, outside the version directory.
  writeFileSync(path.join(rel, 'artifacts', 'manifest.nix'), manifest);
  // As `releng build` does: the manual also goes under the version directory (kind manual), and
  // SHA256SUMS covers every file there; verify checks the docs bucket against those entries.
  hardlinkTree(path.join(rel, 'manual'), path.join(artifacts, 'manual'));
  const files = walk(artifacts);
  const digest = new Map(files.map((f) => [f, sha256Text(readFileSync(path.join(artifacts, f)))]));
  writeFileSync(path.join(artifacts, 'SHA256SUMS'), renderSha256Sums(files.map((f) => ({ name: f, sha256: digest.get(f)! }))));
  const kindOf = (f: string) => (f.startsWith('manual/') ? 'manual' : f === 'manifest.nix' ? 'manifest' : f === 'SHA256SUMS' ? 'sums' : 'binary-tarball');
  const arts = [...files, 'SHA256SUMS'].map((f) => {
    const size = statSync(path.join(artifacts, f)).size;
    const k = kindOf(f);
    return { path: `${RELEASE_DIR}/${f}`, size, sha256: digest.get(f) ?? sha256Text(readFileSync(path.join(artifacts, f))), kind: k, ...(k === 'binary-tarball' ? { system: 'x86_64-linux' } : {}) };
  });
  arts.push({ path: 'manifest.nix', size: Buffer.byteLength(manifest), sha256: sha256Text(manifest), kind: 'manifest' });
  writeFileSync(path.join(dir, 'version.json'), JSON.stringify({ version: VERSION, official_release: true, release_name: 'bench' }) + '\n');
  writeFileSync(path.join(dir, 'release.nix'), '{ }\n');
  mkdirSync(path.join(dir, '.releng'), { recursive: true });
  copyFileSync(path.join(keyDir, 'cache.sec'), path.join(dir, '.releng', 'cache-signing.key'));
  writeFileSync(path.join(dir, '.gitignore'), '.releng/\nrelease/\n');
  writeConfig(dir, 'unused/', 'unused-prod/');
  run('git', ['init', '-q', '-b', 'main'], dir);
  run('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@example.invalid', 'add', '-A'], dir);
  run('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@example.invalid', 'commit', '-q', '-m', 'bench'], dir);
  const head = run('git', ['rev-parse', 'HEAD'], dir);
  writeFileSync(path.join(rel, 'build-result.json'), JSON.stringify({
    schemaVersion: 1, project: 'bench', version: VERSION, major: majorOf(VERSION), official: true, releaseName: 'bench', profile: 'all',
    systems: ['x86_64-linux'], dockerSystems: [], gitRevision: head, tag: null, createdAt: new Date().toISOString(),
    releaseDir: RELEASE_DIR, artifacts: arts, manifest: { 'x86_64-linux': root }, dockerImages: [], drvs: [], outPaths: [root],
  }, null, 2) + '\n');
  return { kind, dir, mirror: path.join(ws, 'mirror', kind), objects: 0 };
}

/** releng.json with two environments on the current server: `bench` (PREFIX) and `prod` (PROD, promote's destination). */
function writeConfig(dir: string, prefix: string, prod: string) {
  const env = (p: string, colour: string) => ({
    colour,
    releasesBucket: `s3://bench/${p}releases`, cacheBucket: `s3://bench/${p}cache`, docsBucket: `s3://bench/${p}docs`,
    s3: { endpoint: current?.endpoint ?? 'http://127.0.0.1:9', region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' },
    credentials: { source: 'env', accessKeyIdVar: 'BENCH_S3_KEY', secretAccessKeyVar: 'BENCH_S3_SECRET' },
    cache: { signingKeyFile: '.releng/cache-signing.key', compression: 'zstd' },
    confirm: false,
  });
  writeFileSync(path.join(dir, 'releng.json'), JSON.stringify({
    project: 'bench', versionFile: 'version.json', releaseJobs: { file: 'release.nix' },
    profiles: { all: { systems: ['x86_64-linux'], dockerSystems: [] } }, defaultProfile: 'all', mainBranch: 'main',
    environments: { bench: env(prefix, 'blue'), prod: env(prod, 'red') },
  }, null, 2) + '\n');
}

/** The bucket layout of a release, as local hard links, for rclone: releases/, cache/, docs/. */
function mirrorOf(p: Project) {
  rmSync(p.mirror, { recursive: true, force: true });
  const rel = path.join(p.dir, 'release');
  let n = hardlinkTree(path.join(rel, 'artifacts'), path.join(p.mirror, 'releases'));
  n += hardlinkTree(path.join(rel, 'cache', 'bench'), path.join(p.mirror, 'cache'), (r) => r.startsWith('.'));
  // An official release from the main line: the manual goes to manual/PROJECT/MAJOR/ (MAJOR as releng build computes it: 1.0 for 1.0.0) and stable/.
  for (const d of [majorOf(VERSION), 'stable']) n += hardlinkTree(path.join(rel, 'manual'), path.join(p.mirror, 'docs', 'manual', 'bench', d));
  p.objects = n;
}

// ---------- main ----------
const uptime = () => run('uptime', []);
const uptimeBefore = uptime();
log(`load before: ${uptimeBefore}`);
const commands: string[] = [];
try {
  log('building the bundle (npm run build)');
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  const relengJs = path.join(repo, 'dist', 'lib', 'releng.mjs');
  const node = process.execPath;
  // BENCH_CPU_PROF=DIR: every releng run writes a V8 CPU profile there (node --cpu-prof), to see where it loses.
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(process.env.BENCH_CPU_PROF)] : [];
  const releng = (args: string[]) => ({ cmd: node, args: [...prof, relengJs, ...args] });
  commands.push(`releng = ${node} ${path.relative(repo, relengJs)} (the bundle of \`npm run build\`)`);

  // The ceiling and the sha256 arm: a bundled child (plain node start-up).
  const childJs = path.join(ws, 'child.mjs');
  await build({
    entryPoints: [path.join(here, 'child.ts')], outfile: childJs, bundle: true, platform: 'node', format: 'esm', target: 'node20',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }, logLevel: 'error',
  });

  const kinds = kindsFor(workloads);
  mkdirSync(keyDir, { recursive: true });
  run('nix-store', ['--generate-binary-cache-key', 'bench-1', path.join(keyDir, 'cache.sec'), path.join(keyDir, 'cache.pub')]);
  const tiny = storePaths('tiny');
  const projects = new Map<Kind, Project>();
  for (const k of kinds) {
    log(`generating the ${k} release`);
    projects.set(k, projectFor(k, k === 'cache' ? storePaths('many') : tiny));
  }

  for (const sname of servers) {
    log(`== starting ${sname}`);
    const server = sname === 's3rver' ? await startS3rver() : await startRgw();
    started.push(server);
    current = server;
    writeFileSync(rcloneConf, `[${server.name}]\ntype = s3\nprovider = ${server.name === 'rgw' ? 'Ceph' : 'Other'}\nenv_auth = false\naccess_key_id = ${server.creds.accessKeyId}\nsecret_access_key = ${server.creds.secretAccessKey}\nendpoint = ${server.endpoint}\nforce_path_style = true\n`);
    const env: NodeJS.ProcessEnv = { ...baseEnv, BENCH_S3_KEY: server.creds.accessKeyId, BENCH_S3_SECRET: server.creds.secretAccessKey };
    const remote = (p: string) => `${server.name}:bench/${p}`;
    let counter = 0;
    const fresh = (w: string, arm: string) => `${w}-${arm}-${++counter}/`;
    const wipeState = (p: Project) => rmSync(path.join(p.dir, '.releng', 'upload-state'), { recursive: true, force: true });
    const upload = (p: Project) => releng(['upload', '--no-check-git', '--environment', 'bench']);

    // Publish each release once (unmeasured) to `pub-KIND/`: stages its cache (so the mirror for rclone
    // exists), and is what verify reads and promote copies from.
    for (const p of projects.values()) {
      writeConfig(p.dir, `pub-${p.kind}/`, 'unused-prod/');
      wipeState(p);
      const u = upload(p);
      const r = await runCmd(u.cmd, u.args, { cwd: p.dir, env });
      mirrorOf(p);
      log(`  published ${p.kind} to ${server.name} (${(r.wallMs / 1000).toFixed(1)} s, ${p.objects} objects in the mirror, PUT/HEAD/GET/POST/DELETE ${reqText(r.req)})`);
    }

    for (const w of workloads) {
      log(`== ${server.name} ${w}`);
      if (w === 'manual' || w === 'cache' || w === 'tarballs') {
        const p = projects.get(w)!;
        const transfers = w === 'tarballs' ? '4' : '16';
        const arms: Arm[] = [
          { name: 'releng upload', prepare: async () => {
            const prefix = fresh(w, 'releng');
            writeConfig(p.dir, prefix, 'unused-prod/');
            wipeState(p); // a first upload: no record, no hash memo (the staged cache stays, as after a first staging)
            return { ...upload(p), cwd: p.dir, env, after: () => server.drop(prefix) };
          } },
          { name: `rclone copy --transfers ${transfers} --s3-no-head`, prepare: async () => {
            const prefix = fresh(w, 'rclone');
            return { cmd: 'rclone', args: ['copy', p.mirror, remote(prefix), '--transfers', transfers, '--checkers', '16', '--s3-no-head'], env, after: () => server.drop(prefix) };
          } },
        ];
        if (w !== 'tarballs') arms.push({ name: 'ceiling (bare signed PUT loop)', prepare: async () => {
          const prefix = fresh(w, 'ceiling');
          return { cmd: node, args: [childJs, 'putloop', '--endpoint', server.endpoint, '--key', server.creds.accessKeyId, '--bucket', 'bench', '--prefix', prefix, '--dir', p.mirror], env: { ...env, BENCH_S3_SECRET: server.creds.secretAccessKey }, after: () => server.drop(prefix) };
        } });
        await alternate(server, `upload ${w}`, arms, p.objects);
      } else if (w === 'noop') {
        for (const k of ['manual', 'cache'] as const) {
          const p = projects.get(k)!;
          // releng re-runs against pub-KIND/ (record and hash memo from the publish); rclone against its own copy.
          const rprefix = `noop-rclone-${k}/`;
          await runCmd('rclone', ['copy', p.mirror, remote(rprefix), '--transfers', '16', '--s3-no-head'], { env, quiet: true });
          // The upload workloads wiped releng's memos: one unmeasured re-run fills the record and hash memo for pub-KIND/ again.
          writeConfig(p.dir, `pub-${k}/`, 'unused-prod/');
          const u = upload(p);
          await runCmd(u.cmd, u.args, { cwd: p.dir, env, quiet: true });
          await alternate(server, `no-op ${k}`, [
            { name: 'releng upload (re-run)', prepare: async () => { writeConfig(p.dir, `pub-${k}/`, 'unused-prod/'); return { ...upload(p), cwd: p.dir, env }; } },
            { name: 'rclone copy --checksum --fast-list', prepare: async () => ({ cmd: 'rclone', args: ['copy', p.mirror, remote(rprefix), '--transfers', '16', '--checkers', '16', '--checksum', '--fast-list'], env }) },
          ], p.objects);
        }
      } else if (w === 'verify') {
        for (const p of projects.values()) {
          for (const deep of [false, true]) {
            await alternate(server, `verify${deep ? ' --deep' : ''} ${p.kind}`, [
              { name: `releng verify${deep ? ' --deep' : ''}`, prepare: async () => { writeConfig(p.dir, `pub-${p.kind}/`, 'unused-prod/'); return { ...releng(['verify', '--environment', 'bench', ...(deep ? ['--deep'] : [])]), cwd: p.dir, env }; } },
              { name: `rclone check --one-way${deep ? ' --download' : ''}`, prepare: async () => ({ cmd: 'rclone', args: ['check', p.mirror, remote(`pub-${p.kind}/`), '--one-way', '--checkers', '16', '--fast-list', ...(deep ? ['--download'] : [])], env }) },
            ], p.objects);
          }
        }
      } else if (w === 'promote') {
        for (const p of projects.values()) {
          await alternate(server, `promote ${p.kind}`, [
            { name: 'releng promote', prepare: async () => {
              const prefix = fresh(`promote-${p.kind}`, 'releng');
              writeConfig(p.dir, `pub-${p.kind}/`, prefix);
              return { ...releng(['promote', VERSION, '--from', 'bench', '--environment', 'prod']), cwd: p.dir, env, after: () => server.drop(prefix) };
            } },
            { name: 'rclone copy (server-side) --transfers 16', prepare: async () => {
              const prefix = fresh(`promote-${p.kind}`, 'rclone');
              return { cmd: 'rclone', args: ['copy', remote(`pub-${p.kind}/`), remote(prefix), '--transfers', '16', '--checkers', '16', '--fast-list'], env, after: () => server.drop(prefix) };
            } },
          ], p.objects);
        }
      } else if (w === 'startup') {
        const p = projects.get('manual')!;
        writeConfig(p.dir, `pub-manual/`, 'unused-prod/');
        await alternate(server, 'start-up --help', [
          { name: 'releng --help', prepare: async () => ({ ...releng(['--help']), cwd: p.dir, env }) },
          { name: 'node -e 0', prepare: async () => ({ cmd: node, args: ['-e', '0'], cwd: p.dir, env }) },
        ]);
        await alternate(server, 'start-up check', [
          { name: 'releng check --environment bench', prepare: async () => ({ ...releng(['check', '--environment', 'bench']), cwd: p.dir, env }) },
          { name: 'rclone lsd (one request)', prepare: async () => ({ cmd: 'rclone', args: ['lsd', remote('')], env }) },
        ]);
      } else if (w === 'sha256' && sname === servers[0]) {
        const files = readdirSync(path.join(projects.get('tarballs')!.dir, 'release', 'artifacts', RELEASE_DIR)).filter((f) => f.endsWith('.tar.xz')).map((f) => path.join(projects.get('tarballs')!.dir, 'release', 'artifacts', RELEASE_DIR, f));
        await alternate(server, `sha256 (${4 * tarballMiB} MiB, no server)`, [
          // the real CLI: digestFile as upload calls it (files from 8 MiB by the hash workers, one per core)
          { name: 'releng sha256', prepare: async () => releng(['sha256', ...files]) },
          { name: 'openssl dgst -sha256', prepare: async () => ({ cmd: 'openssl', args: ['dgst', '-sha256', ...files] }) },
        ]);
      }
    }
    await server.stop();
    started.splice(started.indexOf(server), 1);
    current = undefined;
  }
} catch (e) {
  await cleanup();
  // Interrupted: the run that failed was cut short by the signal, not a finding.
  if (interrupted) process.exit(130);
  throw e;
}
const uptimeAfter = uptime();
log(`load after: ${uptimeAfter}`);

// ---------- report ----------
const fmt = (ms: number) => (ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const lines: string[] = [];
lines.push(`# releng bench (issue 16)`, '');
lines.push(`- machine: ${os.cpus()[0]?.model} × ${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, node ${process.version}, ${run('rclone', ['version']).split('\n')[0]}; data on ${base}`);
lines.push(`- date: ${new Date().toISOString()}; ${pairs} pairs after ${warmup} warm-up; --scale ${scale} (manual ${Math.max(1, Math.round(2000 * scale))} files, cache ${Math.max(1, Math.round(1000 * scale))} store paths of ${Math.round(pathKiB / 10)}–${pathKiB} KiB); tarballs 4 × ${tarballMiB} MiB; servers ${servers.join(', ')}`);
lines.push(`- load before: ${uptimeBefore}`);
lines.push(`- load after:  ${uptimeAfter}`);
lines.push(`- requests counted at the server: s3rver's request log, RGW's beast access log (debug rgw 1), the same for every arm; LIST = GET on the bucket with a list query`);
lines.push('');
lines.push('| server | workload | arm | wall median (min–max) | ratio releng/arm (median of pairs) | client CPU | server CPU | PUT | HEAD | GET | LIST | other | peak RSS | objects | wall / 1,000 objects | client CPU / 1,000 objects |');
lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
const groups = new Map<string, Row[]>();
for (const r of rows) groups.set(`${r.server}|${r.workload}`, [...(groups.get(`${r.server}|${r.workload}`) ?? []), r]);
const ratioOf = (a: Row, b: Row) => stats(a.runs.map((x, i) => x.wallMs / b.runs[i]!.wallMs)).median;
const maxReq = (r: Row, m: string) => Math.max(...r.runs.map((x) => x.req[m] ?? 0));
// Per 1,000 objects of the workload's mirror (issue 31: the growth between --scale 1, 10 and 50 as a curve); fixed costs included.
const perThousand = (r: Row, wallMedian: number) => (r.objects
  ? `${r.objects} | ${fmt((wallMedian / r.objects) * 1000)} | ${fmt((stats(r.runs.map((x) => x.cpuMs)).median / r.objects) * 1000)}`
  : ' | | ');
for (const rs of groups.values()) {
  const a = rs[0]!;
  for (const r of rs) {
    const t = stats(r.runs.map((x) => x.wallMs));
    const others = Math.max(...r.runs.map((x) => Object.entries(x.req).filter(([m]) => !['PUT', 'HEAD', 'GET', 'LIST'].includes(m)).reduce((n, [, v]) => n + v, 0)));
    lines.push(`| ${r.server} | ${r.workload} | ${r.arm} | ${fmt(t.median)} (${fmt(t.min)}–${fmt(t.max)}) | ${r === a ? '' : ratioOf(a, r).toFixed(2)} | ${fmt(stats(r.runs.map((x) => x.cpuMs)).median)} | ${fmt(stats(r.runs.map((x) => x.serverCpuMs)).median)} | ${maxReq(r, 'PUT')} | ${maxReq(r, 'HEAD')} | ${maxReq(r, 'GET')} | ${maxReq(r, 'LIST')} | ${others} | ${Math.round(Math.max(...r.runs.map((x) => x.maxRssKiB)) / 1024)} MiB | ${perThousand(r, t.median)} |`);
  }
}

// Targets (issue 16): process wall time of the real CLI as a ratio to the reference, on both servers.
lines.push('', '## Targets', '', '| server | target | figure | met? |', '|---|---|---|---|');
const find = (server: string, workload: string, arm?: string) => rows.find((r) => r.server === server && r.workload === workload && (arm === undefined || r.arm.startsWith(arm)));
const target = (server: string, what: string, figure: number | undefined, limit: number, unit: string, extra = true) => {
  if (figure === undefined) return;
  const ok = figure <= limit && extra;
  lines.push(`| ${server} | ${what} ≤ ${limit}${unit} | ${unit === '×' ? figure.toFixed(2) + '×' : unit === ' s' ? (figure / 1000).toFixed(2) + ' s' : Math.round(figure) + unit} | ${ok ? 'met' : 'MISSED'} |`);
};
for (const s of servers) {
  for (const [w, limit] of [['upload manual', 0.9], ['upload cache', 0.9], ['upload tarballs', 0.8]] as const) {
    const a = find(s, w, 'releng'); const b = find(s, w, 'rclone');
    if (a && b) target(s, `${w} / rclone`, ratioOf(a, b), limit, '×');
  }
  for (const k of ['manual', 'cache']) {
    const a = find(s, `no-op ${k}`, 'releng'); const b = find(s, `no-op ${k}`, 'rclone');
    if (a && b) target(s, `no-op ${k} / rclone --checksum (and 0 PUTs: ${maxReq(a, 'PUT')})`, ratioOf(a, b), 0.5, '×', maxReq(a, 'PUT') === 0);
  }
  for (const k of ['manual', 'cache', 'tarballs']) {
    const a = find(s, `verify --deep ${k}`, 'releng'); const b = find(s, `verify --deep ${k}`, 'rclone');
    if (a && b) target(s, `verify --deep ${k} / rclone check --download`, ratioOf(a, b), 1.0, '×');
    const c = find(s, `promote ${k}`, 'releng'); const d = find(s, `promote ${k}`, 'rclone');
    if (c && d) target(s, `promote ${k} / rclone copy bucket to bucket`, ratioOf(c, d), 0.5, '×');
  }
  const h = find(s, 'start-up --help', 'releng');
  if (h) target(s, 'releng --help wall median', stats(h.runs.map((x) => x.wallMs)).median, 300, ' ms');
  const t = find(s, 'upload tarballs', 'releng');
  if (t) target(s, 'peak RSS of releng upload, tarballs', Math.max(...t.runs.map((x) => x.maxRssKiB)) / 1024, 300, ' MiB');
}

lines.push('', '## Commands', '', '$WS is the workspace; PREFIX is fresh per run where the workload writes.', '');
for (const c of commands) lines.push(`- ${c}`);
const seen = new Set<string>();
for (const r of rows) {
  const key = `${r.workload}|${r.arm}`;
  if (seen.has(key)) continue;
  seen.add(key);
  lines.push(`- ${r.workload} / ${r.arm}: \`${r.example.replace(/(s3rver|rgw):bench\/[a-z]+-[a-z-]*-\d+\//g, '$1:bench/PREFIX/')}\``);
}
const report = lines.join('\n');
console.log(report);
if (flags.out) writeFileSync(flags.out, report + '\n');
await cleanup();
