// The run's knowledge of expected objects (lib/s3/knowledge.ts), held in slots (issue 31): each
// key's MD5, size, bytes and flags as the verification asks for them.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CompactListing, runKnowledge } from '../../lib/s3/knowledge.ts';

const md5 = (s: string) => createHash('md5').update(s).digest();

describe('runKnowledge expectations', () => {
  it('gives back the MD5 (hex, from hex or base64) and size of each of 10,000 keys; forgotten keys free their slots for others', () => {
    const k = runKnowledge();
    for (let i = 0; i < 10_000; i++) k.expect('b', `k/${i}`, i % 2 ? md5(`${i}`).toString('base64') : md5(`${i}`).toString('hex'), i);
    for (let i = 0; i < 10_000; i += 3) k.forget('b', `k/${i}`);
    for (let i = 0; i < 500; i++) k.expect('c', `k/${i}`, md5(`c${i}`).toString('hex'), 1);
    for (let i = 0; i < 10_000; i++) expect(k.md5('b', `k/${i}`)).toEqual(i % 3 === 0 ? undefined : { md5: md5(`${i}`).toString('hex'), size: i });
    for (let i = 0; i < 500; i++) expect(k.md5('c', `k/${i}`)).toEqual({ md5: md5(`c${i}`).toString('hex'), size: 1 });
  });

  it('two expectations of other bytes at one key know nothing of it from then on; a multipart ETag drops what was known', () => {
    const k = runKnowledge();
    k.expect('b', 'x', md5('one').toString('hex'), 3);
    k.expect('b', 'x', md5('one').toString('base64'), 3); // the same bytes: still known
    expect(k.md5('b', 'x')).toEqual({ md5: md5('one').toString('hex'), size: 3 });
    k.expect('b', 'x', md5('two').toString('hex'), 3);
    expect(k.md5('b', 'x')).toBeUndefined();
    k.expect('b', 'x', md5('one').toString('hex'), 3); // conflicted stays conflicted
    expect(k.md5('b', 'x')).toBeUndefined();
    k.expect('b', 'y', md5('y').toString('hex'), 1);
    k.expect('b', 'y', `${md5('y').toString('hex')}-2`, 1);
    expect(k.md5('b', 'y')).toBeUndefined();
  });

  it('`written` only after an acknowledgement with the expected MD5, until the key is touched again; bytes held for small objects', async () => {
    const k = runKnowledge();
    const hex = md5('body').toString('hex');
    k.expect('b', 'n.narinfo', hex, 4, Buffer.from('body'));
    expect(k.written('b', 'n.narinfo')).toBe(false);
    k.acknowledged('b', 'n.narinfo', `"${hex}"`);
    expect(k.written('b', 'n.narinfo')).toBe(true);
    expect((await k.bytes('b', 'n.narinfo'))?.toString()).toBe('body');
    k.touch('b', 'n.narinfo');
    expect(k.written('b', 'n.narinfo')).toBe(false);
    k.acknowledged('b', 'n.narinfo', `"${md5('other').toString('hex')}"`);
    expect(k.written('b', 'n.narinfo')).toBe(false);
    k.forget('b', 'n.narinfo');
    expect(await k.bytes('b', 'n.narinfo')).toBeUndefined();
    // A slot freed and taken by another key carries nothing of the old one.
    k.expect('b', 'other', md5('o').toString('hex'), 1);
    expect(await k.bytes('b', 'other')).toBeUndefined();
    expect(k.written('b', 'other')).toBe(false);
  });
});

describe('runKnowledge listings', () => {
  it('gives a listing back as it was listed (every ETag form, sizes, Last-Modified or none), filtered for a prefix under it, until a write under it', async () => {
    const hex = md5('a').toString('hex');
    const objects = [
      { key: 'p/a', size: 1, etag: `"${hex}"`, mtime: 1_700_000_000 },
      { key: 'p/b', size: 0, etag: hex },
      { key: 'p/c', size: 2 ** 40, etag: `"${hex}-3"`, mtime: 0 },
      { key: 'p/d/e', size: 5, etag: `"${hex.toUpperCase()}"` },
      { key: 'p/d/f', size: 6, etag: `W/"${hex}"` },
      { key: 'p/g', size: 7 },
      ...Array.from({ length: 5000 }, (_, i) => ({ key: `p/h/${i}`, size: i, etag: `"${md5(`${i}`).toString('hex')}"`, mtime: 1_700_000_000 + i })),
    ];
    const k = runKnowledge();
    k.listed('b', 'p/', Promise.resolve(objects.map((o) => ({ ...o }))));
    expect(await k.planListing('b', 'p/')).toEqual(objects);
    // Made afresh for each caller: one caller's changes are not another's.
    const first = (await k.planListing('b', 'p/'))!;
    first[0]!.size = 99;
    expect((await k.planListing('b', 'p/'))![0]).toEqual(objects[0]);
    expect(await k.planListing('b', 'p/d/')).toEqual(objects.filter((o) => o.key.startsWith('p/d/')));
    expect(k.planListing('b', 'q/')).toBeUndefined();
    k.touch('b', 'p/d/e');
    expect(k.planListing('b', 'p/')).toBeUndefined();
  });

  it('a failed listing is not kept: the next caller lists again', async () => {
    let calls = 0;
    const k = runKnowledge({ lister: async () => { calls++; if (calls === 1) throw new Error('503'); return [{ key: 'p/a', size: 1, etag: '"x"' }]; } });
    await expect(k.list('b', 'p/')).rejects.toThrow('503');
    expect(await k.list('b', 'p/')).toEqual([{ key: 'p/a', size: 1, etag: '"x"' }]);
    expect(await k.list('b', 'p/')).toEqual([{ key: 'p/a', size: 1, etag: '"x"' }]);
    expect(calls).toBe(2);
  });
});

describe('CompactListing lookups', () => {
  it('a verifier\'s lookup: objects by key as listed, each claim counted, what no claim named left in listing order; a listing under a prefix', () => {
    const objects = Array.from({ length: 3000 }, (_, i) => ({ key: `p/${String(i).padStart(5, '0')}`, size: i, etag: `"${md5(`${i}`).toString('hex')}"`, mtime: 1_700_000_000 + i }));
    const listing = new CompactListing(objects);
    const look = listing.lookup();
    expect(look.size).toBe(3000);
    expect(look.get('p/00007')).toEqual(objects[7]);
    expect(look.get('p/absent')).toBeUndefined();
    for (let i = 0; i < 3000; i++) if (i % 7) expect(look.claim(objects[i]!.key)).toEqual(objects[i]);
    expect([...look.unclaimed()]).toEqual(objects.filter((_, i) => i % 7 === 0));
    // Another caller's lookup starts afresh.
    expect([...listing.lookup().unclaimed()]).toHaveLength(3000);
    expect(listing.under('p/0001').objects()).toEqual(objects.filter((o) => o.key.startsWith('p/0001')));
    expect(listing.under('p/')).toBe(listing);
  });
});
