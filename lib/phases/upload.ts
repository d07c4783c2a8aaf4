// upload: publish what build laid out. Checks → plan (reads only) → confirmation → apply → verify.
// Order of steps (issue 4), each finished before the next starts:
//   1. binary cache   (NARs and listings, then narinfos by reference level; lib/upload/cache.ts)
//   2. images         (per-system images pushed by digest, then the OCI index per tag; lib/upload/images.ts)
//   3. release bucket (release files, then the root manifest.nix; lib/upload/release-bucket.ts)
//   4. docs           (the manual; lib/upload/docs.ts)
//   5. git push       (branch and tag, last: the tag on the remote says "released"; lib/git/push.ts)
// A store path is in the cache before any manifest points at it, and the tag is pushed only
// once everything it announces is published.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { emptyPlan, countByKind, planSize, type Plan } from '../actions.ts';
import { apply } from '../apply.ts';
import type { Writers } from '../apply-types.ts';
import { readBuildResult, type BuildResult } from '../build-result.ts';
import { confirmationRequired, confirmRelease } from '../confirm.ts';
import type { Context } from '../context.ts';
import { openEnvironment, type OpenEnvironment } from '../environment.ts';
import { ReleaseError, UsageError } from '../errors.ts';
import { localTree } from '../files.ts';
import { openHashCache, type HashCache } from '../hash-cache.ts';
import { openUploadRecord, recordingWriter, type UploadRecord } from '../s3/record.ts';
import { gitAt, requireOnCleanTag } from '../git/git.ts';
import { isMaintenanceRelease } from '../git/maintenance.ts';
import pLimit from 'p-limit';
import { gitReader, gitWriter, planGitPush, type GitPush } from '../git/push.ts';
import { closureOf, encodeCacheMetadata, encodedDirName, resolveSigningKey, stageCache, stagingStoreUrl, type SigningKey } from '../nix/cache.ts';
import type { S3Put } from '../s3/actions.ts';
import { readTagRecord, type TagRecord } from '../tag-record.ts';
import { planCache } from '../upload/cache.ts';
import { ociWriter } from '../oci/open.ts';
import { planDocs } from '../upload/docs.ts';
import { planUploadImages, verifyImages } from '../upload/images.ts';
import { planReleaseBucket } from '../upload/release-bucket.ts';
import { uploadManualOnly, type ManualUploadSummary } from '../manual-target.ts';

export interface UploadSummary {
  environment: string;
  version: string;
  dryRun: boolean;
  planned: Record<string, number>;
  applied: Record<string, number>;
  bytes: number;
  releasesUrl: string;
  docsUrl: string;
  /** HTTP(S) URL of the cache bucket on the S3 endpoint, and the key that signs it. */
  cacheUrl?: string;
  cachePublicKey?: string;
  gitRemote?: string;
}

/** What the checks found, for planning: the signing key and the tag record (either may be absent). */
export interface UploadInputs {
  result: BuildResult;
  signingKey?: SigningKey;
  tagRecord?: TagRecord;
  /** Local memos (upload record, file hashes) that let a re-run skip HEADs and re-hashing. */
  memo?: { record?: UploadRecord; hashCache?: HashCache };
}

/** Adapters a caller may wrap (tests inject failing writers here; nothing is mocked). */
export interface UploadDeps {
  wrapWriters?: (writers: Writers) => Writers;
}

