// Plans the upload of local files under a bucket prefix: skip what is there with the same sha256,
// put what is new or different, and (for the manual) delete what is stale. Reads only.
import { createHash } from 'node:crypto';
import { forEachLimited } from '../core/each.ts';
import { sha256OfPrefix } from '../hashing/checksums.ts';
import type { Skip } from '../core/plan.ts';
import type { S3Delete, S3Put } from './actions.ts';
import { contentHeadersFor } from './content-type.ts';
import type { WriteIntents } from './intents.ts';
import type { RunKnowledge } from './knowledge.ts';
import { normalizeEtag, type UploadRecord } from './record.ts';
import type { ObjectHead, RemoteObject, S3Reader } from './store.ts';

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
  /** Writes earlier runs began and never saw acknowledged (lib/s3/intents.ts): evidence for a `repair`. */
  intents?: WriteIntents;
  /** upload --deep: read back every object the comparison would skip (WriteEvidence.deep). */
  deep?: boolean;
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
  // Each key built once: the knowledge, the plan and the comparison share the string (issue 31).
  // A listed key's string stands for it from then on (the listing is kept for the closing verification).
  // join: a flat string (a `+` would be a cons tree, copied again when hashed; lib/core/heap.ts).
  const keys = req.files.map((f) => (req.prefix ? [req.prefix, f.rel].join('') : f.rel));
  req.knowledge?.listed(req.bucket, req.prefix, listing);
  const remote = new Map((await listing).map((o) => [o.key, o]));
  req.files.forEach((f, i) => {
    const r = remote.get(keys[i]!);
    if (r) keys[i] = r.key;
    if (f.md5) req.knowledge?.expect(req.bucket, keys[i]!, f.md5, f.size);
  });
  const puts: S3Put[] = [];
  let unchanged = 0;
  // Workers over the files (lib/core/each.ts), not a promise per file; a listed key a local file
  // claims leaves `remote`, so what stays there is what no local file has (the stale objects).
  await forEachLimited(req.files, req.concurrency ?? 32, async (f, i) => {
    const key = keys[i]!;
    const r = remote.get(key);
    remote.delete(key);
    const { state, why } = await judgeRemote(reader, req.bucket, key, r, { ...f, prefixOf: prefixOfSource(f.source) }, { record: req.record, intents: req.intents, deep: req.deep });
    if (state === 'same') { unchanged++; return; }
    const reason: S3Put['reason'] = state === 'missing' ? 'new' : state === 'damaged' ? 'repair' : 'changed';
    const h = contentHeadersFor(key);
    // One literal of every field (absent ones undefined): one shape, all fields in the object. Spread
    // optional fields went to a second array per put (~30 bytes each of 300,000: issue 31).
    puts.push({
      kind: 's3.put', bucket: req.bucket, key, source: f.source, size: f.size, sha256: f.sha256, contentType: h.contentType, contentEncoding: h.contentEncoding, cacheControl: req.cacheControl, reason,
      why: why || undefined, md5: f.md5 || undefined, createOnly: req.createOnly && reason === 'new' ? true : undefined,
    });
  });
  puts.sort((a, b) => byLocale.compare(a.key, b.key));
  const deletes: S3Delete[] = req.deleteStale
    ? [...remote.keys()].sort().map((key) => ({ kind: 's3.delete', bucket: req.bucket, key }))
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
export async function compareRemote(reader: S3Reader, bucket: string, key: string, listed: RemoteObject | undefined, planned: { size: number; sha256: string }, record?: UploadRecord, intents?: WriteIntents): Promise<RemoteState> {
  return (await judgeRemote(reader, bucket, key, listed, planned, { record, intents })).state;
}

export type RemoteState = 'missing' | 'same' | 'different' | 'damaged';

/**
 * compareRemote, with why an object that is not the planned one counts as `damaged` (replaced as a
 * `repair`) rather than `different` (other content, which an immutable prefix refuses): see
 * relengWasWriting. A key found `same` settles an intent left open for it.
 */
