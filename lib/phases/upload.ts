// upload: publish what build laid out. Checks → plan (reads only) → confirmation → apply → verify.
// Order of steps: release files → root manifest.nix → docs (see lib/upload/*).
import path from 'node:path';
import { emptyPlan, countByKind, planSize, type Plan } from '../actions.ts';
import { apply } from '../apply.ts';
import { readBuildResult, type BuildResult } from '../build-result.ts';
import { confirmRelease } from '../confirm.ts';
import type { Context } from '../context.ts';
import { openEnvironment, type OpenEnvironment } from '../environment.ts';
import { ReleaseError } from '../errors.ts';
import { localTree } from '../files.ts';
import { openHashCache, type HashCache } from '../hash-cache.ts';
import { openUploadRecord, recordingWriter, type UploadRecord } from '../s3/record.ts';
import { gitAt, requireOnCleanTag } from '../git/git.ts';
import type { S3Put } from '../s3/actions.ts';
import { planDocs } from '../upload/docs.ts';
import { planReleaseBucket } from '../upload/release-bucket.ts';

export interface UploadSummary {
  environment: string;
  version: string;
  dryRun: boolean;
  planned: Record<string, number>;
  applied: Record<string, number>;
  bytes: number;
  releasesUrl: string;
  docsUrl: string;
}

/** Reads the world and computes every write of the upload, in order. */
export async function planUpload(ctx: Context, target: OpenEnvironment, result: BuildResult, memo: { record?: UploadRecord; hashCache?: HashCache } = {}): Promise<Plan> {
  const plan = emptyPlan();
  const add = (p: { steps: Plan['steps']; skipped: Plan['skipped'] }) => { plan.steps.push(...p.steps); plan.skipped.push(...p.skipped); };
  // The manual is walked and hashed while the release bucket is listed (issue 6).
  const manual = localTree(path.join(ctx.releaseDir, 'manual'), 4, { hashCache: memo.hashCache });
  manual.catch(() => undefined); // awaited below; keeps an early failure from being unhandled meanwhile
  add(await planReleaseBucket(target.s3, target.releases, result, ctx.releaseDir, memo));
  add(await planDocs(target.s3, target.docs, result, await manual, memo));
  return plan;
}

/** After apply: every object we put is there with the size and sha256 we planned. */
export async function verifyUpload(target: OpenEnvironment, plan: Plan): Promise<void> {
  const puts = plan.steps.flatMap((s) => s.actions).filter((a): a is S3Put => a.kind === 's3.put');
  const bad: string[] = [];
  await Promise.all(puts.map(async (p) => {
    const h = await target.s3.head(p.bucket, p.key);
    if (!h) bad.push(`s3://${p.bucket}/${p.key}: missing`);
    else if (h.size !== p.size || h.sha256 !== p.sha256) bad.push(`s3://${p.bucket}/${p.key}: size ${h.size}, sha256 ${h.sha256 ?? 'none'}; expected ${p.size}, ${p.sha256}`);
  }));
  if (bad.length) throw new ReleaseError(`verification after upload failed:\n${bad.map((b) => `  ${b}`).join('\n')}`, 're-run upload: it re-plans and re-puts what differs');
}

/** Where upload keeps its memos (upload record, file hashes): under the project's gitignored .releng/. */
export function uploadStateDir(root: string): string {
  return path.join(root, '.releng', 'upload-state');
}

export async function upload(ctx: Context): Promise<UploadSummary> {
  const { log, flags } = ctx;
  const result = await readBuildResult(ctx.releaseDir);
  if (result.version !== ctx.version.version) {
    throw new ReleaseError(`release/build-result.json is for ${result.version}, but ${ctx.version.file} says ${ctx.version.version}`, 'run `releng build` again');
  }
  if (!flags.noCheckGit) await requireOnCleanTag(gitAt(ctx.root), result.version, 'upload');

  let phase = log.phase(`connecting to environment`);
  const target = await openEnvironment(ctx);
  phase.succeed(`environment ${log.colour(target.env.colour, target.name)}: S3 ${target.endpoint}`);
  try {
    phase = log.phase('planning upload');
    // Local memos that make a re-run cheap (issue 6, docs/upload-performance.md); never the truth.
    // The embedded server listens on a new port each run: name it by its data dir instead.
    const recordId = target.embeddedS3 ? `embedded:${target.embeddedS3.dir}` : target.endpoint;
    const memo = { record: await openUploadRecord(uploadStateDir(ctx.root), recordId), hashCache: await openHashCache(uploadStateDir(ctx.root)) };
    const plan = await planUpload(ctx, target, result, memo);
    phase.succeed(`planned ${planSize(plan)} writes`);
    await confirmRelease(target.name, { noconfirm: flags.noconfirm || flags.dryRun, required: target.env.confirm ?? target.name !== 'local' });
    let applied;
    try {
      applied = await apply(plan, {
        log, dryRun: flags.dryRun, writers: { s3: recordingWriter(target.s3, memo.record) },
        resumeHint: 'fix the cause and re-run `releng upload` with the same flags: it skips what is already published and continues',
      });
    } finally {
      if (!flags.dryRun) { await memo.record.save(); await memo.hashCache.save(); }
    }
    if (!flags.dryRun) {
      phase = log.phase('verifying what was uploaded');
      await verifyUpload(target, plan);
      phase.succeed(`verified ${applied.byKind['s3.put'] ?? 0} uploaded objects`);
    }
    const releasesUrl = `s3://${target.releases.bucket}/${target.releases.prefix}${result.releaseDir}/`;
    const docsUrl = `s3://${target.docs.bucket}/${target.docs.prefix}manual/${result.project}/`;
    if (!flags.dryRun) {
      log.info(`released ${result.project} ${result.version} to ${target.name}: ${releasesUrl}`);
      if (target.embeddedS3) {
        log.info(`local S3 data: ${target.embeddedS3.dir}`);
        log.info(`browse it: releng serve (from ${ctx.root}), then e.g. curl http://127.0.0.1:PORT/${target.releases.bucket}/${target.releases.prefix}${result.releaseDir}/SHA256SUMS`);
      }
    }
    return {
      environment: target.name, version: result.version, dryRun: flags.dryRun,
      planned: countByKind(plan), applied: applied.byKind, bytes: applied.bytes, releasesUrl, docsUrl,
    };
  } finally {
    await target.close();
  }
}
