// One S3 adapter over two signing regions (issue 17): Lix signs its cache writes with region
// `global` in every environment (environment.py DEFAULT_STORE_URI_BITS) and its other uploads with
// the environment's region (staging: `garage`). Requests for the cache bucket go to the store
// signing with `cache.region`; everything else to the environment's. Same endpoint, same keys.
import type { S3Store } from './store.ts';

export function routeByBucket(base: S3Store, bucket: string, other: S3Store): S3Store {
  const pick = (b: string) => (b === bucket ? other : base);
  return {
    endpoint: base.endpoint,
    list: (b, prefix) => pick(b).list(b, prefix),
    head: (b, key) => pick(b).head(b, key),
    getText: (b, key) => pick(b).getText(b, key),
    checkBucket: (b) => pick(b).checkBucket(b),
    put: (req) => pick(req.bucket).put(req),
    delete: (b, key) => pick(b).delete(b, key),
    copy: (from, to) => pick(to.bucket).copy(from, to),
  };
}
