// The staged binary cache checked against its sources before any write (issue 25): every narinfo
// and .ls that upload would send (the compressed copy where there is one, read as a client reads
// it) against what the local Nix store says of the path (NarHash, NarSize, References, CA; the
// NAR listing from the path's file tree) and the environment's signing key (a Sig by it that
// verifies). The staged NARs are checked against their narinfos by planCache (FileHash, FileSize).
// A staged file that was changed after Nix wrote it (same size, mtime kept: the staging memo does
// not see it) is no longer trusted: upload removes it and stages the path again.
// A memo of the paths that passed (issue 31) skips the check, and `nix path-info`, for a path whose
// staged files and store path are the very files checked: same device, inode, size, mtime and
// ctime (as the hash memo, lib/hashing/hash-cache.ts: a byte changed with the mtime put back still
// changes ctime), under the same key and compressions.
import { lstatSync, readdirSync, type BigIntStats } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { forEachLimited } from '../core/each.ts';
import { encodedDirName, hashPart, readCacheMetadata } from '../nix/cache.ts';
import { checkNarInfoSignature, parseNarInfoStrict, parseNixPublicKey } from '../nix/narinfo.ts';
import { z } from 'zod';
import { listingDifference, type ListingNode, type StorePathInfo } from '../nix/store-info.ts';

/** The local store's word on paths (lib/nix/store-info.ts; injectable). */
export interface StoreFacts {
  infos(paths: string[]): Promise<Map<string, StorePathInfo>>;
  listing(storePath: string): Promise<{ root: ListingNode; narSize: number }>;
}

/** Where the memo of passed checks is kept; files changed this recently are not memoised (git's "racy" entries). */
export interface StagedCheckMemo {
  file: string;
  racyMs?: number;
}

const RACY_MS = 2000;

