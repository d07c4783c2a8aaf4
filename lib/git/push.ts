// The git push of a release: the branch `tag` merged into and the tag VERSION, to the environment's
// remote, atomically where the remote allows (issue 4). Planned from `git ls-remote`, so a re-run
// after a crash pushes only what is missing; applied only by apply.ts through a GitWriter.
import type { Skip, Step as CoreStep } from '../core/plan.ts';
import type { ApplyEnv, HandlerMap } from '../core/apply.ts';
import type { Environment } from '../config/config.ts';
import { ReleaseError } from '../core/errors.ts';
import { redact, registerUrlCredentials } from '../core/secrets.ts';
import { retriedRead } from '../core/retry.ts';
import { run } from '../core/exec.ts';
import type { TagRecord } from '../release/tag-record.ts';
import { gitAt, type Git } from './git.ts';
type Step = CoreStep<GitPushAction>;

/** One `git push` of one or more refspecs (atomic: all or none land). */
export interface GitPush {
  kind: 'git.push';
  /** Directory git runs in: the project root (a relative remote path is relative to it). */
  cwd: string;
  /** Remote name, URL or path, as configured. */
  remote: string;
  refspecs: string[];
  atomic: boolean;
  /** Gerrit answers a re-push of a change it already has with "no new changes": that is success. */
  gerrit: boolean;
  /** Forced updates as `REF:EXPECTED` (`--force-with-lease`): replace REF only if the remote still has
   *  what planning saw (empty EXPECTED: only if REF does not exist), never a ref that moved meanwhile. */
  forceWithLease?: string[];
  /** `git push -o OPTION` (Gerrit's push options: topic=, r=, cc=, hashtag=, l=; user-upload.html#push_options). */
  pushOptions?: string[];
  /** Checked with `git ls-remote` right after the push (Gerrit pushes, issue 17): one of `refs`
   *  (patterns) must point at `commit` (peeled), or the push did not do what it was for. */
  verify?: { refs: string[]; commit: string; what: string };
}

export type GitPushAction = GitPush;

/** What apply may do with git remotes. */
export interface GitWriter {
  push(cwd: string, remote: string, refspecs: string[], opts: { atomic: boolean; forceWithLease?: string[]; pushOptions?: string[] }): Promise<void>;
  /** `git ls-remote REMOTE PATTERNS...` as ref → object id: the check after a push that must be verified before the next. */
  lsRemote?(cwd: string, remote: string, patterns: string[]): Promise<Map<string, string>>;
}

/** The GitWriter over the git program. */
export const gitWriter: GitWriter = {
  async push(cwd, remote, refspecs, opts) {
    await run('git', ['push', ...(opts.atomic ? ['--atomic'] : []), ...(opts.forceWithLease ?? []).map((l) => `--force-with-lease=${l}`), ...(opts.pushOptions ?? []).flatMap((o) => ['-o', o]), '--end-of-options', remote, ...refspecs], { cwd });
  },
  async lsRemote(cwd, remote, patterns) {
    const { stdout } = await run('git', ['ls-remote', '--end-of-options', remote, ...patterns], { cwd });
    return parseLsRemote(stdout);
  },
};

function parseLsRemote(out: string): Map<string, string> {
  const refs = new Map<string, string>();
  for (const line of out.split('\n').filter(Boolean)) {
    const [id, ref] = line.split('\t');
    if (id && ref) refs.set(ref, id);
  }
  return refs;
}

export function renderGitPush(a: GitPush): string {
  return `git push ${a.atomic ? '--atomic ' : ''}${(a.forceWithLease ?? []).map((l) => `--force-with-lease=${l} `).join('')}${(a.pushOptions ?? []).map((o) => `-o ${o} `).join('')}${a.remote} ${a.refspecs.join(' ')}`;
}

export const gitPushRenderers = { 'git.push': renderGitPush };

const noAtomicSupport = /does not support --atomic|atomic push.*not supported/i;

/** The writer git pushes use. */
export interface GitWriters {
  git?: GitWriter;
}

