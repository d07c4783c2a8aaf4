// planSync with the local upload record (issue 6): the record skips HEADs only while the listing
// agrees with it; otherwise the sha256 metadata (read by HEAD) decides. No servers: an in-memory reader.
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openUploadRecord, normalizeEtag } from '../../lib/s3/record.ts';
import type { ObjectHead, RemoteObject, S3Reader } from '../../lib/s3/store.ts';
import { planSync, type LocalFile } from '../../lib/s3/sync.ts';

/** Temp dirs of this file, removed after it. */
const temps: string[] = [];
const tmp = async (prefix: string) => { const d = await mkdtemp(path.join(os.tmpdir(), prefix)); temps.push(d); return d; };
afterAll(async () => { await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))); });


const sha = (c: string) => c.repeat(64);

/** A bucket in memory that counts HEADs (the reads the record is meant to save). */
function memoryReader(objects: Record<string, { size: number; etag: string; sha256?: string }>) {
  let heads = 0;
  const reader: S3Reader = {
    endpoint: 'memory',
    async list(_bucket, prefix) {
      return Object.entries(objects).filter(([k]) => k.startsWith(prefix)).map(([key, o]): RemoteObject => ({ key, size: o.size, etag: `"${o.etag}"` }));
    },
    async head(_bucket, key): Promise<ObjectHead | undefined> {
      heads++;
      const o = objects[key];
      return o && { size: o.size, sha256: o.sha256, etag: `"${o.etag}"`, metadata: o.sha256 ? { sha256: o.sha256 } : {} };
    },
    async getText() { return undefined; },
    async checkBucket() {},
  };
  return { reader, heads: () => heads };
}

const file = (rel: string, size: number, sha256: string): LocalFile => ({ rel, source: { file: `/nowhere/${rel}` }, size, sha256 });

