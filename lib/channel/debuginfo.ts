// The debug-info index of a binary cache, as the NixOS mirror keeps it (index-debuginfo): for every
// ELF debug file lib/debug/.build-id/XX/YYYY….debug in a debug output, the object
// `debuginfo/XXYYYY…` in the cache bucket holds {"archive":"../nar/….nar.xz","member":"lib/debug/…"}:
// the NAR holding it, relative to that object, and the file inside. dwarffs and
// nixseparatedebuginfod fetch debuginfo/BUILDID, then the archive, and take the member out of it.
// An entry that exists is never replaced: the same content is skipped, another build's entry (the
// same build id from another store path) is kept and reported.
import pLimit from 'p-limit';
import type { Skip } from '../core/plan.ts';
import { ReleaseError } from '../core/errors.ts';
import { sha256Text } from '../hashing/checksums.ts';
import type { BucketRef } from '../environment/open.ts';
import type { S3Put } from '../s3/actions.ts';
import type { S3Reader } from '../s3/store.ts';
import type { ListingSource, PathFacts } from './listings.ts';
import type { ListingMemo } from './listing-memo.ts';

/** The debug outputs among a release's store paths (Hydra lists every output of every successful build). */
export function debugOutputs(storePaths: Iterable<string>): string[] {
  return [...new Set([...storePaths].filter((p) => /^\/nix\/store\/[0-9a-z]{32}-[^/]+-debug$/.test(p)))].sort();
}

/** The body of debuginfo/BUILDID (keys in this order, compact: what the mirror's nlohmann::json dump writes). */
export function debugInfoEntry(narUrl: string, member: string): string {
  return JSON.stringify({ archive: `../${narUrl}`, member });
}

export interface DebugInfoEntry {
  key: string;
  body: string;
  storePath: string;
}

/** Facts and NAR URL of a debug output: the memo first, then the cache. */
async function debugFacts(storePath: string, source: ListingSource, memo: ListingMemo | undefined): Promise<{ facts?: PathFacts; narUrl?: string }> {
  const seen = memo?.get(storePath);
  let facts = seen?.facts;
  if (!facts) {
    facts = await source.facts(storePath);
    if (facts) memo?.put(storePath, facts);
  }
  memo?.used(storePath);
  if (!facts?.debug.length) return { facts };
  let narUrl = seen?.narUrl;
  if (!narUrl) {
    narUrl = await source.narUrl(storePath);
    if (narUrl) memo?.putNarUrl(storePath, narUrl);
  }
  return { facts, narUrl };
}

/** Every entry the debug outputs call for (reads the listings and narinfos, bounded). */
export async function debugInfoEntries(opts: { storePaths: string[]; source: ListingSource; memo?: ListingMemo; cache: BucketRef; concurrency?: number; skipped?: Skip[] }): Promise<DebugInfoEntry[]> {
  const limit = pLimit(opts.concurrency ?? 32);
  const entries: DebugInfoEntry[] = [];
  let missing = 0;
  await Promise.all(opts.storePaths.map((p) => limit(async () => {
    const { facts, narUrl } = await debugFacts(p, opts.source, opts.memo);
    if (!facts) { missing++; return; }
    if (!facts.debug.length) return;
    if (!narUrl) { missing++; return; }
    if (!/^nar\/[^/]+$/.test(narUrl)) throw new ReleaseError(`the narinfo of ${p} in ${opts.source.url} has URL ${narUrl}, not nar/FILE`, 'debuginfo entries point at ../nar/FILE; nothing was published');
    for (const d of facts.debug) entries.push({ key: `${opts.cache.prefix}debuginfo/${d.buildId}`, body: debugInfoEntry(narUrl, d.member), storePath: p });
  })));
  if (missing) opts.skipped?.push({ what: `${missing} debug output${missing === 1 ? '' : 's'}`, reason: `not in the binary cache ${opts.source.url} (no listing or narinfo): not indexed` });
  entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  // The same build id in two debug outputs of one release: the first (by store path) wins, as the mirror's "exists: skip" would.
  const unique: DebugInfoEntry[] = [];
  for (const e of entries) if (unique.at(-1)?.key !== e.key) unique.push(e);
  return unique;
}

export interface DebugInfoPlan {
  puts: S3Put[];
  /** Entries already there with the same content. */
  present: number;
  /** Entries of another build kept as they are (key, what is there, what this release would write). */
  kept: Array<{ key: string; existing: string; wanted: string }>;
}

/** The writes of the debug-info index: new entries only (If-None-Match where the store has it). */
export async function planDebugInfo(opts: { entries: DebugInfoEntry[]; reader: S3Reader; cache: BucketRef; concurrency?: number }): Promise<DebugInfoPlan> {
  const limit = pLimit(opts.concurrency ?? 16);
  const plan: DebugInfoPlan = { puts: [], present: 0, kept: [] };
  await Promise.all(opts.entries.map((e) => limit(async () => {
    const existing = await opts.reader.getText(opts.cache.bucket, e.key);
    if (existing === undefined) {
      plan.puts.push({ kind: 's3.put', bucket: opts.cache.bucket, key: e.key, source: { text: e.body }, size: Buffer.byteLength(e.body), sha256: sha256Text(e.body), contentType: 'application/json', reason: 'new', createOnly: true });
    } else if (existing === e.body) {
      plan.present++;
    } else {
      plan.kept.push({ key: e.key, existing, wanted: e.body });
    }
  })));
  plan.puts.sort((a, b) => (a.key < b.key ? -1 : 1));
  plan.kept.sort((a, b) => (a.key < b.key ? -1 : 1));
  return plan;
}

/** Resolves an entry's archive against its own key (`debuginfo/ID` + `../nar/F` → `nar/F`), as dwarffs does; undefined if it leaves the bucket. */
export function archiveKeyOf(entryKey: string, archive: string): string | undefined {
  const parts = entryKey.split('/').slice(0, -1);
  for (const p of archive.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') { if (!parts.length) return undefined; parts.pop(); } else parts.push(p);
  }
  return parts.join('/');
}
