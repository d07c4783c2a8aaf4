// Where an update stream's commit goes (issue 29): one review per stream, kept current.
//  - Branches: the stream's branch (`releng/lock`, or `releng/lock-INPUT` with --per-input) is
//    replaced with --force-with-lease against what the remote has, and only while what it has is a
//    commit releng made (one commit on main, changing only the lock files, never amended): a commit
//    someone else pushed there (a fix, a merge from "Update branch") stops it, as Renovate stops
//    rebasing a branch someone edited.
//  - Gerrit: `refs/for/MAIN` with the stream's Change-Id (summary.ts changeIdOf) and the review's
//    push options; Gerrit turns each new commit into a new patch set of the stream's open change.
// Nothing is pushed when the remote already has the commit (or, for a commit signed again with a
// new signature, the same commit signed before).
import type { Skip, Step as CoreStep } from '../core/plan.ts';
import { ReleaseError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { GitPush } from '../git/push.ts';
type Step = CoreStep<GitPush>;
import { parseCommit, unsignedCommit } from '../git/objects.ts';

/** The reads planning a stream's push needs. */
export interface LockRemoteReader {
  /** `git ls-remote REMOTE PATTERNS...` as ref → object id. */
  lsRemote(remote: string, patterns: string[]): Promise<Map<string, string>>;
  /** Whether `ancestor` is reachable from `descendant` (false when either is unknown here). */
  isAncestor(ancestor: string, descendant: string): Promise<boolean>;
  /** `git cat-file commit ID`, or undefined when the object is not here. */
  commitObject(id: string): Promise<string | undefined>;
  /** Brings REF of REMOTE's objects here (git fetch; no local ref is written). */
  fetch(remote: string, ref: string): Promise<void>;
  /** Paths a commit changes against its first parent. */
  changedPaths(id: string): Promise<string[]>;
}

export interface StreamPushInput {
  remote: string;
  gerrit: boolean;
  /** Where git runs (the repository's top). */
  cwd: string;
  commit: string;
  /** The commit object without a signature (objects.ts unsignedCommit): a commit signed before with
   *  another signature is the same update. */
  unsigned: string;
  branch: string;
  mainBranch: string;
  baseCommit: string;
  /** The files releng's lock commits may change (flake.lock; flake.nix for ref bumps). */
  lockFiles: string[];
  /** Gerrit push options (topic=, hashtag=, r=, cc=, l=). */
  pushOptions: string[];
  log: Pick<Logger, 'warn'>;
}

export interface StreamPushPlan {
  refspec: string;
  step?: Step;
  skip?: Skip;
  /** The remote holds the same update as another commit (signed by an earlier run): use it. */
  reuse?: string;
}

/** Why a commit on the stream's branch is not one releng made (undefined: it is releng's). */
export function notRelengsCommit(raw: string, changed: string[], lockFiles: string[]): string | undefined {
  const c = parseCommit(raw);
  if (c.parents.length !== 1) return `it has ${c.parents.length} parents (a merge)`;
  if (!c.message.startsWith('flake.lock: ')) return `its subject is "${c.message.split('\n')[0]}"`;
  // releng writes author and committer as one line with one date; an amend, rebase or cherry-pick
  // by anyone rewrites the committer.
  if (c.author !== c.committer) return `it was committed by ${c.committer.replace(/ \d+ [+-]\d{4}$/, '')} after its author ${c.author.replace(/ \d+ [+-]\d{4}$/, '')} (amended or rebased)`;
  const other = changed.filter((p) => !lockFiles.includes(p));
  if (other.length) return `it changes ${other.slice(0, 3).join(', ')}${other.length > 3 ? ', …' : ''}`;
  return undefined;
}

/** The push of a stream's commit, planned from what the remote has. */
export async function planStreamPush(reader: LockRemoteReader, input: StreamPushInput): Promise<StreamPushPlan> {
  const { remote, commit, gerrit, branch, mainBranch } = input;
  const branchRef = `refs/heads/${branch}`;
  const mainRef = `refs/heads/${mainBranch}`;
  const there = await reader.lsRemote(remote, gerrit ? ['refs/changes/*', mainRef] : [branchRef, mainRef]);
  const remoteMain = there.get(mainRef);
  if (remoteMain && remoteMain !== input.baseCommit && !(await reader.isAncestor(remoteMain, input.baseCommit))) {
    input.log.warn(`${remote} has ${mainBranch} at ${remoteMain.slice(0, 12)}, which the local ${mainBranch} (${input.baseCommit.slice(0, 12)}) does not contain: the update is based on an older ${mainBranch} (git pull first)`);
  }

  if (gerrit) {
    const refspec = `${commit}:refs/for/${mainBranch}`;
    const holding = [...there].filter(([ref, id]) => id === commit && ref !== mainRef).map(([ref]) => ref);
    if (holding.length) {
      return { refspec, skip: { what: `git push ${remote} ${refspec}`, reason: `the remote already has ${commit.slice(0, 12)} (${holding.join(', ')}): the same update was uploaded before` } };
    }
    const action: GitPush = { kind: 'git.push', cwd: input.cwd, remote, refspecs: [refspec], atomic: false, gerrit: true, ...(input.pushOptions.length ? { pushOptions: input.pushOptions } : {}) };
    return { refspec, step: { title: `upload to ${remote} for review`, actions: [action], concurrency: 1 } };
  }

  const refspec = `${commit}:${branchRef}`;
  const current = there.get(branchRef);
  if (current === commit) {
    return { refspec, skip: { what: `git push ${remote} ${refspec}`, reason: `the remote already has ${commit.slice(0, 12)} on ${branch}: the same update was pushed before` } };
  }
  if (current) {
    let raw = await reader.commitObject(current);
    if (raw === undefined) {
      await reader.fetch(remote, branchRef);
      raw = await reader.commitObject(current);
    }
    if (raw === undefined) {
      throw new ReleaseError(`cannot read ${current.slice(0, 12)} (${branch} on ${remote}) after fetching it`, `check the remote; git fetch ${remote} ${branchRef} shows what it holds`);
    }
    if (unsignedCommit(raw) === input.unsigned) {
      return { refspec: `${current}:${branchRef}`, reuse: current, skip: { what: `git push ${remote} ${refspec}`, reason: `${branch} on the remote is ${current.slice(0, 12)}: the same update, signed by an earlier run` } };
    }
    const why = notRelengsCommit(raw, await reader.changedPaths(current), input.lockFiles);
    if (why) {
      throw new ReleaseError(`${branch} on ${remote} is at ${current.slice(0, 12)}, which is not a commit releng made: ${why}. releng never replaces someone else's work`,
        `merge or close the review of ${branch}, or delete the branch (git push ${remote} --delete ${branch}); the next run starts it again from ${mainBranch}`);
    }
  }
  // Replace what releng pushed before, only if the remote still has it (empty: only if there is none).
  const action: GitPush = { kind: 'git.push', cwd: input.cwd, remote, refspecs: [refspec], atomic: false, gerrit: false, forceWithLease: [`${branchRef}:${current ?? ''}`] };
  return { refspec, step: { title: `push to ${remote}`, actions: [action], concurrency: 1 } };
}
