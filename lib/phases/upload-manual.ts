// `upload --target manual` (issue 17): syncs release/manual (from `build --target manual`) to the
// docs bucket and publishes nothing else: nightly/ for an unofficial version.json, MAJOR/ and stable/
// for an official one (as Lix's upload_manual). The official-build check is relaxed for this target
// only: a nightly manual is built from the main branch, not from a tag.
import path from 'node:path';
import { apply, countByKind, emptyPlan, planSize } from '../actions/index.ts';
import type { Context } from '../config/context.ts';
import { ReleaseError } from '../core/errors.ts';
import { confirmationRequired, confirmRelease } from '../environment/confirm.ts';
import { openEnvironment } from '../environment/open.ts';
import { gitAt, requireOnCleanTag } from '../git/git.ts';
import { isMaintenanceRelease } from '../git/maintenance.ts';
import { readManualBuild } from '../release/manual-build.ts';
import type { S3Put } from '../s3/actions.ts';
import { planDocs } from '../upload/docs.ts';
import { localTree } from '../upload/local-tree.ts';

export interface ManualUploadSummary {
  environment: string;
  version: string;
  target: 'manual';
  dryRun: boolean;
  planned: Record<string, number>;
  applied: Record<string, number>;
  docsUrl: string;
}

/** `upload --target manual`: the docs bucket only. */
export async function uploadManual(ctx: Context): Promise<ManualUploadSummary> {
  const { log, flags } = ctx;
  const built = await readManualBuild(ctx.releaseDir);
  if (built.version !== ctx.version.version || built.official !== ctx.version.official) {
    throw new ReleaseError(`release/manual was built for ${built.version}${built.official ? ' (official)' : ''}, but ${ctx.version.file} says ${ctx.version.version}${ctx.version.official ? ' (official)' : ''}`, 'run `releng build --target manual` again');
  }
  const git = gitAt(ctx.root);
  // Relaxed for this target only: an unofficial (nightly) manual needs no tag. An official one moves
  // MAJOR/ and stable/, so it must be the tag's, as a full upload.
  if (built.official && !flags.noCheckGit) {
    await requireOnCleanTag(git, built.version, 'upload --target manual');
    const head = await git.head();
    if (built.gitRevision !== head) throw new ReleaseError(`release/manual was built at ${built.gitRevision.slice(0, 12)}, not at tag ${built.version} (${head.slice(0, 12)})`, `run \`releng build --target manual\` at tag ${built.version}`);
  }
  const manual = await localTree(path.join(ctx.releaseDir, 'manual'), 4);
  if (manual.length === 0) throw new ReleaseError(`${path.join(ctx.releaseDir, 'manual')} is empty`, 'run `releng build --target manual` first');
  const target = await openEnvironment(ctx);
  try {
    const maintenance = built.official && await isMaintenanceRelease(git, built.version, ctx.config.mainBranch);
    const plan = emptyPlan();
    const docs = await planDocs(target.s3, target.docs, built, manual, { keepStable: maintenance ? `${built.version} is a maintenance release (a newer version is tagged on ${ctx.config.mainBranch})` : undefined });
    plan.steps.push(...docs.steps);
    plan.skipped.push(...docs.skipped);
    log.info(`planned ${planSize(plan)} writes to the docs bucket (upload --target manual: nothing else is published)`);
    await confirmRelease(target.name, { noconfirm: flags.noconfirm || flags.dryRun, required: confirmationRequired(target.name, target.env) });
    const applied = await apply(plan, { log, dryRun: flags.dryRun, writers: { s3: target.s3 }, resumeHint: 're-run `releng upload --target manual`: it re-plans against the docs bucket' });
    if (!flags.dryRun) {
      const bad: string[] = [];
      for (const p of plan.steps.flatMap((s) => s.actions).filter((a): a is S3Put => a.kind === 's3.put')) {
        const h = await target.s3.head(p.bucket, p.key);
        if (!h || h.size !== p.size || h.sha256 !== p.sha256) bad.push(`s3://${p.bucket}/${p.key}`);
      }
      if (bad.length) throw new ReleaseError(`verification after upload failed: ${bad.join(', ')}`, 're-run `releng upload --target manual`');
    }
    return {
      environment: target.name, version: built.version, target: 'manual', dryRun: flags.dryRun,
      planned: countByKind(plan), applied: applied.byKind, docsUrl: `s3://${target.docs.bucket}/${target.docs.prefix}manual/${built.project}/`,
    };
  } finally {
    await target.close();
  }
}