/** Stages the signed cache locally (Nix), then plans its upload. Local write only, never a publish. */
async function planCacheUpload(ctx: Context, target: OpenEnvironment, inputs: UploadInputs): Promise<{ steps: Plan['steps']; skipped: Plan['skipped'] }> {
  const cache = target.env.cache;
  if (!cache || !inputs.signingKey) return { steps: [], skipped: [{ what: 'binary cache', reason: `environment "${target.name}" has no cache settings (environments.${target.name}.cache)` }] };
  const stagingDir = path.join(ctx.releaseDir, 'cache', target.name);
  const { result } = inputs;
  // Nix skips paths the staging cache already has, so narinfos signed by an older key would stay:
  // a marker records the key the staged files are signed with, and a new key restages from scratch.
  const marker = path.join(stagingDir, '.releng-signed-by');
  const signedBy = await readFile(marker, 'utf8').catch(() => undefined);
  if (signedBy !== undefined && signedBy.trim() !== inputs.signingKey.publicKey) {
    ctx.log.info(`the staged cache was signed with ${signedBy.trim()}; restaging it with ${inputs.signingKey.publicKey}`);
    await rm(stagingDir, { recursive: true, force: true });
  }
  const phase = ctx.log.phase(`staging the signed binary cache in ${path.relative(ctx.root, stagingDir)} (local)`);
  await mkdir(stagingDir, { recursive: true });
  await writeFile(marker, inputs.signingKey.publicKey + '\n');
  await stageCache({ dir: stagingDir, url: stagingStoreUrl(stagingDir, cache, inputs.signingKey.file), drvs: result.drvs, outPaths: result.outPaths });
  const paths = await closureOf([...result.drvs, ...result.outPaths]);
  // narinfo-compression / ls-compression: done here when the staging store could not (lib/nix/cache.ts).
  const narinfoCompression = cache.storeOptions['narinfo-compression'];
  const lsCompression = cache.storeOptions['ls-compression'];
  await encodeCacheMetadata(stagingDir, paths, { narinfo: narinfoCompression, ls: lsCompression, field: `environments.${target.name}.cache.storeOptions` });
  phase.succeed(`staged ${paths.length} store paths in ${path.relative(ctx.root, stagingDir)}`);
  return planCache(target.s3, target.cache, {
    stagingDir, paths, narinfoCompression, lsCompression,
    encodedDir: path.join(stagingDir, encodedDirName), replaceCacheInfo: !!ctx.flags.extra['replace-cache-info'],
  });
}

/** Reads the world and computes every write of the upload, in order. */
export async function planUpload(ctx: Context, target: OpenEnvironment, inputs: UploadInputs): Promise<Plan> {
  const plan = emptyPlan();
  const add = (p: { steps: Plan['steps']; skipped: Plan['skipped'] }) => { plan.steps.push(...p.steps); plan.skipped.push(...p.skipped); };
  const { result } = inputs;
  const memo = inputs.memo ?? {};
  // The manual is walked and hashed while the cache, images and release bucket are planned (issue 6).
  const manual = localTree(path.join(ctx.releaseDir, 'manual'), 4, { hashCache: memo.hashCache });
  manual.catch(() => undefined); // awaited below; keeps an early failure from being unhandled meanwhile
  // What users follow (root manifest.nix, stable/ docs, `latest`) moves only with a full release
  // from the main line: a maintenance release or a partial profile must not move it back or drop systems.
  const maintenance = await isMaintenanceRelease(gitAt(ctx.root), result.version, ctx.config.mainBranch);
  const keep = maintenance ? `${result.version} is a maintenance release (a newer version is tagged on ${ctx.config.mainBranch})`
    : result.profile !== ctx.config.defaultProfile ? `built with profile "${result.profile}", not the default "${ctx.config.defaultProfile}" (it would drop systems)` : undefined;
  add(await planCacheUpload(ctx, target, inputs));
  add(await planUploadImages(ctx, target.registries, result, maintenance));
  add(await planReleaseBucket(target.s3, target.releases, result, ctx.releaseDir, { ...memo, keepRootManifest: keep, replaceArtifacts: !!ctx.flags.extra['replace-artifacts'] }));
  add(await planDocs(target.s3, target.docs, result, await manual, { ...memo, keepStable: keep }));
  const git = target.env.git;
  if (!git) plan.skipped.push({ what: 'git push', reason: `environment "${target.name}" has no git remote (environments.${target.name}.git)` });
  else if (!inputs.tagRecord) plan.skipped.push({ what: 'git push', reason: 'no release/tag.json (`releng tag` has not run; allowed with --no-check-git)' });
  else add(await planGitPush(gitReader(gitAt(ctx.root)), { envName: target.name, git, record: inputs.tagRecord, cwd: ctx.root, forcePushTag: !!ctx.flags.extra['force-push-tag'] }));
  return plan;
}

