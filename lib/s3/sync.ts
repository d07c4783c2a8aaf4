// Plans the upload of local files under a bucket prefix: skip what is there with the same sha256,
// put what is new or different, and (for the manual) delete what is stale. Reads only.
import pLimit from 'p-limit';
import type { Skip } from '../actions.ts';
import type { S3Delete, S3Put } from './actions.ts';
import { contentHeadersFor } from './content-type.ts';
import type { RunKnowledge } from './knowledge.ts';
import { normalizeEtag, type UploadRecord } from './record.ts';
import type { RemoteObject, S3Reader } from './store.ts';

export interface LocalFile {
  /** Key relative to the prefix, `/`-separated. */
  rel: string;
  /** Absolute path on disk (or text for small generated objects). */
  source: { file: string } | { text: string };
  size: number;
  sha256: string;
  /** Base64 MD5 (read with the sha256): Content-MD5, the PUT's ETag check, and the closing verification's listing proof (issue 16). */
  md5?: string;
}

export interface SyncRequest {
  bucket: string;
  /** '' or ending with '/'. */
  prefix: string;
  files: LocalFile[];
  /** Delete remote objects under the prefix that are not local (manual sync). */
  deleteStale?: boolean;
  cacheControl?: string;
  /** HEAD requests in flight while comparing. */
  concurrency?: number;
  /**
   * What this machine uploaded before (lib/s3/record.ts): an object whose listed size and ETag
   * match its entry is compared by the recorded sha256, without a HEAD. Entries confirmed by a
   * HEAD are added to it (a local memo, not a publishing write; the caller saves it).
   */
  record?: UploadRecord;
  /** The listing of `prefix`, if the caller started it early (e.g. while hashing the files); else listed here. */
  listing?: Promise<RemoteObject[]>;
  /** Immutable keys (a release prefix): new objects are created with If-None-Match where the environment allows. */
  createOnly?: boolean;
  /** This run's knowledge (lib/s3/knowledge.ts): gets the files' MD5s and the prefix's listing, for the closing verification. */
  knowledge?: RunKnowledge;
}

export interface SyncPlan {
  puts: S3Put[];
  deletes: S3Delete[];
  skipped: Skip[];
  /** Objects found identical (for summaries and the no-op check). */
  unchanged: number;
}

/** localeCompare's order (the same default collator), built once. */
const byLocale = new Intl.Collator();

/** Compares local files with one flat listing, then HEADs only same-size objects the record cannot vouch for. */
export async function planSync(reader: S3Reader, req: SyncRequest): Promise<SyncPlan> {
  const listing = req.listing ?? reader.list(req.bucket, req.prefix);
  if (req.knowledge) {
    req.knowledge.listed(req.bucket, req.prefix, listing);
    for (const f of req.files) if (f.md5) req.knowledge.expect(req.bucket, req.prefix + f.rel, f.md5, f.size);
  }
  const remote = new Map((await listing).map((o) => [o.key, o]));
  const limit = pLimit(req.concurrency ?? 32);
  const puts: S3Put[] = [];
  let unchanged = 0;
  await Promise.all(req.files.map((f) => limit(async () => {
    const key = req.prefix + f.rel;
    const r = remote.get(key);
    const state = await compareRemote(reader, req.bucket, key, r, f, req.record);
    if (state === 'same') { unchanged++; return; }
    const reason: S3Put['reason'] = state === 'missing' ? 'new' : state === 'damaged' ? 'repair' : 'changed';
    const h = contentHeadersFor(key);
    puts.push({
      kind: 's3.put', bucket: req.bucket, key, source: f.source, size: f.size, sha256: f.sha256, contentType: h.contentType, contentEncoding: h.contentEncoding, cacheControl: req.cacheControl, reason,
      ...(f.md5 ? { md5: f.md5 } : {}), ...(req.createOnly && reason === 'new' ? { createOnly: true } : {}),
    });
  })));
  puts.sort((a, b) => byLocale.compare(a.key, b.key));
  const local = new Set(req.files.map((f) => req.prefix + f.rel));
  const deletes: S3Delete[] = req.deleteStale
    ? [...remote.keys()].filter((k) => !local.has(k)).sort().map((key) => ({ kind: 's3.delete', bucket: req.bucket, key }))
    : [];
  const skipped: Skip[] = unchanged ? [{ what: `${unchanged} object${unchanged === 1 ? '' : 's'} in s3://${req.bucket}/${req.prefix}`, reason: 'already there with the same sha256' }] : [];
  return { puts, deletes, skipped, unchanged };
}

/**
 * What the destination holds at `key` compared with the planned size and sha256 (issue 9: a key is
 * skipped only when the server reports both). `listed` is the key's entry in a fresh listing (the
 * server's word on existence, size and ETag); the record may stand in for a HEAD only while the
 * listing shows the size and ETag it recorded.
 */
export async function compareRemote(reader: S3Reader, bucket: string, key: string, listed: RemoteObject | undefined, planned: { size: number; sha256: string }, record?: UploadRecord): Promise<'missing' | 'same' | 'different' | 'damaged'> {
  if (!listed) return 'missing';
  if (listed.size !== planned.size) {
    // Our sha256 with another size: a damaged copy of this very object (a body cut short), not other content.
    const head = await reader.head(bucket, key);
    if (!head) return 'missing';
    return head.sha256 === planned.sha256 ? 'damaged' : 'different';
  }
  return (await remoteSha256(reader, { bucket, record }, key, listed)) === planned.sha256 ? 'same' : 'different';
}

/** The sha256 of a listed object: from the record while size and ETag still match, else by HEAD. */
async function remoteSha256(reader: S3Reader, req: { bucket: string; record?: UploadRecord }, key: string, listed: RemoteObject): Promise<string | undefined> {
  const etag = normalizeEtag(listed.etag);
  const known = req.record?.get(req.bucket, key);
  if (known && etag && known.etag === etag && known.size === listed.size) return known.sha256;
  const head = await reader.head(req.bucket, key);
  const headEtag = normalizeEtag(head?.etag);
  // Remember it only if the HEAD saw the very object the listing did. A verified entry with our
  // sha256 but another ETag stays: the object was rewritten since a verification read it back, and
  // the closing verification then reads its bytes (lib/verify/objects.ts).
  const rewritten = known?.verified !== undefined && known.sha256 === head?.sha256 && known.etag !== etag;
  if (req.record && !rewritten && head?.sha256 && etag && headEtag === etag && head.size === listed.size) {
    req.record.set(req.bucket, key, { sha256: head.sha256, size: head.size, etag });
    // What this HEAD read back is what the closing verification's HEAD would (issue 16): noted for
    // this run, and for later runs under the same 2 s rule as lib/verify/objects.ts readBack.
    req.record.noteHead(req.bucket, key, { sha256: head.sha256, size: head.size, etag });
    if (head.mtime !== undefined && head.serverTime !== undefined && head.serverTime - head.mtime >= 2) {
      req.record.markVerified(req.bucket, key, { sha256: head.sha256, size: head.size, etag, verified: head.mtime });
    }
  }
  return head?.sha256;
}
