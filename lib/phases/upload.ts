// upload: publish what build laid out, to one environment. Checks → plan (reads only) → confirmation
// → apply → verify. Order of the plan's steps (issue 4; lib/upload/plan.ts), each finished before
// the next starts:
//   1. binary cache   (NARs and listings, then narinfos by reference level; lib/upload/cache.ts)
//   2. images         (per-system images pushed by digest, then the OCI index per tag; lib/upload/images.ts)
//   3. release bucket (release files, then the root manifest.nix; lib/upload/release-bucket.ts)
//   4. docs           (the manual; lib/upload/docs.ts)
//   5. git push       (branch and tag, last: the tag on the remote says "released"; lib/git/push.ts)
// A store path is in the cache before any manifest points at it, and the tag is pushed only
// once everything it announces is published.
import { apply, planSize, type Writers } from '../actions/index.ts';
import type { Context } from '../config/context.ts';
import { collectSoonerIfLarge } from '../core/heap.ts';
import { countByKind } from '../core/plan.ts';
import { confirmationRequired, confirmRelease } from '../environment/confirm.ts';
import { openEnvironment, type OpenEnvironment } from '../environment/open.ts';
import { gitAt } from '../git/git.ts';
import { gitReader, gitWriter, resolveRemote } from '../git/push.ts';
import { openHashCache } from '../hashing/hash-cache.ts';
import { planFileListsAfterPublish } from '../mirror/filelist.ts';
import { ociWriter } from '../oci/open.ts';
import type { BuildResult } from '../release/build-result.ts';
import type { TagRecord } from '../release/tag-record.ts';
import { journalingWriter } from '../s3/intents.ts';
import { CompactListing, runKnowledge, type RunKnowledge } from '../s3/knowledge.ts';
import { recordingWriter } from '../s3/record.ts';
import { cacheKnowledge, type CacheKnowledge } from '../upload/cache.ts';
import { planUpload, type UploadPlan } from '../upload/plan.ts';
import { readReleaseToUpload, requireTagRecordForPush, signingKeyFor } from '../upload/preflight.ts';
import { openUploadMemos, saveMemos, saveMemosAfterPublish, uploadStateDir, type UploadMemos } from '../upload/state.ts';
import { summarizeUpload, type UploadSummary } from '../upload/summary.ts';
import { mergeKnowledge } from '../verify/local.ts';
import { releaseFromBuild, renderChecked, VerificationFailed, verifyRelease, verifyTarget, type VerifyReport } from '../verify/index.ts';

export { uploadStateDir } from '../upload/state.ts';
export { checkPlannedKeys, planUpload, type UploadInputs } from '../upload/plan.ts';
export type { UploadSummary } from '../upload/summary.ts';

/** Adapters a caller may wrap (tests inject failing writers here; nothing is mocked). */
export interface UploadDeps {
  wrapWriters?: (writers: Writers) => Writers;
}

/** What one run knows (lib/s3/knowledge.ts): for its closing verification. */
interface RunState { memo: UploadMemos; knowledge: RunKnowledge; cacheLocal: CacheKnowledge }

