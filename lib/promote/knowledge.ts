// What promote knows of the objects it verifies and copies, so that listings prove what would
// otherwise take a request per object (issue 16). Three pieces, each a statement a listing or a
// write acknowledgement checks, never a skip by itself:
//   - ListingMemo: one listing per prefix per run, shared by the source verification and the plan
//     (the plan copies what was verified, from the same snapshot), and by the destination
//     verification for prefixes promote wrote nothing under since it listed them.
//   - SeenObjects: the ETag, size and Last-Modified the source verification read back per object
//     (its HEADs and GETs, and the listed objects the upload record vouched for): "as verified".
//   - CopyKnowledge: VerifyScope.local for the destination. A server-side copy of a single-part
//     object keeps its ETag (the MD5 of the same bytes); a streamed copy's MD5 is computed while
//     streaming; a re-signed narinfo's is that of the text put. A copy or put acknowledged with
//     that ETag is `written`.
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import type { CopyResult, ObjectHead, PutRequest, PutResult, RemoteObject, S3Reader, S3Writer } from '../s3/store.ts';
import { normalizeEtag, type UploadRecord } from '../s3/record.ts';
import type { LocalKnowledge } from '../verify/types.ts';

const id = (bucket: string, key: string) => `${bucket}\u0000${key}`;
const SINGLE_PART = /^[0-9a-f]{32}$/;

/**
 * Listings taken this run, by bucket and prefix. A prefix is served from the memo (or from a memo
 * of an enclosing prefix, filtered) until a write under it; after that it is listed afresh.
 */
export class ListingMemo {
  private readonly listings = new Map<string, Promise<RemoteObject[]>>();
  private readonly dirty = new Set<string>();
  lists = 0;

  constructor(private readonly inner: (bucket: string, prefix: string) => Promise<RemoteObject[]>, private readonly onListed?: (bucket: string, objects: RemoteObject[]) => void) {}

  list = (bucket: string, prefix: string): Promise<RemoteObject[]> => {
    if (!this.isDirty(bucket, prefix)) {
      const own = this.listings.get(id(bucket, prefix));
      if (own) return own;
      for (const [k, v] of this.listings) {
        const [b, p] = k.split('\u0000') as [string, string];
        if (b === bucket && prefix.startsWith(p)) return v.then((all) => all.filter((o) => o.key.startsWith(prefix)));
      }
    }
    this.lists++;
    const listing = this.inner(bucket, prefix).then((objects) => { this.onListed?.(bucket, objects); return objects; });
    this.listings.set(id(bucket, prefix), listing);
    this.dirty.delete(id(bucket, prefix));
    listing.catch(() => this.listings.delete(id(bucket, prefix)));
    return listing;
  };

  /** A write to bucket/key: every memoized listing whose prefix holds key is stale from now on. */
  wrote(bucket: string, key: string): void {
    for (const k of this.listings.keys()) {
      const [b, p] = k.split('\u0000') as [string, string];
      if (b === bucket && key.startsWith(p)) this.dirty.add(k);
    }
  }

  private isDirty(bucket: string, prefix: string): boolean {
    for (const k of this.dirty) {
      const [b, p] = k.split('\u0000') as [string, string];
      if (b === bucket && (prefix.startsWith(p) || p.startsWith(prefix))) return true;
    }
    return false;
  }
}

/** Bodies kept per object: small ones only (narinfos, .ls listings, manifests). */
const KEEP_AT_MOST = 1024 * 1024;

/**
 * Small objects the source verification read whole (getText; narinfos and .ls read as streams by
 * lib/verify/cache.ts), kept for the plan, which reads the same closure, and for the destination
 * check: the plan works from the very bytes that were verified (1,000 GETs fewer for 1,000 store
 * paths), and a server-side copy of such an object must hold these bytes (their MD5; `bytes` for
 * the cache verifier). An object rewritten in between is copied as it is now: its ETag is then not
 * the kept bytes' MD5, and the destination check reads it.
 */
export class TextMemo {
  private readonly bodies = new Map<string, Buffer>();
  served = 0;

  get(bucket: string, key: string): Buffer | undefined {
    return this.bodies.get(id(bucket, key));
  }

