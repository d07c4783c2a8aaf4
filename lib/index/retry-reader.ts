// Reads of a long planning run (index downloads, dpkg-deb, gpg between requests) retried like
// apply's writes: a keep-alive socket the server closed while we were busy answers "socket hang
// up" on reuse, which is worth one more try; 4xx never are.
import { withRetries } from '../apply.ts';
import type { S3Reader } from '../s3/store.ts';

export function retryingReader(r: S3Reader, attempts = 3, backoffMs = 100): S3Reader {
  const again = <T>(fn: () => Promise<T>) => withRetries(fn, attempts, backoffMs);
  return {
    endpoint: r.endpoint,
    list: (b, p) => again(() => r.list(b, p)),
    head: (b, k) => again(() => r.head(b, k)),
    getText: (b, k) => again(() => r.getText(b, k)),
    checkBucket: (b) => again(() => r.checkBucket(b)),
    ...(r.download ? { download: (b: string, k: string, f: string) => again(() => r.download!(b, k, f)) } : {}),
  };
}