/** `upload` (--target all): the whole release; `--target manual` is phases/upload-manual.ts. */
export async function upload(ctx: Context, deps: UploadDeps = {}): Promise<UploadSummary> {
  const { log, flags } = ctx;
  // 1. Checks, before anything is staged or asked: build output, tag record, git state.
  const { result, tagRecord } = await readReleaseToUpload(ctx);
  // A large release holds many objects at once (listings, the record): its garbage is collected sooner (lib/core/heap.ts).
  collectSoonerIfLarge(result.artifacts.length + result.outPaths.length);
  // 2. The environment: credentials, every bucket reachable. The hash memo is read from disk
  //    meanwhile (an environment that cannot be opened is still the error reported).
  let phase = log.phase(`connecting to environment`);
  const hashCache = openHashCache(uploadStateDir(ctx.root));
  hashCache.catch(() => undefined);
  const target = await openEnvironment(ctx);
  phase.succeed(`environment ${log.colour(target.env.colour, target.name)}: S3 ${target.endpoint}`);
  let memo: UploadMemos | undefined;
  try {
    requireTagRecordForPush(ctx, target, tagRecord, result);
    const signingKey = await signingKeyFor(ctx, target);
    // 3. Plan: every write, in order (reads only; the signed cache is staged locally).
    phase = log.phase('planning upload');
    memo = await openUploadMemos(ctx, target, hashCache);
    const run: RunState = { memo, knowledge: runKnowledge(), cacheLocal: cacheKnowledge() };
    // --deep (issue 25): every object the plan would skip is read back and hashed; what differs is sent again.
    const deep = !!flags.extra.deep;
    let plan: UploadPlan = await planUpload(ctx, target, { result, signingKey, tagRecord, memo: { ...memo, deep }, knowledge: run.knowledge, cacheLocal: run.cacheLocal });
    phase.succeed(`planned ${planSize(plan)} writes`);
    // 4. Confirmation (environments that ask for it), then apply.
    await confirmRelease(target.name, { noconfirm: flags.noconfirm || flags.dryRun, required: confirmationRequired(target.name, target.env) });
    // The S3 actions are counted, and apply lets go of each as it starts (issue 31: one object per
    // planned put, 300,000 for a 100,000-page manual). The summary reads the count and the rest.
    const planned = countByKind(plan);
    const rest: UploadPlan = { steps: plan.steps.map((s) => ({ ...s, actions: s.actions.filter((a) => !a.kind.startsWith('s3.')) })), skipped: plan.skipped };
    const applied = await publish(ctx, target, plan, run, deps);
    plan = rest;
    // 5. The whole release, read back.
    const verified = flags.dryRun ? undefined : await verifyUpload(ctx, target, run, { result, tagRecord, publicKey: signingKey?.publicKey, puts: applied.byKind['s3.put'] ?? 0, deep });
    // 6. Mirror file lists of this environment (mirror.fileLists), rewritten only when they changed
    // (issues 11, 28); --no-mirror-lists leaves them for `releng mirror-lists` after a batch.
    const lists = await planFileListsAfterPublish(target.s3, target.env.mirror, { log, envName: target.name, dryRun: flags.dryRun, noMirrorLists: !!flags.extra['no-mirror-lists'], batch: 'published' });
    if (lists) await apply(lists.plan, { log, dryRun: false, writers: { s3: target.s3 } });
    // 7. Where it is.
    return await summarizeUpload(ctx, target, { result, plan, planned, applied, signingKey, verified });
  } finally {
    // A dry run wrote nothing and leaves the journal as it found it.
    const intents = memo?.intents;
    if (intents && !flags.dryRun) await intents.close().catch((e: any) => log.warn(`could not tidy ${intents.file}: ${e?.code ?? e?.message ?? e} (harmless: it only keeps intents a later run settles)`));
    await target.close();
  }
}

/**
 * Upload's environment checks, on their own (issue 25): the environment opened as upload opens it
 * (credentials resolved, the endpoint and every bucket answering, the embedded services started,
 * every registry login proven), the cache signing key read (a Nix secret key), and the git remote
 * answering `git ls-remote`. Reads only (the local environment may generate its signing key, as
 * upload would). `releng release` runs it before prepare writes anything, so a release that cannot
 * be uploaded leaves no notes commit, no tag and no release/ behind.
 */
