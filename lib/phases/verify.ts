// `releng verify`: reads every destination of a release back from scratch (no upload record, no
// hash memo) and exits 0 only when all of it is as the release says. Read only: nothing is written.
// The cache files upload staged for this build may stand in for a narinfo's or .ls's GET, only
// where the bucket's listing shows it holds exactly those bytes (lib/verify/cache.ts).
import { access } from 'node:fs/promises';
import path from 'node:path';
import { stagedCacheKnowledge } from '../upload/cache.ts';
import { buildResultPath, readBuildResult } from '../build-result.ts';
import type { Context } from '../context.ts';
import { openEnvironment } from '../environment.ts';
import { ReleaseError } from '../errors.ts';
import { readTagRecord } from '../tag-record.ts';
import { loadVersion } from '../version.ts';
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
    const tagRecord = await readTagRecord(ctx.root);
    if (tagRecord && tagRecord.version !== result.version) {
      throw new ReleaseError(`release/tag.json is for ${tagRecord.version}, but release/build-result.json is ${result.version}`, 'run `releng tag` and `releng build` for the same version, or verify the published release alone: --published VERSION');
    }
    return releaseFromBuild(ctx, result, tagRecord, { images: withImages });
  }
  const version = (await loadVersion(ctx.root, ctx.config.versionFile)).version;
  ctx.log.info(`no ${buildResultPath(ctx.releaseDir)}: verifying ${ctx.config.project} ${version} from its published SHA256SUMS and manifest.nix`);
  return releaseFromPublished(ctx.config.project, version);
}

export async function verify(ctx: Context): Promise<VerifyReport> {
  const { log, flags } = ctx;
  const deep = !!flags.extra.deep;
  let phase = log.phase('connecting to environment');
  const target = await openEnvironment(ctx);
  phase.succeed(`environment ${log.colour(target.env.colour, target.name)}: S3 ${target.endpoint}`);
  try {
    const release = await releaseToVerify(ctx, target.registries.length > 0);
    const publicKey = await environmentPublicKey(ctx, target, typeof flags.extra['public-key'] === 'string' ? flags.extra['public-key'] : undefined);
    log.info(`verifying ${release.project} ${release.version} (${release.source === 'build' ? 'as release/build-result.json says' : 'as its published SHA256SUMS and manifest.nix say'})${deep ? ', reading every object' : ''}`);
    // The cache upload staged for this build (release/cache/ENV): a listed narinfo or .ls whose ETag is a staged file's MD5 needs no GET.
    const local = release.source === 'build' ? await stagedCacheKnowledge(path.join(ctx.releaseDir, 'cache', target.name), target.cache) : undefined;
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
