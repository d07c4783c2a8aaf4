// A local record of what this machine uploaded: key → sha256, size, ETag. With one flat listing it
// lets planSync skip unchanged objects without a HEAD each (issue 6). A fast path only: an entry
// is trusted only while the listing shows the same size and ETag we got back from our own PUT;
// otherwise planSync HEADs and compares our sha256 metadata, which stays the truth. It never
// makes a run skip what the listing lacks or shows with another size or ETag (issue 9), and
// `forget` drops what a verification found wrong. ETags are never used for integrity (s3rver's
// multipart ETag is a plain MD5; real S3's is md5-of-md5s).
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { z } from 'zod';
import { KeyedSlots, SLOT_CHUNK, writePieces } from '../core/heap.ts';
import { normalizeEtag, type RunKnowledge } from './knowledge.ts';
import type { CopyResult, PutRequest, S3Writer } from './store.ts';

export interface RecordEntry {
  sha256: string;
  size: number;
  /** As the server returned it, quotes stripped. */
  etag: string;
  /**
   * A verification HEADed the object and found this size, our sha256 metadata and this ETag: the
   * object's Last-Modified then (Unix seconds). Only such an entry lets upload's closing
   * verification accept a listing (same size, ETag and Last-Modified) in place of a new HEAD: a
   * rewrite with other bytes changes the ETag, and any rewrite (metadata only too) the
   * Last-Modified (issue 16).
   */
  verified?: number;
}

export interface UploadRecord {
  get(bucket: string, key: string): RecordEntry | undefined;
  set(bucket: string, key: string, entry: RecordEntry): void;
  /** Notes what a verification's HEAD read back (size, sha256 metadata, ETag): `verified` entries. */
  markVerified(bucket: string, key: string, entry: Required<RecordEntry>): void;
  /**
   * Drops entries (one key or many): whatever a verification found wrong must be HEADed (and
   * re-sent) by the next run, never vouched for by this memo (issue 9; `releng verify` calls it).
   */
  forget(bucket: string, key: string | string[]): void;
  /**
   * This run only (never saved): a HEAD of this run (the plan's) saw this size, ETag and sha256
   * metadata. The closing verification accepts our metadata of an object listed with that ETag and
   * size without another HEAD (issue 16). Cleared for a key by `forget`.
   */
  noteHead(bucket: string, key: string, seen: { sha256: string; size: number; etag: string }): void;
  headed(bucket: string, key: string): { sha256: string; size: number; etag: string } | undefined;
  /** Writes the record (atomically) if anything changed. */
  save(): Promise<void>;
  /** The record's path (named when saving fails). */
  readonly file: string;
}

export { normalizeEtag } from './knowledge.ts';

// On disk: {"version":1,"endpoint":E,"objects":{"BUCKET/KEY":[sha256, size, etag] or, once a
// verification HEADed it, [sha256, size, etag, last-modified]}}, one entry per line since issue 31
// (readLines); a file of one line, as earlier releng wrote it, is still read.
const entry = z.union([
  z.tuple([z.string().regex(/^[0-9a-f]{64}$/), z.number().int().nonnegative(), z.string().min(1)]),
  z.tuple([z.string().regex(/^[0-9a-f]{64}$/), z.number().int().nonnegative(), z.string().min(1), z.number().int()]),
]);
const fileSchema = z.object({ version: z.literal(1), endpoint: z.string(), objects: z.record(z.string(), z.unknown()) });
type Tuple = z.infer<typeof entry>;
const SHA256 = /^[0-9a-f]{64}$/;
const MD5_HEX = /^[0-9a-f]{32}$/;

/** A tuple as the file holds it, checked as the schema above would (without a zod parse per entry). */
function isTuple(v: unknown): v is Tuple {
  return Array.isArray(v) && (v.length === 3 || v.length === 4) && typeof v[0] === 'string' && SHA256.test(v[0])
    && Number.isInteger(v[1]) && v[1] >= 0 && typeof v[2] === 'string' && v[2].length > 0 && (v.length === 3 || Number.isInteger(v[3]));
}

/**
 * The record in memory (issue 31): one slot per object in typed arrays (sha256 and a single-part
 * ETag as bytes, size and Last-Modified as numbers), found by its `BUCKET/KEY` id. About 180 bytes
 * an object against 360 for a JSON tuple of strings: 300,000 objects of a manual are 54 MB less.
 * The slots are held in chunks (lib/core/heap.ts KeyedSlots): growing adds one and never copies
 * the table (doubling arrays held up to twice the slots used, and for a moment the old and the new
 * copies, 31 MiB at 300,000).
 */