export async function checkUploadEnvironment(ctx: Context): Promise<void> {
  const { log } = ctx;
  const phase = log.phase('checking the environment upload will publish to');
  const target = await openEnvironment(ctx);
  try {
    await signingKeyFor(ctx, target);
    const git = target.env.git;
    if (git) {
      const reader = gitReader(gitAt(ctx.root));
      const remote = await resolveRemote(reader, target.name, git);
      await reader.lsRemote(remote, [`refs/heads/${ctx.config.mainBranch}`]);
    }
    phase.succeed(`environment ${log.colour(target.env.colour, target.name)}: credentials, S3 ${target.endpoint} and every bucket, ${target.registries.length} registr${target.registries.length === 1 ? 'y' : 'ies'}, the signing key${git ? ' and the git remote' : ''} answer`);
  } catch (e) {
    phase.fail();
    throw e;
  } finally {
    await target.close();
  }
}

/** Applies the plan through the recording, journaling writers; the memos are saved either way. */
async function publish(ctx: Context, target: OpenEnvironment, plan: UploadPlan, run: RunState, deps: UploadDeps) {
  const { log, flags } = ctx;
  const { memo, knowledge } = run;
  const writers: Writers = { s3: recordingWriter(journalingWriter(target.s3, memo.intents), { record: memo.record, knowledge }), git: gitWriter, oci: ociWriter(target.registries) };
  let applied;
  try {
    applied = await apply(plan, {
      log, dryRun: flags.dryRun, writers: deps.wrapWriters ? deps.wrapWriters(writers) : writers,
      resumeHint: 'fix the cause and re-run `releng upload` with the same flags: it skips what is already published and continues',
      consume: true,
    });
  } catch (e) {
    // The publish failed: save the memos if we can, but the publish error is the one to report.
    if (!flags.dryRun) await saveMemos(memo).catch(() => undefined);
    throw e;
  }
  if (!flags.dryRun) await saveMemosAfterPublish(ctx, target, memo);
  return applied;
}

/**
 * The whole release, read back (skipped objects too): the same check as `releng verify`, but by
 * listing (issue 16): a listed single-part object whose ETag is the MD5 of the local bytes is
 * proven byte for byte, and its metadata is vouched for by this run's acknowledged PUT, this run's
 * HEAD, or a verification's (the record's `verified` entries); anything else is HEADed. A prefix
 * this run wrote nothing under is not listed again: the plan's listing (taken this run) is the
 * server's answer. What it finds wrong leaves the upload record, so a re-run re-checks it.
 */
async function verifyUpload(ctx: Context, target: OpenEnvironment, run: RunState, o: { result: BuildResult; tagRecord?: TagRecord; publicKey?: string; puts: number; deep?: boolean }): Promise<VerifyReport> {
  const { log } = ctx;
  const { memo, knowledge, cacheLocal } = run;
  log.info(`verifying ${o.result.project} ${o.result.version} in ${target.name}: every destination, read back${o.deep ? ' (deep: every object read and hashed)' : ''}`);
  // --deep: as `releng verify --deep`, every object read and hashed; no memo or listing proof stands in.
  const verified = await verifyRelease(ctx, verifyTarget(ctx, target, o.publicKey), o.deep
    ? { release: await releaseFromBuild(ctx, o.result, o.tagRecord), deep: true }
    : {
      release: await releaseFromBuild(ctx, o.result, o.tagRecord), known: memo.record, local: mergeKnowledge(knowledge, cacheLocal),
      list: (bucket, prefix) => knowledge.planCompact(bucket, prefix) ?? target.s3.list(bucket, prefix).then((objects) => new CompactListing(objects)),
    });
  if (!verified.ok) {
    for (const p of verified.problems) if (p.bucket && p.key) memo.record.forget(p.bucket, p.key);
    await memo.record.save();
    throw new VerificationFailed(verified, `verification after upload failed (${o.puts} objects were put by this run)`);
  }
  // What the HEADs read back: the next run's verification lists instead. Only time is lost if this fails.
  await memo.record.save().catch((e: any) => log.warn(`could not save ${memo.record.file}: ${e?.code ?? e?.message ?? e} (the next upload HEADs every object again)`));
  log.info(`verified ${renderChecked(verified)}`);
  return verified;
}
