// Upload's plan (issue 4): every write of a release to one environment, in the order that keeps
// every reader whole: the signed binary cache (staged locally by Nix first), the images, the release
// bucket (root manifest.nix last), the latest link, the docs, then the git push. Reads only, but for
// staging the cache under release/cache/ENV (a local write, never a publish).
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Context } from '../config/context.ts';
import { keyProblem } from '../config/keys.ts';
import { ReleaseError } from '../core/errors.ts';
import { collectSoonerIfLarge } from '../core/heap.ts';
import { emptyPlan, type Plan as CorePlan, type Skip, type Step as CoreStep } from '../core/plan.ts';
import type { OpenEnvironment } from '../environment/open.ts';
import { gitAt } from '../git/git.ts';
import { gitReader, planGitPush, type GitPushAction } from '../git/push.ts';
import type { HashCache } from '../hashing/hash-cache.ts';
import { encodeCacheMetadata, encodedDirName, hashPart, stageCacheMemoised, stagingStoreUrl, type SigningKey } from '../nix/cache.ts';
import { localPathInfos, narListing } from '../nix/store-info.ts';
import type { OciAction } from '../oci/actions.ts';
import type { BuildResult } from '../release/build-result.ts';
import type { TagRecord } from '../release/tag-record.ts';
import type { S3Action } from '../s3/actions.ts';
import type { WriteIntents } from '../s3/intents.ts';
import type { RunKnowledge } from '../s3/knowledge.ts';
import type { UploadRecord } from '../s3/record.ts';
import { maintenanceRelease, unofficialKeep } from '../verify/index.ts';
import { planCache, type CacheKnowledge } from './cache.ts';
import { planDocs } from './docs.ts';
import { planUploadImages } from './images.ts';
import { checkLocalInputs, type Md5Wanted } from './inputs.ts';
import { planReleaseBucket } from './release-bucket.ts';
import { uploadStateDir } from './state.ts';
import { stagedCacheProblems, type StagedProblem, type StoreFacts } from './staged-check.ts';

/** The local Nix store, as the staged cache is checked against it. */
const localStoreFacts: StoreFacts = { infos: localPathInfos, listing: narListing };

/** The kinds of write an upload makes. */
export type UploadAction = S3Action | OciAction | GitPushAction;
export type UploadPlan = CorePlan<UploadAction>;
type Plan = UploadPlan;
type Part = { steps: CoreStep<UploadAction>[]; skipped: Skip[] };

/** What the checks found, for planning: the signing key and the tag record (either may be absent). */
export interface UploadInputs {
  result: BuildResult;
  signingKey?: SigningKey;
  tagRecord?: TagRecord;
  /** Local memos (upload record, file hashes) that let a re-run skip HEADs and re-hashing. */
  memo?: { record?: UploadRecord; hashCache?: HashCache; intents?: WriteIntents; deep?: boolean };
  /** This run's knowledge of the expected bytes and the plan's listings, for the closing verification (lib/s3/knowledge.ts). */
  knowledge?: RunKnowledge;
  /** Filled while planning: the staged cache's narinfos and .ls (MD5 and bytes), for the closing verification. */
  cacheLocal?: CacheKnowledge;
  /** What the staged cache is checked against (default: the local Nix store). */
  storeFacts?: StoreFacts;
}

