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
import { emptyPlan, countByKind, planSize, type Plan } from '../actions/index.ts';
import { apply } from '../actions/index.ts';
import type { Writers } from '../actions/index.ts';
import { readBuildResult, type BuildResult } from '../release/build-result.ts';
import { confirmationRequired, confirmRelease } from '../environment/confirm.ts';
import type { Context } from '../config/context.ts';
import { openEnvironment, type OpenEnvironment } from '../environment/open.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { localTree } from '../upload/local-tree.ts';
import { openHashCache, type HashCache } from '../hashing/hash-cache.ts';
import { runKnowledge, type RunKnowledge } from '../s3/knowledge.ts';
import { openUploadRecord, recordingWriter, type UploadRecord } from '../s3/record.ts';
import { intentsDir, journalingWriter, openIntentJournal, type IntentJournal, type WriteIntents } from '../s3/intents.ts';
import { gitAt, requireOnCleanTag } from '../git/git.ts';
import { gitReader, gitWriter, planGitPush, type GitPush } from '../git/push.ts';
import { encodeCacheMetadata, encodedDirName, resolveSigningKey, stageCacheMemoised, stagingStoreUrl, type SigningKey } from '../nix/cache.ts';
import type { S3Put } from '../s3/actions.ts';
import { readTagRecord, type TagRecord } from '../release/tag-record.ts';
import { cacheKnowledge, planCache, type CacheKnowledge } from '../upload/cache.ts';
import { mergeKnowledge } from '../verify/local.ts';
import { ociWriter } from '../oci/open.ts';
import { planDocs } from '../upload/docs.ts';
import { planUploadImages } from '../upload/images.ts';
import { maintenanceRelease, releaseFromBuild, renderChecked, VerificationFailed, verifyRelease, verifyTarget, type VerifyReport } from '../verify/index.ts';
import { planReleaseBucket } from '../upload/release-bucket.ts';
import { checkLocalInputs, type Md5Wanted } from '../upload/inputs.ts';
import { keyProblem } from '../config/keys.ts';

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
  /** HTTP URLs that answer after the run: the S3 endpoint's, or for the embedded server the ones `releng serve` answers on. */
  urls: { releases: string; docs: string; cache?: string; manifest: string };
  /** Every image tag of the release and the digest it names (the registry's answer after the run; planned digests in a dry run). */
  images: { reference: string; digest: string }[];
  cachePublicKey?: string;
  gitRemote?: string;
  /** What the closing verification read back, per destination (lib/verify). */
  verified?: VerifyReport['checked'];
}

/** What the checks found, for planning: the signing key and the tag record (either may be absent). */
export interface UploadInputs {
  result: BuildResult;
  signingKey?: SigningKey;
  tagRecord?: TagRecord;
  /** Local memos (upload record, file hashes) that let a re-run skip HEADs and re-hashing. */
  memo?: { record?: UploadRecord; hashCache?: HashCache; intents?: WriteIntents };
  /** This run's knowledge of the expected bytes and the plan's listings, for the closing verification (lib/s3/knowledge.ts). */
  knowledge?: RunKnowledge;
  /** Filled while planning: the staged cache's narinfos and .ls (MD5 and bytes), for the closing verification. */
  cacheLocal?: CacheKnowledge;
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
  // The staging memo skips `nix copy` and the closure query when every staged file it names is still there (lib/nix/cache.ts).
  const { paths } = await stageCacheMemoised({
    dir: stagingDir, url: stagingStoreUrl(stagingDir, cache, inputs.signingKey.file), publicKey: inputs.signingKey.publicKey,
    drvs: result.drvs, outPaths: result.outPaths, memoFile: path.join(uploadStateDir(ctx.root), `staged-${target.name}.json`),
  });
  // narinfo-compression / ls-compression: done here when the staging store could not (lib/nix/cache.ts).
  const narinfoCompression = cache.storeOptions['narinfo-compression'];
  const lsCompression = cache.storeOptions['ls-compression'];
  await encodeCacheMetadata(stagingDir, paths, { narinfo: narinfoCompression, ls: lsCompression, field: `environments.${target.name}.cache.storeOptions` });
  phase.succeed(`staged ${paths.length} store paths in ${path.relative(ctx.root, stagingDir)}`);
  return planCache(target.s3, target.cache, {
    stagingDir, paths, narinfoCompression, lsCompression,
    encodedDir: path.join(stagingDir, encodedDirName), replaceCacheInfo: !!ctx.flags.extra['replace-cache-info'],
    record: inputs.memo?.record, intents: inputs.memo?.intents, hashCache: inputs.memo?.hashCache, md5: md5Wanted(target), local: inputs.cacheLocal,
    onListing: (bucket, prefix, listing) => inputs.knowledge?.listed(bucket, prefix, listing),
  });
}

