// fullfiletimelist in quick-fedora-mirror's format 2 (Fedora's create-filelist): golden text of a
// tree with a file, a directory and a symlink, post-order, newer of mtime/ctime, checksums of chosen files.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFileList, renderFileList, scanTree } from '../../../lib/mirror/filelist.ts';
import { expectGolden } from '../../helpers/golden.ts';

describe('file lists', () => {
  it('renders format version 2 (golden)', async () => {
    const text = renderFileList([
      { time: 1700000000, type: 'f', size: 1493, path: 'lix/lix-2.93.0/SHA256SUMS' },
      { time: 1700000001, type: 'd', size: 4096, path: 'lix/lix-2.93.0' },
      { time: 1700000001, type: 'd', size: 4096, path: 'lix' },
      { time: 1700000002, type: 'l', size: 12, path: 'latest-lix-2' },
      { time: 1700000003, type: 'f', size: 120, path: 'manifest.nix' },
    ], [
      { path: 'manifest.nix', sha1: 'b'.repeat(40), sha256: 'd'.repeat(64) },
      { path: 'lix/lix-2.93.0/SHA256SUMS', sha1: 'a'.repeat(40), sha256: 'c'.repeat(64) },
    ]);
    await expectGolden(text, 'fullfiletimelist-lix');
    expect(parseFileList(text).map((e) => e.path)).toEqual(['lix/lix-2.93.0/SHA256SUMS', 'lix/lix-2.93.0', 'lix', 'latest-lix-2', 'manifest.nix']);
  });

  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-filelist-'));
    await mkdir(path.join(dir, 'lix', 'lix-2.93.0'), { recursive: true });
    await writeFile(path.join(dir, 'lix', 'lix-2.93.0', 'SHA256SUMS'), 'sums\n');
    await writeFile(path.join(dir, 'lix', 'lix-2.93.0', 'lix.tar.xz'), 'x'.repeat(100));
    await symlink('lix/lix-2.93.0/', path.join(dir, 'latest-lix-2'));
    await mkdir(path.join(dir, '.releng', 'meta'), { recursive: true });
    await writeFile(path.join(dir, '.releng', 'meta', 'x.json'), '{}');
    await writeFile(path.join(dir, 'fullfiletimelist-lix'), 'old list');
    // mtime in the past: the listed time is the newer ctime (now), as create-filelist's max(mtime, ctime).
    await utimes(path.join(dir, 'lix', 'lix-2.93.0', 'lix.tar.xz'), 1000, 1000);
  });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  it('scans a tree as create-filelist does: post-order, f/d/l, sizes, no list and no .releng/', async () => {
    const { entries, checksums } = await scanTree(dir, ['SHA256SUMS']);
    expect(entries.map((e) => `${e.type} ${e.path}`)).toEqual([
      'l latest-lix-2', 'f lix/lix-2.93.0/SHA256SUMS', 'f lix/lix-2.93.0/lix.tar.xz', 'd lix/lix-2.93.0', 'd lix',
    ]);
    const tar = entries.find((e) => e.path.endsWith('lix.tar.xz'))!;
    expect(tar.size).toBe(100);
    expect(tar.time).toBeGreaterThan(1000);
    const sha1 = execFileSync('sha1sum', [path.join(dir, 'lix', 'lix-2.93.0', 'SHA256SUMS')], { encoding: 'utf8' }).split(' ')[0];
    const sha256 = execFileSync('sha256sum', [path.join(dir, 'lix', 'lix-2.93.0', 'SHA256SUMS')], { encoding: 'utf8' }).split(' ')[0];
    expect(checksums).toEqual([{ path: 'lix/lix-2.93.0/SHA256SUMS', sha1, sha256 }]);
  });
});
