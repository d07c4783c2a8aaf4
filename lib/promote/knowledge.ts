// What promote knows of the source objects it verifies and copies (issue 16), for the destination
// check. The run's listings and the destination's expected bytes are the RunKnowledge every command
// shares (lib/s3/knowledge.ts), its writes noted by the one recording writer (lib/s3/record.ts);
// what is promote's own is what the *source* verification read:
//   - SeenObjects: the ETag, size and Last-Modified the source verification read back per object
//     (its HEADs and GETs, and the listed objects the upload record vouched for): "as verified".
//   - TextMemo: the small objects it read whole (narinfos, .ls, manifests), for the plan and for
//     the copies' expected bytes.
//   - copyExpectation: what a server-side copy must hold. A copy of a single-part object keeps its
//     ETag (the MD5 of the same bytes); a copy acknowledged with that ETag is `written`.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ObjectHead, RemoteObject, S3Reader } from '../s3/store.ts';
import { normalizeEtag, type CopyExpectation, type UploadRecord } from '../s3/record.ts';
import type { LocalKnowledge } from '../verify/types.ts';

const id = (bucket: string, key: string) => `${bucket}\u0000${key}`;
const SINGLE_PART = /^[0-9a-f]{32}$/;

/** Bodies kept per object: small ones only (narinfos, .ls listings, manifests). */
const KEEP_AT_MOST = 1024 * 1024;

/** Objects read whole, and more than once in a run (release files every verifier reads, narinfos and .ls the plan reads too). */
const readWhole = (k: string) => k.endsWith('.narinfo') || k.endsWith('.ls') || k.endsWith('manifest.nix') || k.endsWith('SHA256SUMS');

type Read = { head?: ObjectHead; body: Buffer } | undefined;

/**
 * Small objects a verification reads whole, read once per side and run: the verifiers of one run
 * each read SHA256SUMS and manifest.nix (resolving the release, checking the prefix, evaluating
 * the manifest), and the plan reads the source's manifest and closure again: one GET each, served
 * from the first read (no write happens on that side between them: the source is never written,
 * the destination's memo is a new one for its closing verification). The source's bodies are kept
 * for the plan and for the copies' expected bytes (their MD5; `bytes` for the cache verifier); an
 * object rewritten in between is copied as it is now: its ETag is then not the kept bytes' MD5, and
 * the destination check reads it.
 */
export class TextMemo {
  private readonly bodies = new Map<string, Buffer>();
  private readonly reads = new Map<string, Promise<Read>>();
  served = 0;

  get(bucket: string, key: string): Buffer | undefined {
    return this.bodies.get(id(bucket, key));
  }

  /** The reader whose whole reads of narinfos, .ls, manifest.nix and SHA256SUMS are made once and kept, and whose getText results are kept. */
  keep<R extends S3Reader & { getStream(b: string, k: string): Promise<Readable | undefined>; getWithHead?(b: string, k: string): Promise<{ head: ObjectHead; stream: Readable } | undefined> }>(r: R): R {
    const slurp = async (stream: Readable): Promise<Buffer> => {
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(Buffer.from(c));
      return Buffer.concat(chunks);
    };
    const note = (b: string, k: string, read: Promise<Read>): Promise<Read> => {
      this.reads.set(id(b, k), read);
      read.then((got) => {
        if (got && got.body.length <= KEEP_AT_MOST) this.bodies.set(id(b, k), got.body);
        else if (got) this.reads.delete(id(b, k));
      }, () => this.reads.delete(id(b, k)));
      return read;
    };
    // One read of bucket/key, with its headers where the adapter gives them in the same GET.
    const once = (b: string, k: string, withHead: boolean): Promise<Read> => {
      const had = this.reads.get(id(b, k));
      if (had) { this.served++; return had; }
      return note(b, k, (async (): Promise<Read> => {
        if (r.getWithHead) { const g = await r.getWithHead(b, k); return g ? { head: g.head, body: await slurp(g.stream) } : undefined; }
        if (withHead) {
          const head = await r.head(b, k);
          if (!head) return undefined;
          const s = await r.getStream(b, k);
          return s ? { head, body: await slurp(s) } : undefined;
        }
        const s = await r.getStream(b, k);
        return s ? { body: await slurp(s) } : undefined;
      })());
    };
    return {
      ...r,
      ...(r.getWithHead ? {
        getWithHead: async (b: string, k: string) => {
          if (!readWhole(k)) return r.getWithHead!(b, k);
          const got = await once(b, k, true);
          return got?.head ? { head: got.head, stream: Readable.from([got.body]) } : got ? r.getWithHead!(b, k) : undefined;
        },
      } : {}),
      getText: async (b: string, k: string) => {
        if (readWhole(k)) { const got = await once(b, k, false); return got?.body.toString('utf8'); }
        const t = await r.getText(b, k);
        if (t !== undefined && t.length <= KEEP_AT_MOST) this.bodies.set(id(b, k), Buffer.from(t));
        return t;
      },
      getStream: async (b: string, k: string) => {
        if (!readWhole(k)) return r.getStream(b, k);
        const got = await once(b, k, false);
        return got ? Readable.from([got.body]) : undefined;
      },
    };
  }

