// A real S3 server (s3rver) per test, on 127.0.0.1, with a server-side request log for counting writes.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { embeddedCredentials, startLocalS3, type LocalS3 } from '../../lib/local/s3-server.ts';
import { createS3Client, s3Store, type S3Store } from '../../lib/s3/store.ts';

export interface TestS3 extends LocalS3 {
  store: S3Store;
  /** Requests seen by the server since start (or the last reset), as `METHOD /path?query`. */
  requests(): Promise<string[]>;
  /** Count of writes (PUT/POST/DELETE) seen by the server. */
  writes(): Promise<number>;
  resetLog(): Promise<void>;
}

export async function startTestS3(buckets: string[]): Promise<TestS3> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-s3-'));
  const log = path.join(dir, 'requests.log');
  const s3 = await startLocalS3({ dir: path.join(dir, 'data'), buckets, requestLog: log });
  const store = s3Store(createS3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, { ...embeddedCredentials }), s3.endpoint);
  const requests = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  return {
    ...s3,
    store,
    requests,
    async writes() { return (await requests()).filter((l) => /^(PUT|POST|DELETE) /.test(l)).length; },
    async resetLog() { await rm(log, { force: true }); },
    async stop() { await s3.stop(); await rm(dir, { recursive: true, force: true }); },
  };
}
