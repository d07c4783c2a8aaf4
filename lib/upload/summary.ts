// What an upload returns (--json) and says at its end: where the release is (S3 and HTTP URLs; for
// the embedded servers, the ones `releng serve` answers on), the digest behind each image tag, the
// cache key, the git remote, what the closing verification read back.
import type { Context } from '../config/context.ts';
import type { OpenEnvironment } from '../environment/open.ts';
import type { GitPush } from '../git/push.ts';
import type { SigningKey } from '../nix/cache.ts';
import type { BuildResult } from '../release/build-result.ts';
import { countByKind } from '../core/plan.ts';
import type { VerifyReport } from '../verify/index.ts';
import type { UploadPlan } from './plan.ts';
type Plan = UploadPlan;

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

/** The summary of an upload (after its closing verification, or of a dry run); logs where it is on a real run. */
export async function summarizeUpload(ctx: Context, target: OpenEnvironment, o: { result: BuildResult; plan: Plan; planned?: Record<string, number>; applied: { byKind: Record<string, number>; bytes: number }; signingKey?: SigningKey; verified?: VerifyReport }): Promise<UploadSummary> {
  const { log, flags } = ctx;
  const { result, plan, applied, signingKey, verified } = o;
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
    planned: o.planned ?? countByKind(plan), applied: applied.byKind, bytes: applied.bytes, releasesUrl, docsUrl, urls, images,
    ...(signingKey ? { cacheUrl, cachePublicKey: signingKey.publicKey } : {}),
    ...(gitPush ? { gitRemote: gitPush.remote } : {}),
    ...(verified ? { verified: verified.checked } : {}),
  };
}
