// git through argument arrays. Reads here; writes go through actions (lib/git/actions.ts).
import { ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';

export interface Git {
  readonly cwd: string;
  /** Raw git call (argument array), stdout trimmed. */
  git(args: string[]): Promise<string>;
  /** Like git() but returns undefined on non-zero exit instead of throwing. */
  tryGit(args: string[]): Promise<string | undefined>;
  topLevel(): Promise<string>;
  head(): Promise<string>;
  /** Commit a ref points at (peeled), or undefined. */
  commitOf(ref: string): Promise<string | undefined>;
  currentBranch(): Promise<string | undefined>;
  /** Porcelain status lines of staged/modified tracked files (untracked ignored). */
  dirtyFiles(): Promise<string[]>;
  tagsAtHead(): Promise<string[]>;
}

export function gitAt(cwd: string): Git {
  const self: Git = {
    cwd,
    async git(args) {
      return (await run('git', args, { cwd })).stdout.trim();
    },
    async tryGit(args) {
      try { return await self.git(args); } catch (e) { if (e instanceof ReleaseError && !/not on PATH/.test(e.message)) return undefined; throw e; }
    },
    async topLevel() {
      const t = await self.tryGit(['rev-parse', '--show-toplevel']);
      if (!t) throw new ReleaseError(`${cwd} is not inside a git repository`, 'releng releases from a git checkout: run it in the project\'s repository');
      return t;
    },
    head: () => self.git(['rev-parse', 'HEAD']),
    commitOf: (ref) => self.tryGit(['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`]),
    async currentBranch() {
      return (await self.tryGit(['symbolic-ref', '--quiet', '--short', 'HEAD'])) || undefined;
    },
    async dirtyFiles() {
      const out = await self.git(['status', '--porcelain', '--untracked-files=no']);
      return out ? out.split('\n') : [];
    },
    async tagsAtHead() {
      const out = await self.git(['tag', '--points-at', 'HEAD']);
      return out ? out.split('\n') : [];
    },
  };
  return self;
}

/** The precondition of build and upload: HEAD is at tag VERSION and nothing tracked is modified. */
export async function requireOnCleanTag(git: Git, version: string, command: string): Promise<void> {
  await git.topLevel();
  const tagCommit = await git.commitOf(`refs/tags/${version}`);
  const head = await git.head();
  if (!tagCommit) {
    throw new ReleaseError(`tag ${version} does not exist`, `run \`releng tag\` first, or pass --no-check-git to ${command} an untagged tree (testing only)`);
  }
  if (tagCommit !== head) {
    throw new ReleaseError(`HEAD (${head.slice(0, 12)}) is not at tag ${version} (${tagCommit.slice(0, 12)})`, `git checkout ${version}, or pass --no-check-git (testing only)`);
  }
  const dirty = await git.dirtyFiles();
  if (dirty.length) {
    throw new ReleaseError(`the working tree has uncommitted changes:\n${dirty.slice(0, 10).map((l) => `  ${l}`).join('\n')}`, `commit or stash them, or pass --no-check-git (testing only)`);
  }
}

/** A rehearsal build's precondition (issue 26): no tag, but nothing tracked is modified (the
 *  package's version names the commit: Lix's versionSuffix is the short revision, "dirty" otherwise). */
export async function requireCleanTree(git: Git, command: string): Promise<void> {
  await git.topLevel();
  const dirty = await git.dirtyFiles();
  if (dirty.length) {
    throw new ReleaseError(`the working tree has uncommitted changes:\n${dirty.slice(0, 10).map((l) => `  ${l}`).join('\n')}`, `commit or stash them before a rehearsal ${command}, or pass --no-check-git (testing only)`);
  }
}

/** Trailer of releng's commits (Lix: "Release created with releng/create_release.xsh"). */
export const relengTrailer = 'Release created with releng';

/** Fails unless HEAD is on a branch (a detached HEAD has no branch to commit the notes to). */
export async function requireBranch(git: Git, command: string): Promise<string> {
  const branch = await git.currentBranch();
  if (!branch) {
    throw new ReleaseError(`HEAD is detached (at ${(await git.head()).slice(0, 12)}); ${command} works on the release branch`,
      'git checkout the branch you release from (e.g. main or release-2.93), then run it again');
  }
  return branch;
}

/** git commit fails without an identity: find out while planning, not halfway through. */
export async function requireIdentity(git: Git): Promise<void> {
  if ((await git.tryGit(['var', 'GIT_COMMITTER_IDENT'])) === undefined || (await git.tryGit(['var', 'GIT_AUTHOR_IDENT'])) === undefined) {
    throw new ReleaseError('git has no identity to commit with (user.name / user.email)', 'git config user.name "..." and git config user.email "..." in this repository');
  }
}
