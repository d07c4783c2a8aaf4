// The S3 adapter against a real S3 server: multipart streaming of a large file with our sha256 in
// metadata, redirects, and a re-read with a plain HTTP client.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../../lib/hashing/checksums.ts';
import { MULTIPART_THRESHOLD } from '../../lib/s3/store.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';

describe('S3 store on s3rver', () => {
  let s3: TestS3;
  let dir: string;
  beforeAll(async () => { s3 = await startTestS3(['bkt']); dir = await mkdtemp(path.join(os.tmpdir(), 'releng-big-')); });
  afterAll(async () => { await s3?.stop(); await rm(dir, { recursive: true, force: true }); });

  it('uploads a file above the multipart threshold in parts, streamed, with its sha256', async () => {
    const file = path.join(dir, 'big.bin');
    const out = createWriteStream(file);
    const chunk = randomBytes(1024 * 1024);
    for (let i = 0; i < MULTIPART_THRESHOLD / chunk.length + 3; i++) {
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r) => out.end(() => r()));
    const size = (await stat(file)).size;
    const sha256 = await sha256File(file);
    let progressed = 0;
    await s3.resetLog();
    await s3.store.put({ bucket: 'bkt', key: 'a/big.bin', body: { file }, size, sha256, contentType: 'application/octet-stream', onProgress: (n) => { progressed += n; } });
    expect(progressed).toBe(size);
    const log = await s3.requests();
    expect(log.some((l) => l.startsWith('POST /bkt/a/big.bin?uploads'))).toBe(true); // multipart, not one PUT
    const head = await s3.store.head('bkt', 'a/big.bin');
    expect(head).toMatchObject({ size, sha256 });
    const res = await fetch(`${s3.endpoint}/bkt/a/big.bin`);
    const hash = createHash('sha256');
    for await (const c of res.body as any) hash.update(c);
    expect(hash.digest('hex')).toBe(sha256);
  });

  it('lists flat across pages (more than 1000 keys)', async () => {
    const keys = Array.from({ length: 1005 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((k) => s3.store.put({ bucket: 'bkt', key: k, body: { text: 'x' }, size: 1, sha256: 'b'.repeat(64), contentType: 'text/plain' })));
    }
    const listed = await s3.store.list('bkt', 'many/');
    expect(listed.map((o) => o.key)).toEqual(keys);
  });

  it('answers undefined for a missing object and text for a present one', async () => {
    expect(await s3.store.head('bkt', 'nope')).toBeUndefined();
    expect(await s3.store.getText('bkt', 'nope')).toBeUndefined();
    await s3.store.put({ bucket: 'bkt', key: 't.txt', body: { text: 'hello' }, size: 5, sha256: 'c'.repeat(64), contentType: 'text/plain' });
    expect(await s3.store.getText('bkt', 't.txt')).toBe('hello');
  });
});
