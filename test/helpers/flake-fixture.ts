// A flake project with local git+file:// inputs (no network, no nixpkgs: builtins only), locked by
// the real Nix, committed, and pushed to a bare remote; plus the inputs' repositories to move.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { requireTool } from './tools.ts';

export interface InputRepo {
  dir: string;
  url: string;
  /** Commits `v` = text; returns the new commit id. */
  commit(text: string, subject: string): string;
  head(): string;
  /** git in the input's repository. */
  git(...args: string[]): string;
}

export interface FlakeOptions {
  /** Input `alpha`: a flake with an input `gamma` of its own (its flake.lock committed), and a root
   *  input `gamma` of the same repository: the lock's node keys are `gamma` and `gamma_2`. */
  nested?: boolean;
  /** Input `channel` pinned to ref `nixos-25.05` of its repository (which also has nixos-unstable). */
  refBump?: boolean;
}

export interface FlakeProject {
  base: string;
  /** The flake (and releng.json): the repository's root, or `sub` of it. */
  dir: string;
  /** flake.lock from the repository's root. */
  lockPath: string;
  remote: string;
  /** Environment for `releng` runs: its own state dir (input mirrors). */
  env: Record<string, string>;
  inputs: Record<string, InputRepo>;
  git(...args: string[]): string;
  nix(args: string[], cwd?: string): string;
  cleanup(): Promise<void>;
}

const identity = ['-c', 'user.name=releng test', '-c', 'user.email=test@example.invalid'];

function gitIn(dir: string) {
  return (...args: string[]) => execFileSync('git', [...identity, ...args], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Inputs: `plain` (flake = false, a file v), `lib` (a flake with no inputs of its own), `extra`;
 *  `opts` adds nested inputs and a ref-pinned input. */
export async function flakeProject(extraEnvironments: Record<string, unknown> = {}, sub = '', opts: FlakeOptions = {}): Promise<FlakeProject> {
  requireTool('nix', 'nix-bin');
  requireTool('git', 'git');
  const base = await mkdtemp(path.join(os.tmpdir(), 'releng-lock-test-'));
  const inputs: Record<string, InputRepo> = {};
  const names = ['plain', 'lib', 'extra', ...(opts.nested ? ['gamma', 'alpha'] : []), ...(opts.refBump ? ['channel'] : [])];
  for (const name of names) {
    const dir = path.join(base, 'inputs', name);
    await mkdir(dir, { recursive: true });
    const g = gitIn(dir);
    g('init', '-q', '-b', 'main');
    const repo: InputRepo = {
      dir,
      url: `git+file://${dir}`,
      commit(text, subject) {
        execFileSync('sh', ['-c', 'printf %s "$1" > v', 'sh', text], { cwd: dir });
        g('add', '-A');
        g('commit', '-q', '-m', subject);
        return g('rev-parse', 'HEAD');
      },
      head: () => g('rev-parse', 'HEAD'),
      git: g,
    };
    if (name === 'lib') await writeFile(path.join(dir, 'flake.nix'), '{ outputs = { self }: { greeting = builtins.readFile ./v; }; }\n');
    if (name === 'alpha') {
      await writeFile(path.join(dir, 'flake.nix'), `{
  inputs.gamma = { url = "${inputs.gamma!.url}"; flake = false; };
  outputs = { self, gamma }: { gammaText = builtins.readFile "\${gamma}/v"; };
}
`);
    }
    if (name === 'channel') g('checkout', '-q', '-b', 'nixos-25.05');
    repo.commit(`${name} 1`, `${name}: first`);
    if (name === 'alpha') {
      execFileSync('nix', ['flake', 'lock'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      g('add', '-A');
      g('commit', '-q', '-m', 'alpha: lock gamma');
    }
    if (name === 'channel') {
      g('branch', 'nixos-unstable');
      g('branch', 'nixos-24.11', 'HEAD');
    }
    inputs[name] = repo;
  }
  const repoDir = path.join(base, 'project');
  const dir = path.join(repoDir, sub);
  const remote = path.join(base, 'remote.git');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'flake.nix'), `{
  inputs.plain = { url = "${inputs.plain!.url}"; flake = false; };
  inputs.lib.url = "${inputs.lib!.url}";
  inputs.extra = { url = "${inputs.extra!.url}"; flake = false; };${opts.nested ? `
  inputs.alpha.url = "${inputs.alpha!.url}";
  inputs.gamma = { url = "${inputs.gamma!.url}"; flake = false; };` : ''}${opts.refBump ? `
  inputs.channel = { url = "${inputs.channel?.url}?ref=nixos-25.05"; flake = false; };
  inputs.stable = { url = "${inputs.channel?.url}?ref=nixos-25.05"; flake = false; };` : ''}
  outputs = { self, plain, lib, extra, ... }@inputs: {
    plainText = builtins.readFile "\${plain}/v";
    greeting = lib.greeting;${opts.nested ? `
    alphaGamma = inputs.alpha.gammaText;` : ''}${opts.refBump ? `
    channelText = builtins.readFile "\${inputs.channel}/v";` : ''}
  };
}
`);
  const bucket = { releasesBucket: 's3://lock-releases', cacheBucket: 's3://lock-cache', docsBucket: 's3://lock-docs', s3: { endpoint: 'embedded' }, credentials: { source: 'embedded' } };
  await writeFile(path.join(dir, 'releng.json'), JSON.stringify({
    project: 'lockdemo',
    releaseJobs: { flake: '.#release-jobs' },
    profiles: { all: { systems: ['x86_64-linux'] } },
    defaultProfile: 'all',
    mainBranch: 'main',
    environments: {
      local: { ...bucket, git: { remote: path.relative(dir, remote), gerrit: false } },
      ...Object.fromEntries(Object.entries(extraEnvironments).map(([k, v]) => [k, { ...bucket, ...(v as object) }])),
    },
  }, null, 2) + '\n');
  const git = gitIn(dir);
  gitIn(repoDir)('init', '-q', '-b', 'main');
  git('config', 'user.name', 'releng bot');
  git('config', 'user.email', 'bot@example.invalid');
  git('add', '-A');
  const nix = (args: string[], cwd = dir) => execFileSync('nix', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  nix(['flake', 'lock']);
  git('add', '-A');
  git('commit', '-q', '-m', 'initial flake');
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', remote]);
  git('remote', 'add', 'origin', remote);
  git('push', '-q', 'origin', 'main');
  return {
    base, dir, remote, inputs, git, nix, lockPath: sub ? `${sub}/flake.lock` : 'flake.lock',
    env: { RELENG_STATE_DIR: path.join(base, 'state') },
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}
