// What releng's S3 adapter sends and how it reads, seen by a small HTTP server standing in for S3
// (issue 9): the transit checksum of each environment setting, If-None-Match on creates, and reads
// retried on 503 SlowDown / 500 / resets with a final error naming the request and the URL. What
// the servers do with these headers is proved against Ceph RGW (test/integration/upload-integrity.test.ts).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { md5Base64, sha256HexToBase64, sha256Text } from '../../lib/hashing/checksums.ts';
import { createS3Client, s3Store } from '../../lib/s3/store.ts';

interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders }
let server: http.Server;
let endpoint: string;
const seen: Seen[] = [];
/** Per path: answers to give, in order (then 200). */
const script = new Map<string, Array<number | 'reset'>>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      const next = script.get(req.url!)?.shift();
      if (next === 'reset') { req.socket.destroy(); return; }
      if (next && next !== 200) {
        res.writeHead(next, { 'content-type': 'application/xml' });
        res.end(req.method === 'HEAD' ? undefined : `<Error><Code>${next === 503 ? 'SlowDown' : 'InternalError'}</Code><Message>try later</Message></Error>`);
        return;
      }
      res.writeHead(200, { etag: '"5d41402abc4b2a76b9719d911017c592"' /* the MD5 of the 'hello' sent, as a single-part ETag is */, 'content-length': req.method === 'HEAD' ? '5' : '0', 'x-amz-meta-sha256': sha256Text('hello') });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => { server.closeAllConnections(); await new Promise((r) => server.close(r)); });

const store = (opts: Parameters<typeof s3Store>[2] = {}) =>
  s3Store(createS3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, { accessKeyId: 'AK', secretAccessKey: 'transit-unit-secret' }), endpoint, opts);
const put = { bucket: 'b', body: { text: 'hello' }, size: 5, sha256: sha256Text('hello'), contentType: 'text/plain' };

describe('transit checksums on the PUT path', () => {
  it('content-md5: Content-MD5 of the bytes, signed, beside the payload sha256', async () => {
    seen.length = 0;
    await store({ transitChecksum: 'content-md5' }).put({ ...put, key: 'md5.txt' });
    const h = seen[0]!.headers;
    expect(h['content-md5']).toBe(md5Base64('hello'));
    expect(h['x-amz-content-sha256']).toBe(sha256Text('hello'));
    expect(String(h.authorization)).toMatch(/SignedHeaders=[^,]*content-md5/);
    expect(h['x-amz-checksum-sha256']).toBeUndefined();
    expect(h['if-none-match']).toBeUndefined();
  });

  it('sha256 (default): x-amz-checksum-sha256, no CRC32 and no aws-chunked trailer', async () => {
    seen.length = 0;
    await store().put({ ...put, key: 'sha.txt' });
    const h = seen[0]!.headers;
    expect(h['x-amz-checksum-sha256']).toBe(sha256HexToBase64(sha256Text('hello')));
    expect(h['content-md5']).toBeUndefined();
    expect(h['x-amz-checksum-crc32']).toBeUndefined();
    expect(h['content-encoding']).toBeUndefined();
  });

  it('payload-sha256-only: neither header; conditional writes add If-None-Match only to creates', async () => {
    seen.length = 0;
    const s = store({ transitChecksum: 'payload-sha256-only', conditionalWrites: true });
    await s.put({ ...put, key: 'plain.txt' });
    await s.put({ ...put, key: 'create.txt', createOnly: true });
    expect(seen[0]!.headers['content-md5']).toBeUndefined();
    expect(seen[0]!.headers['x-amz-checksum-sha256']).toBeUndefined();
    expect(seen[0]!.headers['if-none-match']).toBeUndefined();
    expect(seen[1]!.headers['if-none-match']).toBe('*');
  });

  it('refuses a key with a ".." segment before sending anything', async () => {
    seen.length = 0;
    await expect(store({ transitChecksum: 'content-md5' }).put({ ...put, key: 'a/../b.txt' })).rejects.toThrow('refusing to write s3://b/a/../b.txt: the key has a ".." segment');
    expect(seen).toEqual([]);
  });
});

describe('reads are retried like writes', () => {
  it('HEAD after 503 SlowDown, 500 and a reset: answered', async () => {
    seen.length = 0;
    script.set('/b/flaky.txt', [503, 500, 'reset']);
    const h = await store({ readRetry: { attempts: 5, backoffMs: 1 } }).head('b', 'flaky.txt');
    expect(h).toMatchObject({ size: 5, sha256: sha256Text('hello') });
    expect(seen.filter((s) => s.url === '/b/flaky.txt')).toHaveLength(4);
  });

  it('LIST and GET too; a final failure names the request, the URL and the attempts', async () => {
    script.set('/b?list-type=2&max-keys=1000&prefix=p%2F', [503]);
    await expect(store({ readRetry: { attempts: 3, backoffMs: 1 } }).list('b', 'p/')).resolves.toEqual([]);
    script.set('/b/down.txt', [500, 500, 500]); // GETs go over the lean path: no SDK x-id query
    const err = await store({ readRetry: { attempts: 3, backoffMs: 1 } }).getText('b', 'down.txt').then(() => undefined, (e) => e);
    expect(err?.message).toContain(`reading GET s3://b/down.txt at ${endpoint}; gave up after 3 attempts`);
    expect(err?.message).not.toContain('transit-unit-secret');
  });

  it('never retries a 403', async () => {
    seen.length = 0;
    script.set('/b/denied.txt', [403, 403]);
    await expect(store({ readRetry: { attempts: 5, backoffMs: 1 } }).head('b', 'denied.txt')).rejects.toThrow('S3 refused access to s3://b/denied.txt');
    expect(seen).toHaveLength(1);
  });
});
