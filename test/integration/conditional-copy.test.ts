// Server-side copies conditional on the source's ETag (S3Writer.copy's sourceEtag): the copy is
// refused when the source changed since it was planned (index validates an upload, then copies it
// into place: an upload overwritten in between must not be published). What each server does:
// Ceph RGW 16 honours its own header x-amz-copy-if-match (and ignores AWS's
// x-amz-copy-source-if-match); s3rver honours neither — both headers are sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import type { S3Store } from '../../lib/s3/store.ts';
import { startTestRgw, type TestRgw } from '../helpers/rgw.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';

let rgw: TestRgw;
let s3: TestS3;
beforeAll(async () => { [rgw, s3] = await Promise.all([startTestRgw({ buckets: ['bkt'] }), startTestS3(['bkt'])]); });
afterAll(async () => { await Promise.all([rgw?.stop(), s3?.stop()]); });

const put = (store: S3Store, key: string, text: string) => store.put({ bucket: 'bkt', key, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/plain' });

describe('copy with the source ETag known at planning', () => {
  for (const server of ['rgw', 's3rver'] as const) {
    const store = () => (server === 'rgw' ? rgw.store : s3.store);

    it(`${server}: copies while the source is the one planned`, async () => {
      await put(store(), 'incoming/a', 'validated bytes');
      const etag = (await store().head('bkt', 'incoming/a'))!.etag!;
      await store().copy({ bucket: 'bkt', key: 'incoming/a' }, { bucket: 'bkt', key: 'published/a' }, { sourceEtag: etag });
      expect(await store().getText('bkt', 'published/a')).toBe('validated bytes');
    });

    it(`${server}: a source replaced after planning is ${server === 'rgw' ? 'refused, naming the key; nothing is copied' : 'copied (s3rver has no conditional copy)'}`, async () => {
      await put(store(), 'incoming/b', 'validated bytes');
      const etag = (await store().head('bkt', 'incoming/b'))!.etag!;
      await put(store(), 'incoming/b', 'other bytes, put after validation');
      const copy = store().copy({ bucket: 'bkt', key: 'incoming/b' }, { bucket: 'bkt', key: 'published/b' }, { sourceEtag: etag });
      if (server === 'rgw') {
        await expect(copy).rejects.toThrow(`s3://bkt/incoming/b changed after it was planned (its ETag is no longer ${etag}): nothing was copied to s3://bkt/published/b`);
        expect(await store().head('bkt', 'published/b')).toBeUndefined();
      } else {
        await copy;
        expect(await store().getText('bkt', 'published/b')).toBe('other bytes, put after validation');
      }
    });
  }
});
