// A local memo of file hashes keyed by path and the file's full identity (device, inode, size,
// mtime and ctime in nanoseconds), so a re-run (the no-op upload of issue 6) stats files instead
// of re-reading them. A cache only: anything unreadable or stale is ignored and the file is hashed
// again; sha256 in object metadata stays the truth. Issue 9: a byte flipped with the size and
// mtime put back (utimes) still changes ctime, so it is never served from the memo.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { FileDigest } from './checksums.ts';

/** Files modified this recently are not memoised: a write in the same mtime tick would go unseen (git's "racy" entries). */
const RACY_MS = 2000;

export interface HashCache {
  /** The remembered sha256 of `file`, if its device, inode, size, mtime and ctime are what they were when hashed. */
  get(file: string, st: BigIntStats): string | undefined;
  /** The remembered digest (sha256, and MD5 when it was computed) under the same rule. */
  getDigest(file: string, st: BigIntStats): FileDigest | undefined;
  set(file: string, st: BigIntStats, sha256: string, md5?: string): void;
  /** Writes the memo (atomically) if anything changed. */
  save(): Promise<void>;
  /** The memo's path (named in errors when saving fails). */
  readonly file: string;
}

// [dev, ino, size, mtimeNs, ctimeNs, sha256, md5 base64 or '']
type Entry = [string, string, string, string, string, string, string];
// The envelope is parsed with zod; each entry is checked when it is looked up (isEntry): a zod
// tuple per entry cost ~15 µs, 30 ms for the bench's 2,000 files on every run (issue 16), for
// entries most runs read once. A malformed entry is ignored (the file is hashed again), as before.
const fileSchema = z.object({ version: z.literal(2), files: z.record(z.string(), z.unknown()) });
const SHA256 = /^[0-9a-f]{64}$/;
function isEntry(e: unknown): e is Entry {
  return Array.isArray(e) && e.length === 7 && e.every((v) => typeof v === 'string') && SHA256.test(e[5]);
}

const stamp = (st: BigIntStats) => [String(st.dev), String(st.ino), String(st.size), String(st.mtimeNs), String(st.ctimeNs)] as const;

/** Opens (or starts) the memo in `dir`/hashes.json; a missing, old or corrupt file means an empty memo. */
export async function openHashCache(dir: string, opts: { racyMs?: number } = {}): Promise<HashCache> {
  const racyMs = opts.racyMs ?? RACY_MS;
  const file = path.join(dir, 'hashes.json');
  let files: Record<string, unknown> = {};
  try {
    const parsed = fileSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    if (parsed.success) files = parsed.data.files;
  } catch { /* missing or not JSON: start empty, files get hashed */ }
  let dirty = false;
  const getDigest = (f: string, st: BigIntStats): FileDigest | undefined => {
    const e = files[f];
    if (!isEntry(e)) return undefined;
    const s = stamp(st);
    if (!s.every((v, i) => e[i] === v)) return undefined;
    return { sha256: e[5], ...(e[6] ? { md5: e[6] } : {}), size: Number(st.size) };
  };
  return {
    file,
    getDigest,
    get: (f, st) => getDigest(f, st)?.sha256,
    set(f, st, sha256, md5) {
      if (Date.now() - Number(st.mtimeMs) < racyMs || Date.now() - Number(st.ctimeMs) < racyMs) return;
      files[f] = [...stamp(st), sha256, md5 ?? ''];
      dirty = true;
    },
    async save() {
      if (!dirty) return;
      await mkdir(dir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify({ version: 2, files }));
      await rename(tmp, file);
      dirty = false;
    },
  };
}
