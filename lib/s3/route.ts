// One S3Store over several endpoints: each bucket goes to the store of its endpoint and region
// (NixOS keeps nix-releases in eu-west-1 and nix-channels in us-east-1). Planners and apply keep
// seeing one reader/writer; only the bucket name decides where a request goes.
import { withHeadFallback, type S3Store } from './store.ts';

/** Routes every request by bucket: `byBucket[bucket]` when set, else `fallback`. */
export function routeByBucket(fallback: S3Store, byBucket: Record<string, S3Store>): S3Store {
  const pick = (bucket: string) => byBucket[bucket] ?? fallback;
  return {
    endpoint: fallback.endpoint,
    list: (bucket, prefix) => pick(bucket).list(bucket, prefix),
    listUpTo: async (bucket, prefix, maxKeys) => {
      const s = pick(bucket);
      return s.listUpTo ? s.listUpTo(bucket, prefix, maxKeys) : { objects: await s.list(bucket, prefix), complete: true };
    },
    head: (bucket, key) => pick(bucket).head(bucket, key),
    getText: (bucket, key) => pick(bucket).getText(bucket, key),
    sha256Of: (bucket, key, limit) => {
      const s = pick(bucket);
      if (!s.sha256Of) throw new Error(`the S3 adapter for bucket ${bucket} cannot read object bodies`);
      return s.sha256Of(bucket, key, limit);
    },
    checkBucket: (bucket) => pick(bucket).checkBucket(bucket),
    put: (req) => pick(req.bucket).put(req),
    delete: (bucket, key) => pick(bucket).delete(bucket, key),
    copy: (from, to, opts) => {
      if (pick(from.bucket) !== pick(to.bucket)) throw new Error(`cannot copy s3://${from.bucket}/${from.key} to s3://${to.bucket}/${to.key}: the buckets are on different endpoints`);
      return pick(to.bucket).copy(from, to, opts);
    },
    getStream: (bucket, key) => {
      const s = pick(bucket);
      if (!s.getStream) throw new Error(`the S3 adapter for bucket ${bucket} cannot read object bodies`);
      return s.getStream(bucket, key);
    },
    getWithHead: (bucket, key) => {
      const s = pick(bucket);
      return s.getWithHead ? s.getWithHead(bucket, key) : withHeadFallback(s, bucket, key);
    },
    download: (bucket, key, file) => {
      const s = pick(bucket);
      if (!s.download) throw new Error(`the S3 adapter for bucket ${bucket} cannot download objects`);
      return s.download(bucket, key, file);
    },
  };
}
