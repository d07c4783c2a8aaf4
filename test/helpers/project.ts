// A scratch copy of examples/hello in a git repository of its own (with a bare remote), as the quick start makes.
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const relengBin = path.join(repoRoot, 'bin', 'releng');

export interface ScratchProject {
  dir: string;
  remote: string;
  git(...args: string[]): string;
  /** Rewrites releng.json through a function. */
  editConfig(f: (c: any) => void): Promise<void>;
  cleanup(): Promise<void>;
}

/**
 * Makes `dir` a git repository on main (a test identity, everything committed as "initial import")
 * with a new bare repository `remote` as origin; returns a git runner in `dir`. Shared by every
 * scratch project helper (this one and lix-project.ts).
 */
export function initWithRemote(dir: string, remote: string): (...args: string[]) => string {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', remote]);
  git('init', '-q', '-b', 'main');
  git('config', 'user.name', 'releng test');
  git('config', 'user.email', 'test@example.invalid');
  git('add', '-A');
  git('commit', '-q', '-m', 'initial import');
  git('remote', 'add', 'origin', remote);
  return git;
}

export async function scratchProject(example = 'hello'): Promise<ScratchProject> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'releng-project-'));
  const dir = path.join(base, example);
  const remote = path.join(base, 'remote.git');
  await cp(path.join(repoRoot, 'examples', example), dir, { recursive: true });
  const git = initWithRemote(dir, remote);
  return {
    dir, remote, git,
    async editConfig(f) {
      const file = path.join(dir, 'releng.json');
      const c = JSON.parse(await readFile(file, 'utf8'));
      f(c);
      await writeFile(file, JSON.stringify(c, null, 2) + '\n');
    },
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}