/** Every file's MD5 where the environment sends Content-MD5; else those a listing proof pays for (lib/upload/inputs.ts). */
function md5Wanted(target: OpenEnvironment): Md5Wanted {
  return target.env.s3?.transitChecksum === 'content-md5' ? true : 'proof';
}

/** Reads the world and computes every write of the upload, in order. */
export async function planUpload(ctx: Context, target: OpenEnvironment, inputs: UploadInputs): Promise<Plan> {
  const plan = emptyPlan();
  const add = (p: { steps: Plan['steps']; skipped: Plan['skipped'] }) => { plan.steps.push(...p.steps); plan.skipped.push(...p.skipped); };
  const { result } = inputs;
  const memo = inputs.memo ?? {};
  // Local inputs against build-result.json before anything else (issue 9): a changed artifact or
  // manual page refuses the upload here, naming the file, before any write. Each file is read once
  // (or not at all when the memo vouches for it); its sha256 and MD5 are what the PUTs carry.
  // The MD5 is read whatever the transit checksum (issue 16): the PUT checks its ETag against it, and
  // the closing verification proves each single-part object by its listed ETag instead of a HEAD.
  // What users follow (root manifest.nix, stable/ docs, `latest`) moves only with a full release
  // from the main line: a maintenance release or a partial profile must not move it back or drop systems.
  // (git is asked while the local files are checked; a local file's error is still the one reported.)
  const maintenanceP = maintenanceRelease(ctx, result.version);
  maintenanceP.catch(() => undefined);
  const checked = await checkLocalInputs(ctx.releaseDir, result, { hashCache: memo.hashCache, md5: md5Wanted(target) });
  const maintenance = await maintenanceP;
  const keep = maintenance ? `${result.version} is a maintenance release (a newer version is tagged on ${ctx.config.mainBranch})`
    : result.profile !== ctx.config.defaultProfile ? `built with profile "${result.profile}", not the default "${ctx.config.defaultProfile}" (it would drop systems)` : undefined;
  add(await planCacheUpload(ctx, target, inputs));
  add(await planUploadImages(ctx, target.registries, result, maintenance));
  add(await planReleaseBucket(target.s3, target.releases, result, ctx.releaseDir, { ...memo, knowledge: inputs.knowledge, keepRootManifest: keep, replaceArtifacts: !!ctx.flags.extra['replace-artifacts'], digests: checked.artifacts }));
  // latest-PROJECT-MAJOR (mirror.latestLinks) moves with the root manifest, after it (issue 11).
  if (target.env.mirror?.latestLinks && !keep && result.official) {
    const { planLatestLink } = await import('../promote/plan.ts');
    const link = await planLatestLink(target.s3, target.releases, result.project, result.major, result.version);
    plan.steps.push({ title: `latest link in ${target.releases.url}`, actions: link.actions });
    plan.skipped.push(...link.skipped);
  }
  add(await planDocs(target.s3, target.docs, result, checked.manual, { ...memo, knowledge: inputs.knowledge, keepStable: keep }));
  const git = target.env.git;
  if (!git) plan.skipped.push({ what: 'git push', reason: `environment "${target.name}" has no git remote (environments.${target.name}.git)` });
  else if (!inputs.tagRecord) plan.skipped.push({ what: 'git push', reason: 'no release/tag.json (`releng tag` has not run; allowed with --no-check-git)' });
  else add(await planGitPush(gitReader(gitAt(ctx.root)), { envName: target.name, git, record: inputs.tagRecord, cwd: ctx.root, forcePushTag: !!ctx.flags.extra['force-push-tag'] }));
  checkPlannedKeys(plan);
  // The MD5s of the release's and docs' files were noted by planSync (every file, put or not); a
  // planned PUT's (the cache's too) is noted by the recording writer when it is sent: once each.
  return plan;
}

/** Every key the plan writes is a plain S3 key (lib/config/keys.ts), checked before the first write. */
export function checkPlannedKeys(plan: Plan): void {
  const bad: string[] = [];
  for (const a of plan.steps.flatMap((s) => s.actions)) {
    if (a.kind !== 's3.put' && a.kind !== 's3.redirect' && a.kind !== 's3.copy' && a.kind !== 's3.delete') continue;
    const key = (a as { key: string }).key;
    const p = a.kind === 's3.delete' ? undefined : keyProblem(key);
    if (p) bad.push(`s3://${(a as { bucket: string }).bucket}/${key}: ${p}`);
  }
  if (bad.length) {
    throw new ReleaseError(`the upload would write keys that are not plain S3 keys:\n${bad.slice(0, 10).map((b) => `  ${b}`).join('\n')}`,
      'rename the files so that every path segment is plain (no %, ?, #, \\, control characters, empty, . or ..); nothing was uploaded');
  }
}