export async function judgeRemote(reader: S3Reader, bucket: string, key: string, listed: RemoteObject | undefined, planned: Planned, evidence: WriteEvidence = {}): Promise<{ state: RemoteState; why?: string }> {
  if (!listed) return { state: 'missing' };
  // The record's word as it was before this comparison (a HEAD below may update it).
  const recorded = evidence.record?.get(bucket, key);
  if (listed.size !== planned.size) {
    const head = await reader.head(bucket, key);
    if (!head) return { state: 'missing' };
    // Our sha256 with another size: a damaged copy of this very object (a body cut short), not other content.
    if (head.sha256 === planned.sha256) return { state: 'damaged', why: `it carries the planned sha256 with ${head.size} bytes of ${planned.size}` };
    const why = relengWasWriting(bucket, key, planned, head, evidence, recorded) ?? await cutShort(reader, bucket, key, head, planned);
    return why ? { state: 'damaged', why } : { state: 'different' };
  }
  const { sha256, head } = await remoteSha256(reader, { bucket, record: evidence.record }, key, listed);
  if (sha256 === planned.sha256) {
    if (evidence.deep) {
      if (!reader.sha256Of) throw new Error(`internal: --deep needs a store that reads object bodies (s3://${bucket}/${key})`);
      const read = await reader.sha256Of(bucket, key);
      if (!read) return { state: 'missing' };
      if (read.sha256 !== planned.sha256 || read.size !== planned.size) {
        evidence.record?.forget(bucket, key);
        return { state: 'damaged', why: `its metadata names the planned sha256, but its ${read.size} bytes read back hash to ${read.sha256.slice(0, 12)} (--deep)` };
      }
    }
    evidence.intents?.settled(bucket, key);
    return { state: 'same' };
  }
  const why = relengWasWriting(bucket, key, planned, head, evidence, recorded);
  return why ? { state: 'damaged', why } : { state: 'different' };
}

/** The bytes planned for a key: size and sha256, and (for cutShort) the sha256 of their first n bytes. */
export interface Planned {
  size: number;
  sha256: string;
  prefixOf?: (n: number) => Promise<{ size: number; sha256: string }>;
}

/** prefixOf for planned bytes held in a local file or a text. */
export function prefixOfSource(source: { file: string } | { text: string }): (n: number) => Promise<{ size: number; sha256: string }> {
  if ('file' in source) return (n) => sha256OfPrefix(source.file, n);
  return async (n) => {
    const b = Buffer.from(source.text).subarray(0, n);
    return { size: b.length, sha256: createHash('sha256').update(b).digest('hex') };
  };
}

/**
 * Issue 25: an S3 object without releng's sha256 metadata, shorter than planned, whose bytes are
 * exactly the first bytes of the planned ones: a body cut short, as a server that keeps what it
 * received (s3rver) leaves a PUT killed mid-body, with no metadata at all. Every releng PUT carries
 * the metadata, so this is releng's own write, even when no local memo remains (a re-run on another
 * machine, the journal lost). Proven by reading the object (a GET) and the planned bytes' prefix;
 * an object of other bytes, or carrying metadata, or not shorter, is not this. Undefined unless proven.
 */
export async function cutShort(reader: S3Reader, bucket: string, key: string, head: ObjectHead | undefined, planned: Planned): Promise<string | undefined> {
  if (!head || head.sidecar !== undefined || head.sha256 !== undefined || head.redirect || head.size >= planned.size || !planned.prefixOf || !reader.sha256Of) return undefined;
  const [there, ours] = await Promise.all([reader.sha256Of(bucket, key), planned.prefixOf(head.size)]);
  if (!there || there.size !== head.size || ours.size !== head.size || there.sha256 !== ours.sha256) return undefined;
  return `no sha256 metadata, and its ${head.size} bytes are the first ${head.size} of the planned ${planned.size}: a body cut short`;
}

