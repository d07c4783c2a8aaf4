// A local memo of file hashes keyed by path, size, mtime, ctime and inode, so a re-run (the no-op
// upload of issue 6) stats files instead of re-reading them. A cache only: anything unreadable or
// stale is ignored and the file is hashed again; sha256 in object metadata stays the truth.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/** Files modified this recently are not memoised: a write in the same mtime tick would go unseen (git's "racy" entries). */
const RACY_MS = 2000;

export interface HashCache {
  /** The remembered sha256 of `file`, if its size, mtime, ctime and inode are what they were when hashed. */
  get(file: string, st: BigIntStats): string | undefined;
  set(file: string, st: BigIntStats, sha256: string): void;
  /** Writes the memo (atomically) if anything changed. */
  save(): Promise<void>;
}

const entry = z.tuple([z.string(), z.string(), z.string(), z.string(), z.string().regex(/^[0-9a-f]{64}$/)]);
const fileSchema = z.object({ version: z.literal(1), files: z.record(z.string(), entry) });

const stamp = (st: BigIntStats) => [String(st.size), String(st.mtimeNs), String(st.ctimeNs), String(st.ino)] as const;

/** Opens (or starts) the memo in `dir`/hashes.json; a missing or corrupt file means an empty memo. */
export async function openHashCache(dir: string, opts: { racyMs?: number } = {}): Promise<HashCache> {
  const racyMs = opts.racyMs ?? RACY_MS;
  const file = path.join(dir, 'hashes.json');
  let files: Record<string, z.infer<typeof entry>> = {};
  try {
    const parsed = fileSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    if (parsed.success) files = parsed.data.files;
  } catch { /* missing or not JSON: start empty, files get hashed */ }
  let dirty = false;
  return {
    get(f, st) {
      const e = files[f];
      if (!e) return undefined;
      const s = stamp(st);
      return e[0] === s[0] && e[1] === s[1] && e[2] === s[2] && e[3] === s[3] ? e[4] : undefined;
    },
    set(f, st, sha256) {
      if (Date.now() - Number(st.mtimeMs) < racyMs || Date.now() - Number(st.ctimeMs) < racyMs) return;
      files[f] = [...stamp(st), sha256];
      dirty = true;
    },
    async save() {
      if (!dirty) return;
      await mkdir(dir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify({ version: 1, files }));
      await rename(tmp, file);
      dirty = false;
    },
  };
}
