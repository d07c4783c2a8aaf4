// promote against Ceph RGW, the faithful S3 (issue 11): staging (s3rver) → RGW across endpoints
// (GET, sha256 checked, then a signed PUT RGW checks against its payload hash), killed midway and
// resumed; RGW → RGW on one endpoint (CopyObject, our sha256 metadata carried over); RGW → a file tree.
import { mkdir, readFile } from 'node:fs/promises';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { hashPart } from '../../lib/nix/cache.ts';
import { upload } from '../../lib/phases/upload.ts';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingWriters, promoteFixture, type PromoteFixture } from '../helpers/promote.ts';
import { startTestRgw, type TestRgw } from '../helpers/rgw.ts';

const buckets = ['rgwprod-releases', 'rgwprod-cache', 'rgwprod-docs', 'rgwmirror-releases', 'rgwmirror-cache', 'rgwmirror-docs', 'rgwstage-releases', 'rgwstage-cache', 'rgwstage-docs', 'rgwout-releases', 'rgwout-cache', 'rgwout-docs'];

describe('promote with Ceph RGW', () => {
  let f: PromoteFixture;
  let rgw: TestRgw;
  beforeAll(async () => {
    rgw = await startTestRgw({ buckets });
    f = await promoteFixture();
    await f.uploadStaging();
    process.env.RELENG_TEST_RGW_KEY = rgw.users.admin.accessKeyId;
    process.env.RELENG_TEST_RGW_SECRET = rgw.users.admin.secretAccessKey;
    await mkdir(path.join(f.trees, 'rgwtree', 'releases'), { recursive: true });
    await mkdir(path.join(f.trees, 'rgwtree', 'cache'), { recursive: true });
    await mkdir(path.join(f.trees, 'rgwtree', 'docs'), { recursive: true });
    const s3 = { endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, checksums: 'WHEN_REQUIRED' };
    const credentials = { source: 'env', accessKeyIdVar: 'RELENG_TEST_RGW_KEY', secretAccessKeyVar: 'RELENG_TEST_RGW_SECRET' };
    const cache = { signingKeyFile: 'keys/production.key', compression: 'zstd', storeOptions: {} };
    await f.p.editConfig((c) => {
      c.environments.rgwprod = { releasesBucket: 's3://rgwprod-releases', cacheBucket: 's3://rgwprod-cache', docsBucket: 's3://rgwprod-docs', s3, credentials, cache, confirm: false, mirror: { latestLinks: true } };
      c.environments.rgwmirror = { releasesBucket: 's3://rgwmirror-releases', cacheBucket: 's3://rgwmirror-cache', docsBucket: 's3://rgwmirror-docs', s3, credentials, cache, confirm: false };
      // Uploaded to from this project (release/cache/rgwstage staged here), then promoted on RGW.
      c.environments.rgwstage = { releasesBucket: 's3://rgwstage-releases', cacheBucket: 's3://rgwstage-cache', docsBucket: 's3://rgwstage-docs', s3, credentials, cache: { ...cache, signingKeyFile: 'keys/staging.key' }, confirm: false };
      c.environments.rgwout = { releasesBucket: 's3://rgwout-releases', cacheBucket: 's3://rgwout-cache', docsBucket: 's3://rgwout-docs', s3, credentials, cache, confirm: false };
      c.environments.rgwtree = { releasesBucket: `file://${f.trees}/rgwtree/releases`, cacheBucket: `file://${f.trees}/rgwtree/cache`, docsBucket: `file://${f.trees}/rgwtree/docs`, cache, confirm: false };
    });
  });
  afterAll(async () => {
    delete process.env.RELENG_TEST_RGW_KEY;
    delete process.env.RELENG_TEST_RGW_SECRET;
    await f?.cleanup();
    await rgw?.stop();
  });

  it('s3rver → RGW (two endpoints): killed midway, the re-run transfers only the rest and RGW holds staging\'s bytes', async () => {
    const killed = countingWriters(4);
    const r1 = await f.promote('1.0.0', { environment: 'rgwprod', extra: { from: 'staging' } }, { wrapWriters: killed.wrap });
    expect(r1.ok).toBe(false);
    expect(r1.error).toContain('killed at');
    const rest = countingWriters();
    const r2 = await f.promote('1.0.0', { environment: 'rgwprod', extra: { from: 'staging' } }, { wrapWriters: rest.wrap });
    expect(r2.ok, r2.error).toBe(true);
    expect(r2.summary!.planned['s3.copy'] ?? 0).toBe(0);
    expect(r2.summary!.planned['s3.transfer']).toBeGreaterThan(10);
    expect(rest.keys.filter((k) => killed.keys.includes(k))).toEqual([]);
    for (const o of await f.s3.store.list('staging-releases', 'hello/hello-1.0.0/')) {
      const [a, b] = await Promise.all([f.s3.store.head('staging-releases', o.key), rgw.store.head('rgwprod-releases', o.key)]);
      expect(b?.sha256, o.key).toBe(a!.sha256);
      expect(b?.size).toBe(a!.size);
    }
    expect((await rgw.store.head('rgwprod-releases', 'latest-hello-1.0'))?.redirect).toBe('/hello/hello-1.0.0/');
  });

  it('RGW → RGW (one endpoint): server-side CopyObject keeps the sha256 metadata; verify passes with production\'s key', async () => {
    const r = await f.promote('1.0.0', { environment: 'rgwmirror', extra: { from: 'rgwprod' } });
    expect(r.ok, r.error).toBe(true);
    expect(r.summary!.planned['s3.transfer'] ?? 0).toBe(0);
    expect(r.summary!.planned['s3.copy']).toBeGreaterThan(10);
    expect(r.summary!.resigned).toBe(0);
    const sums = await rgw.store.head('rgwmirror-releases', 'hello/hello-1.0.0/SHA256SUMS');
    expect(sums?.sha256).toBe((await rgw.store.head('rgwprod-releases', 'hello/hello-1.0.0/SHA256SUMS'))!.sha256);
    const again = countingWriters();
    const r2 = await f.promote('1.0.0', { environment: 'rgwmirror', extra: { from: 'rgwprod' } }, { wrapWriters: again.wrap });
    expect(r2.ok, r2.error).toBe(true);
    expect(again.keys).toEqual([]);
  });

  it('a multipart server-side copy (UploadPartCopy, as above 5 GiB; here with 5 MiB parts) keeps bytes, headers and sha256 metadata', async () => {
    const { randomBytes, createHash } = await import('node:crypto');
    const { writeFile } = await import('node:fs/promises');
    const body = randomBytes(12 * 1024 * 1024 + 123);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const file = path.join(f.trees, 'big.bin');
    await writeFile(file, body);
    await rgw.store.put({ bucket: 'rgwprod-releases', key: 'big/big.bin', body: { file }, size: body.length, sha256, contentType: 'application/x-test', cacheControl: 'max-age=7' });
    await rgw.store.copy({ bucket: 'rgwprod-releases', key: 'big/big.bin' }, { bucket: 'rgwmirror-releases', key: 'big/big.bin' }, { size: body.length, multipartAbove: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024 });
    const h = (await rgw.store.head('rgwmirror-releases', 'big/big.bin'))!;
    expect(h).toMatchObject({ size: body.length, sha256, contentType: 'application/x-test', cacheControl: 'max-age=7' });
    // RGW reports a multipart ETag (md5-of-md5s-N): it really was copied in 3 parts.
    expect(h.etag).toMatch(/-3"?$/);
    const hash = createHash('sha256');
    for await (const c of (await rgw.store.getStream!('rgwmirror-releases', 'big/big.bin')) as AsyncIterable<Buffer>) hash.update(c);
    expect(hash.digest('hex')).toBe(sha256);
  });

  it('RGW → RGW from a cache staged here: narinfos proven by RGW\'s listing (no GET), a narinfo rewritten on RGW is still read and refused', async () => {
    // The config was edited above (a dirty tree): upload without the clean-tag check.
    const up = await upload(await f.ctx({ environment: 'rgwstage', noCheckGit: true }));
    expect(up.applied['s3.put']).toBeGreaterThan(10);
    const manifest = (await rgw.store.getText('rgwstage-releases', 'hello/hello-1.0.0/manifest.nix'))!;
    const rel = `${hashPart(/\/nix\/store\/[0-9a-z]{32}-[^"\s]+/.exec(manifest)![0])}.narinfo`;
    const good = (await rgw.store.getText('rgwstage-cache', rel))!;
    expect(await readFile(path.join(f.p.dir, 'release', 'cache', 'rgwstage', rel), 'utf8')).toBe(good);
    const bad = good.replace(/^NarSize: (\d+)$/m, (_, n) => `NarSize: ${Number(n) + 1}`);
    const putText = (text: string) => rgw.store.put({ bucket: 'rgwstage-cache', key: rel, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/x-nix-narinfo' });
    await putText(bad);
    try {
      const r = await f.promote('1.0.0', { environment: 'rgwout', extra: { from: 'rgwstage' } });
      expect(r.ok).toBe(false);
      expect(r.error).toContain('hello 1.0.0 in rgwstage failed verification; nothing was copied');
      expect(r.error).toContain(`s3://rgwstage-cache/${rel}`);
      for (const b of ['rgwout-releases', 'rgwout-cache', 'rgwout-docs']) expect(await rgw.store.list(b, '')).toEqual([]);
    } finally {
      await putText(good);
    }
    const ok = await f.promote('1.0.0', { environment: 'rgwout', extra: { from: 'rgwstage' } });
    expect(ok.ok, ok.error).toBe(true);
    const checked = ok.summary!.verified.source.checked['binary cache']!;
    expect(checked.narinfos).toBeGreaterThan(1);
    expect(checked['narinfos proven by listing']).toBe(checked.narinfos);
    expect(ok.summary!.resigned).toBe(checked.narinfos); // staging's key → production's: every narinfo re-signed
    expect(ok.summary!.verified.destination!.ok).toBe(true);
  });

  it('RGW → file tree: transfers, then the tree verifies', async () => {
    const r = await f.promote('1.0.0', { environment: 'rgwtree', extra: { from: 'rgwprod' } });
    expect(r.ok, r.error).toBe(true);
    expect(r.summary!.planned['s3.transfer']).toBeGreaterThan(10);
    expect(r.log).toContain('hello 1.0.0 in rgwtree:');
  });
});