describe('planSync with an upload record', () => {
  it('skips unchanged objects without a HEAD when the listing matches the record', async () => {
    const dir = await tmp('releng-rec-');
    const record = await openUploadRecord(dir, 'http://s3');
    record.set('b', 'p/a', { sha256: sha('a'), size: 3, etag: 'e1' });
    record.set('b', 'p/b', { sha256: sha('b'), size: 4, etag: 'e2' });
    const { reader, heads } = memoryReader({ 'p/a': { size: 3, etag: 'e1', sha256: sha('a') }, 'p/b': { size: 4, etag: 'e2', sha256: sha('b') } });
    const plan = await planSync(reader, { bucket: 'b', prefix: 'p/', files: [file('a', 3, sha('a')), file('b', 4, sha('b'))], record });
    expect(plan.puts).toEqual([]);
    expect(plan.unchanged).toBe(2);
    expect(heads()).toBe(0);
  });

  it('puts a local file changed with the same size, without a HEAD', async () => {
    const record = await openUploadRecord(await tmp('releng-rec-'), 'http://s3');
    record.set('b', 'p/a', { sha256: sha('a'), size: 3, etag: 'e1' });
    const { reader, heads } = memoryReader({ 'p/a': { size: 3, etag: 'e1', sha256: sha('a') } });
    const plan = await planSync(reader, { bucket: 'b', prefix: 'p/', files: [file('a', 3, sha('c'))], record });
    expect(plan.puts.map((p) => [p.key, p.reason])).toEqual([['p/a', 'changed']]);
    expect(heads()).toBe(0);
  });

  it('falls back to HEAD when the object was replaced remotely (ETag differs), and trusts its sha256 metadata', async () => {
    const record = await openUploadRecord(await tmp('releng-rec-'), 'http://s3');
    record.set('b', 'p/a', { sha256: sha('a'), size: 3, etag: 'e1' });
    record.set('b', 'p/b', { sha256: sha('b'), size: 3, etag: 'e2' });
    // p/a replaced by other bytes (our file is the old one); p/b replaced by the same content re-uploaded elsewhere.
    const { reader, heads } = memoryReader({ 'p/a': { size: 3, etag: 'x1', sha256: sha('d') }, 'p/b': { size: 3, etag: 'x2', sha256: sha('b') } });
    const plan = await planSync(reader, { bucket: 'b', prefix: 'p/', files: [file('a', 3, sha('a')), file('b', 3, sha('b'))], record });
    expect(plan.puts.map((p) => p.key)).toEqual(['p/a']);
    expect(plan.unchanged).toBe(1);
    expect(heads()).toBe(2);
    // What a HEAD confirmed is remembered (with the listed ETag), so the next plan needs no HEAD for it.
    expect(record.get('b', 'p/b')).toEqual({ sha256: sha('b'), size: 3, etag: 'x2' });
  });

  it('a verified entry whose object was rewritten (same sha256 claimed, other ETag) is kept, not re-vouched', async () => {
    const dir = await tmp('releng-rec-');
    const record = await openUploadRecord(dir, 'http://s3');
    record.markVerified('b', 'p/a', { sha256: sha('a'), size: 3, etag: 'e1', verified: 1000 });
    const { reader, heads } = memoryReader({ 'p/a': { size: 3, etag: 'x1', sha256: sha('a') } });
    const plan = await planSync(reader, { bucket: 'b', prefix: 'p/', files: [file('a', 3, sha('a'))], record });
    expect(plan.unchanged).toBe(1);
    expect(heads()).toBe(1);
    // The ETag a verification saw stays: the closing verification then reads the rewritten object's bytes.
    expect(record.get('b', 'p/a')).toEqual({ sha256: sha('a'), size: 3, etag: 'e1', verified: 1000 });
  });

  it('`verified` survives a save; a record written before it (three fields) still loads, unverified', async () => {
    const dir = await tmp('releng-rec-');
    const record = await openUploadRecord(dir, 'http://s3');
    record.markVerified('b', 'v', { sha256: sha('a'), size: 3, etag: 'e1', verified: 1700000000 });
    record.set('b', 'u', { sha256: sha('b'), size: 4, etag: 'e2' });
    await record.save();
    const again = await openUploadRecord(dir, 'http://s3');
    expect(again.get('b', 'v')).toEqual({ sha256: sha('a'), size: 3, etag: 'e1', verified: 1700000000 });
    expect(again.get('b', 'u')).toEqual({ sha256: sha('b'), size: 4, etag: 'e2' });
    // A PUT replaces the entry: unverified until a verification reads it back.
    again.set('b', 'v', { sha256: sha('c'), size: 3, etag: 'e3' });
    expect(again.get('b', 'v')?.verified).toBeUndefined();
    await writeFile(again.file, JSON.stringify({ version: 1, endpoint: 'http://s3', objects: { 'b/old': [sha('d'), 5, 'e4'] } }));
    expect((await openUploadRecord(dir, 'http://s3')).get('b', 'old')).toEqual({ sha256: sha('d'), size: 5, etag: 'e4' });
  });

  it('a missing or corrupt record means HEADs, never a wrong skip', async () => {
    const dir = await tmp('releng-rec-');
    const objects = { 'p/a': { size: 3, etag: 'e1', sha256: sha('a') }, 'p/z': { size: 3, etag: 'e9' } };
    for (const content of [undefined, '{not json', JSON.stringify({ version: 1, endpoint: 'http://s3', objects: { 'b/p/a': ['zz', 3, 'e1'] } })]) {
      if (content !== undefined) await writeFile(path.join(dir, (await import('node:fs')).readdirSync(dir).find((f) => f.startsWith('uploads-')) ?? 'uploads-x.json'), content);
      const record = await openUploadRecord(dir, 'http://s3');
      expect(record.get('b', 'p/a')).toBeUndefined();
      const { reader, heads } = memoryReader(objects);
      const plan = await planSync(reader, { bucket: 'b', prefix: 'p/', files: [file('a', 3, sha('a')), file('z', 3, sha('z'))], record });
      expect(plan.puts.map((p) => p.key)).toEqual(['p/z']); // no sha256 metadata: put again
      expect(heads()).toBe(2);
      await record.save();
    }
  });

  it('the compact record (issue 31) gives back every entry as set, through a save, whatever its sha256 and ETag look like', async () => {
    const dir = await tmp('releng-rec-');
    const rec = await openUploadRecord(dir, 'http://s3');
    const entries: Array<[string, string, { sha256: string; size: number; etag: string; verified?: number }]> = [
      ['b', 'plain', { sha256: sha('a'), size: 3, etag: '0123456789abcdef0123456789abcdef' }],
      ['b', 'multi', { sha256: sha('b'), size: 5e9, etag: '0123456789abcdef0123456789abcdef-3', verified: 1_700_000_000 }],
      ['b', 'upper', { sha256: sha('c'), size: 0, etag: '0123456789ABCDEF0123456789ABCDEF' }],
      ['b', 'dir/k\u00e9y "q"]', { sha256: sha('d'), size: 7, etag: 'e"]1' }],
    ];
    for (const [b, k, e] of entries) rec.set(b, k, e);
    // Another writer's sha256 metadata is kept exactly as it was read: never taken for ours (the
    // file's schema then refuses the whole record on the next load, as it always did: not saved here).
    rec.set('b', 'theirs', { sha256: 'A'.repeat(64), size: 1, etag: 'e' });
    expect(rec.get('b', 'theirs')!.sha256).toBe('A'.repeat(64));
    rec.forget('b', 'theirs');
    rec.set('b', 'gone', { sha256: sha('e'), size: 1, etag: 'y' });
    rec.forget('b', 'gone');
    rec.set('b', 'reused', { sha256: sha('f'), size: 2, etag: 'z' }); // takes the freed slot
    for (const [b, k, e] of entries) expect(rec.get(b, k)).toEqual(e);
    await rec.save();
    const again = await openUploadRecord(dir, 'http://s3');
    for (const [b, k, e] of entries) expect(again.get(b, k)).toEqual(e);
    expect(again.get('b', 'gone')).toBeUndefined();
    expect(again.get('b', 'reused')).toEqual({ sha256: sha('f'), size: 2, etag: 'z' });
    // The same file, laid out by any other JSON writer, loads the same; one bad entry empties it (as before).
    const json = JSON.parse(await (await import('node:fs/promises')).readFile(rec.file, 'utf8'));
    await writeFile(rec.file, JSON.stringify(json, null, 2));
    expect((await openUploadRecord(dir, 'http://s3')).get('b', 'multi')).toEqual(entries[1]![2]);
    json.objects['b/bad'] = [sha('a'), -1, 'e'];
    await writeFile(rec.file, JSON.stringify(json));
    expect((await openUploadRecord(dir, 'http://s3')).get('b', 'plain')).toBeUndefined();
  });

  it('holds 10,000 entries across its chunks of slots: each given back as set, before and after a save, freed slots reused', async () => {
    const dir = await tmp('releng-rec-');
    const rec = await openUploadRecord(dir, 'http://s3');
    const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
    const e = (i: number) => ({ sha256: hex(i, 64), size: i * 3, etag: hex(i * 7, 32), ...(i % 5 === 0 ? { verified: 1_700_000_000 + i } : {}) });
    for (let i = 0; i < 10_000; i++) rec.set('b', `k/${i}`, e(i));
    for (let i = 0; i < 10_000; i += 97) rec.forget('b', `k/${i}`);
    for (let i = 10_000; i < 10_050; i++) rec.set('c', `k/${i}`, e(i));
    const check = (r: typeof rec) => {
      for (let i = 0; i < 10_000; i++) expect(r.get('b', `k/${i}`)).toEqual(i % 97 === 0 ? undefined : e(i));
      for (let i = 10_000; i < 10_050; i++) expect(r.get('c', `k/${i}`)).toEqual(e(i));
    };
    check(rec);
    await rec.save();
    // Read back: each entry found is then kept under the caller's key (its id string let go).
    const reopened = await openUploadRecord(dir, 'http://s3');
    check(reopened);
    reopened.forget('b', 'k/1');
    reopened.set('b', 'k/2', e(3));
    await reopened.save();
    const third = await openUploadRecord(dir, 'http://s3');
    expect(third.get('b', 'k/1')).toBeUndefined();
    expect(third.get('b', 'k/2')).toEqual(e(3));
    for (let i = 3; i < 10_000; i++) expect(third.get('b', `k/${i}`)).toEqual(i % 97 === 0 ? undefined : e(i));
  });

  it('the record is saved one entry per line (read a line at a time, issue 31), still one JSON document; a file cut short or with a bad line loads empty', async () => {
    const { readFile } = await import('node:fs/promises');
    const dir = await tmp('releng-rec-');
    const rec = await openUploadRecord(dir, 'http://s3');
    for (let i = 0; i < 2500; i++) rec.set('b', `p/page-${i}.html`, { sha256: sha((i % 10).toString()), size: i, etag: '0123456789abcdef0123456789abcdef', ...(i % 3 ? {} : { verified: 1_700_000_000 + i }) });
    await rec.save();
    const text = await readFile(rec.file, 'utf8');
    const lines = text.split('\n');
    expect(lines[0]).toBe('{"version":1,"endpoint":"http://s3","objects":{');
    expect(lines.length).toBe(2500 + 3); // header, one line each, "}}", the final newline
    expect(Object.keys(JSON.parse(text).objects)).toHaveLength(2500);
    const again = await openUploadRecord(dir, 'http://s3');
    expect(again.get('b', 'p/page-2498.html')).toEqual({ sha256: sha('8'), size: 2498, etag: '0123456789abcdef0123456789abcdef' });
    expect(again.get('b', 'p/page-3.html')).toEqual({ sha256: sha('3'), size: 3, etag: '0123456789abcdef0123456789abcdef', verified: 1_700_000_003 });
    // Cut short (a disk filled mid-save would leave a temp file, not this: but a copied or damaged record must never load partly).
    await writeFile(rec.file, text.slice(0, Math.floor(text.length / 2)));
    expect((await openUploadRecord(dir, 'http://s3')).get('b', 'p/page-0.html')).toBeUndefined();
    await writeFile(rec.file, lines.slice(0, -2).join('\n') + '\n');
    expect((await openUploadRecord(dir, 'http://s3')).get('b', 'p/page-0.html')).toBeUndefined();
    // One bad entry empties it.
    await writeFile(rec.file, text.replace('"b/p/page-7.html":["', '"b/p/page-7.html":["x'));
    expect((await openUploadRecord(dir, 'http://s3')).get('b', 'p/page-0.html')).toBeUndefined();
    // An empty record round-trips.
    const empty = await openUploadRecord(await tmp('releng-rec-'), 'http://s3');
    empty.set('b', 'k', { sha256: sha('a'), size: 1, etag: 'e' });
    empty.forget('b', 'k');
    await empty.save();
    expect(JSON.parse(await readFile(empty.file, 'utf8')).objects).toEqual({});
  });

  it('the record of another endpoint is not used', async () => {
    const dir = await tmp('releng-rec-');
    const a = await openUploadRecord(dir, 'http://one');
    a.set('b', 'k', { sha256: sha('a'), size: 1, etag: 'e' });
    await a.save();
    expect((await openUploadRecord(dir, 'http://one')).get('b', 'k')?.etag).toBe('e');
    expect((await openUploadRecord(dir, 'http://two')).get('b', 'k')).toBeUndefined();
  });

  it('compares ETags without quotes', () => {
    expect(normalizeEtag('"abc"')).toBe('abc');
    expect(normalizeEtag('abc-3')).toBe('abc-3');
    expect(normalizeEtag(undefined)).toBeUndefined();
  });
});
