// The hash memo of localTree (issue 6): unchanged files are not re-read; any change of content
// (even with the same size), a replaced file or a corrupt memo means hashing again.
import { link, mkdtemp, readFile, rename, stat, utimes, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { localTree } from '../../lib/upload/local-tree.ts';
import { openHashCache } from '../../lib/hashing/hash-cache.ts';

/** Temp dirs of this file, removed after it. */
const temps: string[] = [];
const tmp = async (prefix: string) => { const d = await mkdtemp(path.join(os.tmpdir(), prefix)); temps.push(d); return d; };
afterAll(async () => { await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))); });


/** Files dated in the past (the memo refuses files modified in the last 2 s; ctime cannot be set back, so the tests open it with racyMs 0). */
async function writeOld(file: string, content: string, secondsAgo = 60) {
  await writeFile(file, content);
  const t = Date.now() / 1000 - secondsAgo;
  await utimes(file, t, t);
}

describe('localTree with a hash memo', () => {
  it('release: saves what was hashed, then remembers, sets and saves nothing more; without save it writes nothing', async () => {
    const tree = await tmp('releng-tree-');
    const state = await tmp('releng-state-');
    await writeOld(path.join(tree, 'a.txt'), 'aaaa');
    const cache = await openHashCache(state, { racyMs: 0 });
    await localTree(tree, 2, { hashCache: cache });
    await cache.release({ save: true });
    const saved = await readFile(path.join(state, 'hashes.json'), 'utf8');
    expect(Object.keys(JSON.parse(saved).files)).toHaveLength(1);
    const st = await stat(path.join(tree, 'a.txt'), { bigint: true });
    expect(cache.getDigest(path.join(tree, 'a.txt'), st)).toBeUndefined();
    cache.set(path.join(tree, 'a.txt'), st, 'f'.repeat(64));
    await cache.save();
    expect(await readFile(path.join(state, 'hashes.json'), 'utf8')).toBe(saved);
    // A fresh open remembers what release saved.
    expect((await openHashCache(state, { racyMs: 0 })).get(path.join(tree, 'a.txt'), st)).toBe(sha256Text('aaaa'));
    const other = await tmp('releng-state-');
    const unsaved = await openHashCache(other, { racyMs: 0 });
    await localTree(tree, 2, { hashCache: unsaved });
    await unsaved.release({ save: false });
    await unsaved.save();
    await expect(readFile(path.join(other, 'hashes.json'))).rejects.toThrow(/ENOENT/);
  });

  it('reuses remembered hashes and notices every change', async () => {
    const tree = await tmp('releng-tree-');
    const state = await tmp('releng-state-');
    await writeOld(path.join(tree, 'a.txt'), 'aaaa');
    await writeOld(path.join(tree, 'b.txt'), 'bbbb');
    let cache = await openHashCache(state, { racyMs: 0 });
    const first = await localTree(tree, 2, { hashCache: cache });
    expect(first.map((f) => f.sha256)).toEqual([sha256Text('aaaa'), sha256Text('bbbb')]);
    await cache.save();

    // ctime is part of the key and cannot be set back, so the memo is only trusted for files
    // untouched since hashing; prove reuse by reading a planted value for an unchanged file.
    const memo = JSON.parse(await readFile(path.join(state, 'hashes.json'), 'utf8'));
    const a = await stat(path.join(tree, 'a.txt'), { bigint: true });
    const entry: string = memo.files[`${a.dev}:${a.ino}`];
    const sha = sha256Text('aaaa');
    expect(entry).toContain(`:${sha}:`);
    memo.files[`${a.dev}:${a.ino}`] = entry.replace(sha, 'f'.repeat(64));
    await writeFile(path.join(state, 'hashes.json'), JSON.stringify(memo));
    cache = await openHashCache(state, { racyMs: 0 });
    expect((await localTree(tree, 2, { hashCache: cache }))[0]!.sha256).toBe('f'.repeat(64));

    // Same size, same mtime, new content: ctime (and the racy-window rule) still give it away.
    const before = await stat(path.join(tree, 'a.txt'));
    await writeFile(path.join(tree, 'a.txt'), 'AAAA');
    await utimes(path.join(tree, 'a.txt'), before.atime, before.mtime);
    cache = await openHashCache(state, { racyMs: 0 });
    expect((await localTree(tree, 2, { hashCache: cache }))[0]!.sha256).toBe(sha256Text('AAAA'));

    // A file replaced by another (new inode) is hashed again.
    await writeOld(path.join(tree, 'c.tmp'), 'cccc');
    await rename(path.join(tree, 'c.tmp'), path.join(tree, 'b.txt'));
    cache = await openHashCache(state, { racyMs: 0 });
    expect((await localTree(tree, 2, { hashCache: cache }))[1]!.sha256).toBe(sha256Text('cccc'));
  });

  it('hard links of one file share its entry (release/manual and the version directory\'s copy: issue 31), and a change through either is seen', async () => {
    const tree = await tmp('releng-tree-');
    const state = await tmp('releng-state-');
    await writeOld(path.join(tree, 'a.txt'), 'aaaa');
    await link(path.join(tree, 'a.txt'), path.join(tree, 'b.txt'));
    let cache = await openHashCache(state, { racyMs: 0 });
    expect((await localTree(tree, 2, { hashCache: cache })).map((f) => f.sha256)).toEqual([sha256Text('aaaa'), sha256Text('aaaa')]);
    await cache.save();
    expect(Object.keys(JSON.parse(await readFile(path.join(state, 'hashes.json'), 'utf8')).files)).toHaveLength(1);
    await writeFile(path.join(tree, 'b.txt'), 'AAAA');
    cache = await openHashCache(state, { racyMs: 0 });
    expect((await localTree(tree, 2, { hashCache: cache })).map((f) => f.sha256)).toEqual([sha256Text('AAAA'), sha256Text('AAAA')]);
  });

  it('does not remember files modified within the racy window', async () => {
    const tree = await tmp('releng-tree-');
    const state = await tmp('releng-state-');
    await writeFile(path.join(tree, 'new.txt'), 'fresh');
    const cache = await openHashCache(state);
    await localTree(tree, 2, { hashCache: cache });
    await cache.save();
    await expect(readFile(path.join(state, 'hashes.json'), 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('a corrupt memo is ignored', async () => {
    const tree = await tmp('releng-tree-');
    const state = await tmp('releng-state-');
    await writeOld(path.join(tree, 'a.txt'), 'aaaa');
    await writeFile(path.join(state, 'hashes.json'), '{"version":4,"files":{"x":[1]}}');
    const files = await localTree(tree, 2, { hashCache: await openHashCache(state, { racyMs: 0 }) });
    expect(files[0]!.sha256).toBe(sha256Text('aaaa'));
    // An entry of the right file with the right identity but a cut-short or foreign digest, and a
    // version-2 entry (an array), are ignored too: the file is read again.
    const st = await stat(path.join(tree, 'a.txt'), { bigint: true });
    const id = [st.size, st.mtimeNs, st.ctimeNs].join(':');
    for (const bad of [`${id}:${'f'.repeat(63)}:`, `${id}:${'f'.repeat(64)}x`, [...id.split(':'), 'f'.repeat(64), '']]) {
      await writeFile(path.join(state, 'hashes.json'), JSON.stringify({ version: 4, files: { [`${st.dev}:${st.ino}`]: bad } }));
      const again = await localTree(tree, 2, { hashCache: await openHashCache(state, { racyMs: 0 }) });
      expect(again[0]!.sha256).toBe(sha256Text('aaaa'));
    }
  });
});