/** Stages the signed cache locally (Nix), then plans its upload. Local write only, never a publish. */
async function planCacheUpload(ctx: Context, target: OpenEnvironment, inputs: UploadInputs): Promise<Part> {
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
  const memoFile = path.join(uploadStateDir(ctx.root), `staged-${target.name}.json`);
  const narinfoCompression = cache.storeOptions['narinfo-compression'];
  const lsCompression = cache.storeOptions['ls-compression'];
  const stage = async () => {
    const { paths } = await stageCacheMemoised({
      dir: stagingDir, url: stagingStoreUrl(stagingDir, cache, inputs.signingKey!.file), publicKey: inputs.signingKey!.publicKey,
      drvs: result.drvs, outPaths: result.outPaths, memoFile,
    });
    // narinfo-compression / ls-compression: done here when the staging store could not (lib/nix/cache.ts).
    await encodeCacheMetadata(stagingDir, paths, { narinfo: narinfoCompression, ls: lsCompression, field: `environments.${target.name}.cache.storeOptions` });
    return paths;
  };
  let paths = await stage();
  // A closure of 10,000s of paths: garbage collected sooner from here, before the staged check
  // reads the store's records of every path (issue 31: at 50,000 paths the heap had grown to
  // 300 MiB of mostly garbage by the time the plan set it, and kept that limit through apply).
  collectSoonerIfLarge(paths.length);
  // Every narinfo and .ls to send, against the local store and the environment's key (issue 25): a
  // staged file changed since Nix wrote it is removed and its path staged again; still wrong: refused.
  // Paths whose staged files passed before, unchanged since (a memo; upload --deep checks them all).
  const checkMemo = inputs.memo?.deep ? undefined : { file: path.join(uploadStateDir(ctx.root), `staged-check-${target.name}.json`) };
  // The narinfos found signed by the key (unchanged since checked): the closing verification need not check them again.
  let vouched = new Map<string, string>();
  const check = () => {
    vouched = new Map();
    return stagedCacheProblems(stagingDir, paths, { publicKey: inputs.signingKey!.publicKey, store: inputs.storeFacts ?? localStoreFacts, narinfoCompression, lsCompression, memo: checkMemo, vouch: (f, id) => vouched.set(f, id) });
  };
  let bad = await check();
  if (bad.length) {
    const list = (ps: StagedProblem[]) => ps.slice(0, 10).map((b) => `  ${path.relative(ctx.root, b.file)}: ${b.problem}`).join('\n') + (ps.length > 10 ? `\n  (and ${ps.length - 10} more)` : '');
    ctx.log.warn(`the staged cache in ${path.relative(ctx.root, stagingDir)} does not match the local store and the signing key; staging these paths again:\n${list(bad)}`);
    for (const p of new Set(bad.map((b) => b.storePath))) {
      for (const n of [`${hashPart(p)}.narinfo`, `${hashPart(p)}.ls`]) {
        await rm(path.join(stagingDir, n), { force: true });
        await rm(path.join(stagingDir, encodedDirName, n), { force: true });
      }
    }
    await rm(memoFile, { force: true });
    paths = await stage();
    bad = await check();
    if (bad.length) {
      throw new ReleaseError(`the staged cache in ${stagingDir} does not match the local store and the signing key, even staged again:\n${list(bad)}`,
        `delete ${stagingDir} and re-run upload; if it persists, check the Nix store (nix-store --verify --check-contents) and the key environments.${target.name}.cache.signingKeyFile; nothing was uploaded`);
    }
  }
  phase.succeed(`staged ${paths.length} store paths in ${path.relative(ctx.root, stagingDir)}`);
  return planCache(target.s3, target.cache, {
    stagingDir, paths, narinfoCompression, lsCompression,
    encodedDir: path.join(stagingDir, encodedDirName), replaceCacheInfo: !!ctx.flags.extra['replace-cache-info'],
    record: inputs.memo?.record, intents: inputs.memo?.intents, deep: inputs.memo?.deep, hashCache: inputs.memo?.hashCache, md5: md5Wanted(target), local: inputs.cacheLocal,
    onListing: (bucket, prefix, listing) => inputs.knowledge?.listed(bucket, prefix, listing),
    vouched: { publicKey: inputs.signingKey.publicKey, files: vouched },
  });
}

/** Every file's MD5 where the environment sends Content-MD5; else those a listing proof pays for (lib/upload/inputs.ts). */
function md5Wanted(target: OpenEnvironment): Md5Wanted {
  return target.env.s3?.transitChecksum === 'content-md5' ? true : 'proof';
}

/** Reads the world and computes every write of the upload, in order. */
export async function planUpload(ctx: Context, target: OpenEnvironment, inputs: UploadInputs): Promise<Plan> {
  const plan = emptyPlan<UploadAction>();
  const add = (p: Part) => { plan.steps.push(...p.steps); plan.skipped.push(...p.skipped); };
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
  // Destructured: the artifacts' digests are garbage once the release bucket is planned (issue 31).
  const { artifacts, manual } = await checkLocalInputs(ctx.releaseDir, result, { hashCache: memo.hashCache, md5: md5Wanted(target) });
  const maintenance = await maintenanceP;
  const keep = result.rehearsal ? unofficialKeep(result) : maintenance ? `${result.version} is a maintenance release (a newer version is tagged on ${ctx.config.mainBranch})`
    : result.profile !== ctx.config.defaultProfile ? `built with profile "${result.profile}", not the default "${ctx.config.defaultProfile}" (it would drop systems)` : undefined;
  add(await planCacheUpload(ctx, target, inputs));
  // Every file is hashed (the cache's NARs last): the hash memo is saved now (it remembers local
  // files, not the publish) and let go, ~13 MiB of heap at 100,000 files (issue 31).
  await memo.hashCache?.release({ save: !ctx.flags.dryRun }).catch((e: any) => ctx.log.warn(`could not save ${memo.hashCache!.file}: ${e?.code ?? e?.message ?? e} (the next upload hashes the files again)`));
  add(await planUploadImages(ctx, target.registries, result, maintenance || !!result.rehearsal));
  add(await planReleaseBucket(target.s3, target.releases, result, ctx.releaseDir, { ...memo, knowledge: inputs.knowledge, keepRootManifest: keep, replaceArtifacts: !!ctx.flags.extra['replace-artifacts'], digests: artifacts }));
  // latest-PROJECT-MAJOR (mirror.latestLinks) moves with the root manifest, after it (issue 11).
  if (target.env.mirror?.latestLinks && !keep && result.official) {
    const { planLatestLink } = await import('../promote/plan.ts');
    const link = await planLatestLink(target.s3, target.releases, result.project, result.major, result.version);
    plan.steps.push({ title: `latest link in ${target.releases.url}`, actions: link.actions });
    plan.skipped.push(...link.skipped);
  }
  add(await planDocs(target.s3, target.docs, result, manual, { ...memo, knowledge: inputs.knowledge, keepStable: keep }));
  const git = target.env.git;
  if (!git) plan.skipped.push({ what: 'git push', reason: `environment "${target.name}" has no git remote (environments.${target.name}.git)` });
  else if (result.rehearsal) plan.skipped.push({ what: 'git push', reason: `${result.version} is a rehearsal build: nothing is tagged` });
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

