// The Hydra side of the channel tests: evaluations shaped like hydra.nixos.org's NixOS and Nixpkgs
// jobsets, their job outputs built with the Nix here (test/fixtures/channel/hydra-jobs.nix) and
// copied into a binary cache served over HTTP, and a git repository holding their commits.
//
// Which jobs an evaluation has follows nixpkgs' nixos/release.nix and release-small.nix by series,
// not releng's config: channel tarball (.tar.xz and .tar.zst, "source-dist"), nixpkgs.tarball
// (+ packages.json.br, "json-br"), nixos.options (options.json "json" + options.json.br "json-br"),
// minimal ISOs (x86_64, aarch64; i686 up to 23.11; the small jobset only up to 24.05), plasma5 ISOs
// up to 23.11, plasma6 ISOs in 24.x, GNOME ISOs up to 24.11, one graphical ISO per arch from 25.05
// and in unstable, the VirtualBox OVA up to 24.05, a few packages (nix-build products: the
// evaluation's store-paths), and the aggregate "tested" job whose nixname names the release.
// Nixpkgs jobsets (nixpkgs-unstable, nixpkgs-YY.MM-darwin) have `tarball` and an aggregate.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { brotliCompressSync } from 'node:zlib';
import { serveDirectory, type FakeHydra, type StaticServer } from './hydra.ts';
import { repoRoot } from './project.ts';
import { requireTool } from './tools.ts';

export interface FixtureFile { path: string; make: 'tar.xz' | 'tar.zst' | 'fill' | 'copy'; type: string; subtype: string; size?: number; from?: string }
export interface FixtureJob { job: string; name: string; files: FixtureFile[]; system?: string; failed?: boolean }

/** One evaluation: its jobset, the release name of its aggregate job, and the jobs it has. */
export interface FixtureEval {
  key: string;
  project: 'nixos' | 'nixpkgs';
  jobset: string;
  /** The aggregate job the channel follows (tested, unstable, darwin-tested) and its nixname. */
  mainJob: string;
  nixname: string;
  /** Version as Hydra's nixname carries it: the part after the first "-" and a digit. */
  version: string;
  jobs: FixtureJob[];
  /** Reuse the job outputs of another evaluation (a -small jobset at the same commit builds the same files). */
  outputsOf?: string;
}

const ARCHES = ['x86_64-linux', 'aarch64-linux'] as const;

/** The number of the series ("23.11" → 2311; unstable sorts after every release). */
function seriesNumber(series: string): number {
  return series === 'unstable' ? 9999 : Number(series.replace('.', ''));
}

function iso(kind: string, version: string, arch: string, size = 2048): FixtureJob {
  const file = `nixos-${kind}-${version}-${arch}.iso`;
  return { job: `nixos.iso_${kind}.${arch}`, name: file, system: arch, files: [{ path: `iso/${file}`, make: 'fill', size, type: 'file', subtype: 'iso' }] };
}