export const gitPushHandlers: HandlerMap<GitPushAction, GitWriters> = {
  async 'git.push'(a: GitPush, env: ApplyEnv<GitWriters>) {
    const writer = env.writers.git;
    if (!writer) throw new Error('internal: plan has git actions but apply got no git writer');
    const push = async (refspecs: string[], atomic: boolean) => {
      try {
        await writer.push(a.cwd, a.remote, refspecs, { atomic, forceWithLease: a.forceWithLease, pushOptions: a.pushOptions });
      } catch (e) {
        const message = (e as Error).message;
        if (a.gerrit && /no new changes/i.test(message)) {
          env.log.skip(`git push ${a.remote} ${refspecs.join(' ')}`, 'Gerrit already has this change');
          return;
        }
        // error-no-changes-made.html: the change's current patch set has the same files, message,
        // author and parents (a commit signed again with a new signature time): nothing to add.
        if (a.gerrit && /no changes made/i.test(message)) {
          env.log.skip(`git push ${a.remote} ${refspecs.join(' ')}`, 'Gerrit: the change\'s current patch set is this commit already (no changes made)');
          return;
        }
        // error-change-closed.html: the Change-Id names a merged or abandoned change.
        const closed = a.gerrit ? /change (\S+) closed/i.exec(message) : null;
        if (closed) {
          throw new ReleaseError(`Gerrit refused ${refspecs.join(' ')}: change ${closed[1]} with this Change-Id is closed (merged or abandoned)\n  ${message.split('\n').slice(0, 6).join('\n  ')}`,
            'restore the change in Gerrit to add the patch set to it; or, when it was abandoned on purpose, leave it: the push is refused until the Change-Id changes', { cause: e });
        }
        if (a.gerrit) throw gerritRefusal((e as Error).message, a.remote, refspecs) ?? e;
        throw e;
      }
    };
    try {
      await push(a.refspecs, a.atomic);
    } catch (e) {
      if (!a.atomic || !noAtomicSupport.test((e as Error).message)) {
        // Another run of the same release may have pushed first ("cannot lock ref", "already
        // exists", "fetch first"): when the remote now holds what we meant to push, that is success.
        if (!a.gerrit && await remoteHolds(a)) {
          env.log.skip(`git push ${a.remote} ${a.refspecs.join(' ')}`, 'the remote already holds these refs (another run pushed them at the same time)');
          return;
        }
        if (/cannot lock ref|failed to update ref|already exists|fetch first|stale info|non-fast-forward/i.test((e as Error).message)) {
          throw new ReleaseError(`git push to ${a.remote} was refused: another run (or person) updated ${a.refspecs.map((r) => r.split(':').pop()).join(' / ')} at the same time, and the remote does not hold what this release pushes\n  ${(e as Error).message.split('\n').slice(0, 6).join('\n  ')}`,
            'find out which run or person moved the refs (git ls-remote), then re-run upload: it re-plans against the remote', { cause: e });
        }
        throw e;
      }
      // The remote cannot do atomic pushes: branch first, tag last (the tag says "released").
      env.log.warn(`${a.remote} does not support atomic pushes; pushing ${a.refspecs.join(', ')} one at a time`);
      for (const r of a.refspecs) await push([r], false);
    }
    if (a.verify) {
      // The next push (the tag) relies on this one: Gerrit refuses a tag whose commit it does not know.
      if (!writer.lsRemote) throw new Error('internal: a verified git push needs a git writer with lsRemote');
      const there = await writer.lsRemote(a.cwd, a.remote, a.verify.refs);
      const at = [...there].filter(([, id]) => id === a.verify!.commit).map(([ref]) => ref);
      if (at.length === 0) {
        throw new ReleaseError(`after git push ${a.remote} ${a.refspecs.join(' ')}, git ls-remote shows no ${a.verify.refs.join(' or ')} at ${a.verify.commit.slice(0, 12)} (${a.verify.what})`,
          'check the remote (for Gerrit: the change under review, your push permissions); re-run upload when it is fixed');
      }
      env.log.info(`verified with git ls-remote: ${at[0]} is at ${a.verify.commit.slice(0, 12)} (${a.verify.what})`);
    }
  },
};

/**
 * What Gerrit's refusal of a push means and what to do, as a releng error (issue 26). The words are
 * Gerrit's (Documentation/error-*.txt; access-control.txt for the permissions named); releng's
 * Gerrit model (test/fixtures/gerrit-hooks/pre-receive) answers with them.
 */
