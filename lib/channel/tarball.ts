// The channel tarball with programs.sqlite in it, as the NixOS mirror makes it (unpack
// nixexprs.tar.xz, add TOPDIR/programs.sqlite, pack again), but reproducible: members sorted by name,
// owner and group 0, the added file dated at the commit time, one compressor thread. The same inputs
// give the same bytes, so a re-run after a crash finds the files already uploaded.
import { copyFile, lstat, mkdir, readdir, rename, rm, utimes } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { MissingToolError, ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';

/** Unpacks a channel tarball (.tar.xz or .tar.zst) into `dir`; returns its one top directory. */
export async function unpackChannelTarball(file: string, dir: string, shownAs: string): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const decompress = file.endsWith('.zst') ? ['--zstd'] : ['--xz'];
  await run('tar', ['-x', ...decompress, '--no-same-owner', '-f', file, '-C', dir]);
  const top = await readdir(dir);
  if (top.length !== 1 || !(await lstat(path.join(dir, top[0]!))).isDirectory()) {
    throw new ReleaseError(`${shownAs} holds ${top.length === 1 ? 'one file' : `${top.length} entries`} at its top (${top.slice(0, 5).join(', ')}), not one directory`,
      'channel tarballs have one directory (nixos-VERSION/); is channels.kinds[].programs.tarballs right? nothing was published');
  }
  return path.join(dir, top[0]!);
}

/** Packs `topDir` (with programs.sqlite copied in, dated `mtime`) into `dest`, compressed by its extension. */
export async function packChannelTarball(opts: { topDir: string; programsDb: string; dest: string; mtime: Date }): Promise<void> {
  const inside = path.join(opts.topDir, 'programs.sqlite');
  await copyFile(opts.programsDb, inside);
  await utimes(inside, opts.mtime, opts.mtime);
  const compressor = opts.dest.endsWith('.zst') ? ['zstd', ['-q', '-19', '-T1', '-c']] as const : ['xz', ['-c', '-6', '-T1']] as const;
  const tmp = `${opts.dest}.tmp`;
  try {
    const tar = execa('tar', ['--sort=name', '--format=gnu', '--owner=0', '--group=0', '--numeric-owner', '-C', path.dirname(opts.topDir), '-cf', '-', path.basename(opts.topDir)],
      { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
    const packed = tar.pipe(compressor[0], [...compressor[1]], { stdout: { file: tmp }, stderr: 'pipe' });
    await packed;
    await rename(tmp, opts.dest);
  } catch (e: any) {
    await rm(tmp, { force: true });
    if (e?.code === 'ENOENT') throw new MissingToolError(e?.path ?? compressor[0], compressor[0] === 'xz' ? 'xz-utils' : compressor[0]);
    throw new ReleaseError(`cannot pack ${opts.dest}: ${String(e?.shortMessage ?? e?.message ?? e)}${e?.stderr ? `\n  ${String(e.stderr).trim().split('\n').slice(-5).join('\n  ')}` : ''}`, 'nothing was published');
  }
}
