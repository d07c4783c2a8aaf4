// Upload's closing verification with its record (issue 16): a fresh listing stands in for a HEAD
// only for an object a verification already HEADed with the same size, ETag, Last-Modified and our sha256; anything
// else is HEADed, and an object rewritten since (another ETag, our sha256 still claimed) is read.
// No servers: an in-memory reader with ETags (MD5 of the bytes, as a single-part PUT gives).
// Real servers (s3rver, RGW): test/integration/verify.test.ts.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { afterAll, describe, expect, it } from 'vitest';
import { openUploadRecord, type UploadRecord } from '../../lib/s3/record.ts';
import type { ObjectHead, RemoteObject } from '../../lib/s3/store.ts';
import { checkObject } from '../../lib/verify/objects.ts';
import { emptyReport, type LocalKnowledge, type VerifyScope, type VerifyTarget } from '../../lib/verify/types.ts';
import { runKnowledge } from '../../lib/s3/knowledge.ts';

const temps: string[] = [];
afterAll(async () => { await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))); });
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** Objects with their Last-Modified (Unix seconds); the server's clock reads `now`. */
function memory(now = 2000) {
  const objects = new Map<string, { bytes: Buffer; sha256?: string; mtime: number }>();
  const calls = { head: 0, get: 0 };
  const s3 = {
    endpoint: 'memory',
    async list(_b: string, prefix: string): Promise<RemoteObject[]> {
      return [...objects].filter(([k]) => k.startsWith(prefix)).map(([key, o]) => ({ key, size: o.bytes.length, etag: `"${md5(o.bytes)}"`, mtime: o.mtime }));
    },
    async head(_b: string, key: string): Promise<ObjectHead | undefined> {
      calls.head++;
      const o = objects.get(key);
      return o && { size: o.bytes.length, sha256: o.sha256, etag: `"${md5(o.bytes)}"`, mtime: o.mtime, serverTime: now, metadata: {} };
    },
    async getText() { return undefined; },
    async getStream(_b: string, key: string) { calls.get++; const o = objects.get(key); return o && Readable.from([o.bytes]); },
    async checkBucket() {},
  };
  return { objects, calls, target: { s3 } as unknown as VerifyTarget };
}

async function check(m: ReturnType<typeof memory>, key: string, expected: Buffer, opts: { known?: UploadRecord; deep?: boolean; local?: LocalKnowledge; etag?: string } = {}) {
  const listed = (await m.target.s3.list('b', key)).find((o) => o.key === key);
  if (listed && opts.etag) listed.etag = opts.etag;
  const scope: VerifyScope = {
    deep: !!opts.deep, limit: pLimit(4), repair: 'releng upload', tmpDir: '/nowhere',
    progress: { tick() {}, addTotal() {}, item() {}, stop() {} } as any, ...(opts.known ? { known: opts.known } : {}), ...(opts.local ? { local: opts.local } : {}),
  };
  const report = emptyReport();
  await checkObject(m.target, scope, { destination: 'docs', bucket: 'b', key, expected: { sha256: sha(expected), size: expected.length }, listed }, report);
  return report;
}

