// What Ceph RGW enforces that s3rver does not, seen through releng's own S3 adapter: the reason
// integrity and credential tests run against it (test/helpers/rgw.ts).
import { PutBucketPolicyCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../../lib/s3/store.ts';
import { startTestRgw, type TestRgw } from '../helpers/rgw.ts';

let rgw: TestRgw;
beforeAll(async () => { rgw = await startTestRgw({ buckets: ['rel'] }); });
afterAll(async () => { await rgw?.stop(); });

const body = (text: string) => ({ bucket: 'rel', body: { text }, size: Buffer.byteLength(text), contentType: 'text/plain' });
const sha = async (text: string) => (await import('node:crypto')).createHash('sha256').update(text).digest('hex');

describe('Ceph RGW test server', () => {
  it('stores and reads back through the store, with our sha256 metadata', async () => {
    await rgw.store.put({ ...body('hello'), key: 'a/hello.txt', sha256: await sha('hello') });
    const head = await rgw.store.head('rel', 'a/hello.txt');
    expect(head).toMatchObject({ size: 5, sha256: await sha('hello') });
    expect(await rgw.store.getText('rel', 'a/hello.txt')).toBe('hello');
    expect((await rgw.store.list('rel', 'a/')).map((o) => o.key)).toEqual(['a/hello.txt']);
  });

  it('refuses a request signed with a wrong secret, and the error does not show it', async () => {
    const wrong = { accessKeyId: rgw.users.admin.accessKeyId, secretAccessKey: 'not-the-secret-0123456789' };
    const err = await rgw.storeAs(wrong).put({ ...body('x'), key: 'a/wrong.txt', sha256: await sha('x') }).then(() => undefined, (e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toMatch(/S3 refused (the credentials for|access to) s3:\/\/rel\/a\/wrong.txt/); // RGW answers AccessDenied to a bad signature
    expect(String(err.message) + String(err.hint ?? '')).not.toContain('not-the-secret');
    expect(await rgw.store.head('rel', 'a/wrong.txt')).toBeUndefined();
  });

  it('refuses a body that does not hash to the signed payload sha256 (x-amz-content-sha256)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-rgw-body-'));
    const file = path.join(dir, 'f');
    await writeFile(file, 'hello');
    const err = await rgw.store.put({ bucket: 'rel', key: 'a/corrupt.txt', body: { file }, size: 5, contentType: 'text/plain', sha256: await sha('hellO') }).then(() => undefined, (e) => e);
    await rm(dir, { recursive: true, force: true });
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toMatch(/XAmzContentSHA256Mismatch|BadDigest|400/);
    expect(await rgw.store.head('rel', 'a/corrupt.txt')).toBeUndefined();
  });

  it('enforces a bucket policy that limits a user to one prefix', async () => {
    const admin = createS3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, rgw.users.admin);
    await admin.send(new PutBucketPolicyCommand({
      Bucket: 'rel',
      Policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { AWS: [`arn:aws:iam:::user/${rgw.users.other.uid}`] }, Action: ['s3:PutObject'], Resource: ['arn:aws:s3:::rel/incoming/*'] }],
      }),
    }));
    const other = rgw.storeAs(rgw.users.other);
    await other.put({ ...body('ok'), key: 'incoming/ok.txt', sha256: await sha('ok') });
    // the object belongs to the uploader: the bucket owner sees it in a listing (no GetObject grant)
    expect((await rgw.store.list('rel', 'incoming/')).map((o) => o.key)).toEqual(['incoming/ok.txt']);
    const denied = await other.put({ ...body('no'), key: 'elsewhere/no.txt', sha256: await sha('no') }).then(() => undefined, (e) => e);
    expect(String(denied?.message)).toMatch(/refused/);
    expect((await rgw.store.list('rel', 'elsewhere/'))).toEqual([]);
  });

  it('honours If-None-Match: * (412 on an existing key, the body kept)', async () => {
    const admin = createS3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, rgw.users.admin);
    await admin.send(new PutObjectCommand({ Bucket: 'rel', Key: 'once.txt', Body: 'first', IfNoneMatch: '*' }));
    const err = await admin.send(new PutObjectCommand({ Bucket: 'rel', Key: 'once.txt', Body: 'second', IfNoneMatch: '*' })).then(() => undefined, (e) => e);
    expect(err?.$metadata?.httpStatusCode).toBe(412);
    expect(await rgw.store.getText('rel', 'once.txt')).toBe('first');
  });
});
