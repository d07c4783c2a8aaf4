// A real mirror of a promoted tree (issue 11): Debian's rsync daemon serves production's file tree;
// a downstream mirror reads fullfiletimelist-hello and fetches only what changed (--files-from),
// ending byte-identical. After a promote that changes three files it transfers those three and no
// other (counted from rsync's --itemize-changes and --stats).
import { lstat, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncMirror } from '../helpers/mirror-client.ts';
import { promoteFixture, type PromoteFixture } from '../helpers/promote.ts';
import { startRsyncd, type Rsyncd } from '../helpers/rsyncd.ts';

/** path → bytes (files) or '-> target' (links), below root, without releng's .releng/ sidecars. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    const abs = path.join(e.parentPath ?? (e as any).path, e.name);
    const rel = path.relative(root, abs);
    if (rel.split('/').includes('.releng') || e.isDirectory()) continue;
    out.set(rel, e.isSymbolicLink() ? `-> ${await readlink(abs)}` : (await readFile(abs)).toString('base64'));
  }
  return out;
}

describe('a downstream rsync mirror of a promoted tree', () => {
  let f: PromoteFixture;
  let rsyncd: Rsyncd;
  let prod: string;
  let dest: string;
  let state: string;
  beforeAll(async () => {
    f = await promoteFixture();
    prod = path.join(f.trees, 'production');
    dest = path.join(f.trees, 'downstream');
    state = path.join(f.trees, 'downstream-state');
    await f.uploadStaging();
    const r = await f.promote('1.0.0', { environment: 'production', extra: { from: 'staging' } });
    if (!r.ok) throw new Error(r.error);
    rsyncd = await startRsyncd('hello', prod);
  });
  afterAll(async () => { await rsyncd?.stop(); await f?.cleanup(); });

  it('the first run fetches every file of the list and ends byte-identical', async () => {
    const run = await syncMirror(rsyncd.url, 'hello', dest, state);
    const want = await snapshot(prod);
    expect(run.requested.length).toBe(want.size - 1); // everything but the list itself
    expect(run.filesTransferred).toBe([...want.values()].filter((v) => !v.startsWith('-> ')).length - 1);
    expect(await snapshot(dest)).toEqual(want);
    expect((await lstat(path.join(dest, 'releases', 'latest-hello-1.0'))).isSymbolicLink()).toBe(true);
  });

  it('a run with nothing promoted transfers nothing', async () => {
    const run = await syncMirror(rsyncd.url, 'hello', dest, state);
    expect(run.requested).toEqual([]);
    expect(run.transferred).toEqual([]);
  });

  it('after a promote that changes three files, it transfers those three and no others', async () => {
    // Three pages of production's 1.0 manual drifted (edited on the master by hand). Staging must stay
    // as released: promote verifies it first (releng verify), and a staging page that is not the
    // release's manual is refused. The promote puts staging's pages back: three files change.
    const pages = ['manual/hello/1.0/command-ref/hello.html', 'manual/hello/1.0/index.html', 'manual/hello/1.0/style.css'];
    for (const key of pages) {
      const file = path.join(prod, 'docs', key);
      await writeFile(file, `${await readFile(file, 'utf8')}\n<!-- edited on the master -->\n`);
    }
    const r = await f.promote('1.0.0', { environment: 'production', extra: { from: 'staging' } });
    expect(r.ok, r.error).toBe(true);
    expect(r.summary!.applied).toEqual({ 's3.transfer': 3 });
    expect(r.summary!.fileLists[0]!.changed).toBe(true);
    const run = await syncMirror(rsyncd.url, 'hello', dest, state);
    const changed = pages.map((p) => `docs/${p}`).sort();
    expect(run.requested).toEqual(changed);
    expect(run.transferred).toEqual(changed);
    expect(run.filesTransferred).toBe(3);
    expect(await snapshot(dest)).toEqual(await snapshot(prod));
  });
});
