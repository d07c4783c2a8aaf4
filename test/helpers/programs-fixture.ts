// The Hydra side of the programs.sqlite tests (issue 27): NixOS evaluations whose channel tarball
// holds the tiny nixpkgs of test/fixtures/channel/nixpkgs, whose packages.json.br is what the real
// `nix-env -qa --json --meta` writes for it (nixpkgs' make-tarball.nix before packages-info.nix), and
// whose packages are built for x86_64-linux and aarch64-linux (the builder is /bin/sh either way;
// `extra-platforms`) and copied by the real Nix into a binary cache with NAR listings
// (`write-nar-listing=true`: HASH.ls), uploaded into an S3 bucket served over plain HTTP, so the
// debuginfo/ entries releng writes sit beside the NARs they point at, as in cache.nixos.org.
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { brotliCompressSync } from 'node:zlib';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import type { FakeHydra } from './hydra.ts';
import { repoRoot } from './project.ts';
import type { TestS3 } from './s3.ts';

export const SYSTEMS = ['x86_64-linux', 'aarch64-linux'] as const;
const FIXTURE = path.join(repoRoot, 'test/fixtures/channel/nixpkgs');
const nixOpts = ['--option', 'extra-platforms', 'aarch64-linux'];

export interface ProgramsRelease {
  version: string;
  nixpkgsDir: string;
  channel: string;
  tarball: string;
  /** system → attribute → output → path (what nix-env evaluates; notInCache is not built). */
  packages: Record<string, Record<string, Record<string, string>>>;
  /** Every path built (and so put in the cache). */
  built: string[];
}

function evaluate(dir: string, system: string): Record<string, Record<string, string>> {
  const json = JSON.parse(execFileSync('nix-env', ['-qaP', '--out-path', '--json', '-f', dir, '--argstr', 'system', system, '--arg', 'config', '{ allowAliases = false; }', '--arg', 'overlays', '[ ]'],
    { encoding: 'utf8', env: { ...process.env, NIX_PATH: '' } }));
  return Object.fromEntries(Object.entries(json).map(([attr, v]: [string, any]) => [attr, v.outputs]));
}

