// Local repository writes (prepare, tag, and the restore after a failed apply) as plain data,
// executed only by apply.ts through a RepoWriter, so --dry-run prints exactly what would run.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { actionKinds, type ActionKinds, type ApplyEnv, type HandlerMap } from '../core/apply.ts';
import { run } from '../core/exec.ts';
import { writeTagRecord } from '../release/tag-record.ts';
import type { GitObject } from './objects.ts';

/** Write a file of the repository (relative path), e.g. rl-MAJOR.md or version.json. */
export interface FileWrite { kind: 'file.write'; path: string; content: string; reason: 'new' | 'changed' | 'restore' }
/** Remove a file (restoring a repository: a file the failed run created). */
export interface FileRemove { kind: 'file.remove'; path: string }
export interface GitAdd { kind: 'git.add'; paths: string[] }
export interface GitRm { kind: 'git.rm'; paths: string[] }
/** `git commit -m MESSAGE [-- PATHS]`: with paths, only those are committed (other staged changes stay staged). */
export interface GitCommit { kind: 'git.commit'; message: string; paths?: string[] }
export interface GitTag { kind: 'git.tag'; name: string; message: string; force: boolean }
/** `git checkout BRANCH`, `git checkout --detach [REF]`. */
export interface GitCheckout { kind: 'git.checkout'; branch?: string; detach?: true; ref?: string }
/** `git merge --no-ff -s STRATEGY -m MESSAGE REF`, or `git merge --quit` (forget a merge a failed run left behind). */
export type GitMerge = { kind: 'git.merge'; ref: string; strategy: 'ours'; message: string } | { kind: 'git.merge'; quit: true };
/** Point a ref at an object, or delete it (restore). */
export interface GitUpdateRef { kind: 'git.update-ref'; ref: string; value: string | null }
/** Make HEAD a symbolic ref to a branch again (restore). */
export interface GitSymbolicRef { kind: 'git.symbolic-ref'; ref: 'HEAD'; target: string }
/** `git reset -q -- PATHS`: index entries back to HEAD (restore). */
export interface GitReset { kind: 'git.reset'; paths: string[] }
/** Write release/tag.json (lib/release/tag-record.ts) once the tag and the merge exist: their SHAs are read then. */
export interface TagRecordWrite { kind: 'tag.record'; file: string; version: string; branch: string }

/** Write objects computed by the planner (lib/git/objects.ts: a commit changing one file), checking each id;
 *  no ref, index or file changes: a `git.update-ref` names the commit afterwards (lock). */
export interface GitObjectsWrite { kind: 'git.objects'; objects: GitObject[]; commit: string; parent: string; path: string }

/** Every local repository write prepare and tag (and a restore, and lock) can plan. */
export type RepoAction = FileWrite | FileRemove | GitAdd | GitRm | GitCommit | GitTag | GitCheckout | GitMerge | GitUpdateRef | GitSymbolicRef | GitReset | TagRecordWrite | GitObjectsWrite;

/** The argument array of a git action (one source of truth for what runs and what dry-run prints). */
export function gitArgs(a: Exclude<RepoAction, FileWrite | FileRemove | TagRecordWrite | GitObjectsWrite>): string[] {
  switch (a.kind) {
    case 'git.add': return ['add', '--', ...a.paths];
    case 'git.rm': return ['rm', '-q', '--', ...a.paths];
    case 'git.commit': return ['commit', '-q', '-m', a.message, ...(a.paths ? ['--', ...a.paths] : [])];
    case 'git.tag': return ['tag', ...(a.force ? ['-f'] : []), '-a', a.name, '-m', a.message];
    case 'git.checkout': return a.detach ? ['checkout', '-q', '--detach', ...(a.ref ? [a.ref] : [])] : ['checkout', '-q', a.branch!];
    case 'git.merge': return 'quit' in a ? ['merge', '--quit'] : ['merge', '-q', '--no-ff', '-s', a.strategy, '-m', a.message, a.ref];
    case 'git.update-ref': return a.value === null ? ['update-ref', '-d', a.ref] : ['update-ref', a.ref, a.value];
    case 'git.symbolic-ref': return ['symbolic-ref', a.ref, a.target];
    case 'git.reset': return ['reset', '-q', '--', ...a.paths];
  }
}

