// The filesystem store: the S3 reader/writer contract on a directory (sidecar sha256, atomic rename,
// symlink redirects, refusal of keys that leave the tree, a changed file found by its bytes), and
// issue 23: a file holds every byte its hash saw, its sidecar the size it really has.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Text } from '../../../lib/hashing/checksums.ts';
import { fsStore } from '../../../lib/fs/store.ts';

describe('fsStore', () => {
  let root: string;
  const store = fsStore();
  beforeEach(async () => { root = await mkdtemp(path.join(os.tmpdir(), 'releng-fs-')); });
  afterEach(async () => { await rm(root, { recursive: true, force: true }); });
  const put = (key: string, text: string, extra: object = {}) => store.put({ bucket: root, key, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/plain', ...extra });

  it('puts, heads with the recorded sha256 and headers, lists flat, gets text, deletes with empty parents', async () => {
    await put('a/b/c.txt', 'hello\n', { cacheControl: 'max-age=60' });
    await put('top.txt', 'x');
    const h = await store.head(root, 'a/b/c.txt');
    expect(h).toMatchObject({ size: 6, sha256: sha256Text('hello\n'), contentType: 'text/plain', cacheControl: 'max-age=60' });
    expect((await store.list(root, '')).map((o) => o.key)).toEqual(['a/b/c.txt', 'top.txt']);
    expect((await store.list(root, 'a/')).map((o) => o.key)).toEqual(['a/b/c.txt']);
    expect(await store.getText(root, 'a/b/c.txt')).toBe('hello\n');
    expect(await store.head(root, 'missing')).toBeUndefined();
    // No temp names are left next to the files.
    expect((await readdir(path.join(root, 'a', 'b')))).toEqual(['c.txt']);
    await store.delete(root, 'a/b/c.txt');
    await expect(lstat(path.join(root, 'a'))).rejects.toThrow();
  });

  it('a file changed behind its back is hashed, not trusted by its sidecar', async () => {
    await put('f.txt', 'one');
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(path.join(root, 'f.txt'), 'two');
    expect((await store.head(root, 'f.txt'))!.sha256).toBe(sha256Text('two'));
  });

  it('refuses bytes that are not the planned sha256, leaving the old file', async () => {
    await put('f.txt', 'good');
    await expect(store.put({ bucket: root, key: 'f.txt', body: { text: 'evil' }, size: 4, sha256: sha256Text('good'), contentType: 'text/plain' })).rejects.toThrow(/no longer matches its plan/);
    expect(await readFile(path.join(root, 'f.txt'), 'utf8')).toBe('good');
  });

  it('a redirect to a path is a relative symlink; one to a URL an empty file with the location', async () => {
    await put('lix/lix-2.93.0/manifest.nix', '{}');
    await store.put({ bucket: root, key: 'latest-lix-2', body: { text: '' }, size: 0, sha256: sha256Text(''), contentType: 'text/plain', redirect: '/lix/lix-2.93.0/' });
    expect(await readlink(path.join(root, 'latest-lix-2'))).toBe('lix/lix-2.93.0/');
    expect((await store.head(root, 'latest-lix-2'))!.redirect).toBe('/lix/lix-2.93.0/');
    expect(await readFile(path.join(root, 'latest-lix-2', 'manifest.nix'), 'utf8')).toBe('{}');
    await store.put({ bucket: root, key: 'channels/x', body: { text: '' }, size: 0, sha256: sha256Text(''), contentType: 'text/plain', redirect: 'https://example.invalid/x' });
    expect((await store.head(root, 'channels/x'))!.redirect).toBe('https://example.invalid/x');
  });

  it('refuses keys outside the tree or inside .releng/, and a missing root', async () => {
    await expect(put('../escape', 'x')).rejects.toThrow(/cannot be stored in the directory/);
    await expect(put(".releng/meta/x", "x")).rejects.toThrow(/releng\/meta\/x" cannot be stored/);
    await expect(store.checkBucket(path.join(root, 'nope'))).rejects.toThrow(/does not exist/);
  });

  const sidecar = async (key: string) => JSON.parse(await readFile(path.join(root, '.releng', 'meta', `${key}.json`), 'utf8'));
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  it('a streamed put writes every byte it hashed: the file is the planned bytes and its sidecar records its real size', async () => {
    // Bodies already flowing when put() gets them (promote's verified GET streams): issue 23 lost
    // their first chunks to a 'data' listener attached before the write stream was connected.
    const body = Buffer.alloc(700_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const keys = Array.from({ length: 12 }, (_, i) => `nar/${i}.nar`);
    await Promise.all(keys.map(async (key, i) => {
      const stream = i % 2 ? Readable.from((function* () { for (let o = 0; o < body.length; o += 65536) yield body.subarray(o, o + 65536); })()) : (() => { const p = new PassThrough(); p.end(body); return p; })();
      let progress = 0;
      await store.put({ bucket: root, key, body: { stream }, size: body.length, sha256: sha(body), contentType: 'application/x-nix-nar', onProgress: (n) => { progress += n; } });
      expect(progress).toBe(body.length);
    }));
    for (const key of keys) {
      expect((await readFile(path.join(root, key))).equals(body), key).toBe(true);
      const side = await sidecar(key);
      expect(side).toMatchObject({ sha256: sha(body), size: body.length });
      expect(side.mtimeMs).toBe((await stat(path.join(root, key))).mtimeMs);
      expect((await store.head(root, key))!.sidecar).toEqual({ sha256: sha(body), size: body.length });
    }
    expect((await readdir(path.join(root, 'nar'))).filter((n) => n.startsWith('.releng-tmp-'))).toEqual([]);
  });

  it('a source that fails midway (as a full disk or a dropped GET) leaves the old file, its sidecar and no temporary file', async () => {
    await put('f.bin', 'old bytes');
    const before = await sidecar('f.bin');
    const body = Buffer.alloc(300_000, 1);
    const failing = new Readable({ read() {} });
    failing.push(body.subarray(0, 100_000));
    setTimeout(() => failing.destroy(Object.assign(new Error('no space left on device, write'), { code: 'ENOSPC' })), 10);
    await expect(store.put({ bucket: root, key: 'f.bin', body: { stream: failing }, size: body.length, sha256: sha(body), contentType: 'x' })).rejects.toThrow(/f\.bin: ENOSPC/);
    expect(await readFile(path.join(root, 'f.bin'), 'utf8')).toBe('old bytes');
    expect(await sidecar('f.bin')).toEqual(before);
    expect(await readdir(root)).toEqual(['.releng', 'f.bin']);
    // A stream with other bytes than planned: refused before the rename, naming the key.
    const other = new PassThrough(); other.end(Buffer.alloc(body.length, 2));
    await expect(store.put({ bucket: root, key: 'f.bin', body: { stream: other }, size: body.length, sha256: sha(body), contentType: 'x' })).rejects.toThrow(/^the streamed copy no longer matches its plan for \/.*\/f\.bin \(size 300000, sha256 /);
    expect(await readdir(root)).toEqual(['.releng', 'f.bin']);
  });

  it('head reports the sidecar (even a stale one) and null without one', async () => {
    await put('a.txt', 'abc');
    expect((await store.head(root, 'a.txt'))!.sidecar).toEqual({ sha256: sha256Text('abc'), size: 3 });
    await writeFile(path.join(root, 'b.txt'), 'no sidecar');
    expect((await store.head(root, 'b.txt'))!.sidecar).toBeNull();
    // A sidecar of another shape (cut short) is no sidecar.
    await mkdir(path.join(root, '.releng', 'meta'), { recursive: true });
    await writeFile(path.join(root, '.releng', 'meta', 'b.txt.json'), '{"sha2');
    expect((await store.head(root, 'b.txt'))!.sidecar).toBeNull();
  });

  it('copy checks the bytes it copies: against the plan, else against the source\'s own sidecar (a damaged source is not spread)', async () => {
    const dst = await mkdtemp(path.join(os.tmpdir(), 'releng-fs-dst-'));
    try {
      await put('r/a.tar.xz', 'release bytes');
      await store.copy({ bucket: root, key: 'r/a.tar.xz' }, { bucket: dst, key: 'r/a.tar.xz' }, { size: 13, sha256: sha256Text('release bytes') });
      expect(await readFile(path.join(dst, 'r/a.tar.xz'), 'utf8')).toBe('release bytes');
      expect(JSON.parse(await readFile(path.join(dst, '.releng/meta/r/a.tar.xz.json'), 'utf8'))).toMatchObject({ sha256: sha256Text('release bytes'), size: 13 });
      await expect(store.copy({ bucket: root, key: 'r/a.tar.xz' }, { bucket: dst, key: 'r/b.tar.xz' }, { size: 13, sha256: sha256Text('other') })).rejects.toThrow(/r\/a\.tar\.xz \(the copy's source\) no longer matches its plan for \/.*\/r\/b\.tar\.xz/);
      // Rotted in place: same size, mtime put back, so its sidecar looks fresh; the copy hashes the bytes and refuses.
      const file = path.join(root, 'r/a.tar.xz');
      const st = await stat(file);
      await writeFile(file, 'rotten bytes!');
      await utimes(file, st.atime, st.mtime);
      await expect(store.copy({ bucket: root, key: 'r/a.tar.xz' }, { bucket: dst, key: 'r/c.tar.xz' })).rejects.toThrow(/no longer matches its plan/);
      await expect(lstat(path.join(dst, 'r/c.tar.xz'))).rejects.toThrow();
      expect((await readdir(path.join(dst, 'r'))).sort()).toEqual(['a.tar.xz']);
    } finally {
      await rm(dst, { recursive: true, force: true });
    }
  });

  it('temporary files of a writer that is gone are removed by the next write into their directory; a live writer\'s are kept', async () => {
    await mkdir(path.join(root, 'd'), { recursive: true });
    // A pid that is surely gone: a child that has exited.
    const dead = Number(execFileSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).trim());
    const stale = path.join(root, 'd', `.releng-tmp-${dead}-0123456789ab-x.nar`);
    const live = path.join(root, 'd', `.releng-tmp-${process.ppid}-0123456789ab-y.nar`);
    await writeFile(stale, 'half');
    await writeFile(live, 'in progress');
    expect((await store.list(root, 'd/')).map((o) => o.key)).toEqual([]);
    await put('d/z.txt', 'z');
    expect((await readdir(path.join(root, 'd'))).sort()).toEqual([path.basename(live), 'z.txt']);
  });

  it('the sidecar goes in place before its file; a rename that fails puts the old sidecar back', async () => {
    await put('x.txt', 'old');
    const old = await sidecar('x.txt');
    // A non-empty directory under the final name: the file's rename fails after its sidecar was written.
    await mkdir(path.join(root, 'dir.txt', 'inner'), { recursive: true });
    await expect(put('dir.txt', 'new')).rejects.toThrow(/dir\.txt/);
    await expect(lstat(path.join(root, '.releng', 'meta', 'dir.txt.json'))).rejects.toThrow();
    await rm(path.join(root, 'dir.txt'), { recursive: true });
    // The same with an old sidecar to restore: x.txt replaced by a directory behind releng's back.
    await rm(path.join(root, 'x.txt'));
    await mkdir(path.join(root, 'x.txt', 'inner'), { recursive: true });
    await expect(put('x.txt', 'new')).rejects.toThrow(/x\.txt/);
    expect(await sidecar('x.txt')).toEqual(old);
    expect((await readdir(root)).filter((n) => n.startsWith('.releng-tmp-'))).toEqual([]);
  });
});