describe('checkObject with the upload record', () => {
  it('HEADs once, then proves the same object by the listing alone; an unverified (PUT) entry is HEADed', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-vl-'));
    temps.push(dir);
    const record = await openUploadRecord(dir, 'memory');
    const m = memory();
    const bytes = Buffer.from('<p>page</p>');
    m.objects.set('a', { bytes, sha256: sha(bytes), mtime: 1999 });
    record.set('b', 'a', { sha256: sha(bytes), size: bytes.length, etag: md5(bytes) }); // as a PUT records it
    // Written less than 2 s before the HEAD (by the server's clock): not noted, a rewrite in the same second could keep its Last-Modified.
    expect((await check(m, 'a', bytes, { known: record })).problems).toEqual([]);
    expect(m.calls).toEqual({ head: 1, get: 0 });
    expect(record.get('b', 'a')?.verified).toBeUndefined();
    m.objects.get('a')!.mtime = 1990;
    expect((await check(m, 'a', bytes, { known: record })).problems).toEqual([]);
    expect(m.calls).toEqual({ head: 2, get: 0 });
    expect(record.get('b', 'a')?.verified).toBe(1990);
    const r = await check(m, 'a', bytes, { known: record });
    expect(r.problems).toEqual([]);
    expect(r.checked['objects proven by listing']).toBe(1);
    expect(m.calls).toEqual({ head: 2, get: 0 });
    // Standalone verify (no record) and --deep never take the listing's word.
    await check(m, 'a', bytes);
    expect(m.calls.head).toBe(3);
    await check(m, 'a', bytes, { known: record, deep: true });
    expect(m.calls).toEqual({ head: 4, get: 1 });
    // Rewritten with the same bytes but other metadata (same ETag, new Last-Modified): HEADed and named.
    m.objects.set('a', { bytes, sha256: 'f'.repeat(64), mtime: 1995 });
    expect((await check(m, 'a', bytes, { known: record })).problems.map((p) => p.what)).toEqual([`sha256 metadata ${'f'.repeat(64)}, expected ${sha(bytes)}`]);
    expect(m.calls.head).toBe(5);
  });

  it('a rewrite at the same size is not vouched for: other metadata is named; our sha256 claimed over other bytes is read and named', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-vl-'));
    temps.push(dir);
    const record = await openUploadRecord(dir, 'memory');
    const m = memory();
    const good = Buffer.from('abcdefgh');
    const bad = Buffer.from('abcdefgX');
    for (const k of ['honest', 'liar']) record.markVerified('b', k, { sha256: sha(good), size: good.length, etag: md5(good), verified: 1000 });
    m.objects.set('honest', { bytes: bad, sha256: sha(bad), mtime: 1000 });
    m.objects.set('liar', { bytes: bad, sha256: sha(good), mtime: 1000 });
    const honest = await check(m, 'honest', good, { known: record });
    expect(honest.problems.map((p) => p.what)).toEqual([`sha256 metadata ${sha(bad)}, expected ${sha(good)}`]);
    expect(m.calls).toEqual({ head: 1, get: 0 });
    const liar = await check(m, 'liar', good, { known: record });
    expect(liar.problems.map((p) => p.what)).toEqual([`content sha256 ${sha(bad)} (8 bytes), expected ${sha(good)} (8 bytes)`]);
    expect(m.calls).toEqual({ head: 2, get: 1 });
    // Nothing wrong is re-vouched: the entries keep the ETag their verification saw.
    expect(record.get('b', 'liar')?.etag).toBe(md5(good));
    expect(record.get('b', 'honest')?.etag).toBe(md5(good));
  });

  it('an object the listing lacks is HEADed and named missing, whatever the record says', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-vl-'));
    temps.push(dir);
    const record = await openUploadRecord(dir, 'memory');
    const m = memory();
    const bytes = Buffer.from('gone');
    record.markVerified('b', 'gone', { sha256: sha(bytes), size: bytes.length, etag: md5(bytes), verified: 1000 });
    const r = await check(m, 'gone', bytes, { known: record });
    expect(r.problems.map((p) => [p.where, p.what])).toEqual([['s3://b/gone', 'missing']]);
    expect(m.calls.head).toBe(1);
  });
});

