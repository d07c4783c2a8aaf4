// A released examples/hello with one large artifact (a random file committed at the project root,
// so `hello-1.0.0.tar.gz` made by git archive is about that size), uploaded to a staging
// environment on s3rver, and file-tree environments (file://) to upload or promote into, for the
// fault and race tests of issue 23. Everything runs through the real CLI: from source
// (RELENG_FROM_SOURCE=1 bin/releng) or from the bundle (node dist/lib/releng.mjs).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { hexToNix32, parseSha256Sums } from '../../lib/hashing/checksums.ts';
import { relengBin, repoRoot, scratchProject, type ScratchProject } from './project.ts';
import { startTestS3, type TestS3 } from './s3.ts';
import { tagLikeReleng } from './tagged.ts';
import { requireTool } from './tools.ts';

export const bundlePath = path.join(repoRoot, 'dist', 'lib', 'releng.mjs');

export interface CliRun { code: number; stdout: string; stderr: string }

/** How a test runs releng: from the TypeScript sources (tsx) or from the esbuild bundle. */
export type Runner = 'source' | 'bundle';

/** The command line of releng for a runner (argv[0] and the arguments before releng's own). */
function commandOf(runner: Runner): [string, string[], Record<string, string>] {
  return runner === 'source' ? [relengBin, [], { RELENG_FROM_SOURCE: '1' }] : ['node', [bundlePath], {}];
}

/** Runs releng to completion (bounded by `timeoutMs`), capturing its output and exit code. */
export async function runReleng(runner: Runner, args: string[], cwd: string, timeoutMs = 300_000): Promise<CliRun> {
  const [cmd, pre, env] = commandOf(runner);
  const r = await execa(cmd, [...pre, ...args], { cwd, env: { CI: 'true', ...env }, reject: false, input: '', timeout: timeoutMs });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Starts releng without waiting (to kill it); its output is collected. */
export function startReleng(runner: Runner, args: string[], cwd: string): { child: ChildProcess; output(): string; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const [cmd, pre, env] = commandOf(runner);
  const child = spawn(cmd, [...pre, ...args], { cwd, env: { ...process.env, CI: 'true', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, output: () => out, exited };
}

/** Polls `test` every `everyMs` until it returns a value, for at most `timeoutMs` (then throws `what`). */
export async function waitFor<T>(what: string, test: () => Promise<T | undefined>, timeoutMs: number, everyMs = 5): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await test();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface TreeFixture {
  p: ScratchProject;
  s3: TestS3;
  /** TREES/ENV/{releases,cache,docs} for each tree environment. */
  trees: string;
  /** The large artifact's key in the release prefix and its size. */
  big: { rel: string; size: number };
  dir(env: string, bucket: 'releases' | 'cache' | 'docs'): string;
  run(args: string[], runner?: Runner): Promise<CliRun>;
  cleanup(): Promise<void>;
}

function nixKey(name: string): string {
  return execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'generate-secret', '--key-name', name], { encoding: 'utf8' });
}

/**
 * Builds the fixture: tree environments `envs` (file trees under a temp dir, or under `roots[env]`
 * when given, e.g. a tmpfs mount), staging on s3rver, the release built and uploaded to staging.
 */
export async function treeFixture(opts: { bigBytes: number; envs: string[]; roots?: Record<string, string> }): Promise<TreeFixture> {
  requireTool('nix-build', 'nix-bin');
  requireTool('zstd', 'zstd');
  const s3 = await startTestS3(['staging-releases', 'staging-cache', 'staging-docs']);
  const trees = await mkdtemp(path.join(os.tmpdir(), 'releng-fs-trees-'));
  const p = await scratchProject();
  const rootOf = (env: string) => opts.roots?.[env] ?? path.join(trees, env);
  for (const env of opts.envs) for (const b of ['releases', 'cache', 'docs']) await mkdir(path.join(rootOf(env), b), { recursive: true });
  await mkdir(path.join(p.dir, 'keys'), { recursive: true });
  await writeFile(path.join(p.dir, 'keys', 'staging.key'), nixKey('hello-staging-1'), { mode: 0o600 });
  await writeFile(path.join(p.dir, 'keys', 'production.key'), nixKey('hello-production-1'), { mode: 0o600 });
  // The large artifact: random bytes (gzip cannot shrink them) in the source tarball.
  await writeFile(path.join(p.dir, 'blob.bin'), randomBytes(opts.bigBytes));
  const cache = (key: string) => ({ signingKeyFile: key, compression: 'zstd', storeOptions: { 'write-nar-listing': 'true' } });
  await p.editConfig((c) => {
    c.environments = {
      staging: {
        releasesBucket: 's3://staging-releases', cacheBucket: 's3://staging-cache', docsBucket: 's3://staging-docs',
        s3: { endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, credentials: { source: 'embedded' },
        cache: cache('keys/staging.key'), confirm: false,
      },
      ...Object.fromEntries(opts.envs.map((env) => [env, {
        releasesBucket: `file://${rootOf(env)}/releases`, cacheBucket: `file://${rootOf(env)}/cache`, docsBucket: `file://${rootOf(env)}/docs`,
        cache: cache('keys/production.key'), confirm: false, mirror: { latestLinks: true },
      }])),
    };
  });
  p.git('add', '-A');
  p.git('commit', '-q', '-m', 'environments and a large file for the fault tests');
  p.git('push', '-q', 'origin', 'main');
  await tagLikeReleng(p);
  const run = (args: string[], runner: Runner = 'source') => runReleng(runner, args, p.dir);
  const built = await run(['build']);
  if (built.code !== 0) throw new Error(`releng build failed: ${built.stderr}`);
  const up = await run(['upload', '--environment', 'staging', '--no-check-git']);
  if (up.code !== 0) throw new Error(`releng upload --environment staging failed: ${up.stderr}`);
  const sums = parseSha256Sums(await readFile(path.join(p.dir, 'release', 'artifacts', 'hello', 'hello-1.0.0', 'SHA256SUMS'), 'utf8'));
  const rel = [...sums.keys()].find((n) => n === 'hello-1.0.0.tar.gz');
  if (!rel) throw new Error(`no hello-1.0.0.tar.gz in SHA256SUMS: ${[...sums.keys()].join(', ')}`);
  const size = (await stat(path.join(p.dir, 'release', 'artifacts', 'hello', 'hello-1.0.0', rel))).size;
  return {
    p, s3, trees, big: { rel, size }, run,
    dir: (env, b) => path.join(rootOf(env), b),
    async cleanup() {
      await s3.stop();
      await p.cleanup();
      await rm(trees, { recursive: true, force: true });
    },
  };
}

/** Mounts a tmpfs of `bytes` at `dir` (needs root); the error says so when it cannot. */
export function mountTmpfs(dir: string, bytes: number): void {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e: any) {
    throw new Error(`this test mounts a small tmpfs to fill it (ENOSPC): \`mount -t tmpfs\` failed (${String(e.stderr ?? e.message).trim()}); run it as root with CAP_SYS_ADMIN, as CI does`);
  }
}

export function remountTmpfs(dir: string, bytes: number): void {
  execFileSync('mount', ['-o', `remount,size=${bytes}`, dir], { stdio: 'pipe' });
}

export function umount(dir: string): void {
  try { execFileSync('umount', [dir], { stdio: 'pipe' }); } catch { /* not mounted */ }
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

/** Every file under `dir` (relative, `/`-separated), symlinks excluded; `.releng/` and temporary names included. */
export async function filesIn(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath ?? (e as any).path, e.name)).split(path.sep).join('/')).sort();
}

