// `releng sha256 FILE...`: the sha256 of each file as releng computes it before an upload
// (lib/hashing/checksums.ts digestFile: all at once, large ones on the main thread and a hash worker),
// printed as `sha256sum` does, so `sha256sum -c` reads the output. For checking an
// artifact by hand, and for the bench's hashing arm (the real CLI against `openssl dgst`).
import path from 'node:path';
import type { BareRun } from '../config/context.ts';
import { digestFile, POOL_FILE_MIN_BYTES } from '../hashing/checksums.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { hashPool } from '../hashing/pool.ts';

export interface Sha256Result {
  files: Array<{ file: string; sha256: string; size: number; md5?: string }>;
  /** Hash workers started (0: every file was below the pool's threshold). */
  workers: number;
}

export async function sha256(io: BareRun): Promise<Sha256Result> {
  if (io.positionals.length === 0) throw new UsageError('releng sha256 needs at least one FILE (e.g. `releng sha256 release/artifacts/*/*.tar.xz`)');
  const md5 = !!io.flags.extra.md5;
  const files = await Promise.all(io.positionals.map(async (f) => {
    const abs = path.resolve(io.cwd, f);
    try {
      const d = await digestFile(abs, { md5 });
      return { file: f, ...d };
    } catch (e: any) {
      if (e?.code === 'ENOENT') throw new ReleaseError(`${f}: no such file`, 'name files that exist');
      if (e?.code === 'EISDIR') throw new ReleaseError(`${f}: a directory, not a file`, 'name the files in it');
      throw e;
    }
  }));
  if (!io.flags.json) for (const f of files) io.stdout.write(`${f.sha256}  ${f.file}${f.md5 ? `  md5:${f.md5}` : ''}\n`);
  io.log.debug(`hashed ${files.length} file(s); files from ${POOL_FILE_MIN_BYTES} bytes by ${hashPool().stats.workers} hash worker(s)`);
  return { files, workers: hashPool().stats.workers };
}
