// The filesystem store: the S3 reader/writer contract on a directory (sidecar sha256, atomic rename,
// symlink redirects, refusal of keys that leave the tree, a changed file found by its bytes).
import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Text } from '../../../lib/checksums.ts';
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
});
