// Opens an environment for a run: starts the embedded services of `local`, resolves credentials,
// builds the S3 adapter and checks every bucket answers before anything is planned.
import path from 'node:path';
import { environmentNamed, parseS3Url, type Environment } from '../config/config.ts';
import type { Context } from '../config/context.ts';
import { ReleaseError } from '../core/errors.ts';
import { startLocalRegistry, type LocalRegistry } from '../local/registry-server.ts';
import { startLocalS3, type LocalS3 } from '../local/s3-server.ts';
import { openRegistry, type OpenRegistry } from '../oci/open.ts';
import { resolveCredentials } from '../s3/credentials.ts';
import { routeByBucket } from '../s3/route.ts';
import { createS3Client, s3Store, type S3Store } from '../s3/store.ts';
import { routedStore } from '../fs/routed.ts';
import { fsStore, isFsBucket } from '../fs/store.ts';

export interface BucketRef {
  bucket: string;
  /** '' or ending with '/'. */
  prefix: string;
  url: string;
}

export interface OpenEnvironment {
  name: string;
  env: Environment;
  s3: S3Store;
  endpoint: string;
  releases: BucketRef;
  cache: BucketRef;
  docs: BucketRef;
  /** The channels bucket, when the environment has one (`releng channel`). */
  channels?: BucketRef;
  /** Started by releng for this run (local environment): stopped by close(). */
  embeddedS3?: LocalS3;
  /** The docker targets, logins checked (lib/oci/open.ts). */
  registries: OpenRegistry[];
  /** Started by releng for targets whose registry is `embedded`: stopped by close(). */
  embeddedRegistry?: LocalRegistry;
  close(): Promise<void>;
}

/** The environment a command targets: --environment, else `local` when the config has one. */
export function environmentName(ctx: Context): string {
  const name = ctx.flags.environment ?? ('local' in ctx.config.environments ? 'local' : undefined);
  if (!name) throw new ReleaseError('no --environment given', `choose one of: ${Object.keys(ctx.config.environments).join(', ')}`);
  return name;
}

/** Where the embedded local services keep their data (under the project, gitignored). */
export function localDataDir(root: string): string {
  return path.join(root, '.releng', 'local');
}

/**
 * RELENG_S3_MULTIPART_THRESHOLD / RELENG_S3_PART_SIZE (bytes): where multipart starts and the part
 * size (defaults 200 MiB and 16 MiB). For tests that exercise multipart without 200 MiB files, and
 * for servers with other limits; parts below 5 MiB (except the last) are refused by S3.
 */
export function multipartTuning(vars: NodeJS.ProcessEnv): { multipartThreshold?: number; partSize?: number } {
  const num = (name: string) => {
    const v = vars[name];
    if (v === undefined || v === '') return undefined;
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new ReleaseError(`${name}=${v} is not a positive number of bytes`, `unset ${name} or give a byte count`);
    return Number(v);
  };
  const out: { multipartThreshold?: number; partSize?: number } = {};
  const t = num('RELENG_S3_MULTIPART_THRESHOLD');
  const p = num('RELENG_S3_PART_SIZE');
  if (t !== undefined) out.multipartThreshold = t;
  if (p !== undefined) out.partSize = p;
  return out;
}