/**
 * Every way a file of tree environment `env` can differ from the plan, as lines (none: the tree
 * is the plan): a temporary file left, a file without a sidecar or whose sidecar records another
 * size or sha256 than the file has, a release file that is not release/artifacts' bytes (and
 * SHA256SUMS' sha256), a NAR whose sha256 is not the FileHash its name carries, a .ls that is not
 * the staged one, a manual page that is not release/manual's.
 */
export async function differencesFromPlan(f: Pick<TreeFixture, 'p' | 'dir'>, env: string, stagedFrom: string): Promise<string[]> {
  const out: string[] = [];
  const artifacts = path.join(f.p.dir, 'release', 'artifacts');
  const sums = parseSha256Sums(await readFile(path.join(artifacts, 'hello', 'hello-1.0.0', 'SHA256SUMS'), 'utf8'));
  const staged = path.join(f.p.dir, 'release', 'cache', stagedFrom);
  for (const b of ['releases', 'cache', 'docs'] as const) {
    const root = f.dir(env, b);
    for (const rel of await filesIn(root)) {
      const file = path.join(root, rel);
      if (rel.startsWith('.releng/')) continue;
      if (path.basename(rel).startsWith('.releng-tmp-')) { out.push(`${b}/${rel}: a temporary file left`); continue; }
      const st = await stat(file);
      const sha = await sha256Of(file);
      const side = await readFile(path.join(root, '.releng', 'meta', `${rel}.json`), 'utf8').then((t) => JSON.parse(t), () => undefined);
      if (!side) out.push(`${b}/${rel}: no sidecar`);
      else if (side.size !== st.size || side.sha256 !== sha) out.push(`${b}/${rel}: sidecar records ${side.size} bytes, sha256 ${String(side.sha256).slice(0, 12)}; the file has ${st.size}, ${sha.slice(0, 12)}`);
      const expectFrom = async (local: string) => {
        const want = await readFile(local).catch(() => undefined);
        if (!want) out.push(`${b}/${rel}: no local file ${local} to compare with`);
        else if (!want.equals(await readFile(file))) out.push(`${b}/${rel}: ${st.size} bytes differ from ${local} (${want.length} bytes)`);
      };
      if (b === 'releases' && rel.startsWith('hello/hello-1.0.0/')) {
        const name = rel.slice('hello/hello-1.0.0/'.length);
        if (sums.has(name) && sums.get(name) !== sha) out.push(`${b}/${rel}: sha256 ${sha.slice(0, 12)}, SHA256SUMS says ${sums.get(name)!.slice(0, 12)}`);
        await expectFrom(path.join(artifacts, rel));
      } else if (b === 'releases' && rel === 'manifest.nix') await expectFrom(path.join(artifacts, 'manifest.nix'));
      else if (b === 'cache' && rel.startsWith('nar/')) {
        const named = /^nar\/([0-9a-z]{52})\.nar/.exec(rel)?.[1];
        if (named !== hexToNix32(sha)) out.push(`${b}/${rel}: its sha256 is ${hexToNix32(sha)}, not the FileHash its name carries`);
      } else if (b === 'cache' && rel.endsWith('.ls')) await expectFrom(path.join(staged, rel));
      else if (b === 'docs' && rel.startsWith('manual/hello/')) await expectFrom(path.join(f.p.dir, 'release', 'manual', rel.split('/').slice(3).join('/')));
    }
  }
  return out;
}

/** Two CPU-bound processes (the load under which the race of issue 23 showed); stopped by pid. */
export function busyLoops(n = 2): { stop(): Promise<void> } {
  const children = Array.from({ length: n }, () => spawn('node', ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  return {
    async stop() {
      await Promise.all(children.map((c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.on('exit', () => resolve());
        c.kill('SIGKILL');
      })));
    },
  };
}