describe('checkObject with local knowledge (issue 16: the listed ETag against the local MD5)', () => {
  const openRecord = async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-vl-'));
    temps.push(dir);
    return openUploadRecord(dir, 'memory');
  };
  const knows = (key: string, bytes: Buffer) => {
    const k = runKnowledge();
    k.expect('b', key, md5(bytes), bytes.length);
    return k;
  };

  it('upload: a listed object with ETag = local MD5 that this run wrote (acknowledged with that ETag) needs no HEAD, and is marked verified with its Last-Modified', async () => {
    const record = await openRecord();
    const m = memory();
    const bytes = Buffer.from('<p>page</p>');
    m.objects.set('a', { bytes, sha256: sha(bytes), mtime: 1999 });
    const local = knows('a', bytes);
    local.acknowledged('b', 'a', `"${md5(bytes)}"`);
    expect(local.written('b', 'a')).toBe(true);
    const r = await check(m, 'a', bytes, { known: record, local });
    expect(r.problems).toEqual([]);
    expect(r.checked['objects proven by listing']).toBe(1);
    expect(m.calls).toEqual({ head: 0, get: 0 });
    expect(record.get('b', 'a')).toEqual({ sha256: sha(bytes), size: bytes.length, etag: md5(bytes), verified: 1999 });
    // The next run (nothing written): the verified entry vouches for the metadata while the listing shows that Last-Modified.
    const next = await check(m, 'a', bytes, { known: record, local: knows('a', bytes) });
    expect(next.checked['objects proven by listing']).toBe(1);
    expect(m.calls).toEqual({ head: 0, get: 0 });
  });

  it('upload: bytes proven but the metadata vouched by nothing of this run: HEADed, and wrong metadata named', async () => {
    const record = await openRecord();
    const m = memory();
    const bytes = Buffer.from('abc');
    m.objects.set('a', { bytes, sha256: 'f'.repeat(64), mtime: 1000 });
    const local = knows('a', bytes);
    local.acknowledged('b', 'a', `"${'0'.repeat(32)}"`); // acknowledged with another ETag: not `written`
    expect(local.written('b', 'a')).toBe(false);
    const r = await check(m, 'a', bytes, { known: record, local });
    expect(r.problems.map((p) => p.what)).toEqual([`sha256 metadata ${'f'.repeat(64)}, expected ${sha(bytes)}`]);
    expect(m.calls).toEqual({ head: 1, get: 0 });
    // A HEAD of this run (the plan's) that saw our sha256 with this ETag vouches instead.
    m.objects.set('a', { bytes, sha256: sha(bytes), mtime: 1000 });
    record.noteHead('b', 'a', { sha256: sha(bytes), size: bytes.length, etag: md5(bytes) });
    expect((await check(m, 'a', bytes, { known: record, local })).checked['objects proven by listing']).toBe(1);
    expect(m.calls).toEqual({ head: 1, get: 0 });
  });

  it('a listed ETag that is not the local MD5 (same size, our sha256 claimed) is read and named, written or not', async () => {
    const record = await openRecord();
    const m = memory();
    const good = Buffer.from('abcdefgh');
    const bad = Buffer.from('abcdefgX');
    m.objects.set('a', { bytes: bad, sha256: sha(good), mtime: 1000 });
    const local = knows('a', good);
    local.acknowledged('b', 'a', `"${md5(good)}"`); // a server that answers the ETag of what was sent
    for (const scope of [{ known: record, local }, { local }]) {
      const r = await check(m, 'a', good, scope);
      expect(r.problems.map((p) => p.what)).toEqual([`content sha256 ${sha(bad)} (8 bytes), expected ${sha(good)} (8 bytes)`]);
    }
    expect(m.calls).toEqual({ head: 2, get: 2 });
  });

  it('verify quick (no record): bytes proven by listing, metadata not read and counted as such; multipart ETags and --deep never proven by listing', async () => {
    const m = memory();
    const bytes = Buffer.from('abc');
    m.objects.set('a', { bytes, sha256: 'f'.repeat(64), mtime: 1000 });
    const local: LocalKnowledge = { md5: (_b, k) => (k === 'a' ? { md5: md5(bytes), size: bytes.length } : undefined), written: () => false };
    const r = await check(m, 'a', bytes, { local });
    expect(r.problems).toEqual([]);
    expect(r.checked).toMatchObject({ objects: 1, 'objects proven by listing': 1, 'objects whose metadata quick did not read': 1 });
    expect(m.calls).toEqual({ head: 0, get: 0 });
    const multipart = await check(m, 'a', bytes, { local, etag: `"${md5(bytes)}-2"` });
    expect(multipart.problems.map((p) => p.what)).toEqual([`sha256 metadata ${'f'.repeat(64)}, expected ${sha(bytes)}`]);
    expect(m.calls).toEqual({ head: 1, get: 0 });
    const deep = await check(m, 'a', bytes, { local, deep: true });
    expect(deep.problems.map((p) => p.what)).toEqual([`sha256 metadata ${'f'.repeat(64)}, expected ${sha(bytes)}`]);
    expect(m.calls.head + m.calls.get).toBeGreaterThan(1);
    // An object the listing lacks is HEADed and named missing.
    expect((await check(m, 'gone', bytes, { local })).problems.map((p) => p.what)).toEqual(['missing']);
  });
});

describe('runKnowledge', () => {
  it('hands back a plan listing only while nothing was written under its prefix; two plans expecting other bytes at a key know nothing', async () => {
    const k = runKnowledge();
    const listing = Promise.resolve([{ key: 'p/a', size: 1 }]);
    k.listed('b', 'p/', listing);
    k.listed('b', 'q/', Promise.resolve([]));
    expect(await k.planListing('b', 'p/')).toEqual(await listing);
    expect(k.planListing('b', 'p')).toBeUndefined();
    k.touch('b', 'p/x');
    expect(k.planListing('b', 'p/')).toBeUndefined();
    expect(k.planListing('b', 'q/')).toBeDefined();
    k.expect('b', 'k', md5(Buffer.from('1')), 1);
    k.expect('b', 'k', md5(Buffer.from('2')), 1);
    k.expect('b', 'k', md5(Buffer.from('1')), 1);
    expect(k.md5('b', 'k')).toBeUndefined();
    k.expect('b', 'base64', Buffer.from(md5(Buffer.from('x')), 'hex').toString('base64'), 1);
    expect(k.md5('b', 'base64')).toEqual({ md5: md5(Buffer.from('x')), size: 1 });
  });
});