class RecordTable {
  /** Every slot, found by bucket and key; an entry read from the file is filed under its whole `BUCKET/KEY` id until then. */
  private readonly slots = new KeyedSlots(() => ({ sha: Buffer.alloc(SLOT_CHUNK * 32), md5: Buffer.alloc(SLOT_CHUNK * 16), sizes: new Float64Array(SLOT_CHUNK), verifiedAt: new Float64Array(SLOT_CHUNK) }));
  /** ETags that are not 32 lowercase hex digits (multipart, other servers' forms), by slot. */
  private readonly otherEtags = new Map<number, string>();
  /** sha256 values that are not 64 lowercase hex digits (another writer's metadata, kept exactly as read). */
  private readonly otherShas = new Map<number, string>();

  private slot(bucket: string, key: string): number | undefined {
    return this.slots.find(bucket, key);
  }

  get(bucket: string, key: string): RecordEntry | undefined {
    const i = this.slot(bucket, key);
    return i === undefined ? undefined : this.entry(i);
  }

  private entry(i: number): RecordEntry {
    const c = this.slots.chunk(i);
    const j = this.slots.offset(i);
    const v = c.verifiedAt[j]!;
    return {
      sha256: this.otherShas.get(i) ?? c.sha.toString('hex', j * 32, j * 32 + 32), size: c.sizes[j]!, etag: this.otherEtags.get(i) ?? c.md5.toString('hex', j * 16, j * 16 + 16),
      ...(Number.isNaN(v) ? {} : { verified: v }),
    };
  }

  set(bucket: string, key: string, e: RecordEntry): void {
    this.write(this.slot(bucket, key) ?? this.slots.take(bucket, key), e);
  }

  /** An entry read from the file, by its id. */
  load(id: string, e: RecordEntry): void {
    this.write(this.slots.takeId(id), e);
  }

  private write(i: number, e: RecordEntry): void {
    const c = this.slots.chunk(i);
    const j = this.slots.offset(i);
    if (SHA256.test(e.sha256)) { c.sha.write(e.sha256, j * 32, 32, 'hex'); this.otherShas.delete(i); } else this.otherShas.set(i, e.sha256);
    c.sizes[j] = e.size;
    c.verifiedAt[j] = e.verified ?? NaN;
    if (MD5_HEX.test(e.etag)) { c.md5.write(e.etag, j * 16, 16, 'hex'); this.otherEtags.delete(i); } else this.otherEtags.set(i, e.etag);
  }

  delete(bucket: string, key: string): boolean {
    const i = this.slots.drop(bucket, key);
    if (i === undefined) return false;
    this.otherEtags.delete(i);
    this.otherShas.delete(i);
    return true;
  }

  /** Every entry as the file holds it: [id, tuple]. */
  *tuples(): Generator<[string, Tuple]> {
    const tuple = (i: number): Tuple => {
      const e = this.entry(i);
      return e.verified !== undefined ? [e.sha256, e.size, e.etag, e.verified] : [e.sha256, e.size, e.etag];
    };
    for (const [id, i] of this.slots.ids()) yield [id, tuple(i)];
  }
}

const fromTuple = (t: Tuple): RecordEntry => ({ sha256: t[0], size: t[1], etag: t[2], ...(t[3] !== undefined ? { verified: t[3] } : {}) });

/** The first line of a record file as save() writes it: the envelope, then one entry per line. */
const headerOf = (endpoint: string) => `{"version":1,"endpoint":${JSON.stringify(endpoint)},"objects":{`;

/**
 * Reads a record file as save() writes it: the header line, then one `"BUCKET/KEY":[...]` entry per
 * line (a comma ending every line but the last), then `}}` (still one JSON document: old releng
 * reads it with JSON.parse). Streamed a line at a time (issue 31): at 300,000 objects the file is
 * ~58 MB, and holding it as one string and its parse tree was the no-op's peak. 'ok' when it was
 * read, 'bad' when an entry is malformed (the record is then empty), undefined when the file is
 * not in this layout (an older single-line file: parsed whole, as before).
 */