/** Builds release `version`: its nixpkgs (the fixture, plus `extraNix` as extra.nix), packages.json.br, channel tarballs and packages. */
export async function buildProgramsRelease(base: string, version: string, extraNix?: string): Promise<ProgramsRelease> {
  const nixpkgsDir = path.join(base, `nixpkgs-${version}`);
  await cp(FIXTURE, nixpkgsDir, { recursive: true });
  if (extraNix) await writeFile(path.join(nixpkgsDir, 'extra.nix'), extraNix);
  const listing = execFileSync('nix-env', ['-qa', '--json', '--meta', '-f', nixpkgsDir], { encoding: 'utf8', env: { ...process.env, NIX_PATH: '' } });
  const brFile = path.join(base, `packages-${version}.json.br`);
  await writeFile(brFile, brotliCompressSync(Buffer.from(`{"version":2,"packages":${listing}}`)));
  const jobs = path.join(repoRoot, 'test/fixtures/channel/programs-jobs.nix');
  const [channel, tarball] = execFileSync('nix-build', ['--no-out-link', jobs, '-A', 'channel', '-A', 'tarball', '--argstr', 'version', version, '--arg', 'nixpkgsDir', nixpkgsDir, '--arg', 'brFile', brFile],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n');
  const packages: ProgramsRelease['packages'] = {};
  const built: string[] = [channel!, tarball!];
  for (const system of SYSTEMS) {
    packages[system] = evaluate(nixpkgsDir, system);
    const attrs = Object.keys(packages[system]!).filter((a) => a !== 'notInCache');
    execFileSync('nix-build', ['--no-out-link', ...nixOpts, nixpkgsDir, '--argstr', 'system', system, ...attrs.flatMap((a) => ['-A', a])], { stdio: ['ignore', 'pipe', 'pipe'] });
    // nix-build prints the first output only; every output of each derivation was built.
    built.push(...attrs.flatMap((a) => Object.values(packages[system]![a]!)));
  }
  return { version, nixpkgsDir, channel: channel!, tarball: tarball!, packages, built: [...new Set(built)] };
}

/** Copies paths into a file:// binary cache with NAR listings, then uploads what the bucket lacks. */
export async function publishToCache(paths: string[], cacheDir: string, s3: TestS3, bucket: string): Promise<void> {
  execFileSync('nix', ['copy', '--to', `file://${cacheDir}?write-nar-listing=true`, ...paths], { stdio: ['ignore', 'pipe', 'pipe'] });
  const have = new Set((await s3.store.list(bucket, '')).map((o) => o.key));
  const walk = async (dir: string, rel = ''): Promise<string[]> => (await Promise.all((await readdir(dir, { withFileTypes: true })).map(async (e) =>
    e.isDirectory() ? walk(path.join(dir, e.name), `${rel}${e.name}/`) : [`${rel}${e.name}`]))).flat();
  for (const key of await walk(cacheDir)) {
    if (have.has(key)) continue;
    const file = path.join(cacheDir, key);
    await s3.store.put({ bucket, key, body: { file }, size: (await stat(file)).size, sha256: sha256Text(await readFile(file)), contentType: key.endsWith('.narinfo') ? 'text/x-nix-narinfo' : 'application/octet-stream' });
  }
}

/** A git repository with one commit per release (what the evaluations' input points at). */
export function sourceRepo(dir: string, keys: string[]): Map<string, string> {
  const git = (args: string[], env: Record<string, string> = {}) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', env: { ...process.env, ...env } }).trim();
  execFileSync('mkdir', ['-p', dir]);
  git(['init', '-q', '-b', 'master']);
  git(['config', 'user.name', 'test']);
  git(['config', 'user.email', 't@example.invalid']);
  const revs = new Map<string, string>();
  keys.forEach((k, i) => {
    const when = `@${1780000000 + i * 1000} +0000`;
    git(['commit', '-q', '--allow-empty', '-m', k], { GIT_COMMITTER_DATE: when, GIT_AUTHOR_DATE: when });
    revs.set(k, git(['rev-parse', 'HEAD']));
  });
  return revs;
}

/** Registers release `r` as evaluation `evalId` of jobset nixos/release-26.05: the channel jobs, every package build (job nixpkgs.ATTR.SYSTEM, all its outputs) and `tested`. */
export async function registerProgramsEval(hydra: FakeHydra, r: ProgramsRelease, evalId: number, rev: string, repo: string): Promise<string> {
  const ids: number[] = [];
  let n = 1;
  const add = async (job: string, nixname: string, out: string, outputs: Record<string, string> = {}, system = 'x86_64-linux') => {
    const id = evalId * 100 + n++;
    await hydra.addBuild({ id, job, nixname, out, outputs, evals: [evalId], project: 'nixos', jobset: 'release-26.05', system });
    ids.push(id);
    return id;
  };
  const main = await add('tested', `nixos-${r.version}`, `/nix/store/${'1'.repeat(32)}-nixos-${r.version}`);
  await add('nixos.channel', `nixos-channel-${r.version}`, r.channel);
  await add('nixpkgs.tarball', `nixpkgs-tarball-${r.version}`, r.tarball);
  for (const system of SYSTEMS) {
    for (const [attr, outputs] of Object.entries(r.packages[system]!)) {
      if (attr === 'notInCache' || attr === 'helloAlias') continue;
      const { out, ...rest } = outputs;
      await add(`nixpkgs.${attr}.${system}`, attr, out ?? Object.values(outputs)[0]!, out ? rest : {}, system);
    }
  }
  hydra.addEval({ id: evalId, builds: ids, inputs: { nixpkgs: { type: 'git', uri: repo, revision: rev } } });
  return `${hydra.url}/build/${main}`;
}

export { mkdir };
