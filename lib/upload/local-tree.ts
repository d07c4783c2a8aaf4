// Local file trees to publish: walk a directory, hash each file (streaming, a few at a time).
import { readFileSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { ReleaseError } from '../core/errors.ts';
import path from 'node:path';
import { forEachLimited } from '../core/each.ts';
import { digestBytes, digestFile, SYNC_READ_MAX_BYTES, wantsMd5, type Md5Wanted } from '../hashing/checksums.ts';
import type { HashCache } from '../hashing/hash-cache.ts';
import { flatString } from '../core/heap.ts';
import type { LocalFile } from '../s3/sync.ts';

/** Files read synchronously, whole (lib/hashing/checksums.ts SYNC_READ_MAX_BYTES). */
const SMALL_FILE = BigInt(SYNC_READ_MAX_BYTES);
/** The order of localeCompare (same default collator), without building one per comparison: ~10× faster on thousands of keys. */
const byLocale = new Intl.Collator();

export interface LocalTreeOptions {
  /** Remembered hashes (lib/hashing/hash-cache.ts): unchanged files are stat'ed, not re-read. */
  hashCache?: HashCache;
  /** Also compute MD5s in the same read: every file's (Content-MD5), or those a listing proof pays for ('proof'). */
  md5?: Md5Wanted;
}

/** Every regular file below `dir`, as LocalFile with `/`-separated relative keys, sorted. */
export async function localTree(dir: string, concurrency = 4, opts: LocalTreeOptions = {}): Promise<LocalFile[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  // Flat strings: each path is kept for the whole run, as the put's source (lib/core/heap.ts).
  const files = entries.filter((e) => e.isFile()).map((e) => flatString(path.join(e.parentPath ?? (e as any).path, e.name)));
  // A symlink would be published as nothing at all: refuse the tree rather than publish it incomplete.
  const links = entries.filter((e) => e.isSymbolicLink()).map((e) => path.join(e.parentPath ?? (e as any).path, e.name));
  if (links.length) throw new ReleaseError(`${dir} contains symbolic links, which cannot be uploaded as they are: ${links.slice(0, 5).join(', ')}${links.length > 5 ? ', ...' : ''}`, 'dereference them when laying out the tree (build copies the manual with links followed)');
  const { hashCache } = opts;
  const below = path.sep === '/' ? path.join(dir, '/') : '\0';
  // The key below `dir`: a slice of the path (no string of its own) where the path starts with it.
  const relOf = (abs: string) => abs.startsWith(below) ? abs.slice(below.length) : path.relative(dir, abs).split(path.sep).join('/');
  const out = new Array<LocalFile>(files.length);
  // Remembered and small files in one synchronous pass; large files after it, streamed
  // `concurrency` at a time. No promise per file: 100,000 of them (Promise.all) were ~100 MiB of
  // heap at once, a no-op upload's peak (issue 31).
  const large: number[] = [];
  files.forEach((abs, n) => {
    const st = statSync(abs, { bigint: true });
    let d = hashCache?.getDigest(abs, st);
    const md5 = wantsMd5(opts.md5, st.size);
    if (!d || (md5 && !d.md5)) {
      if (st.size > SMALL_FILE) { large.push(n); return; }
      d = digestBytes(readFileSync(abs), { md5 });
      hashCache?.set(abs, st, d.sha256, d.md5);
    }
    out[n] = { rel: relOf(abs), source: { file: abs }, size: Number(st.size), sha256: d.sha256, ...(d.md5 ? { md5: d.md5 } : {}) };
  });
  await forEachLimited(large, concurrency, async (n) => {
    const abs = files[n]!;
    const st = statSync(abs, { bigint: true });
    const md5 = wantsMd5(opts.md5, st.size);
    const d = await digestFile(abs, { md5 });
    hashCache?.set(abs, st, d.sha256, d.md5);
    out[n] = { rel: relOf(abs), source: { file: abs }, size: Number(st.size), sha256: d.sha256, ...(d.md5 ? { md5: d.md5 } : {}) };
  });
  return out.sort((a, b) => byLocale.compare(a.rel, b.rel));
}
