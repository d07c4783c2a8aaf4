// `releng verify`: reads every destination of a release back from scratch (no upload record) and
// exits 0 only when all of it is as the release says. Read only: nothing is written. Quick mode in
// a project proves objects by listing against the MD5s of release/'s files (the hash memo may
// answer for unchanged files; issue 16); --deep reads every object.
// The cache files upload staged for this build (release/cache/ENV) likewise stand in for a
// narinfo's or .ls's GET where the listing shows the bucket holds exactly those bytes.
import { access } from 'node:fs/promises';
import path from 'node:path';
import { stagedCacheKnowledge } from '../upload/cache.ts';
import { mergeKnowledge } from '../verify/local.ts';
import { buildResultPath, readBuildResult } from '../release/build-result.ts';
import type { Context } from '../config/context.ts';
import { environmentName, openEnvironment, type OpenEnvironment } from '../environment/open.ts';
import { environmentNamed } from '../config/config.ts';
import { openHashCache } from '../hashing/hash-cache.ts';
import { localReleaseDigests } from '../upload/inputs.ts';
import { manualPrefixes } from '../upload/docs.ts';
import type { LocalKnowledge } from '../verify/types.ts';
import { uploadStateDir } from '../upload/state.ts';
import { ReleaseError } from '../core/errors.ts';
import { readTagRecordOrLix } from '../git/prev-branch.ts';
import { gitAt } from '../git/git.ts';
import { loadVersion } from '../config/version.ts';
import {
  environmentPublicKey, releaseFromBuild, releaseFromPublished, renderChecked, renderProblem, verifyRelease, verifyTarget,
  VerificationFailed, type ReleaseSpec, type VerifyReport,
} from '../verify/index.ts';

/** Which release to verify: --published VERSION, else release/build-result.json, else version.json's version as published. */
async function releaseToVerify(ctx: Context, withImages: boolean): Promise<ReleaseSpec> {
  const published = ctx.flags.extra.published;
  if (typeof published === 'string') return releaseFromPublished(ctx.config.project, published);
  if (await access(buildResultPath(ctx.releaseDir)).then(() => true, () => false)) {
    const result = await readBuildResult(ctx.releaseDir);
    const tagRecord = result.rehearsal ? undefined : await readTagRecordOrLix(ctx.root, gitAt(ctx.root), result.version);
    if (tagRecord && tagRecord.version !== result.version) {
      throw new ReleaseError(`release/tag.json is for ${tagRecord.version}, but release/build-result.json is ${result.version}`, 'run `releng tag` and `releng build` for the same version, or verify the published release alone: --published VERSION');
    }
    return releaseFromBuild(ctx, result, tagRecord, { images: withImages });
  }
  const version = (await loadVersion(ctx.root, ctx.config.versionFile)).version;
  ctx.log.info(`no ${buildResultPath(ctx.releaseDir)}: verifying ${ctx.config.project} ${version} from its published SHA256SUMS and manifest.nix`);
  return releaseFromPublished(ctx.config.project, version);
}

/**
 * Quick mode in a project with release/ (issue 16): the MD5s of the release's files as they lie in
 * release/artifacts (checked against build-result.json's sha256; the hash memo answers for unchanged
 * files), keyed by where they are published (release prefix; the manual under docs). A listed
 * single-part object whose ETag is that MD5 holds exactly the release's bytes: proven without a
 * HEAD. Its sha256 metadata is then not read (--deep reads it): what users get are the bytes, and
 * upload HEADs and re-sends whatever its own record cannot vouch for. Without release/ (or for a
 * file changed since build), objects are HEADed as before.
 */
async function localKnowledge(ctx: Context, target: OpenEnvironment, release: ReleaseSpec): Promise<LocalKnowledge | undefined> {
  if (release.source !== 'build' || !release.files) return undefined;
  const digests = await localReleaseDigests(ctx.releaseDir, release.releaseDir, release.files, { hashCache: await openHashCache(uploadStateDir(ctx.root)) });
  if (digests.size === 0) return undefined;
  const byKey = new Map<string, { md5: string; size: number }>();
  const at = (bucket: string, key: string) => `${bucket}\0${key}`;
  for (const [rel, d] of digests) {
    byKey.set(at(target.releases.bucket, `${target.releases.prefix}${release.releaseDir}/${rel}`), d);
    if (!rel.startsWith('manual/')) continue;
    // Every prefix the manual may be published under (MAJOR/, stable/, nightly/): the docs verifier asks for the ones it checks.
    for (const p of new Set([...manualPrefixes(release), ...manualPrefixes({ ...release, official: !release.official })])) {
      byKey.set(at(target.docs.bucket, `${target.docs.prefix}${p}${rel.slice('manual/'.length)}`), d);
    }
  }
  return { md5: (bucket, key) => byKey.get(at(bucket, key)), written: () => false };
}

export async function verify(ctx: Context): Promise<VerifyReport> {
  const { log, flags } = ctx;
  const deep = !!flags.extra.deep;
  let phase = log.phase('connecting to environment');
  // What the release is (local files, git) is read while the environment's buckets answer: both
  // are reads, and an environment that cannot be opened is still the error reported first.
  const opening = openEnvironment(ctx);
  const releasing = releaseToVerify(ctx, environmentNamed(ctx.loaded, environmentName(ctx)).docker.length > 0);
  releasing.catch(() => undefined); // awaited below; reported only if the environment opened
  const target = await opening;
  phase.succeed(`environment ${log.colour(target.env.colour, target.name)}: S3 ${target.endpoint}`);
  try {
    const keying = environmentPublicKey(ctx, target, typeof flags.extra['public-key'] === 'string' ? flags.extra['public-key'] : undefined);
    keying.catch(() => undefined);
    const release = await releasing;
    const publicKey = await keying;
    log.info(`verifying ${release.project} ${release.version} (${release.source === 'build' ? 'as release/build-result.json says' : 'as its published SHA256SUMS and manifest.nix say'})${deep ? ', reading every object' : ''}`);
    // Quick only (--deep reads every object): release/'s MD5s, and the cache upload staged for this
    // build (release/cache/ENV), so a listed narinfo or .ls whose ETag is a staged file's MD5 needs no GET.
    const local = deep ? undefined : mergeKnowledge(await localKnowledge(ctx, target, release),
      release.source === 'build' ? await stagedCacheKnowledge(path.join(ctx.releaseDir, 'cache', target.name), target.cache) : undefined);
    const report = await verifyRelease(ctx, verifyTarget(ctx, target, publicKey), { deep, release, ...(local ? { local } : {}) });
    for (const n of report.notChecked) log.skip(`${n.destination}: ${n.what}`, n.reason);
    log.info(`checked ${renderChecked(report)} in ${report.seconds} s`);
    if (!report.ok) {
      for (const p of report.problems) log.warn(renderProblem(p));
      throw new VerificationFailed(report, `verify found what differs from ${release.project} ${release.version}`, { listedAbove: true });
    }
    log.info(`${release.project} ${release.version} in ${target.name}: everything as released${deep ? ' (every object read and hashed)' : ''}`);
    return report;
  } finally {
    await target.close();
  }
}