  /** The reader whose getText results, and narinfos and .ls read as streams (with or without headers), are kept. */
  keep<R extends S3Reader & { getStream(b: string, k: string): Promise<Readable | undefined>; getWithHead?(b: string, k: string): Promise<{ head: ObjectHead; stream: Readable } | undefined> }>(r: R): R {
    const small = (k: string) => k.endsWith('.narinfo') || k.endsWith('.ls');
    const readKept = async (b: string, k: string, stream: Readable): Promise<Readable> => {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of stream) { chunks.push(Buffer.from(c)); size += c.length; }
      const body = Buffer.concat(chunks, size);
      if (size <= KEEP_AT_MOST) this.bodies.set(id(b, k), body);
      return Readable.from([body]);
    };
    return {
      ...r,
      ...(r.getWithHead ? {
        getWithHead: async (b: string, k: string) => {
          const got = await r.getWithHead!(b, k);
          return got && small(k) ? { head: got.head, stream: await readKept(b, k, got.stream) } : got;
        },
      } : {}),
      getText: async (b: string, k: string) => {
        const t = await r.getText(b, k);
        if (t !== undefined && t.length <= KEEP_AT_MOST) this.bodies.set(id(b, k), Buffer.from(t));
        return t;
      },
      getStream: async (b: string, k: string) => {
        const stream = await r.getStream(b, k);
        return stream && small(k) ? readKept(b, k, stream) : stream;
      },
    };
  }

  /** The reader whose getText is answered from what was kept (else read). */
  serve<R extends S3Reader>(r: R): R {
    return { ...r, getText: async (b: string, k: string) => { const t = this.bodies.get(id(b, k)); if (t !== undefined) { this.served++; return t.toString('utf8'); } return r.getText(b, k); } };
  }
}

export interface SeenObject { etag: string; size: number; mtime?: number }

/**
 * What the source verification read back, per object. Fed by a reader wrapped around the source's
 * (reads of HEAD and GET-with-headers), and by listings for the objects the upload record vouches
 * for (the same size, ETag and Last-Modified a verification's HEAD saw: what the verifier accepts
 * in place of a HEAD). Only a verification that passes makes these "verified": promote uses them
 * after the source verification reported no problem, and never otherwise.
 */
export class SeenObjects {
  private readonly seen = new Map<string, SeenObject>();

  /**
   * The sha256 the release expects at bucket/key, where promote knows it (release prefix, docs; set
   * once the source release is resolved); undefined: not known here (cache objects, whose keys name
   * their content). A record entry vouches only when its sha256 is the expected one.
   */
  expectedSha256: (bucket: string, key: string) => string | undefined = () => undefined;

  constructor(private readonly record?: Pick<UploadRecord, 'get'>) {}

  get(bucket: string, key: string): SeenObject | undefined {
    return this.seen.get(id(bucket, key));
  }

  /** A HEAD (or a GET's headers) of bucket/key: what the verifier then checked. */
  head(bucket: string, key: string, h: ObjectHead | undefined): void {
    const etag = normalizeEtag(h?.etag);
    if (h && etag) this.seen.set(id(bucket, key), { etag, size: h.size, ...(h.mtime !== undefined ? { mtime: h.mtime } : {}) });
    else this.seen.delete(id(bucket, key));
  }

  /** A listing: objects the record vouches for (as objects.ts's vouchedByListing does) count as read back. */
  listed(bucket: string, objects: RemoteObject[]): void {
    if (!this.record) return;
    for (const o of objects) {
      const etag = normalizeEtag(o.etag);
      const e = this.record.get(bucket, o.key);
      const expected = this.expectedSha256(bucket, o.key);
      if (etag && e?.verified !== undefined && e.verified === o.mtime && e.etag === etag && e.size === o.size && (expected === undefined || expected === e.sha256) && !this.seen.has(id(bucket, o.key))) {
        this.seen.set(id(bucket, o.key), { etag, size: o.size, mtime: o.mtime });
      }
    }
  }

  /** The source reader, its reads noted (the verifier's view of each object). */
  wrap<R extends S3Reader & { getWithHead?(b: string, k: string): Promise<{ head: ObjectHead; stream: Readable } | undefined> }>(r: R): R {
    return {
      ...r,
      head: async (b: string, k: string) => { const h = await r.head(b, k); this.head(b, k, h); return h; },
      ...(r.getWithHead ? { getWithHead: async (b: string, k: string) => { const g = await r.getWithHead!(b, k); this.head(b, k, g?.head); return g; } } : {}),
    };
  }
}

interface Expected { md5: string; size: number; written: boolean; bytes?: Buffer }

/**
 * VerifyScope.local for the destination of a promote: for each object this run copied or put, the
 * MD5 its bytes must have and whether the write was acknowledged with exactly that ETag.
 */
export class CopyKnowledge implements LocalKnowledge {
  private readonly expected = new Map<string, Expected>();
  private readonly texts = new Map<string, Buffer>();

  /** A small object the plan read from the source and copies as it is (a narinfo): the copy must hold these bytes. */
  expectText(bucket: string, key: string, text: string): void {
    this.texts.set(id(bucket, key), Buffer.from(text));
  }