/** The jobs of a NixOS evaluation of `series` (full or small jobset), as nixos/release*.nix define them. */
export function nixosJobs(series: string, version: string, small: boolean, opts: { failed?: string[]; bigIso?: boolean } = {}): FixtureJob[] {
  const n = seriesNumber(series);
  const jobs: FixtureJob[] = [
    { job: 'nixos.channel', name: `nixos-channel-${version}`, files: [
      { path: `tarballs/nixos-${version}.tar.xz`, make: 'tar.xz', type: 'file', subtype: 'source-dist' },
      { path: `tarballs/nixos-${version}.tar.zst`, make: 'tar.zst', type: 'file', subtype: 'source-dist' },
    ] },
    { job: 'nixpkgs.tarball', name: `nixpkgs-tarball-${version}`, files: [
      { path: 'packages.json.br', make: 'copy', from: 'packages.json.br', type: 'file', subtype: 'json-br' },
      { path: `tarballs/nixpkgs-${version}.tar.xz`, make: 'tar.xz', type: 'file', subtype: 'source-dist' },
      { path: `tarballs/nixpkgs-${version}.tar.zst`, make: 'tar.zst', type: 'file', subtype: 'source-dist' },
    ] },
    { job: 'nixos.options', name: `options-${version}`, files: [
      { path: 'share/doc/nixos/options.json', make: 'fill', size: 700, type: 'file', subtype: 'json' },
      { path: 'share/doc/nixos/options.json.br', make: 'copy', from: 'options.json.br', type: 'file', subtype: 'json-br' },
    ] },
  ];
  if (!small || n <= 2405) jobs.push(...ARCHES.map((a) => iso('minimal', version, a, a === 'x86_64-linux' && opts.bigIso ? 300 * 1024 : 2048)));
  if (!small) {
    if (n <= 2311) jobs.push(iso('minimal', version, 'i686-linux'), ...ARCHES.map((a) => iso('plasma5', version, a)));
    if (n > 2311 && n <= 2411) jobs.push(...ARCHES.map((a) => iso('plasma6', version, a)));
    if (n <= 2411) jobs.push(...ARCHES.map((a) => iso('gnome', version, a)));
    if (n >= 2505) jobs.push(...ARCHES.map((a) => iso('graphical', version, a)));
    if (n <= 2405) jobs.push({ job: 'nixos.ova.x86_64-linux', name: `nixos-ova-${version}`, files: [{ path: `nixos-${version}-x86_64-linux.ova`, make: 'fill', size: 3000, type: 'file', subtype: 'ova' }] });
  }
  for (const j of jobs) if (opts.failed?.includes(j.job)) j.failed = true;
  return jobs;
}

/** The jobs of a Nixpkgs evaluation (nixpkgs-unstable, nixpkgs-YY.MM-darwin). */
export function nixpkgsJobs(version: string): FixtureJob[] {
  return [{ job: 'tarball', name: `nixpkgs-tarball-${version}`, files: [
    { path: 'packages.json.br', make: 'copy', from: 'packages.json.br', type: 'file', subtype: 'json-br' },
    { path: `tarballs/nixpkgs-${version}.tar.xz`, make: 'tar.xz', type: 'file', subtype: 'source-dist' },
    { path: `tarballs/nixpkgs-${version}.tar.zst`, make: 'tar.zst', type: 'file', subtype: 'source-dist' },
  ] }];
}

export interface BuiltFixture {
  cache: StaticServer;
  /** evaluation key → job → output path. */
  outs: Map<string, Map<string, string>>;
  /** Commits of the source repository, one per evaluation (a linear history, in the order given). */
  revs: Map<string, string>;
  sourceRepo: string;
  /** The NARs fetched from the binary cache so far. */
  narGets(): number;
}