export function gerritRefusal(message: string, remote: string, refspecs: string[]): ReleaseError | undefined {
  const dst = refspecs.map((r) => r.replace(/^\+/, '').split(':').pop()!).join(' ');
  const said = message.split('\n').filter((l) => /prohibited|not permitted|Change-Id|not found|remote rejected/i.test(l)).slice(0, 3).join('\n  ') || message.split('\n')[0];
  const err = (what: string, hint: string) => new ReleaseError(`Gerrit (${remote}) refused the push to ${dst}: ${what}\n  ${said}`, hint, { cause: message });
  if (/missing Change-Id in (commit )?message footer/i.test(message)) {
    return err('a commit has no Change-Id footer, and this Gerrit requires one for every change (receive.requireChangeId)',
      'install Gerrit\'s commit-msg hook in this checkout (it adds a Change-Id to every commit, merges too: e.g. `curl -Lo .git/hooks/commit-msg https://GERRIT/tools/hooks/commit-msg && chmod +x .git/hooks/commit-msg`), then run `releng tag --force-tag` so the release commit and merge are made again with one; nothing later was pushed');
  }
  if (/branch \S+ not found/i.test(message)) {
    return err('the branch under review does not exist on Gerrit', 'a change for review needs an existing branch: create it first (for release-MAJOR: `releng branch-off`), or check release/tag.json\'s branch');
  }
  if (/not permitted: create annotated tag/i.test(message)) {
    return err('no Create Annotated Tag permission on refs/tags/*', 'ask a Gerrit administrator for Create Annotated Tag on refs/tags/* (Lix: the release managers\' group), then re-run; the change under review is already pushed');
  }
  if (/not permitted: create/i.test(message)) {
    return err('no Create Reference permission on refs/heads/* (a new branch)', 'ask a Gerrit administrator for Create Reference on refs/heads/release-*, or create the branch in Gerrit\'s web UI (Repositories → Branches) at the same commit; a re-run finds it there and pushes nothing');
  }
  if (/update for creating new commit object not permitted/i.test(message)) {
    return dst.includes('refs/tags/')
      ? err('Gerrit does not know the tagged commit yet (it is on no branch and in no change)', 'the merge commit must be pushed for review first (git.branchPush "review"), which upload does before the tag; check that the change exists (git ls-remote REMOTE \'refs/changes/*\'), then re-run')
      : err('the commit is on no branch or tag of Gerrit yet, and creating a branch at a new commit needs Push as well as Create Reference', 'submit the release\'s change on the main branch first (then the commit is known), or get Push on refs/heads/release-*, then re-run');
  }
  if (/not permitted: update|prohibited by Gerrit/i.test(message)) {
    return err('no Push permission on this branch (a direct push bypasses review)', 'push for review instead (git.branchPush: "review", the default), or ask a Gerrit administrator for Push on the branch');
  }
  return undefined;
}