  /** Before a copy of bucket/key from a source object not read back by the verification: the plan's text of it, if any. */
  expectCopyOfText(bucket: string, key: string): boolean {
    const t = this.texts.get(id(bucket, key));
    if (!t) return false;
    this.expect(bucket, key, createHash('md5').update(t).digest('hex'), t.length, t);
    return true;
  }

  /** Before a copy of a verified source object: its single-part ETag is the MD5 the copy must have. */
  expect(bucket: string, key: string, md5: string | undefined, size: number, bytes?: Buffer): void {
    const m = normalizeEtag(md5);
    if (m && SINGLE_PART.test(m)) this.expected.set(id(bucket, key), { md5: m, size, written: false, ...(bytes ? { bytes } : {}) });
    else this.expected.delete(id(bucket, key));
  }

  /** The write's acknowledgement: `written` only when it carries the expected ETag. */
  acknowledged(bucket: string, key: string, etag: string | undefined): void {
    const e = this.expected.get(id(bucket, key));
    if (e) e.written = normalizeEtag(etag) === e.md5;
  }

  forget(bucket: string, key: string): void {
    this.expected.delete(id(bucket, key));
  }

  md5(bucket: string, key: string): { md5: string; size: number } | undefined {
    const e = this.expected.get(id(bucket, key));
    return e ? { md5: e.md5, size: e.size } : undefined;
  }

  async bytes(bucket: string, key: string): Promise<Buffer | undefined> {
    return this.expected.get(id(bucket, key))?.bytes;
  }

  written(bucket: string, key: string): boolean {
    return this.expected.get(id(bucket, key))?.written ?? false;
  }

  get size(): number {
    return this.expected.size;
  }
}

/**
 * The destination writer, its writes noted: listings of the prefixes written go stale, copies of
 * verified source objects and puts (streamed transfers, re-signed narinfos, redirects) record the
 * MD5 their bytes have and the ETag the server acknowledged; the upload record forgets the key.
 */
export function knowingWriter(inner: S3Writer, opts: {
  knowledge: CopyKnowledge; memo: ListingMemo; seen: SeenObjects; record?: Pick<UploadRecord, 'forget'>; bodies?: TextMemo;
}): S3Writer {
  const { knowledge, memo, seen, record, bodies } = opts;
  return {
    async put(req: PutRequest): Promise<PutResult | void> {
      memo.wrote(req.bucket, req.key);
      record?.forget(req.bucket, req.key);
      knowledge.forget(req.bucket, req.key);
      let md5: (() => string) | undefined;
      let body = req.body;
      let bytes: Buffer | undefined;
      if ('text' in body) {
        bytes = Buffer.from(body.text);
        const m = createHash('md5').update(bytes).digest('hex');
        md5 = () => m;
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
        md5 = () => (digest ??= h.digest('hex'));
      }
      const r = await inner.put({ ...req, body });
      if (md5 && !req.redirect) {
        knowledge.expect(req.bucket, req.key, md5(), req.size, bytes && bytes.length <= 64 * 1024 ? bytes : undefined);
        knowledge.acknowledged(req.bucket, req.key, r ? r.etag : undefined);
      }
      return r;
    },
    async delete(bucket, key) {
      memo.wrote(bucket, key);
      record?.forget(bucket, key);
      knowledge.forget(bucket, key);
      await inner.delete(bucket, key);
    },
    async copy(from, to, copyOpts): Promise<CopyResult | void> {
      memo.wrote(to.bucket, to.key);
      record?.forget(to.bucket, to.key);
      const verified = seen.get(from.bucket, from.key);
      // The bytes the verification read whole (narinfos, .ls) say the most: their MD5, and the bytes
      // themselves for the cache verifier; else the ETag a HEAD of the verification saw.
      const body = bodies?.get(from.bucket, from.key);
      if (body) knowledge.expect(to.bucket, to.key, createHash('md5').update(body).digest('hex'), body.length, body.length <= 64 * 1024 ? body : undefined);
      else if (verified && (copyOpts?.size === undefined || copyOpts.size === verified.size)) knowledge.expect(to.bucket, to.key, verified.etag, verified.size);
      else if (!knowledge.expectCopyOfText(to.bucket, to.key)) knowledge.forget(to.bucket, to.key);
      // Conditional on the ETag the source verification read back (where the server honours it):
      // a source rewritten since is never copied.
      const r = await inner.copy(from, to, verified ? { ...copyOpts, sourceEtag: copyOpts?.sourceEtag ?? `"${verified.etag}"` } : copyOpts);
      knowledge.acknowledged(to.bucket, to.key, r ? r.etag : undefined);
      return r;
    },
  };
}
