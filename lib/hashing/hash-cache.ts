// A local memo of file hashes keyed by path and the file's full identity (device, inode, size,
// mtime and ctime in nanoseconds), so a re-run (the no-op upload of issue 6) stats files instead
// of re-reading them. A cache only: anything unreadable or stale is ignored and the file is hashed
// again; sha256 in object metadata stays the truth. Issue 9: a byte flipped with the size and
// mtime put back (utimes) still changes ctime, so it is never served from the memo.
import { mkdir, readFile, rename } from 'node:fs/promises';
import { writePieces } from '../core/heap.ts';
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
  /**
   * Saves the memo (when `save`; a failure is thrown, the memo let go all the same) and lets go of
   * its table: from then on nothing is remembered, set or saved. For a run that hashes nothing more
   * (upload, once planned): 100,000 files are ~20 MiB of heap held for nothing (issue 31).
   */
  release(opts: { save: boolean }): Promise<void>;
  /** The memo's path (named in errors when saving fails). */
  readonly file: string;
}

// Version 4: keyed by the file's identity, "dev:ino", one string each: "size:mtimeNs:ctimeNs:sha256:md5"
// (md5 base64, or empty). Version 2 held an array of 7 strings per path, about 500 bytes of heap each;
// a 100,000-page manual is 200,000 paths (release/manual and its hard links under the version
// directory) but 100,000 files, now about 110 bytes each (issue 31). Hard links of one file share
// its entry: they are the same bytes. The envelope is parsed with zod; each entry is checked when it
// is looked up (a zod schema per entry cost ~15 µs each, issue 16). An old or malformed entry is
// ignored (the file is hashed again).
const fileSchema = z.object({ version: z.literal(4), files: z.record(z.string(), z.unknown()) });
const SHA256 = /^[0-9a-f]{64}$/;

/** The key of a file: its device and inode. */
const idOf = (st: BigIntStats) => [st.dev, st.ino].join(':');
/** The rest of its identity, ending with ':' (the sha256 follows). */
const stamp = (st: BigIntStats) => [st.size, st.mtimeNs, st.ctimeNs, ''].join(':');

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
  let released = false;
  const getDigest = (_file: string, st: BigIntStats): FileDigest | undefined => {
    const e = files[idOf(st)];
    if (typeof e !== 'string') return undefined;
    const s = stamp(st);
    if (!e.startsWith(s)) return undefined;
    const sha256 = e.slice(s.length, s.length + 64);
    if (!SHA256.test(sha256) || (e.length > s.length + 64 && e[s.length + 64] !== ':')) return undefined;
    const md5 = e.slice(s.length + 65);
    return { sha256, ...(md5 ? { md5 } : {}), size: Number(st.size) };
  };
  return {
    file,
    getDigest,
    get: (f, st) => getDigest(f, st)?.sha256,
    set(_file, st, sha256, md5) {
      if (released) return;
      if (Date.now() - Number(st.mtimeMs) < racyMs || Date.now() - Number(st.ctimeMs) < racyMs) return;
      // join: one flat string (a template literal leaves a tree of cons strings, kept for the whole run).
      files[idOf(st)] = [stamp(st) + sha256, md5 ?? ''].join(':');
      dirty = true;
    },
    async release({ save }) {
      try { if (save) await saveNow(); } finally { files = {}; dirty = false; released = true; }
    },
    save: () => saveNow(),
  };
  async function saveNow(): Promise<void> {
    if (!dirty || released) return;
    await mkdir(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    // The JSON of { version: 4, files } an entry at a time: no 15 MB string at 100,000 files (issue 31).
    await writePieces(tmp, (function* json() {
      yield '{"version":4,"files":{';
      let first = true;
      for (const id in files) {
        yield `${first ? '' : ','}${JSON.stringify(id)}:${JSON.stringify(files[id])}`;
        first = false;
      }
      yield '}}';
    })());
    await rename(tmp, file);
    dirty = false;
  }
}