/** After apply: every object we put is there with the size and sha256 we planned. */
export async function verifyUpload(target: OpenEnvironment, plan: Plan, record?: TagRecord): Promise<void> {
  const puts = plan.steps.flatMap((s) => s.actions).filter((a): a is S3Put => a.kind === 's3.put');
  const bad: string[] = [];
  const limit = pLimit(32);
  await Promise.all(puts.map((p) => limit(async () => {
    const h = await target.s3.head(p.bucket, p.key);
    if (!h) bad.push(`s3://${p.bucket}/${p.key}: missing`);
    else if (h.size !== p.size || h.sha256 !== p.sha256) bad.push(`s3://${p.bucket}/${p.key}: size ${h.size}, sha256 ${h.sha256 ?? 'none'}; expected ${p.size}, ${p.sha256}`);
  })));
  // The tag on the remote is the commit tag.json recorded (ls-remote, as a user would check).
  const pushes = plan.steps.flatMap((s) => s.actions).filter((a): a is GitPush => a.kind === 'git.push');
  for (const p of pushes) {
    const tagSpec = p.refspecs.find((r) => r.includes(':refs/tags/'));
    if (!tagSpec || !record) continue;
    const ref = `refs/tags/${record.version}`;
    const there = await gitReader(gitAt(p.cwd)).lsRemote(p.remote, [ref, `${ref}^{}`]);
    const commit = there.get(`${ref}^{}`) ?? there.get(ref);
    if (commit !== record.releaseCommit) bad.push(`${p.remote} ${ref}: ${commit ?? 'missing'}; expected ${record.releaseCommit}`);
  }
  if (bad.length) throw new ReleaseError(`verification after upload failed:\n${bad.map((b) => `  ${b}`).join('\n')}`, 're-run upload: it re-plans and re-puts what differs');
}

/** Where upload keeps its memos (upload record, file hashes): under the project's gitignored .releng/. */
export function uploadStateDir(root: string): string {
  return path.join(root, '.releng', 'upload-state');
}

/** The `upload` command: `--target manual` publishes only the manual (lib/manual-target.ts). */
export async function uploadCommand(ctx: Context): Promise<UploadSummary | ManualUploadSummary> {
  const t = ctx.flags.extra['target'] ?? 'all';
  if (t === 'manual') return uploadManualOnly(ctx);
  if (t !== 'all') throw new UsageError(`--target ${String(t)} is not an upload target: use --target all (default) or --target manual`);
  return upload(ctx);
}