  /** The reader whose getText is answered from what was kept (else read). */
  serve<R extends S3Reader>(r: R): R {
    return { ...r, getText: async (b: string, k: string) => { const t = this.bodies.get(id(b, k)); if (t !== undefined) { this.served++; return t.toString('utf8'); } return r.getText(b, k); } };
  }

  /**
   * Small objects proven by the source's listing to be bytes this machine staged (release/cache/ENV,
   * lib/upload/cache.ts stagedCacheKnowledge): a listed single-part ETag and size that are the
   * staged file's MD5 (re-hashed here) and size. The source verification proved and checked these
   * very bytes (lib/verify/cache.ts provenByListing: parsed, signature and references checked on
   * them) instead of GETting them; the plan parses the closure from them, and a copy must hold
   * them. Only plain-text narinfos (a compressed one is left to a GET, as before) and .ls listings.
   */
  async provenLocally(bucket: string, listing: RemoteObject[], local: Pick<LocalKnowledge, 'md5' | 'bytes'> | undefined, seen?: SeenObjects): Promise<number> {
    if (!local?.bytes) return 0;
    let n = 0;
    for (const o of listing) {
      const narinfo = o.key.endsWith('.narinfo');
      if ((!narinfo && !o.key.endsWith('.ls')) || this.bodies.has(id(bucket, o.key))) continue;
      const etag = normalizeEtag(o.etag)?.toLowerCase();
      const m = local.md5(bucket, o.key);
      if (!etag || !SINGLE_PART.test(etag) || !m || m.md5.toLowerCase() !== etag || m.size !== o.size) continue;
      const bytes = await local.bytes(bucket, o.key).catch(() => undefined);
      if (!bytes || bytes.length !== o.size || bytes.length > KEEP_AT_MOST || createHash('md5').update(bytes).digest('hex') !== etag) continue;
      if (narinfo && !bytes.subarray(0, 10).equals(Buffer.from('StorePath:'))) continue;
      this.bodies.set(id(bucket, o.key), bytes);
      seen?.head(bucket, o.key, { size: o.size, etag, metadata: {}, ...(o.mtime !== undefined ? { mtime: o.mtime } : {}) });
      n++;
    }
    return n;
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

/**
 * What the destination of a server-side copy must hold (RecordingOptions.copied): the bytes the
 * verification read whole (narinfos, .ls: their MD5, and the bytes for the cache verifier), else the
 * ETag a read-back of the verification saw (and the copy is conditional on it), else the text the
 * plan parsed of a narinfo it copies as it is; else nothing (the destination check HEADs it).
 */
export function copyExpectation(seen: SeenObjects, bodies: TextMemo | undefined, planned: Iterable<{ bucket: string; key: string; text: string }> = []) {
  const texts = new Map<string, Buffer>();
  for (const n of planned) texts.set(id(n.bucket, n.key), Buffer.from(n.text));
  return (from: { bucket: string; key: string }, to: { bucket: string; key: string }, size: number | undefined): CopyExpectation | undefined => {
    const verified = seen.get(from.bucket, from.key);
    const sourceEtag = verified?.etag;
    const body = bodies?.get(from.bucket, from.key);
    if (body) return { md5: createHash('md5').update(body).digest('hex'), size: body.length, bytes: body, ...(sourceEtag ? { sourceEtag } : {}) };
    if (verified && SINGLE_PART.test(verified.etag) && (size === undefined || size === verified.size)) return { md5: verified.etag, size: verified.size, sourceEtag: verified.etag };
    const t = texts.get(id(to.bucket, to.key));
    if (t) return { md5: createHash('md5').update(t).digest('hex'), size: t.length, bytes: t, ...(sourceEtag ? { sourceEtag } : {}) };
    return sourceEtag ? { sourceEtag } : undefined;
  };
}