/** The digest behind each image tag: asked of the registry after a run, taken from the plan in a dry run. */
async function imageDigests(target: OpenEnvironment, plan: Plan, version: string, dryRun: boolean): Promise<{ reference: string; digest: string }[]> {
  const { defaultServePorts } = await import('../local/ports.ts');
  // The embedded registry's port dies with the run; `releng serve` serves it on a fixed one.
  const shown = (host: string) => (target.embeddedRegistry && host === target.embeddedRegistry.host ? `127.0.0.1:${defaultServePorts.registry}` : host);
  const planned = plan.steps.flatMap((s) => s.actions).filter((a) => a.kind === 'oci.index');
  if (dryRun) return planned.map((a) => ({ reference: `${shown(a.registry)}/${a.repository}:${a.tag}`, digest: a.digest }));
  const out: { reference: string; digest: string }[] = [];
  for (const r of target.registries) {
    const tags = new Set([version, ...planned.filter((a) => a.registry === r.host && a.repository === r.repository).map((a) => a.tag)]);
    for (const tag of tags) {
      const head = await r.client.headManifest(r.repository, tag);
      if (head) out.push({ reference: `${shown(r.host)}/${r.repository}:${tag}`, digest: head.digest });
    }
  }
  return out;
}

/** Saves the upload record and the hash memo; a failure names the file that could not be written. */
async function saveMemos(memo: { record: UploadRecord; hashCache: HashCache }): Promise<void> {
  for (const [file, save] of [[memo.record.file, () => memo.record.save()], [memo.hashCache.file, () => memo.hashCache.save()]] as const) {
    try { await save(); } catch (e: any) {
      if (e && typeof e === 'object') e.memoFile = file;
      throw e;
    }
  }
}

/** Where upload keeps its memos (upload record, file hashes): under the project's gitignored .releng/. */
export function uploadStateDir(root: string): string {
  return path.join(root, '.releng', 'upload-state');
}