export async function upload(ctx: Context, deps: UploadDeps = {}): Promise<UploadSummary> {
  const { log, flags } = ctx;
  // Checks, before anything is staged or asked: build output, git state, tag record, then the
  // environment (credentials, every bucket reachable) and the signing key.
  const result = await readBuildResult(ctx.releaseDir);
  if (result.version !== ctx.version.version) {
    throw new ReleaseError(`release/build-result.json is for ${result.version}, but ${ctx.version.file} says ${ctx.version.version}`, 'run `releng build` again');
  }
  const tagRecord = await readTagRecord(ctx.root);
  if (tagRecord && tagRecord.version !== result.version) {
    throw new ReleaseError(`release/tag.json is for ${tagRecord.version}, but the build is ${result.version}`, 'run `releng tag` and `releng build` for the same version');
  }
  if (!flags.noCheckGit) {
    // Publish only the build of the tagged commit: HEAD at the tag, and build-result.json made there.
    const git = gitAt(ctx.root);
    await requireOnCleanTag(git, result.version, 'upload');
    const head = await git.head();
    const file = path.join(ctx.releaseDir, 'build-result.json');
    const again = `run \`releng build\` at tag ${result.version}, then upload`;
    if (result.gitRevision !== head) throw new ReleaseError(`${file} was built at ${result.gitRevision.slice(0, 12)}, not at tag ${result.version} (${head.slice(0, 12)})`, again);
    if (result.tag !== result.version || !result.official) throw new ReleaseError(`${file} is not an official build of tag ${result.version} (tag: ${result.tag ?? 'none'}, official: ${result.official})`, again);
    if (tagRecord && tagRecord.releaseCommit !== head) throw new ReleaseError(`release/tag.json records ${tagRecord.releaseCommit.slice(0, 12)} as the release commit, but tag ${result.version} is ${head.slice(0, 12)}`, 'run `releng tag` again (with --force-tag if the tag was remade)');
  }

  let phase = log.phase(`connecting to environment`);
  const target = await openEnvironment(ctx);
  phase.succeed(`environment ${log.colour(target.env.colour, target.name)}: S3 ${target.endpoint}`);
  try {
    if (target.env.git && !tagRecord && !flags.noCheckGit) {
      throw new ReleaseError(`no ${path.join(ctx.releaseDir, 'tag.json')}: upload pushes the branch and tag that \`releng tag\` recorded there`, 'run `releng tag` first (or pass --no-check-git to upload without the git push, testing only)');
    }
    let signingKey: SigningKey | undefined;
    if (target.env.cache) {
      signingKey = await resolveSigningKey({ root: ctx.root, envName: target.name, cache: target.env.cache, project: ctx.config.project, allowGenerate: target.name === 'local' });
      if (signingKey.generated) log.info(`generated the local cache signing key ${path.relative(ctx.root, signingKey.file)}`);
      log.info(`cache signing key ${path.relative(ctx.root, signingKey.file)}; public key (trusted-public-keys): ${signingKey.publicKey}`);
    }
    phase = log.phase('planning upload');
    // Local memos that make a re-run cheap (issue 6, docs/upload-performance.md); never the truth.
    // The embedded server listens on a new port each run: name it by its data dir instead.
    const recordId = target.embeddedS3 ? `embedded:${target.embeddedS3.dir}` : target.endpoint;
    const memo = { record: await openUploadRecord(uploadStateDir(ctx.root), recordId), hashCache: await openHashCache(uploadStateDir(ctx.root)) };
    const plan = await planUpload(ctx, target, { result, signingKey, tagRecord, memo });
    phase.succeed(`planned ${planSize(plan)} writes`);
    await confirmRelease(target.name, { noconfirm: flags.noconfirm || flags.dryRun, required: confirmationRequired(target.name, target.env) });
    const writers: Writers = { s3: recordingWriter(target.s3, memo.record), git: gitWriter, oci: ociWriter(target.registries) };
    let applied;
    try {
      applied = await apply(plan, {
        log, dryRun: flags.dryRun, writers: deps.wrapWriters ? deps.wrapWriters(writers) : writers,
        resumeHint: 'fix the cause and re-run `releng upload` with the same flags: it skips what is already published and continues',
      });
    } finally {
      if (!flags.dryRun) { await memo.record.save(); await memo.hashCache.save(); }
    }
    if (!flags.dryRun) {
      phase = log.phase('verifying what was uploaded');
      await verifyUpload(target, plan, tagRecord);
      await verifyImages(target.registries, plan);
      const extras = [applied.byKind['oci.index'] ? `${applied.byKind['oci.index']} image tags` : '', applied.byKind['git.push'] ? 'the pushed tag' : ''].filter(Boolean);
      phase.succeed(`verified ${applied.byKind['s3.put'] ?? 0} uploaded objects${extras.length ? ` and ${extras.join(' and ')}` : ''}`);
    }
    const releasesUrl = `s3://${target.releases.bucket}/${target.releases.prefix}${result.releaseDir}/`;
    const docsUrl = `s3://${target.docs.bucket}/${target.docs.prefix}manual/${result.project}/`;
    const cacheUrl = `${target.endpoint}/${target.cache.bucket}${target.cache.prefix ? `/${target.cache.prefix.replace(/\/$/, '')}` : ''}`;
    const gitPush = plan.steps.flatMap((s) => s.actions).find((a): a is GitPush => a.kind === 'git.push');
    if (!flags.dryRun) {
      log.info(`released ${result.project} ${result.version} to ${target.name}: ${releasesUrl}`);
      // The embedded server stops with this run: name the URL `releng serve` (port 4566) gives it.
      const shownCacheUrl = target.embeddedS3 ? `http://127.0.0.1:4566/${target.cache.bucket} (while \`releng serve\` runs)` : cacheUrl;
      if (signingKey) log.info(`binary cache: ${shownCacheUrl}; trusted-public-keys = ${signingKey.publicKey}`);
      if (target.embeddedS3) {
        log.info(`local S3 data: ${target.embeddedS3.dir}`);
        if (target.embeddedRegistry) log.info(`local registry data: ${target.embeddedRegistry.dir}`);
        log.info(`browse it: releng serve (from ${ctx.root}), then e.g. curl http://127.0.0.1:4566/${target.releases.bucket}/${target.releases.prefix}${result.releaseDir}/SHA256SUMS`);
      }
    }
    return {
      environment: target.name, version: result.version, dryRun: flags.dryRun,
      planned: countByKind(plan), applied: applied.byKind, bytes: applied.bytes, releasesUrl, docsUrl,
      ...(signingKey ? { cacheUrl, cachePublicKey: signingKey.publicKey } : {}),
      ...(gitPush ? { gitRemote: gitPush.remote } : {}),
    };
  } finally {
    await target.close();
  }
}