/** Whether the remote holds every refspec's source now: tags at the same commit, branches containing it. */
async function remoteHolds(a: GitPush): Promise<boolean> {
  try {
    const git = gitAt(a.cwd);
    const reader = gitReader(git);
    const dsts = a.refspecs.map((r) => r.replace(/^\+/, '').split(':'));
    const there = await reader.lsRemote(a.remote, dsts.flatMap(([, dst]) => [dst!, `${dst}^{}`]));
    for (const [src, dst] of dsts) {
      const want = await git.commitOf(src!);
      const have = there.get(`${dst}^{}`) ?? there.get(dst!);
      if (!want || !have) return false;
      if (have === want) continue;
      if (dst!.startsWith('refs/tags/') || !(await reader.isAncestor(want, have))) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** git stderr that means the network or the server hiccuped, not that the request is wrong. */
const transientGit = /Connection reset|Connection timed out|timed out|early EOF|remote end hung up|RPC failed|returned error: 5\d\d|HTTP 5\d\d|Could not read from remote repository.*\n.*(reset|closed)|Temporary failure|Operation timed out|unexpected disconnect/i;

/** The reads the planner needs (ls-remote, local refs, ancestry). */
export interface GitReader {
  /** `git ls-remote REMOTE PATTERNS...` as ref → object id. */
  lsRemote(remote: string, patterns: string[]): Promise<Map<string, string>>;
  /** `git remote -v` push URLs: name → URL. */
  pushRemotes(): Promise<Map<string, string>>;
  /** Commit a local ref peels to, or undefined. */
  commitOf(ref: string): Promise<string | undefined>;
  /** Whether `ancestor` is reachable from `descendant` (false when either is unknown here). */
  isAncestor(ancestor: string, descendant: string): Promise<boolean>;
}

/** A GitReader over a local repository. */
export function gitReader(git: Git): GitReader {
  return {
    async lsRemote(remote, patterns) {
      // Retried like every read (issue 9) when git's stderr says the network or server failed.
      const out = await retriedRead(`git ls-remote ${redact(remote)}`, () => git.git(['ls-remote', '--end-of-options', remote, ...patterns]).catch((e: ReleaseError) => {
        throw Object.assign(new ReleaseError(`cannot read git remote ${remote}: ${e.message}`, 'check the environment\'s git.remote in releng.json, your network and your SSH keys'), { retryable: transientGit.test(e.message) });
      }));
      return parseLsRemote(out);
    },
    async pushRemotes() {
      const out = await git.git(['remote', '-v']);
      const remotes = new Map<string, string>();
      for (const line of out.split('\n')) {
        const m = /^(\S+)\t(\S+) \(push\)$/.exec(line);
        if (m) { registerUrlCredentials(m[2]!); remotes.set(m[1]!, m[2]!); }
      }
      return remotes;
    },
    commitOf: (ref) => git.commitOf(ref),
    async isAncestor(ancestor, descendant) {
      return (await git.tryGit(['merge-base', '--is-ancestor', '--end-of-options', ancestor, descendant])) !== undefined;
    },
  };
}

/** The remote to push to: `git.remote` as given, or the one remote whose push URL matches `git.remoteMatching`. */
export async function resolveRemote(reader: GitReader, envName: string, git: NonNullable<Environment['git']>): Promise<string> {
  if ('remote' in git) { registerUrlCredentials(git.remote); return git.remote; }
  const field = `environments.${envName}.git.remoteMatching`;
  let re: RegExp;
  try { re = new RegExp(git.remoteMatching); } catch (e) {
    throw new ReleaseError(`${field} is not a valid regular expression: ${(e as Error).message}`);
  }
  const remotes = await reader.pushRemotes();
  const matching = [...remotes].filter(([, url]) => re.test(url)).map(([name]) => name);
  const listed = [...remotes].map(([n, u]) => `${n} ${u}`).join(', ') || 'none';
  if (matching.length === 0) {
    throw new ReleaseError(`no git remote matches ${field} (${git.remoteMatching}); remotes: ${listed}`, `add it (git remote add NAME URL), or fix ${field}`);
  }
  if (matching.length > 1) {
    throw new ReleaseError(`several git remotes match ${field} (${git.remoteMatching}): ${matching.join(', ')}`, `remove all but one, or make ${field} stricter`);
  }
  return matching[0]!;
}

export interface GitPushInput {
  envName: string;
  git: NonNullable<Environment['git']>;
  record: TagRecord;
  /** The project root: where git runs. */
  cwd: string;
  forcePushTag: boolean;
}

/** Plans the branch and tag push against what `git ls-remote` says the remote has. */
export async function planGitPush(reader: GitReader, input: GitPushInput): Promise<{ steps: Step[]; skipped: Skip[] }> {
  const { record, git } = input;
  const { version, branch } = record;
  const remote = await resolveRemote(reader, input.envName, git);
  const tagRef = `refs/tags/${version}`;
  const branchRef = `refs/heads/${branch}`;
  const skipped: Skip[] = [];

  // The local refs must be what tag recorded: the tag at the release commit, the branch holding the merge.
  const localTag = await reader.commitOf(tagRef);
  if (!localTag) throw new ReleaseError(`tag ${version} recorded in release/tag.json does not exist in this repository`, 'run `releng tag` again');
  if (localTag !== record.releaseCommit) {
    throw new ReleaseError(`tag ${version} is at ${localTag.slice(0, 12)}, but release/tag.json says ${record.releaseCommit.slice(0, 12)}`, 'run `releng tag` again (or restore the tag) so they agree');
  }
  const localBranch = await reader.commitOf(branchRef);
  if (!localBranch || !(localBranch === record.mergeCommit || await reader.isAncestor(record.mergeCommit, localBranch))) {
    throw new ReleaseError(`branch ${branch} ${localBranch ? `(${localBranch.slice(0, 12)}) does not contain` : 'does not exist, so it cannot hold'} the merge commit ${record.mergeCommit.slice(0, 12)} recorded in release/tag.json`,
      `check out ${branch} as \`releng tag\` left it, or run \`releng tag\` again`);
  }

  const there = await reader.lsRemote(remote, [branchRef, tagRef, `${tagRef}^{}`]);
  const refspecs: string[] = [];

  // Branch: skip when the remote branch already holds the merge commit.
  const remoteBranch = there.get(branchRef);
  const review = git.gerrit && (git.branchPush ?? 'review') === 'review';
  let branchSpec: string | undefined;
  if (remoteBranch && (remoteBranch === record.mergeCommit || await reader.isAncestor(record.mergeCommit, remoteBranch))) {
    skipped.push({ what: `git push ${remote} ${branch}`, reason: `${branchRef} on the remote already contains the merge commit ${record.mergeCommit.slice(0, 12)}` });
  } else {
    // The recorded merge commit, not the local branch: commits made on it after `tag` are not part of the release.
    branchSpec = review ? `${record.mergeCommit}:refs/for/${branch}` : `${record.mergeCommit}:${branchRef}`;
    refspecs.push(branchSpec);
  }

  // Tag: at the same commit is success; elsewhere an error unless forced.
  const remoteTagCommit = there.get(`${tagRef}^{}`) ?? there.get(tagRef);
  if (remoteTagCommit === record.releaseCommit) {
    skipped.push({ what: `git push ${remote} ${version}`, reason: `${tagRef} is already on the remote at ${record.releaseCommit.slice(0, 12)}` });
  } else if (remoteTagCommit && !input.forcePushTag) {
    throw new ReleaseError(`${remote} already has tag ${version} at ${remoteTagCommit.slice(0, 12)}, not at the release commit ${record.releaseCommit.slice(0, 12)}`,
      'find out who tagged it; to replace it, re-run with --force-push-tag');
  } else {
    refspecs.push(`${remoteTagCommit ? '+' : ''}${tagRef}:${tagRef}`);
  }

  if (refspecs.length === 0) return { steps: [], skipped };
  if (!git.gerrit) {
    // One atomic push: the remote gets the branch and the tag together or neither, so a failure
    // half-way never leaves a tag whose merge commit is not on the branch (docs/adopting.md).
    return { steps: [{ title: `git push to ${remote}`, concurrency: 1, actions: [{ kind: 'git.push', cwd: input.cwd, remote, refspecs, atomic: refspecs.length > 1, gerrit: false }] }], skipped };
  }
  // Gerrit, as Lix's create_release.xsh: the branch first (for review, or directly), then the tag,
  // two pushes. Gerrit takes no atomic mix of refs/for/ with other refs, and refuses a tag whose
  // commit it does not know yet; each push is checked with ls-remote before the next one.
  const steps: Step[] = [];
  if (branchSpec) {
    const verify = review
      ? { refs: ['refs/changes/*', branchRef], commit: record.mergeCommit, what: `the merge commit under review (refs/changes/) or on ${branch}` }
      : { refs: [branchRef], commit: record.mergeCommit, what: `the merge commit on ${branch}` };
    steps.push({ title: `git push ${review ? 'for review' : 'branch'} to ${remote}`, concurrency: 1, actions: [{ kind: 'git.push', cwd: input.cwd, remote, refspecs: [branchSpec], atomic: false, gerrit: true, verify }] });
  }
  const tagSpec = refspecs.find((r) => r !== branchSpec);
  if (tagSpec) {
    steps.push({ title: `git push tag to ${remote}`, concurrency: 1, actions: [{ kind: 'git.push', cwd: input.cwd, remote, refspecs: [tagSpec], atomic: false, gerrit: true,
      verify: { refs: [tagRef, `${tagRef}^{}`], commit: record.releaseCommit, what: `tag ${version} at the release commit` } }] });
  }
  return { steps, skipped };
}