async function readLines(file: string, endpoint: string, into: RecordTable): Promise<'ok' | 'bad' | undefined> {
  const input = createReadStream(file, { encoding: 'utf8', highWaterMark: 256 * 1024 });
  const lines = createInterface({ input, crlfDelay: Infinity });
  const header = headerOf(endpoint);
  let n = 0;
  let ended = false;
  try {
    for await (const line of lines) {
      if (n++ === 0) { if (line !== header) return undefined; continue; }
      if (ended) return line === '' ? 'ok' : 'bad';
      if (line === '}}') { ended = true; continue; }
      let parsed: unknown;
      try { parsed = JSON.parse(`{${line.endsWith(',') ? line.slice(0, -1) : line}}`); } catch { return 'bad'; }
      const entries = Object.entries(parsed as Record<string, unknown>);
      if (entries.length !== 1) return 'bad';
      const [id, tuple] = entries[0]!;
      if (!isTuple(tuple)) return 'bad';
      into.load(id, fromTuple(tuple));
    }
  } finally { lines.close(); input.destroy(); }
  return n === 0 ? undefined : ended ? 'ok' : 'bad';
}

/** The record of one S3 endpoint (any stable name of it) in `dir` (e.g. the project's .releng/); missing or corrupt means empty. */
export async function openUploadRecord(dir: string, endpoint: string): Promise<UploadRecord> {
  const file = path.join(dir, `uploads-${createHash('sha256').update(endpoint).digest('hex').slice(0, 16)}.json`);
  let objects = new RecordTable();
  try {
    const read = await readLines(file, endpoint, objects);
    if (read !== 'ok') {
      objects = new RecordTable();
      if (read === undefined) {
        const parsed = fileSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
        if (parsed.success && parsed.data.endpoint === endpoint) {
          const all = Object.entries(parsed.data.objects);
          if (all.every(([, t]) => entry.safeParse(t).success)) for (const [id, t] of all) objects.load(id, fromTuple(t as Tuple));
        }
      }
    }
  } catch { objects = new RecordTable(); /* missing or not JSON: an empty record, planSync falls back to HEAD */ }
  let dirty = false;
  const id = (bucket: string, key: string) => `${bucket}/${key}`;
  const heads = new Map<string, { sha256: string; size: number; etag: string }>();
  return {
    file,
    noteHead(bucket, key, seen) { heads.set(id(bucket, key), seen); },
    headed: (bucket, key) => heads.get(id(bucket, key)),
    get: (bucket, key) => objects.get(bucket, key),
    set(bucket, key, e) {
      objects.set(bucket, key, e);
      dirty = true;
    },
    markVerified(bucket, key, e) {
      const old = objects.get(bucket, key);
      if (old && old.sha256 === e.sha256 && old.size === e.size && old.etag === e.etag && old.verified === e.verified) return;
      objects.set(bucket, key, e);
      dirty = true;
    },
    forget(bucket, key) {
      for (const k of Array.isArray(key) ? key : [key]) {
        heads.delete(id(bucket, k));
        if (objects.delete(bucket, k)) dirty = true;
      }
    },
    async save() {
      if (!dirty) return;
      await mkdir(dir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      // One entry per line (readLines), written a line at a time: no string of the whole record
      // (~58 MB at 300,000 objects).
      await writePieces(tmp, (function* lines() {
        yield headerOf(endpoint);
        let first = true;
        for (const [k, t] of objects.tuples()) {
          yield `${first ? '\n' : ',\n'}${JSON.stringify(k)}:${JSON.stringify(t)}`;
          first = false;
        }
        yield '\n}}\n';
      })());
      await rename(tmp, file);
      dirty = false;
    },
  };
}

/** What a copy's destination must hold, as the caller knows it (promote: the verified source's). */
export interface CopyExpectation {
  /** Unset: the copy is conditional on sourceEtag, but its bytes are not known (a HEAD decides). */
  md5?: string;
  size?: number;
  bytes?: Buffer;
  /** The source ETag the copy is made conditional on (a source rewritten since is never copied). */
  sourceEtag?: string;
}

export interface RecordingOptions {
  /** This machine's record of the endpoint (upload and promote): a put it acknowledged is noted, anything written forgotten. */
  record?: Pick<UploadRecord, 'set' | 'forget'>;
  /** This run's knowledge (lib/s3/knowledge.ts): listings go stale, acknowledged writes are `written`. */
  knowledge?: RunKnowledge;
  /**
   * Puts without a planned MD5 (promote's streamed transfers and re-signed narinfos): the MD5 of
   * the bytes as they go out becomes the expectation. Off for upload (large files go without MD5:
   * hashing them costs more than the HEAD it saves).
   */
  hashPuts?: boolean;
  /** What a server-side copy must hold (promote); undefined: nothing known, the copy is HEADed. */
  copied?(from: { bucket: string; key: string }, to: { bucket: string; key: string }, size: number | undefined): CopyExpectation | undefined;
}

/** Bodies kept with the expectation (the cache verifier parses narinfos from them). */
const KEEP_BYTES = 64 * 1024;

/**
 * The one recording writer of upload and promote. Before any write the record forgets the key and
 * listings covering it go stale; a put's expected bytes are its planned MD5 (or, with hashPuts, the
 * MD5 of what went out), a copy's those `copied` names; the write is `written` only when the server
 * acknowledged exactly that MD5 as ETag (never for "already there": someone else's object). A put
 * the server acknowledged is noted in the record (sha256, size, ETag), unless its single-part ETag
 * is not the MD5 sent (a server that does not check Content-MD5 stored other bytes).
 */
export function recordingWriter(inner: S3Writer, opts: RecordingOptions): S3Writer {
  const { record, knowledge, hashPuts, copied } = opts;
  return {
    async put(req: PutRequest) {
      record?.forget(req.bucket, req.key); // until the put is acknowledged, what is there is unknown
      knowledge?.touch(req.bucket, req.key);
      let body = req.body;
      let sent: (() => { md5: string; bytes?: Buffer }) | undefined;
      if (req.md5) {
        if (knowledge && !knowledge.md5(req.bucket, req.key)) knowledge.expect(req.bucket, req.key, req.md5, req.size);
      } else if (knowledge && hashPuts && !req.redirect) {
        knowledge.forget(req.bucket, req.key);
        if ('text' in body) {
          const bytes = Buffer.from(body.text);
          const m = createHash('md5').update(bytes).digest('hex');
          sent = () => ({ md5: m, ...(bytes.length <= KEEP_BYTES ? { bytes } : {}) });
        } else if ('stream' in body) {
          // The MD5 of the bytes as they go out (verifiedStream has checked their sha256 before the last chunk).
          const h = createHash('md5');
          const source = body.stream;
          const through = new PassThrough();
          source.on('error', (e) => through.destroy(e));
          source.on('data', (c: Buffer) => h.update(c));
          source.pipe(through);
          body = { stream: through };
          let digest: string | undefined;
          sent = () => ({ md5: (digest ??= h.digest('hex')) });
        }
      } else knowledge?.forget(req.bucket, req.key);
      const r = await inner.put(body === req.body ? req : { ...req, body });
      if (sent && knowledge) { const s = sent(); knowledge.expect(req.bucket, req.key, s.md5, req.size, s.bytes); }
      // "Already there" is someone else's object (its metadata is not this write's): HEADed later.
      if (r && !r.alreadyThere) knowledge?.acknowledged(req.bucket, req.key, r.etag);
      const etag = normalizeEtag(r ? r.etag : undefined);
      // A single-part ETag is the MD5 of what the server stored: when it is not the MD5 we sent,
      // the stored bytes are not ours (a server that does not check Content-MD5), so vouch for nothing.
      const stored = etag && req.md5 && /^[0-9a-f]{32}$/.test(etag) && etag !== Buffer.from(req.md5, 'base64').toString('hex') ? undefined : etag;
      if (stored && record) record.set(req.bucket, req.key, { sha256: req.sha256, size: req.size, etag: stored });
      return r;
    },
    async delete(bucket, key) {
      record?.forget(bucket, key);
      knowledge?.touch(bucket, key);
      knowledge?.forget(bucket, key);
      await inner.delete(bucket, key);
    },
    async copy(from, to, copyOpts): Promise<CopyResult | void> {
      record?.forget(to.bucket, to.key);
      knowledge?.touch(to.bucket, to.key);
      const e = knowledge && copied?.(from, to, copyOpts?.size);
      if (knowledge) {
        knowledge.forget(to.bucket, to.key);
        if (e?.md5 && e.size !== undefined) knowledge.expect(to.bucket, to.key, e.md5, e.size, e.bytes && e.bytes.length <= KEEP_BYTES ? e.bytes : undefined);
      }
      const r = await inner.copy(from, to, e?.sourceEtag ? { ...copyOpts, sourceEtag: copyOpts?.sourceEtag ?? `"${e.sourceEtag}"` } : copyOpts);
      knowledge?.acknowledged(to.bucket, to.key, r ? r.etag : undefined);
      return r;
    },
  };
}
