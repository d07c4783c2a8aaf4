// What promote tells the destination check (lib/promote/knowledge.ts through the run knowledge and
// recording writer every command shares: lib/s3/knowledge.ts, lib/s3/record.ts), against a real s3rver: a
// server-side copy of a read-back source object is expected to hold the source's ETag and is
// `written` only when the server acknowledges that ETag; a streamed put's MD5 is computed on the
// way; the listing memo serves a prefix until a write under it.
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { normalizeEtag, recordingWriter } from '../../lib/s3/record.ts';
import { runKnowledge } from '../../lib/s3/knowledge.ts';
import { copyExpectation, SeenObjects } from '../../lib/promote/knowledge.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';

const put = (s3: TestS3, key: string, text: string) => s3.store.put({ bucket: 'src', key, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/plain' });
const md5 = (t: string | Buffer) => createHash('md5').update(t).digest('hex');

describe('promote knowledge of copies', () => {
  let s3: TestS3;
  beforeAll(async () => { s3 = await startTestS3(['src', 'dst']); });
  afterAll(async () => { await s3?.stop(); });

  function setup() {
    const seen = new SeenObjects();
    let lists = 0;
    const knowledge = runKnowledge({ lister: (b, p) => { lists++; return s3.store.list(b, p); } });
    const writer = recordingWriter(s3.store, { knowledge, hashPuts: true, copied: copyExpectation(seen, undefined) });
    return { seen, knowledge, memo: knowledge, writer, lists: () => lists };
  }

  it('a copy of a read-back object: expected MD5 = the source ETag, written, and the destination listing shows it', async () => {
    const { seen, knowledge, writer } = setup();
    await put(s3, 'a/page.html', '<p>verified bytes</p>');
    seen.head('src', 'a/page.html', await s3.store.head('src', 'a/page.html'));
    const r = await writer.copy({ bucket: 'src', key: 'a/page.html' }, { bucket: 'dst', key: 'a/page.html' }, { size: 21 });
    expect(normalizeEtag(r ? r.etag : undefined)).toBe(md5('<p>verified bytes</p>'));
    expect(knowledge.md5('dst', 'a/page.html')).toEqual({ md5: md5('<p>verified bytes</p>'), size: 21 });
    expect(knowledge.written('dst', 'a/page.html')).toBe(true);
    const listed = (await s3.store.list('dst', 'a/')).find((o) => o.key === 'a/page.html')!;
    expect(normalizeEtag(listed.etag)).toBe(knowledge.md5('dst', 'a/page.html')!.md5);
  });

  it('a source rewritten after it was read back: the copy is acknowledged with another ETag, so it is not `written` and the listing does not match', async () => {
    const { seen, knowledge, writer } = setup();
    await put(s3, 'b/page.html', 'read back');
    seen.head('src', 'b/page.html', await s3.store.head('src', 'b/page.html'));
    await put(s3, 'b/page.html', 'rewritten'); // s3rver has no conditional copy: the copy goes ahead
    await writer.copy({ bucket: 'src', key: 'b/page.html' }, { bucket: 'dst', key: 'b/page.html' });
    expect(knowledge.md5('dst', 'b/page.html')!.md5).toBe(md5('read back'));
    expect(knowledge.written('dst', 'b/page.html')).toBe(false);
    const listed = (await s3.store.list('dst', 'b/'))[0]!;
    expect(normalizeEtag(listed.etag)).not.toBe(knowledge.md5('dst', 'b/page.html')!.md5);
  });

  it('a copy of an object the verification never read back carries no knowledge', async () => {
    const { knowledge, writer } = setup();
    await put(s3, 'c/x', 'unverified');
    await writer.copy({ bucket: 'src', key: 'c/x' }, { bucket: 'dst', key: 'c/x' });
    expect(knowledge.md5('dst', 'c/x')).toBeUndefined();
    expect(knowledge.written('dst', 'c/x')).toBe(false);
  });

  it('a streamed put: the MD5 of the bytes as they went out, written when the server answers it; a text put keeps its bytes', async () => {
    const { knowledge, writer } = setup();
    const body = Buffer.from('streamed NAR bytes '.repeat(1000));
    await writer.put({ bucket: 'dst', key: 'nar/x.nar', body: { stream: Readable.from([body.subarray(0, 7000), body.subarray(7000)]) }, size: body.length, sha256: createHash('sha256').update(body).digest('hex'), contentType: 'application/x-nix-nar' });
    expect(knowledge.md5('dst', 'nar/x.nar')).toEqual({ md5: md5(body), size: body.length });
    expect(knowledge.written('dst', 'nar/x.nar')).toBe(true);
    expect((await s3.store.getText('dst', 'nar/x.nar'))).toBe(body.toString());
    const text = 'StorePath: /nix/store/x\n';
    await writer.put({ bucket: 'dst', key: 'x.narinfo', body: { text }, size: text.length, sha256: sha256Text(text), contentType: 'text/x-nix-narinfo' });
    expect(knowledge.written('dst', 'x.narinfo')).toBe(true);
    expect((await knowledge.bytes('dst', 'x.narinfo'))?.toString()).toBe(text);
    // A delete drops what was known.
    await writer.delete('dst', 'x.narinfo');
    expect(knowledge.md5('dst', 'x.narinfo')).toBeUndefined();
  });

  it('the listing memo serves a prefix (and prefixes under it) until a write under it, then lists again', async () => {
    const { memo, writer, lists } = setup();
    await put(s3, 'm/one', '1');
    const first = await memo.list('src', 'm/');
    expect(first.map((o) => o.key)).toEqual(['m/one']);
    expect((await memo.list('src', 'm/')).map((o) => o.key)).toEqual(['m/one']);
    expect((await memo.list('src', 'm/o')).map((o) => o.key)).toEqual(['m/one']);
    expect(lists()).toBe(1);
    await writer.copy({ bucket: 'src', key: 'm/one' }, { bucket: 'src', key: 'm/two' });
    expect((await memo.list('src', 'm/')).map((o) => o.key)).toEqual(['m/one', 'm/two']);
    expect(lists()).toBe(2);
  });
});