/** Shell-style quoting for display; newlines as $'...\n...' so the line can be pasted into a shell. */
export function shellQuote(arg: string): string {
  if (/^[\w@%+=:,./^{}-]+$/.test(arg)) return arg;
  if (arg.includes('\n')) return `$'${arg.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

const renderGit = (a: Parameters<typeof gitArgs>[0]) => ['git', ...gitArgs(a)].map(shellQuote).join(' ');

/** One line per action for dry-run and logs: git actions as the exact command line. */
export const repoRenderers = {
  'file.write': (a: FileWrite) => `write ${a.path} (${a.reason}, ${Buffer.byteLength(a.content)} bytes)`,
  'file.remove': (a: FileRemove) => `rm ${a.path}`,
  'git.add': renderGit,
  'git.rm': renderGit,
  'git.commit': renderGit,
  'git.tag': renderGit,
  'git.checkout': renderGit,
  'git.merge': renderGit,
  'git.update-ref': renderGit,
  'git.symbolic-ref': renderGit,
  'git.reset': renderGit,
  'git.objects': (a: GitObjectsWrite) => `write commit ${a.commit} (${a.path} changed on ${a.parent.slice(0, 12)}; ${a.objects.length} objects, git hash-object -w)`,
  'tag.record': (a: TagRecordWrite) => `write ${a.file} (version ${a.version}, branch ${a.branch}, releaseCommit = ${a.version}^{commit}, mergeCommit = ${a.branch})`,
};

/** Writes to one local repository. The only place prepare/tag change files, the index or refs. */
export interface RepoWriter {
  readonly root: string;
  /** `input`: bytes on git's stdin (hash-object --stdin). */
  git(args: string[], input?: Buffer | string): Promise<string>;
  writeFile(rel: string, content: string): Promise<void>;
  removeFile(rel: string): Promise<void>;
}

/** The RepoWriter of a checkout: real git, real files. */
export function repoWriter(root: string): RepoWriter {
  return {
    root,
    git: async (args, input) => (await run('git', args, { cwd: root, ...(input === undefined ? {} : { input: input as string }) })).stdout.trim(),
    async writeFile(rel, content) {
      const abs = path.resolve(root, rel);
      await mkdir(path.dirname(abs), { recursive: true });
      await writeFile(abs, content);
    },
    removeFile: (rel) => rm(path.resolve(root, rel), { force: true }),
  };
}

/** The writer repository actions use (prepare, tag). */
export interface RepoWriters {
  repo?: RepoWriter;
}

function writer(env: ApplyEnv<RepoWriters>): RepoWriter {
  if (!env.writers.repo) throw new Error('internal: plan has repository actions but apply got no repository writer');
  return env.writers.repo;
}

const viaGit = async (a: Parameters<typeof gitArgs>[0], env: ApplyEnv<RepoWriters>) => { await writer(env).git(gitArgs(a)); };

/** How apply.ts executes each repository action (never retried: git writes are not idempotent). */
export const repoHandlers: HandlerMap<RepoAction, RepoWriters> = {
  'file.write': (a, env) => writer(env).writeFile(a.path, a.content),
  'file.remove': (a, env) => writer(env).removeFile(a.path),
  'git.add': viaGit,
  'git.rm': viaGit,
  'git.commit': viaGit,
  'git.tag': viaGit,
  'git.checkout': viaGit,
  'git.merge': viaGit,
  async 'git.update-ref'(a, env) {
    // Deleting a ref that is not there is done (a restore after the ref was never made, issue 25).
    if (a.value === null && (await writer(env).git(['rev-parse', '--verify', '--quiet', '--end-of-options', a.ref]).catch(() => '')) === '') return;
    await viaGit(a, env);
  },
  'git.symbolic-ref': viaGit,
  'git.reset': viaGit,
  'git.objects': async (a, env) => {
    const w = writer(env);
    for (const o of a.objects) {
      const id = await w.git(['hash-object', '-t', o.type, '-w', '--no-filters', '--stdin'], Buffer.from(o.data, 'base64'));
      if (id !== o.id) throw new Error(`internal: git wrote ${o.type} ${id}, the plan computed ${o.id}`);
    }
  },
  'tag.record': async (a, env) => {
    const w = writer(env);
    const releaseCommit = await w.git(['rev-parse', '--verify', `refs/tags/${a.version}^{commit}`]);
    const mergeCommit = await w.git(['rev-parse', '--verify', `refs/heads/${a.branch}`]);
    await writeTagRecord(w, a.file, { version: a.version, branch: a.branch, releaseCommit, mergeCommit });
  },
};

/** The repository's kinds on their own (lib/git/restore.ts applies a restore with only these). */
export const repoKinds: ActionKinds<RepoWriters> = actionKinds<RepoWriters>(repoRenderers, repoHandlers);
