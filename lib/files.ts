// Local file trees to publish: walk a directory, hash each file (streaming, a few at a time).
import { readFile } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import pLimit from 'p-limit';
import { sha256File, sha256Text } from './checksums.ts';
import type { HashCache } from './hash-cache.ts';
import type { LocalFile } from './s3/sync.ts';

const readWhole = promisify(readFile);
/** Files up to this size are read whole to hash them (bounded memory: `concurrency` of them at once). */
const SMALL_FILE = 1024n * 1024n;

export interface LocalTreeOptions {
  /** Remembered hashes (lib/hash-cache.ts): unchanged files are stat'ed, not re-read. */
  hashCache?: HashCache;
}

/** Every regular file below `dir`, as LocalFile with `/`-separated relative keys, sorted. */
export async function localTree(dir: string, concurrency = 4, opts: LocalTreeOptions = {}): Promise<LocalFile[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  const files = entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? (e as any).path, e.name));
  const { hashCache } = opts;
  // Stats are cheap and hashing is CPU-bound: stat widely, hash `concurrency` at a time.
  const statLimit = pLimit(64);
  const hashLimit = pLimit(concurrency);
  const out = await Promise.all(files.map((abs) => statLimit(async () => {
    const st = await stat(abs, { bigint: true });
    let sha256 = hashCache?.get(abs, st);
    if (!sha256) {
      // Small files in one read (callback readFile: fewer round trips than a stream or fs/promises).
      sha256 = await hashLimit(async () => (st.size <= SMALL_FILE ? sha256Text(await readWhole(abs)) : sha256File(abs)));
      hashCache?.set(abs, st, sha256);
    }
    return { rel: path.relative(dir, abs).split(path.sep).join('/'), source: { file: abs }, size: Number(st.size), sha256 };
  })));
  return out.sort((a, b) => a.rel.localeCompare(b.rel));
}