/** What a planner may know of releng's own writes besides the destination (local memos). */
export interface WriteEvidence {
  record?: UploadRecord;
  intents?: WriteIntents;
  /**
   * upload --deep (issue 25): an object whose metadata (or the record) says it holds the planned
   * sha256 is read back whole and hashed; bytes changed at rest under our metadata are a repair.
   */
  deep?: boolean;
}

/**
 * Whether the object at bucket/key, which does not hold the planned bytes, is releng's own write of
 * those very bytes that did not complete or was damaged since (issue 23), and why; undefined when
 * nothing says so. Such an object is replaced (`repair`); any other is another writer's content,
 * which the release prefix refuses (it is immutable). Evidence:
 *   1. on a file tree, the file's releng sidecar records the planned sha256 but the file is not
 *      those bytes (a write cut short, as releng before issue 23 left them: the planned sha256
 *      beside a shorter file; a run stopped between the sidecar's rename and the file's; or a file
 *      changed since releng wrote it);
 *   2. on a file tree, a file with no releng sidecar that is shorter than planned: releng before
 *      issue 23 wrote the sidecar after the rename, so a run stopped between the two (with its
 *      cut-short writes) left exactly this;
 *   3. releng's intent journal has an open intent for this key with the planned sha256 (or, for a
 *      copy planned without one, the planned size): a run began writing exactly these bytes here
 *      and never saw the write acknowledged (killed, disk full, connection lost);
 *   4. the upload record says this machine wrote the planned sha256 here (the server acknowledged
 *      it): the key was bound to these bytes by releng, and what is there now is damage.
 * (3) and (4) are local memos: they never override what the destination records of another
 * writer's release. An object whose sha256 metadata (S3) or releng sidecar (file tree) names other
 * bytes was published by a releng run with other content, maybe deliberately (--replace-artifacts
 * in another checkout), and is refused. Not evidence either: a file without a sidecar at the
 * planned size or larger, an S3 object without our metadata, when no intent or record names the
 * planned bytes: someone else's content.
 */
export function relengWasWriting(bucket: string, key: string, planned: { size: number; sha256: string }, head: ObjectHead | undefined, evidence: WriteEvidence, recorded = evidence.record?.get(bucket, key)): string | undefined {
  if (head?.sidecar && head.sidecar.sha256 === planned.sha256) return `its releng sidecar records the planned sha256, but the file holds other bytes (${head.size} of ${planned.size})`;
  if (head?.sidecar === null && head.size < planned.size) return `no releng sidecar, and ${head.size} bytes of ${planned.size}: a write cut short`;
  // What the destination records of the object (a sidecar on a file tree, sha256 metadata on S3).
  const recordedThere = head?.sidecar !== undefined ? head.sidecar?.sha256 : head?.sha256;
  if (recordedThere !== undefined && recordedThere !== planned.sha256) return undefined;
  const intent = evidence.intents?.pending(bucket, key);
  if (intent && (intent.sha256 !== undefined ? intent.sha256 === planned.sha256 : intent.size === planned.size)) return 'releng began writing these bytes here and never saw the write acknowledged (intent journal)';
  if (recorded && recorded.sha256 === planned.sha256) return 'releng\'s upload record says it wrote these bytes here';
  return undefined;
}

/** The sha256 of a listed object: from the record while size and ETag still match, else by HEAD. */
async function remoteSha256(reader: S3Reader, req: { bucket: string; record?: UploadRecord }, key: string, listed: RemoteObject): Promise<{ sha256: string | undefined; head?: ObjectHead }> {
  const etag = normalizeEtag(listed.etag);
  const known = req.record?.get(req.bucket, key);
  if (known && etag && known.etag === etag && known.size === listed.size) return { sha256: known.sha256 };
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
  return { sha256: head?.sha256, ...(head ? { head } : {}) };
}