export interface StagedProblem {
  storePath: string;
  /** The staged file that is wrong (as upload would send it). */
  file: string;
  problem: string;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
/** The names in a directory (none when it is missing): one read instead of a stat per file. */
export function namesIn(dir: string): Set<string> {
  try { return new Set(readdirSync(dir)); } catch (e: any) {
    if (e?.code === 'ENOENT') return new Set();
    throw e;
  }
}

/**
 * Every staged narinfo and .ls of `paths` that does not say what the store says, or is not signed
 * by `publicKey`. Reads only (the staged files, the store's records, the paths' file trees).
 * `vouch` is told, for each path that passed (now or by the memo), its narinfo file and that file's
 * identity as checked, when the identity is settled (not changed within the racy window): the same
 * identity later means the same bytes, whose signature by `publicKey` was checked (the closing
 * verification then need not check it again, lib/verify/cache.ts).
 */
export async function stagedCacheProblems(stagingDir: string, paths: string[], o: { publicKey: string; store: StoreFacts; narinfoCompression?: string; lsCompression?: string; memo?: StagedCheckMemo; vouch?: (narinfoFile: string, identity: string) => void }): Promise<StagedProblem[]> {
  const key = parseNixPublicKey(o.publicKey);
  const storeDir = paths.length ? path.dirname(paths[0]!) : '/nix/store';
  const problems: StagedProblem[] = [];
  // The staging directory's names, read once: a stat per file on the thread pool cost more CPU
  // than the check itself on a closure of 10,000 paths (issue 31).
  const stagedNames = namesIn(stagingDir);
  const encodedNames = namesIn(path.join(stagingDir, encodedDirName));
  const uploaded = (name: string) => encodedNames.has(name) ? path.join(stagingDir, encodedDirName, name) : path.join(stagingDir, name);
  const memoKey = [o.publicKey, o.narinfoCompression ?? '', o.lsCompression ?? '', stagingDir].join('\0');
  const passed = o.memo ? await readMemo(o.memo.file, memoKey) : {};
  // The files upload sends for each path (the compressed copy where there is one), and their stamps
  // (synchronous lstats: microseconds each from the inode cache).
  const sent = new Map<string, SentFiles>();
  const stamps = new Map<string, Stamp | undefined>();
  const racyMs = o.memo?.racyMs ?? RACY_MS;
  for (const p of paths) {
    const lsName = `${hashPart(p)}.ls`;
    const files: SentFiles = stagedNames.has(lsName) ? { narinfo: uploaded(`${hashPart(p)}.narinfo`), ls: uploaded(lsName) } : { narinfo: uploaded(`${hashPart(p)}.narinfo`) };
    sent.set(p, files);
    if (o.memo || o.vouch) stamps.set(p, stampOf(p, files, racyMs));
  }
  const toCheck = paths.filter((p) => !o.memo || stamps.get(p) === undefined || passed[p] !== stamps.get(p)?.text);
  const infos = toCheck.length ? await o.store.infos(toCheck) : new Map<string, StorePathInfo>();
  await forEachLimited(toCheck, 8, async (p) => {
    const add = (file: string, problem: string) => problems.push({ storePath: p, file, problem });
    const want = infos.get(p);
    const { narinfo: narinfoFile, ls: lsFile } = sent.get(p)!;
    if (!want) { add(narinfoFile, `${p} is not valid in the local store`); return; }
    let text: string;
    try { text = (await readCacheMetadata(narinfoFile, o.narinfoCompression)).text; } catch (e: any) {
      add(narinfoFile, e?.code === 'ENOENT' ? 'missing' : `unreadable: ${e?.message ?? e}`);
      return;
    }
    const { info, problems: bad } = parseNarInfoStrict(text, storeDir);
    if (!info) { add(narinfoFile, `does not parse: ${bad.join('; ')}`); return; }
    const refs = (r: string[]) => [...r].sort().join(' ');
    if (info.storePath !== p) add(narinfoFile, `StorePath ${info.storePath}, expected ${p}`);
    else if (!sameBytes(info.narHash, want.narHash)) add(narinfoFile, 'its NarHash is not the store path\'s');
    else if (info.narSize !== want.narSize) add(narinfoFile, `NarSize ${info.narSize}, the store says ${want.narSize}`);
    else if (refs(info.references) !== refs(want.references)) add(narinfoFile, `References ${refs(info.references) || '(none)'}, the store says ${refs(want.references) || '(none)'}`);
    else if ((info.ca ?? '') !== (want.ca ?? '')) add(narinfoFile, `CA ${info.ca ?? '(none)'}, the store says ${want.ca ?? '(none)'}`);
    else {
      const sig = checkNarInfoSignature(info, key);
      if (!sig.ok) add(narinfoFile, `not signed by the environment's key: ${sig.why}`);
    }
    if (!lsFile) return;
    let listing: any;
    try { listing = JSON.parse((await readCacheMetadata(lsFile, o.lsCompression)).text); } catch (e: any) {
      add(lsFile, `not a NAR listing: ${e?.message ?? e}`);
      return;
    }
    const tree = await o.store.listing(p);
    const diff = listing?.version !== 1 ? `version ${JSON.stringify(listing?.version)}, expected 1` : listingDifference(listing.root, tree.root);
    if (diff) add(lsFile, `does not list the store path: ${diff}`);
  });
  const failed = new Set(problems.map((b) => b.storePath));
  if (o.vouch) for (const p of paths) { const st = stamps.get(p); if (st && !failed.has(p)) o.vouch(sent.get(p)!.narinfo, st.narinfo); }
  if (o.memo) {
    const now: Record<string, string> = {};
    for (const p of paths) { const st = stamps.get(p); if (st !== undefined && !failed.has(p)) now[p] = st.text; }
    if (JSON.stringify(now) !== JSON.stringify(passed)) await writeMemo(o.memo.file, memoKey, now);
  }
  return problems.sort((a, b) => a.file.localeCompare(b.file));
}

/** The identity of a file: device, inode, size, mtime and ctime (ns). */
export const fileIdentity = (st: BigIntStats) => [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].join(':');

/** The staged narinfo and .ls (when there is one) of a store path, as upload sends them. */
interface SentFiles { narinfo: string; ls?: string }

/** A path's stamp (text: what the memo keeps) and its narinfo file's identity alone (for `vouch`). */
interface Stamp { text: string; narinfo: string }

/**
 * The stamp of path `p`'s check: the identities of its sent files and of the store path. Undefined
 * (not memoised) when a file is missing or was changed within `racyMs` (a write in the same
 * timestamp tick would go unseen).
 */
function stampOf(p: string, sent: SentFiles, racyMs: number): Stamp | undefined {
  try {
    const files = [sent.narinfo, ...(sent.ls ? [sent.ls] : [])];
    const stats = files.map((f) => lstatSync(f, { bigint: true }));
    const recent = Date.now() - racyMs;
    if (stats.some((st) => Number(st.mtimeMs) > recent || Number(st.ctimeMs) > recent)) return undefined;
    const store = lstatSync(p, { bigint: true });
    const ids = stats.map(fileIdentity);
    return { text: [...files.map((f, i) => `${f}=${ids[i]}`), `${p}=${fileIdentity(store)}`].join(' '), narinfo: ids[0]! };
  } catch { return undefined; }
}

const memoSchema = z.object({ version: z.literal(1), key: z.string(), passed: z.record(z.string(), z.string()) });

/** The memo's passed paths under `key`; missing, corrupt or of another key: none. */
async function readMemo(file: string, key: string): Promise<Record<string, string>> {
  try {
    const m = memoSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    return m.success && m.data.key === key ? m.data.passed : {};
  } catch { return {}; }
}

async function writeMemo(file: string, key: string, passed: Record<string, string>): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ version: 1, key, passed }));
  await rename(tmp, file);
}
