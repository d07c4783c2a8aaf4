// Branch-off (issue 26): Lix's README ("If this is a new major release, branch-off to `release-MAJOR`
// and push *that* branch directly to gerrit"; "FIXME: automate branch-off"). After `releng tag` of
// X.Y.0 on the main branch, `release-X.Y` starts at the merge commit tag left on main (its history
// holds the tag; its tree is the main line's), locally and on the environment's remote. Maintenance
// releases X.Y.Z are then prepared and tagged on it (`tag` merges them back into release-X.Y), and
// upload keeps them from moving what users follow once the main line has a newer release.
import type { Environment } from '../config/config.ts';
import { ReleaseError } from '../core/errors.ts';
import type { Plan, Skip, Step } from '../core/plan.ts';
import type { RepoAction } from '../git/actions.ts';
import { resolveRemote, type GitPushAction, type GitReader } from '../git/push.ts';
import type { TagRecord } from '../release/tag-record.ts';

export type BranchOffAction = RepoAction | GitPushAction;

export interface BranchOffInput {
  envName: string;
  /** The environment's git settings (none: the branch is only created here). */
  git?: NonNullable<Environment['git']>;
  record: TagRecord;
  mainBranch: string;
  /** The branch to create: `release-MAJOR` by default. */
  branch: string;
  cwd: string;
}

/** The maintenance branch of a version: release-MAJOR (Lix: release-2.93 for 2.93.x). */
export function maintenanceBranchOf(major: string): string {
  return `release-${major}`;
}

/** Plans the local branch and its push; every refusal before any write. */
export async function planBranchOff(reader: GitReader, input: BranchOffInput): Promise<Plan<BranchOffAction> & { remote?: string }> {
  const { record, branch } = input;
  const ref = `refs/heads/${branch}`;
  if (!/^\d+\.\d+\.0$/.test(record.version)) {
    throw new ReleaseError(`${record.version} is not the first release of a major (X.Y.0): branch-off creates ${branch} once, after X.Y.0`,
      `a maintenance release ${record.version} is prepared and tagged on ${branch}, which exists already (git switch ${branch})`);
  }
  if (record.branch !== input.mainBranch) {
    throw new ReleaseError(`release/tag.json says ${record.version} was tagged on ${record.branch}, not on the main branch ${input.mainBranch}`,
      `a new major is tagged on ${input.mainBranch} (releng.json mainBranch); ${branch} branches off from there`);
  }
  const merge = record.mergeCommit;
  const steps: Step<BranchOffAction>[] = [];
  const skipped: Skip[] = [];
  const local = await reader.commitOf(ref);
  if (!local) {
    steps.push({ title: `create ${branch}`, concurrency: 1, actions: [{ kind: 'git.update-ref', ref, value: merge }] });
  } else if (local === merge) {
    skipped.push({ what: `create ${branch}`, reason: `${ref} is already at the merge commit ${merge.slice(0, 12)}` });
  } else if (!(await reader.isAncestor(merge, local))) {
    throw new ReleaseError(`${branch} exists here at ${local.slice(0, 12)}, which does not contain the merge commit ${merge.slice(0, 12)} of ${record.version}`,
      `find out what ${branch} is (git log ${branch}); branch-off never moves an existing branch`);
  } else {
    skipped.push({ what: `create ${branch}`, reason: `${ref} exists and contains the merge commit ${merge.slice(0, 12)} (branched off already)` });
  }

  if (!input.git) {
    skipped.push({ what: `git push ${branch}`, reason: `environment "${input.envName}" has no git remote (environments.${input.envName}.git)` });
    return { steps, skipped };
  }
  const remote = await resolveRemote(reader, input.envName, input.git);
  const there = (await reader.lsRemote(remote, [ref])).get(ref);
  if (there === merge) {
    skipped.push({ what: `git push ${remote} ${branch}`, reason: `${ref} is already on the remote at ${merge.slice(0, 12)}` });
  } else if (there && await reader.isAncestor(merge, there)) {
    skipped.push({ what: `git push ${remote} ${branch}`, reason: `${ref} is on the remote and contains the merge commit ${merge.slice(0, 12)} (branched off already)` });
  } else if (there) {
    throw new ReleaseError(`${remote} already has ${branch} at ${there.slice(0, 12)}, which does not contain the merge commit ${merge.slice(0, 12)} of ${record.version}`,
      `someone else branched off from another commit: find out which (git fetch ${remote} ${branch}; git log FETCH_HEAD); nothing was pushed`);
  } else {
    // A branch is created by a direct push, on Gerrit too (refs/for/ needs an existing branch); Gerrit
    // wants Create Reference on refs/heads/*, and Push when the commit is on no branch yet.
    steps.push({ title: `git push ${branch} to ${remote}`, concurrency: 1, actions: [{
      kind: 'git.push', cwd: input.cwd, remote, refspecs: [`${merge}:${ref}`], atomic: false, gerrit: input.git.gerrit,
      verify: { refs: [ref], commit: merge, what: `${branch} at the merge commit of ${record.version}` },
    }] });
  }
  return { steps, skipped, remote };
}
