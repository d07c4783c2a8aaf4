// What one run knows of the objects it plans, writes and reads back (issue 16), for upload, promote
// and their closing verifications (one RunKnowledge, one recording writer: lib/s3/record.ts):
//   - the MD5 and size of the bytes expected at each key (upload: from the local files it hashed;
//     promote: the verified source object a copy was made from, or the bytes it put), and which of
//     this run's writes the server acknowledged with exactly that MD5 as ETag (`written`);
//   - the listings taken this run, by bucket and prefix: one listing per prefix, served (also for
//     prefixes under it, filtered) until a write under it, then listed afresh.
// The closing verification (lib/verify/objects.ts) proves a listed object by its single-part ETag
// against this MD5 instead of a HEAD each. A local memo of this run only: never saved, never the
// truth by itself (only a listing or a read of the server proves an object with it).
import type { RemoteObject } from './store.ts';

/** ETags arrive quoted from listings and PUT responses; compare them bare. */
export function normalizeEtag(etag: string | undefined): string | undefined {
  return etag?.replace(/^W\//, '').replace(/^"(.*)"$/, '$1') || undefined;
}

/**
 * Local knowledge of expected objects (issue 16: proving objects by listing instead of a request
 * each). A listed object whose size is `size` and whose single-part ETag (32 hex digits) is `md5`
 * holds exactly those bytes: the ETag is the server's MD5 of what it stores.
 */
export interface LocalKnowledge {
  /** MD5 (hex, 32 digits) and size of the bytes expected at bucket/key, when known. */
  md5(bucket: string, key: string): { md5: string; size: number } | undefined;
  /** The expected bytes of a small object this run holds (narinfo, .ls), when held. */
  bytes?(bucket: string, key: string): Promise<Buffer | undefined>;
  /**
   * Whether this run's own write of bucket/key (a PUT or a copy) was acknowledged with the ETag of
   * those bytes: the object's metadata is then the write's, as a write sets bytes and metadata at once.
   */
  written(bucket: string, key: string): boolean;
}

/** A single-part ETag: 32 hex digits, the MD5 of the stored bytes (multipart ETags end in -N). */
export function singlePartEtag(etag: string | undefined): string | undefined {
  const e = normalizeEtag(etag)?.toLowerCase();
  return e && /^[0-9a-f]{32}$/.test(e) ? e : undefined;
}

export interface RunKnowledge extends LocalKnowledge {
  /**
   * The bytes expected at bucket/key: their MD5 (hex or base64; a multipart ETag is ignored), size,
   * and, for small objects, the bytes themselves (the cache verifier parses narinfos from them).
   */
  expect(bucket: string, key: string, md5: string, size: number, bytes?: Buffer): void;
  /** The bytes expected at bucket/key, when kept (small objects). */
  bytes(bucket: string, key: string): Promise<Buffer | undefined>;
  /** Drops what is known of bucket/key (a write whose bytes are not known: a HEAD decides). */
  forget(bucket: string, key: string): void;
  /** A listing of bucket/prefix taken this run (before any write under it). */
  listed(bucket: string, prefix: string, listing: Promise<RemoteObject[]>): void;
  /** Before any write (put, delete, copy) of bucket/key: listings covering it are stale from now on. */
  touch(bucket: string, key: string): void;
  /** This run's write of bucket/key was acknowledged with `etag` (not "already there" by someone else). */
  acknowledged(bucket: string, key: string, etag: string | undefined): void;
  /**
   * This run's listing of bucket/prefix (or of a prefix enclosing it, filtered), when nothing was
   * written under it since; else undefined.
   */
  planListing(bucket: string, prefix: string): Promise<RemoteObject[]> | undefined;
  /** planListing, else a fresh listing through the run's lister (noted for the next caller). */
  list(bucket: string, prefix: string): Promise<RemoteObject[]>;
  /** Fresh listings taken through `list`. */
  readonly lists: number;
}

/** MD5 as lowercase hex, from hex or base64. */
export function md5Hex(md5: string): string {
  return /^[0-9a-fA-F]{32}$/.test(md5) ? md5.toLowerCase() : Buffer.from(md5, 'base64').toString('hex');
}

export interface RunKnowledgeOptions {
  /** Lists bucket/prefix on the server (for `list`); unset: `list` of an unknown prefix throws. */
  lister?: (bucket: string, prefix: string) => Promise<RemoteObject[]>;
  /** Called with each fresh listing's objects (promote notes what the upload record vouches for). */
  onListed?: (bucket: string, objects: RemoteObject[]) => void;
}

/**
 * What is expected at one key. Kept per bucket, under the caller's own key string (the plan's, the
 * listing's): no string of its own per object (issue 31). `md5` as the caller gave it (base64 from
 * the hashed files, shared with them; hex from promote), `conflicted` once two callers expected other bytes.
 */
interface Expected { md5?: string; size: number; bytes?: Buffer; written?: boolean; conflicted?: boolean }

export function runKnowledge(opts: RunKnowledgeOptions = {}): RunKnowledge {
  const id = (bucket: string, key: string) => `${bucket}\0${key}`;
  const expected = new Map<string, Map<string, Expected>>();
  const entry = (bucket: string, key: string) => expected.get(bucket)?.get(key);
  const known = (bucket: string, key: string) => { const e = entry(bucket, key); return e && e.md5 !== undefined && !e.conflicted ? e : undefined; };
  const setEntry = (bucket: string, key: string, e: Expected) => {
    let m = expected.get(bucket);
    if (!m) expected.set(bucket, m = new Map());
    m.set(key, e);
  };
  const listings = new Map<string, { bucket: string; prefix: string; listing: Promise<RemoteObject[]>; stale: boolean }>();
  let lists = 0;
  const planListing = (bucket: string, prefix: string): Promise<RemoteObject[]> | undefined => {
    const own = listings.get(id(bucket, prefix));
    if (own && !own.stale) return own.listing;
    for (const l of listings.values()) {
      if (l.stale || l.bucket !== bucket || !prefix.startsWith(l.prefix) || l.prefix === prefix) continue;
      return l.listing.then((all) => all.filter((o) => o.key.startsWith(prefix)));
    }
    return undefined;
  };
  const listed = (bucket: string, prefix: string, listing: Promise<RemoteObject[]>) => {
    const entry = { bucket, prefix, listing, stale: false };
    listings.set(id(bucket, prefix), entry);
    // A failed listing is not kept (the next caller lists again, and sees the error itself).
    listing.catch(() => { if (listings.get(id(bucket, prefix)) === entry) listings.delete(id(bucket, prefix)); });
  };
  return {
    md5: (bucket, key) => { const e = known(bucket, key); return e ? { md5: md5Hex(e.md5!), size: e.size } : undefined; },
    bytes: async (bucket, key) => known(bucket, key)?.bytes,
    written: (bucket, key) => !!known(bucket, key)?.written,
    expect(bucket, key, md5, size, bytes) {
      const hex = singlePartEtag(md5Hex(md5));
      const old = entry(bucket, key);
      // Unknown bytes (a multipart ETag): know nothing of it (a HEAD decides).
      if (!hex) { if (old && !old.conflicted) expected.get(bucket)!.delete(key); return; }
      if (old?.conflicted) return;
      // Two expectations of other bytes at one key: know nothing of it (a HEAD decides).
      if (old && (md5Hex(old.md5!) !== hex || old.size !== size)) { setEntry(bucket, key, { size, conflicted: true }); return; }
      if (!old) setEntry(bucket, key, { md5, size, ...(bytes ? { bytes } : {}) });
      else if (bytes && !old.bytes) old.bytes = bytes;
    },
    forget(bucket, key) {
      expected.get(bucket)?.delete(key);
    },
    listed,
    touch(bucket, key) {
      const e = entry(bucket, key);
      if (e) e.written = false;
      // A stale listing is never served again: dropped, so its objects are not held for the rest of the run.
      for (const [k, l] of listings) if (l.bucket === bucket && key.startsWith(l.prefix)) { l.stale = true; listings.delete(k); }
    },
    acknowledged(bucket, key, etag) {
      const e = known(bucket, key);
      const got = singlePartEtag(etag);
      if (e) e.written = !!got && got === md5Hex(e.md5!);
    },
    planListing,
    list(bucket, prefix) {
      const known = planListing(bucket, prefix);
      if (known) return known;
      if (!opts.lister) throw new Error(`no listing of ${bucket}/${prefix} this run, and no lister to take one`);
      lists++;
      const listing = opts.lister(bucket, prefix).then((objects) => { opts.onListed?.(bucket, objects); return objects; });
      listed(bucket, prefix, listing);
      return listing;
    },
    get lists() { return lists; },
  };
}
