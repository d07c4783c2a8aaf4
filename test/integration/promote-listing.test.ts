// promote without a request per object where a listing proves it (issue 16): the source by the
// upload record's read-back entries (same size, ETag and Last-Modified in this run's listing), the
// copies by the destination's listing (a single-part copy keeps the source's ETag, the MD5 of the
// same bytes). Requests are counted at the server (s3rver's request log). And what must still be
// caught: bytes changed in staging under the same metadata (quick mode, the record cannot vouch;
// --deep), and a copy the server acknowledged with the right ETag but never stored.
import { readFile, writeFile, rm } from 'node:fs/promises';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { hashPart } from '../../lib/nix/cache.ts';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promoteFixture, prodS3Buckets, type PromoteFixture } from '../helpers/promote.ts';
import { FaultController, startFaultProxy, type FaultProxy } from '../faults/proxy.ts';

/** Server-side requests of one method under a bucket path (`/BUCKET/PREFIX`), from s3rver's log. */
function requestsTo(lines: string[], method: string, under: string): string[] {
  return lines.filter((l) => l.startsWith(`${method} ${under}`) && !l.includes('?'));
}

describe('promote proves by listing', () => {
  let f: PromoteFixture;
  let proxy: FaultProxy;
  const ctl = new FaultController();
  const emptyProd = async () => {
    for (const b of prodS3Buckets) for (const o of await f.s3.store.list(b, '')) await f.s3.store.delete(b, o.key);
  };
  beforeAll(async () => {
    f = await promoteFixture();
    await f.uploadStaging();
    proxy = await startFaultProxy('s3rver', f.s3.endpoint, ctl);
    // staging's and prods3's buckets once more, reached through the fault proxy (one endpoint: server-side copies).
    await f.p.editConfig((c) => {
      const via = (env: any) => ({ ...env, s3: { ...env.s3, endpoint: proxy.url }, mirror: undefined });
      c.environments.pstaging = via(c.environments.staging);
      c.environments.pprod = via(c.environments.prods3);
      delete c.environments.pstaging.docker;
    });
    // A verification notes an object only once it is 2 s old on the server's clock (lib/verify/objects.ts).
    await new Promise((r) => setTimeout(r, 2100));
  });
  afterAll(async () => { await proxy?.stop(); await f?.cleanup(); });

  it('S3 → S3 on one endpoint: no HEAD per object of the verified source, none of the copies', async () => {
    // First promote: the source check HEADs staging and notes what it read back in the upload record.
    const first = await f.promote('1.0.0', { environment: 'prods3', extra: { from: 'staging' } });
    expect(first.ok, first.error).toBe(true);
    await emptyProd();
    await f.s3.resetLog();
    const r = await f.promote('1.0.0', { environment: 'prods3', extra: { from: 'staging' } });
    expect(r.ok, r.error).toBe(true);
    expect(r.summary!.planned['s3.copy']).toBeGreaterThan(0);
    const log = await f.s3.requests();
    const release = '/staging-releases/hello/hello-1.0.0/';
    const docs = '/staging-docs/manual/hello/1.0/';
    // The pages and files the source verification covers are listed, never HEADed (record + listing),
    // and the plan copies them without a HEAD either.
    expect(requestsTo(log, 'GET', release).filter((l) => !/(SHA256SUMS|manifest\.nix)$/.test(l))).toEqual([]);
    expect(requestsTo(log, 'HEAD', release)).toEqual([]);
    expect(requestsTo(log, 'HEAD', docs)).toEqual([]);
    // stable/ (the source check leaves it to the plan): the first promote's plan read it back.
    expect(requestsTo(log, 'HEAD', '/staging-docs/manual/hello/stable/')).toEqual([]);
    // The narinfos and .ls are the ones upload staged here (release/cache/staging): each listed
    // single-part ETag is a staged file's MD5, so the source check parses and checks the local bytes
    // and the plan reads the closure from them: no GET of a narinfo or .ls.
    expect(requestsTo(log, 'GET', '/staging-cache/').filter((l) => /\.(narinfo|ls)$/.test(l))).toEqual([]);
    const cacheChecked = r.summary!.verified.source.checked['binary cache']!;
    expect(cacheChecked['narinfos proven by listing']).toBe(cacheChecked.narinfos);
    expect(cacheChecked.narinfos).toBe(r.summary!.closure);
    // Release files every verifier reads whole (SHA256SUMS, manifest.nix) are read once per side.
    for (const k of ['/staging-releases/hello/hello-1.0.0/manifest.nix', '/staging-releases/hello/hello-1.0.0/SHA256SUMS', '/prods3-releases/hello/hello-1.0.0/manifest.nix']) {
      expect(log.filter((l) => l === `GET ${k}`), k).toHaveLength(1);
    }
    expect(requestsTo(log, 'HEAD', '/staging-releases/manifest.nix')).toEqual([]);
    // The copies are proven by the destination's listing: the same ETag as the verified source.
    const copied = r.summary!.applied['s3.copy']!;
    expect(copied).toBeGreaterThan(10);
    expect(requestsTo(log, 'HEAD', '/prods3-releases/hello/hello-1.0.0/')).toEqual([]);
    expect(requestsTo(log, 'HEAD', '/prods3-docs/manual/hello/1.0/')).toEqual([]);
    // The binary cache: NARs vouched in staging, copies and re-signed narinfos proven in production.
    expect(requestsTo(log, 'HEAD', '/staging-cache/nar/')).toEqual([]);
    expect(requestsTo(log, 'HEAD', '/prods3-cache/')).toEqual([]);
    expect(r.summary!.verified.destination!.ok).toBe(true);
    expect(r.summary!.verified.destination!.problems).toEqual([]);
  });

  it('bytes changed in staging under the same sha256 metadata are refused in quick mode when the record cannot vouch, and with --deep', async () => {
    const key = (await f.s3.store.list('staging-docs', 'manual/hello/1.0/')).find((o) => o.size > 0)!.key;
    const head = (await f.s3.store.head('staging-docs', key))!;
    const good = Buffer.from((await f.s3.store.getText('staging-docs', key))!);
    const bad = Buffer.from(good);
    bad[bad.length >> 1] ^= 0x20;
    const tmp = path.join(f.trees, 'tampered');
    await writeFile(tmp, bad);
    // Rewritten in staging with other bytes under the old metadata: another ETag than the record's.
    await f.s3.store.put({ bucket: 'staging-docs', key, body: { file: tmp }, size: bad.length, sha256: head.sha256!, contentType: head.contentType! });
    try {
      await emptyProd();
      for (const deep of [false, true]) {
        const r = await f.promote('1.0.0', { environment: 'prods3', extra: { from: 'staging', ...(deep ? { deep: true } : {}) } });
        expect(r.ok).toBe(false);
        expect(r.error).toContain('hello 1.0.0 in staging failed verification; nothing was copied');
        expect(r.error).toContain(`docs: s3://staging-docs/${key}: content sha256 `);
        for (const b of prodS3Buckets) expect(await f.s3.store.list(b, '')).toEqual([]);
      }
    } finally {
      await writeFile(tmp, good);
      await f.s3.store.put({ bucket: 'staging-docs', key, body: { file: tmp }, size: good.length, sha256: head.sha256!, contentType: head.contentType! });
      await rm(tmp);
    }
  });

  it('a narinfo rewritten in staging is caught although upload staged it here: its ETag is not the staged MD5, so it is read and its signature checked; a staged file rewritten the same way is caught on the local bytes', async () => {
    await emptyProd();
    // A store path the release's manifest names (the root of the closure promote checks and copies).
    const manifest = (await f.s3.store.getText('staging-releases', 'hello/hello-1.0.0/manifest.nix'))!;
    const rel = `${hashPart(/\/nix\/store\/[0-9a-z]{32}-[^"\s]+/.exec(manifest)![0])}.narinfo`;
    const staged = path.join(f.p.dir, 'release', 'cache', 'staging', rel);
    const good = await readFile(staged, 'utf8');
    expect(await f.s3.store.getText('staging-cache', rel)).toBe(good);
    const narSize = Number(/^NarSize: (\d+)$/m.exec(good)![1]);
    const bad = good.replace(/^NarSize: \d+$/m, `NarSize: ${narSize + 1}`);
    const putText = (text: string) => f.s3.store.put({ bucket: 'staging-cache', key: rel, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/x-nix-narinfo' });
    try {
      await putText(bad);
      await f.s3.resetLog();
      const r = await f.promote('1.0.0', { environment: 'prods3', extra: { from: 'staging' } });
      expect(r.ok).toBe(false);
      expect(r.error).toContain('hello 1.0.0 in staging failed verification; nothing was copied');
      expect(r.error).toContain(`s3://staging-cache/${rel}`);
      expect(r.error).toMatch(/signature/i);
      // Read from the server: the listed ETag was not the staged file's MD5.
      expect(requestsTo(await f.s3.requests(), 'GET', `/staging-cache/${rel}`)).toHaveLength(1);
      for (const b of prodS3Buckets) expect(await f.s3.store.list(b, '')).toEqual([]);
      // The staged file rewritten the same way: the listing matches it, and the check on its bytes fails.
      await writeFile(staged, bad);
      await f.s3.resetLog();
      const again = await f.promote('1.0.0', { environment: 'prods3', extra: { from: 'staging' } });
      expect(again.ok).toBe(false);
      expect(again.error).toContain(`s3://staging-cache/${rel}`);
      expect(again.error).toMatch(/signature/i);
      expect(requestsTo(await f.s3.requests(), 'GET', `/staging-cache/${rel}`)).toEqual([]);
      for (const b of prodS3Buckets) expect(await f.s3.store.list(b, '')).toEqual([]);
    } finally {
      await writeFile(staged, good);
      await putText(good);
    }
    const fixed = await f.promote('1.0.0', { environment: 'prods3', extra: { from: 'staging' } });
    expect(fixed.ok, fixed.error).toBe(true);
  });

  it('a copy the server acknowledges with the source\'s ETag but never stores is found missing by the destination check', async () => {
    await emptyProd();
    const victim = (await f.s3.store.list('staging-docs', 'manual/hello/1.0/')).find((o) => o.size > 0)!;
    const source = `staging-docs/${victim.key}`;
    ctl.set({
      kind: 'ack-without-store', at: 1,
      match: (q) => q.method === 'PUT' && q.copySource !== undefined && decodeURIComponent(q.copySource).replace(/^\//, '') === source,
      // What a server that lies would answer: a CopyObjectResult with the very ETag of the source.
      answer: () => ({ etag: victim.etag!, body: `<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult><LastModified>${new Date().toISOString()}</LastModified><ETag>${victim.etag!.replace(/"/g, '&quot;')}</ETag></CopyObjectResult>` }),
    });
    try {
      const r = await f.promote('1.0.0', { environment: 'pprod', extra: { from: 'pstaging' } });
      expect(ctl.injected).toBe(1);
      expect(r.ok).toBe(false);
      expect(r.error).toContain('hello 1.0.0 in pprod failed verification after promote');
      expect(r.error).toContain(`docs: s3://prods3-docs/${victim.key}: missing`);
    } finally {
      ctl.set({ kind: 'none' });
    }
    // The re-run copies what is missing and then verifies.
    const again = await f.promote('1.0.0', { environment: 'pprod', extra: { from: 'pstaging' } });
    expect(again.ok, again.error).toBe(true);
    expect(again.summary!.applied['s3.copy']).toBe(1);
  });
});