/** Builds every job output of `evals` with one nix-build, copies them to a binary cache and serves it. */
export async function buildFixture(base: string, evals: FixtureEval[]): Promise<BuiltFixture> {
  const brDir = path.join(base, 'br');
  await mkdir(brDir, { recursive: true });
  await writeFile(path.join(brDir, 'packages.json.br'), brotliCompressSync(Buffer.from(JSON.stringify({ version: 2, packages: { hello: { pname: 'hello', version: '2.12.1' } } }))));
  await writeFile(path.join(brDir, 'options.json.br'), brotliCompressSync(Buffer.from(JSON.stringify({ 'services.nginx.enable': { type: 'boolean' } }))));
  const specs = evals.filter((e) => !e.outputsOf).flatMap((e) => e.jobs.filter((j) => !j.failed).map((j) => ({ key: e.key, job: j.job, spec: { name: j.name, files: j.files } })));
  const built = execFileSync('nix-build', ['--no-out-link', '--max-jobs', '2', path.join(repoRoot, 'test/fixtures/channel/hydra-jobs.nix'),
    '--argstr', 'builds', JSON.stringify(specs.map((s) => s.spec)), '--arg', 'brDir', brDir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n');
  if (built.length !== specs.length) throw new Error(`nix-build built ${built.length} outputs for ${specs.length} jobs`);
  const outs = new Map<string, Map<string, string>>();
  specs.forEach((s, i) => {
    if (!outs.has(s.key)) outs.set(s.key, new Map());
    outs.get(s.key)!.set(s.job, built[i]!);
  });
  const cacheDir = path.join(base, 'cache');
  execFileSync('nix', ['copy', '--to', `file://${cacheDir}`, ...built], { stdio: ['ignore', 'pipe', 'pipe'] });
  const cache = await serveDirectory(cacheDir);

  const sourceRepo = path.join(base, 'nixpkgs');
  await mkdir(sourceRepo, { recursive: true });
  const git = (args: string[], env: Record<string, string> = {}) => execFileSync('git', args, { cwd: sourceRepo, encoding: 'utf8', env: { ...process.env, ...env } }).trim();
  git(['init', '-q', '-b', 'master']);
  git(['config', 'user.name', 'test']);
  git(['config', 'user.email', 't@example.invalid']);
  const revs = new Map<string, string>();
  evals.forEach((e, i) => {
    const when = `@${1780000000 + i * 1000} +0000`;
    git(['commit', '-q', '--allow-empty', '-m', e.key], { GIT_COMMITTER_DATE: when, GIT_AUTHOR_DATE: when });
    revs.set(e.key, git(['rev-parse', 'HEAD']));
  });
  return { cache, outs, revs, sourceRepo, narGets: () => cache.requests.filter((r) => /^GET \/nar\//.test(r)).length };
}

/** A store path that is not in the cache (packages: listed in store-paths, never downloaded). */
function fakeStorePath(seed: string, name: string): string {
  const chars = '0123456789abcdfghijklmnpqrsvwxyz';
  let h = 0;
  let s = '';
  for (let i = 0; i < 32; i++) { h = (h * 31 + seed.charCodeAt(i % seed.length) + i) >>> 0; s += chars[h % 32]; }
  return `/nix/store/${s}-${name}`;
}

/** Registers evaluation `e` as eval `evalId` with builds evalId*100+N; returns the main build's URL. */
export async function registerEval(hydra: FakeHydra, f: BuiltFixture, e: FixtureEval, evalId: number): Promise<{ buildUrl: string; mainBuild: number; buildOf: Record<string, number> }> {
  const ids: number[] = [];
  const buildOf: Record<string, number> = {};
  let n = 1;
  const add = async (job: string, nixname: string, out: string, extra: { failed?: boolean; system?: string } = {}) => {
    const id = evalId * 100 + n++;
    await hydra.addBuild({ id, job, nixname, out, evals: [evalId], project: e.project, jobset: e.jobset, system: extra.system, buildstatus: extra.failed ? 1 : 0 });
    ids.push(id);
    buildOf[job] = id;
    return id;
  };
  const mainBuild = await add(e.mainJob, e.nixname, fakeStorePath(`${e.key}-main`, e.nixname));
  for (const j of e.jobs) await add(j.job, j.name, f.outs.get(e.outputsOf ?? e.key)?.get(j.job) ?? fakeStorePath(`${e.key}-${j.job}`, j.name), { failed: j.failed, system: j.system });
  for (const pkg of ['hello-2.12.1', 'coreutils-9.5']) await add(`${pkg.split('-')[0]}.x86_64-linux`, pkg, fakeStorePath(`${e.key}-${pkg}`, pkg));
  hydra.addEval({ id: evalId, builds: ids, inputs: { nixpkgs: { type: 'git', uri: f.sourceRepo, revision: f.revs.get(e.key)! } } });
  return { buildUrl: `${hydra.url}/build/${mainBuild}`, mainBuild, buildOf };
}

export interface ChannelScratch { base: string; project: string; remote: string; fx: BuiltFixture }

/**
 * The start of every channel test: the tools channel needs (a failure naming the Debian package),
 * a scratch base with an empty project directory and a bare channel remote (nixpkgs-channels.git),
 * and the fixture's evaluations built.
 */
export async function channelScratch(prefix: string, evals: FixtureEval[]): Promise<ChannelScratch> {
  for (const [tool, pkg] of [['nix-build', 'nix-bin'], ['xz', 'xz-utils'], ['zstd', 'zstd'], ['git', 'git'], ['flock', 'util-linux']] as const) requireTool(tool, pkg);
  const base = await mkdtemp(path.join(os.tmpdir(), prefix));
  const project = path.join(base, 'project');
  const remote = path.join(base, 'nixpkgs-channels.git');
  await mkdir(project, { recursive: true });
  execFileSync('git', ['init', '-q', '--bare', remote]);
  return { base, project, remote, fx: await buildFixture(base, evals) };
}
