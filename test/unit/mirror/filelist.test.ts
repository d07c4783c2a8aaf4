// The three lists of a quick-fedora-mirror module as Fedora's create-filelist writes them (issue 28):
// fullfiletimelist-MODULE (format 2: post-order, newer of mtime/ctime, f/d/l, then [Checksums SHA1],
// [MD5], [SHA256], [SHA512] in create-filelist's order), fullfilelist (`./PATH` lines) and
// imagelist-MODULE (the entries that are images by productmd's formats). Golden text, a scan of a real
// tree (dangling links, rsync and NFS temporaries, hardlinks), checksums against coreutils, and the plan.
import { execFileSync } from 'node:child_process';
import { link, mkdir, mkdtemp, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../../lib/config/config.ts';
import { fsStore } from '../../../lib/fs/store.ts';
import {
  isImage, orderedAlgorithms, parseFileList, parseFileListChecksums, planFileLists, renderFileList, renderImageList, renderPlainList, scanTree,
  type FileListEntry,
} from '../../../lib/mirror/filelist.ts';
import { expectGolden } from '../../helpers/golden.ts';

const entries: FileListEntry[] = [
  { time: 1700000000, type: 'f', size: 1493, path: 'lix/lix-2.93.0/SHA256SUMS' },
  { time: 1700000000, type: 'f', size: 8388608, path: 'lix/lix-2.93.0/lix-2.93.0-x86_64-linux.tar.xz' },
  { time: 1700000000, type: 'f', size: 1048576, path: 'lix/lix-2.93.0/lix-2.93.0-installer.iso' },
  { time: 1700000001, type: 'd', size: 4096, path: 'lix/lix-2.93.0' },
  { time: 1700000001, type: 'd', size: 4096, path: 'lix' },
  { time: 1700000002, type: 'l', size: 12, path: 'latest-lix-2' },
  { time: 1700000003, type: 'f', size: 120, path: 'manifest.nix' },
];
const sums = [
  { path: 'manifest.nix', digests: { SHA1: 'b'.repeat(40), MD5: '2'.repeat(32), SHA256: 'd'.repeat(64), SHA512: 'f'.repeat(128) } },
  { path: 'lix/lix-2.93.0/SHA256SUMS', digests: { SHA1: 'a'.repeat(40), MD5: '1'.repeat(32), SHA256: 'c'.repeat(64), SHA512: 'e'.repeat(128) } },
];

describe('file lists: rendering', () => {
  it('the time list has create-filelist\'s four checksum sections in its order, SHA1 first (golden)', async () => {
    const text = renderFileList(entries, sums);
    await expectGolden(text, 'fullfiletimelist-lix');
    expect(text.split('\n').filter((l) => l.startsWith('['))).toEqual(['[Version]', '[Files]', '[Checksums SHA1]', '[Checksums MD5]', '[Checksums SHA256]', '[Checksums SHA512]', '[End]']);
    expect(parseFileList(text).map((e) => e.path)).toEqual(entries.map((e) => e.path));
    expect(parseFileListChecksums(text).get('MD5')!.get('manifest.nix')).toBe('2'.repeat(32));
    // quick-fedora-mirror's check: the list ends in [End] (its `tail -2 | grep '^\[End\]$'`).
    expect(text.split('\n').slice(-2)).toEqual(['[End]', '']);
  });

  it('a configured subset keeps create-filelist\'s order, whatever order it is named in', () => {
    expect(orderedAlgorithms(['SHA512', 'SHA1'])).toEqual(['SHA1', 'SHA512']);
    const text = renderFileList(entries, sums, ['SHA256', 'SHA1']);
    expect(text.split('\n').filter((l) => l.startsWith('[Checksums'))).toEqual(['[Checksums SHA1]', '[Checksums SHA256]']);
  });

  it('fullfilelist: every entry as ./PATH in the same order; imagelist: only the images (golden)', async () => {
    await expectGolden(renderPlainList(entries), 'fullfilelist');
    await expectGolden(renderImageList(entries), 'imagelist-lix');
    expect(renderImageList(entries)).toBe('./lix/lix-2.93.0/lix-2.93.0-x86_64-linux.tar.xz\n./lix/lix-2.93.0/lix-2.93.0-installer.iso\n');
  });

  it('an image is a name ending in .FORMAT of productmd\'s image formats', () => {
    for (const p of ['a.iso', 'x/b.qcow2', 'c.raw.xz', 'd.tar.gz', 'e.vagrant-libvirt.box', 'f.liveimg.squashfs', 'g.ociarchive', 'h.wsl']) expect(isImage(p), p).toBe(true);
    for (const p of ['a.iso.sha256', 'SHA256SUMS', 'manifest.nix', 'b.narinfo', 'c.zip', 'iso', 'd.box']) expect(isImage(p), p).toBe(false);
  });
});

describe('file lists: a tree', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-filelist-'));
    const rel = path.join(dir, 'lix', 'lix-2.93.0');
    await mkdir(rel, { recursive: true });
    await writeFile(path.join(rel, 'SHA256SUMS'), 'sums\n');
    await writeFile(path.join(rel, 'lix.tar.xz'), 'x'.repeat(100));
    await symlink('lix/lix-2.93.0/', path.join(dir, 'latest-lix-2'));
    await symlink('lix/lix-9.9.9/', path.join(dir, 'latest-lix-9')); // dangling: left out
    await mkdir(path.join(dir, '.releng', 'meta'), { recursive: true });
    await writeFile(path.join(dir, '.releng', 'meta', 'x.json'), '{}');
    await mkdir(path.join(rel, '.~tmp~'));
    await writeFile(path.join(rel, '.~tmp~', 'partial'), 'rsync partial');
    await writeFile(path.join(rel, '.nfs000123'), 'nfs silly rename');
    await writeFile(path.join(rel, '.releng-tmp-1-ab-lix.tar.xz'), 'half');
    for (const n of ['fullfiletimelist-lix', 'fullfilelist', 'imagelist-lix', 'fullfiletimelist-other']) await writeFile(path.join(dir, n), 'a list');
    // A list name below the top is an ordinary file (create-filelist -s skips only at the top).
    await writeFile(path.join(rel, 'fullfilelist'), 'not ours');
    // Hardlinks (Fedora's and Rocky's `hardlink` passes): two names, one file.
    await mkdir(path.join(dir, 'stable'));
    await link(path.join(rel, 'lix.tar.xz'), path.join(dir, 'stable', 'lix.tar.xz'));
    // mtime in the past: the listed time is the newer ctime (now), as create-filelist's max(mtime, ctime).
    await utimes(path.join(rel, 'lix.tar.xz'), 1000, 1000);
  });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  it('is scanned as create-filelist does: post-order, f/d/l, sizes; no lists, .releng/, .~tmp~, .nfs*, temp files or dangling links', async () => {
    const { entries: found, checksums } = await scanTree(dir, { checksums: ['SHA256SUMS'], algorithms: ['SHA1', 'MD5', 'SHA256', 'SHA512'] });
    expect(found.map((e) => `${e.type} ${e.path}`)).toEqual([
      'l latest-lix-2', 'f lix/lix-2.93.0/SHA256SUMS', 'f lix/lix-2.93.0/fullfilelist', 'f lix/lix-2.93.0/lix.tar.xz', 'd lix/lix-2.93.0', 'd lix',
      'f stable/lix.tar.xz', 'd stable',
    ]);
    const tar = found.find((e) => e.path.endsWith('lix-2.93.0/lix.tar.xz'))!;
    const linked = found.find((e) => e.path === 'stable/lix.tar.xz')!;
    expect(tar.size).toBe(100);
    expect(tar.time).toBeGreaterThan(1000);
    expect(linked).toMatchObject({ type: 'f', size: 100, time: tar.time }); // one inode: the same ctime
    const file = path.join(dir, 'lix', 'lix-2.93.0', 'SHA256SUMS');
    const sum = (tool: string) => execFileSync(tool, [file], { encoding: 'utf8' }).split(' ')[0];
    expect(checksums).toEqual([{ path: 'lix/lix-2.93.0/SHA256SUMS', digests: { SHA1: sum('sha1sum'), MD5: sum('md5sum'), SHA256: sum('sha256sum'), SHA512: sum('sha512sum') } }]);
  });

  it('plans the three lists at the module root, extras before the time list, and nothing when nothing changed', async () => {
    const store = fsStore();
    const config = configSchema.parse({
      project: 'lix', releaseJobs: { file: 'release.nix' }, profiles: { p: { systems: ['x86_64-linux'] } }, defaultProfile: 'p',
      environments: { m: { releasesBucket: `file://${dir}/lix`, cacheBucket: `file://${dir}/c`, docsBucket: `file://${dir}/d`, mirror: { fileLists: { lix: { root: `file://${dir}`, checksums: ['SHA256SUMS'] } } } } },
    });
    const settings = config.environments.m!.mirror!;
    for (const n of ['fullfiletimelist-lix', 'fullfilelist', 'imagelist-lix']) await rm(path.join(dir, n));
    const first = await planFileLists(store, settings);
    expect(first.plan.steps.map((s) => s.actions.map((a) => a.key))).toEqual([['fullfilelist', 'imagelist-lix'], ['fullfiletimelist-lix']]);
    expect(first.plan.steps.flat().flatMap((s) => s.actions).every((a) => a.bucket === dir && a.reason === 'new')).toBe(true);
    expect(first.results).toEqual([expect.objectContaining({ module: 'lix', changed: true, url: `file://${dir}/fullfiletimelist-lix` })]);
    for (const a of first.plan.steps.flatMap((s) => s.actions)) await store.put({ ...a, body: a.source as { text: string } });
    const plain = await readFile(path.join(dir, 'fullfilelist'), 'utf8');
    expect(plain.split('\n')[0]).toBe('./latest-lix-2');
    expect(await readFile(path.join(dir, 'imagelist-lix'), 'utf8')).toBe('./lix/lix-2.93.0/lix.tar.xz\n./stable/lix.tar.xz\n');
    const again = await planFileLists(store, settings);
    expect(again.plan.steps.flatMap((s) => s.actions)).toEqual([]);
    expect(again.plan.skipped.map((k) => k.reason)).toEqual(['file list unchanged', 'file list unchanged', 'file list unchanged']);
    expect(again.results[0]!.changed).toBe(false);
    // A file removed from the tree: the lists change (the time list's [Files] and fullfilelist lose it).
    const before = (await stat(path.join(dir, 'fullfiletimelist-lix'))).mtimeMs;
    await rm(path.join(dir, 'stable'), { recursive: true });
    const after = await planFileLists(store, settings);
    expect(after.plan.steps.flatMap((s) => s.actions).map((a) => `${a.key} ${a.reason}`)).toEqual(['fullfilelist changed', 'imagelist-lix changed', 'fullfiletimelist-lix changed']);
    expect(renderPlainList((await scanTree(dir, { checksums: [], algorithms: [] })).entries)).not.toContain('stable');
    expect((await stat(path.join(dir, 'fullfiletimelist-lix'))).mtimeMs).toBe(before); // planning writes nothing
  });
});
