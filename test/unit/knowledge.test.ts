// The run's knowledge of expected objects (lib/s3/knowledge.ts), held in slots (issue 31): each
// key's MD5, size, bytes and flags as the verification asks for them.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runKnowledge } from '../../lib/s3/knowledge.ts';

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