/** `registries: false` (grant, index): S3 only, no registry started or logged into. */
export async function openEnvironment(ctx: Context, name = environmentName(ctx), opts: { registries?: boolean } = {}): Promise<OpenEnvironment> {
  const env = environmentNamed(ctx.loaded, name);
  const ref = (url: string): BucketRef => ({ ...parseS3Url(url), url });
  const releases = ref(env.releasesBucket);
  const cache = ref(env.cacheBucket);
  const docs = ref(env.docsBucket);
  const channels = env.channelsBucket ? ref(env.channelsBucket) : undefined;
  const buckets = [...new Set([releases.bucket, cache.bucket, docs.bucket, ...(channels ? [channels.bucket] : [])])];
  let embeddedS3: LocalS3 | undefined;
  // Buckets may be directories (file:///...): only S3 buckets need an endpoint and credentials.
  const s3Buckets = buckets.filter((b) => !isFsBucket(b));
  let endpoint = env.s3?.endpoint ?? 'file://';
  if (endpoint === 'embedded' && s3Buckets.length) {
    embeddedS3 = await startLocalS3({
      dir: path.join(localDataDir(ctx.root), 's3'),
      buckets: s3Buckets,
      requestLog: process.env.RELENG_S3_REQUEST_LOG,
    });
    endpoint = embeddedS3.endpoint;
    ctx.log.debug(`embedded S3 server on ${endpoint} (data in ${embeddedS3.dir})`);
  }
  let remote: S3Store | undefined;
  if (env.s3 && s3Buckets.length) {
    const s3env = env.s3;
    const credentials = await resolveCredentials(name, env);
    const storeOptions = {
      transitChecksum: s3env.transitChecksum,
      conditionalWrites: s3env.conditionalWrites,
      ...multipartTuning(process.env),
    };
    remote = s3Store(createS3Client({ ...s3env, endpoint }, credentials), endpoint, storeOptions);
    // Per-bucket settings: bucketS3, and cache.region (Lix signs cache writes with `global`, its other
    // uploads with the environment's region; issue 17) as the cache bucket's region.
    const perBucket: Record<string, Partial<typeof s3env>> = { ...(env.bucketS3 ?? {}) };
    const cacheRegion = env.cache?.region;
    if (cacheRegion && cacheRegion !== (perBucket[cache.bucket]?.region ?? s3env.region)) {
      if (cache.bucket === releases.bucket || cache.bucket === docs.bucket || cache.bucket === channels?.bucket) {
        throw new ReleaseError(`environments.${name}.cache.region (${cacheRegion}) differs from s3.region (${s3env.region}), but the cache bucket ${cache.bucket} is also another of its buckets`,
          'give the cache its own bucket, or drop cache.region');
      }
      perBucket[cache.bucket] = { ...perBucket[cache.bucket], region: cacheRegion };
    }
    const overrides = Object.entries(perBucket);
    if (overrides.length) {
      const byBucket: Record<string, S3Store> = {};
      for (const [bucket, settings] of overrides) {
        if (!buckets.includes(bucket)) {
          throw new ReleaseError(`environments.${name}.bucketS3.${bucket}: no bucket of this environment is called ${bucket}`, `use one of: ${buckets.join(', ')}`);
        }
        const merged = { ...s3env, ...settings };
        // The embedded server: a region override keeps its endpoint (cache.region with endpoint "embedded").
        const ep = merged.endpoint === 'embedded' ? (settings.endpoint === 'embedded' ? undefined : endpoint) : merged.endpoint;
        if (!ep) throw new ReleaseError(`environments.${name}.bucketS3.${bucket}.endpoint: "embedded" is only for the whole environment`, 'give an http(s):// endpoint');
        byBucket[bucket] = s3Store(createS3Client({ ...merged, endpoint: ep }, credentials), ep, { ...storeOptions, transitChecksum: merged.transitChecksum, conditionalWrites: merged.conditionalWrites });
      }
      remote = routeByBucket(remote, byBucket);
    }
  }
  // file:// buckets go to the filesystem store, the rest to S3 (lib/fs/routed.ts).
  const s3 = routedStore(remote, fsStore());
  const opened: OpenEnvironment = {
    name, env, s3, endpoint, releases, cache, docs, channels, embeddedS3, registries: [],
    async close() { await embeddedS3?.stop(); await opened.embeddedRegistry?.stop(); },
  };
  try {
    // Every bucket at once; the first failing bucket in config order is the error reported.
    const checked = await Promise.allSettled(buckets.map((b) => s3.checkBucket(b)));
    for (const c of checked) if (c.status === 'rejected') throw c.reason;
    if (opts.registries === false) return opened;
    if (env.docker.some((d) => d.registry === 'embedded')) {
      opened.embeddedRegistry = await startLocalRegistry({ dir: path.join(localDataDir(ctx.root), 'registry') });
      ctx.log.debug(`embedded registry on ${opened.embeddedRegistry.url} (data in ${opened.embeddedRegistry.dir})`);
    }
    // Every login is checked here, before anything is planned or uploaded.
    for (const d of env.docker) {
      const r = await openRegistry(d, { root: ctx.root, embeddedHost: opened.embeddedRegistry?.host });
      opened.registries.push(r);
      ctx.log.info(`registry ${r.host}/${r.repository}: ${r.auth === 'anonymous' ? 'no login needed' : `login accepted (${r.auth}, credentials from ${r.authFile})`}`);
    }
  } catch (e) {
    await opened.close();
    throw e;
  }
  return opened;
}