/** `upload` (--target all): the whole release; `--target manual` is phases/upload-manual.ts. */
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
  // The hash memo is read from disk while the environment's buckets answer (a local read; an
  // environment that cannot be opened is still the error reported).
  const hashCacheP = openHashCache(uploadStateDir(ctx.root));
  hashCacheP.catch(() => undefined);
  const target = await openEnvironment(ctx);
  phase.succeed(`environment ${log.colour(target.env.colour, target.name)}: S3 ${target.endpoint}`);
  let intents: IntentJournal | undefined;
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
    // The intent journal (lib/s3/intents.ts): what earlier runs began writing and never saw
    // acknowledged is evidence for the planners that an object there is releng's own damaged write
    // (a repair), and every write of this run is recorded in it before it starts.
    intents = await openIntentJournal(intentsDir(uploadStateDir(ctx.root)), recordId);
    const memo = { record: await openUploadRecord(uploadStateDir(ctx.root), recordId), hashCache: await hashCacheP, intents };
    const knowledge = runKnowledge();
    const cacheLocal = cacheKnowledge();
    const plan = await planUpload(ctx, target, { result, signingKey, tagRecord, memo, knowledge, cacheLocal });
    phase.succeed(`planned ${planSize(plan)} writes`);
    await confirmRelease(target.name, { noconfirm: flags.noconfirm || flags.dryRun, required: confirmationRequired(target.name, target.env) });
    const writers: Writers = { s3: recordingWriter(journalingWriter(target.s3, intents), { record: memo.record, knowledge }), git: gitWriter, oci: ociWriter(target.registries) };
    let applied;
    try {
      applied = await apply(plan, {
        log, dryRun: flags.dryRun, writers: deps.wrapWriters ? deps.wrapWriters(writers) : writers,
        resumeHint: 'fix the cause and re-run `releng upload` with the same flags: it skips what is already published and continues',
      });
    } catch (e) {
      // The publish failed: save the memos if we can, but the publish error is the one to report.
      if (!flags.dryRun) await saveMemos(memo).catch(() => undefined);
      throw e;
    }
    if (!flags.dryRun) {
      try { await saveMemos(memo); } catch (e: any) {
        throw new ReleaseError(`the upload itself completed (every planned write was acknowledged), but saving the local memo ${e?.memoFile ?? uploadStateDir(ctx.root)} failed: ${e?.code ?? ''} ${e?.message ?? e}`.replace(/\s+/g, ' ').trim(),
          `free space or fix permissions in ${uploadStateDir(ctx.root)}, then run \`releng verify --environment ${target.name}\` to confirm the release (the memo only saves time; re-running upload is safe too)`, { cause: e });
      }
    }
    let verified: VerifyReport | undefined;
    if (!flags.dryRun) {
      // The whole release, read back (skipped objects too): the same check as `releng verify`, but by
      // listing (issue 16): a listed single-part object whose ETag is the MD5 of the local bytes is
      // proven byte for byte, and its metadata is vouched for by this run's acknowledged PUT, this
      // run's HEAD, or a verification's (the record's `verified` entries); anything else is HEADed.
      // A prefix this run wrote nothing under is not listed again: the plan's listing (taken this
      // run) is the server's answer. What it finds wrong leaves the upload record, so a re-run re-checks it.
      log.info(`verifying ${result.project} ${result.version} in ${target.name}: every destination, read back`);
      verified = await verifyRelease(ctx, verifyTarget(ctx, target, signingKey?.publicKey), {
        release: await releaseFromBuild(ctx, result, tagRecord), known: memo.record, local: mergeKnowledge(knowledge, cacheLocal),
        list: (bucket, prefix) => knowledge.planListing(bucket, prefix) ?? target.s3.list(bucket, prefix),
      });
      if (!verified.ok) {
        for (const p of verified.problems) if (p.bucket && p.key) memo.record.forget(p.bucket, p.key);
        await memo.record.save();
        throw new VerificationFailed(verified, `verification after upload failed (${applied.byKind['s3.put'] ?? 0} objects were put by this run)`);
      }
      // What the HEADs read back: the next run's verification lists instead. Only time is lost if this fails.
      await memo.record.save().catch((e: any) => log.warn(`could not save ${memo.record.file}: ${e?.code ?? e?.message ?? e} (the next upload HEADs every object again)`));
      log.info(`verified ${renderChecked(verified)}`);
    }
    // Mirror file lists of this environment (mirror.fileLists), rewritten only when they changed (issue 11).
    if (target.env.mirror) {
      const { regenerateFileLists } = await import('../mirror/filelist.ts');
      const lists = await regenerateFileLists(target.s3, target.env.mirror, { log, dryRun: flags.dryRun });
      for (const k of lists.skipped) log.skip(k.what, k.reason);
    }
    const releasesUrl = `s3://${target.releases.bucket}/${target.releases.prefix}${result.releaseDir}/`;
    const docsUrl = `s3://${target.docs.bucket}/${target.docs.prefix}manual/${result.project}/`;
    // The embedded servers stop with this run: name the addresses `releng serve` gives them (fixed ports).
    const { defaultServePorts } = await import('../local/ports.ts');
    const httpBase = target.embeddedS3 ? `http://127.0.0.1:${defaultServePorts.s3}` : target.endpoint;
    const at = (b: { bucket: string; prefix: string }, rest = '') => `${httpBase}/${b.bucket}/${b.prefix}${rest}`;
    const cacheUrl = at(target.cache).replace(/\/$/, '');
    const urls = {
      releases: at(target.releases, `${result.releaseDir}/`),
      docs: at(target.docs, `manual/${result.project}/`),
      manifest: at(target.releases, 'manifest.nix'),
      ...(signingKey ? { cache: cacheUrl } : {}),
    };
    const images = await imageDigests(target, plan, result.version, flags.dryRun);
    const gitPush = plan.steps.flatMap((s) => s.actions).find((a): a is GitPush => a.kind === 'git.push');
    if (!flags.dryRun) {
      log.info(`released ${result.project} ${result.version} to ${target.name}: ${releasesUrl}`);
      // The embedded server stops with this run: name the URL `releng serve` (port 4566) gives it.
      const shownCacheUrl = target.embeddedS3 ? `${cacheUrl} (while \`releng serve\` runs)` : cacheUrl;
      if (signingKey) log.info(`binary cache: ${shownCacheUrl}; trusted-public-keys = ${signingKey.publicKey}`);
      if (target.embeddedS3) {
        log.info(`local S3 data: ${target.embeddedS3.dir}`);
        if (target.embeddedRegistry) log.info(`local registry data: ${target.embeddedRegistry.dir}`);
        log.info(`browse it: releng serve (from ${ctx.root}), then e.g. curl ${urls.releases}SHA256SUMS`);
      }
    }
    return {
      environment: target.name, version: result.version, dryRun: flags.dryRun,
      planned: countByKind(plan), applied: applied.byKind, bytes: applied.bytes, releasesUrl, docsUrl, urls, images,
      ...(signingKey ? { cacheUrl, cachePublicKey: signingKey.publicKey } : {}),
      ...(gitPush ? { gitRemote: gitPush.remote } : {}),
      ...(verified ? { verified: verified.checked } : {}),
    };
  } finally {
    // A dry run wrote nothing and leaves the journal as it found it.
    if (intents && !flags.dryRun) await intents.close().catch((e: any) => log.warn(`could not tidy ${intents!.file}: ${e?.code ?? e?.message ?? e} (harmless: it only keeps intents a later run settles)`));
    await target.close();
  }
}
