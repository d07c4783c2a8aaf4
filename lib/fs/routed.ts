// One S3Store over an environment whose buckets may be S3 or file:// trees: each call goes to the
// adapter of its bucket (a bucket starting with '/' is a directory, lib/fs/store.ts). Planners and
// apply keep one reader/writer; they never learn which kind a bucket is.
import { ReleaseError } from '../core/errors.ts';
import { withHeadFallback, type S3Store } from '../s3/store.ts';
import { isFsBucket } from './store.ts';

export function routedStore(s3: S3Store | undefined, fs: S3Store): S3Store {
  const pick = (bucket: string): S3Store => {
    if (isFsBucket(bucket)) return fs;
    if (!s3) throw new ReleaseError(`bucket ${bucket} is on S3, but this environment has no s3 settings`, 'set s3.endpoint for the environment in releng.json');
    return s3;
  };
  return {
    endpoint: s3?.endpoint ?? fs.endpoint,
    list: (b, p) => pick(b).list(b, p),
    // A file tree is listed whole (a local directory walk); S3 stores bound their listing.
    listUpTo: async (b, p, n) => { const s = pick(b); return s.listUpTo ? s.listUpTo(b, p, n) : { objects: await s.list(b, p), complete: true }; },
    head: (b, k) => pick(b).head(b, k),
    getText: (b, k) => pick(b).getText(b, k),
    checkBucket: (b) => pick(b).checkBucket(b),
    put: (req) => pick(req.bucket).put(req),
    delete: (b, k) => pick(b).delete(b, k),
    copy: (from, to, opts) => {
      if (isFsBucket(from.bucket) !== isFsBucket(to.bucket)) throw new Error(`internal: copy between a file tree and S3 (${from.bucket} -> ${to.bucket}) is a transfer, not a copy`);
      return pick(to.bucket).copy(from, to, opts);
    },
    getStream: (b: string, k: string) => pick(b).getStream(b, k),
    getWithHead: (b: string, k: string) => { const s = pick(b); return s.getWithHead ? s.getWithHead(b, k) : withHeadFallback(s, b, k); },
    ...(s3?.sha256Of || fs.sha256Of ? { sha256Of: (b: string, k: string, limit?: number) => pick(b).sha256Of!(b, k, limit) } : {}),
    // index downloads uploads to validate them (issue 12); only adapters that can stream to a file.
    ...(s3?.download || fs.download ? {
      download: (b: string, k: string, f: string) => {
        const s = pick(b);
        if (!s.download) throw new ReleaseError(`bucket ${b}: its adapter cannot download objects`, 'use an S3 bucket for uploaders');
        return s.download(b, k, f);
      },
    } : {}),
  };
}
