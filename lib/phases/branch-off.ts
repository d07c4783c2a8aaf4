// branch-off (issue 26): after a new major's release, create release-MAJOR at the merge commit `tag`
// recorded on the main branch, and push it to the environment's remote. Checks → plan (reads only)
// → confirmation (environments that ask) → apply → the push is verified with git ls-remote.
import { apply } from '../actions/index.ts';
import { maintenanceBranchOf, planBranchOff } from '../branch-off/plan.ts';
import { environmentNamed } from '../config/config.ts';
import type { Context } from '../config/context.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { requirePrograms } from '../core/exec.ts';
import { confirmationRequired, confirmRelease } from '../environment/confirm.ts';
import { environmentName } from '../environment/open.ts';
import { repoWriter } from '../git/actions.ts';
import { gitAt } from '../git/git.ts';
import { readTagRecordOrLix } from '../git/prev-branch.ts';
import { gitReader, gitWriter } from '../git/push.ts';

export interface BranchOffSummary { version: string; branch: string; commit: string; remote?: string; created: boolean; pushed: boolean; dryRun: boolean }

export async function branchOff(ctx: Context): Promise<BranchOffSummary> {
  const { log, flags, version } = ctx;
  await requirePrograms('git');
  const git = gitAt(ctx.root);
  const top = await git.topLevel();
  const record = await readTagRecordOrLix(ctx.root, git, version.version);
  if (!record) throw new ReleaseError(`no release/tag.json: branch-off starts ${maintenanceBranchOf(version.major)} at the merge commit \`releng tag\` recorded there`, 'run `releng tag` (and release) first');
  if (record.version !== version.version) throw new ReleaseError(`release/tag.json is for ${record.version}, but ${version.file} says ${version.version}`, 'run branch-off right after tagging that version');
  const named = ctx.flags.extra['branch'];
  if (named !== undefined && typeof named !== 'string') throw new UsageError('--branch takes a NAME');
  const branch = named ?? maintenanceBranchOf(version.major);
  const envName = environmentName(ctx);
  const env = environmentNamed(ctx.loaded, envName);
  const plan = await planBranchOff(gitReader(git), { envName, git: env.git, record, mainBranch: ctx.config.mainBranch, branch, cwd: ctx.root });
  for (const s of plan.skipped) log.skip(s.what, s.reason);
  const pushes = plan.steps.some((s) => s.actions.some((a) => a.kind === 'git.push'));
  if (pushes) await confirmRelease(envName, { noconfirm: flags.noconfirm || flags.dryRun, required: confirmationRequired(envName, env) });
  await apply(plan, { log, dryRun: flags.dryRun, writers: { repo: repoWriter(top), git: gitWriter } });
  const created = plan.steps.some((s) => s.actions.some((a) => a.kind === 'git.update-ref'));
  if (!flags.dryRun) log.info(`${branch} is at ${record.mergeCommit.slice(0, 12)} (the merge of ${record.version} into ${record.branch})${plan.remote ? ` here and on ${plan.remote}` : ''}; maintenance releases are prepared and tagged on it`);
  return { version: record.version, branch, commit: record.mergeCommit, remote: plan.remote, created, pushed: pushes, dryRun: flags.dryRun };
}
