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
import { KeyedSlots, SLOT_CHUNK } from '../core/heap.ts';
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
  /**
   * The public key whose signature of the narinfo bytes with this MD5 (hex) expected at bucket/key
   * this run has checked already (upload's staged check), while the file checked is unchanged and
   * holds bytes of that MD5; asked after reading them. The cache verifier then leaves that
   * signature alone (issue 31).
   */
  signedBy?(bucket: string, key: string, md5: string): string | undefined;
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
  /** planListing, as the run holds it (CompactListing): no object made per listed key. */
  planCompact(bucket: string, prefix: string): Promise<CompactListing> | undefined;
  /** planListing, else a fresh listing through the run's lister (noted for the next caller). */
  list(bucket: string, prefix: string): Promise<RemoteObject[]>;
  /** list, as the run holds it (CompactListing), for a verifier's lookups. */
  listCompact(bucket: string, prefix: string): Promise<CompactListing>;
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

const HAS_MD5 = 1;
const WRITTEN = 2;
const CONFLICTED = 4;

/**
 * What is expected at each key, a slot per key (issue 31): the MD5 as 16 bytes, the size, and flags
 * (`written` once this run's write was acknowledged with that MD5, `conflicted` once two callers
 * expected other bytes: nothing is known of it then). Found per bucket by the caller's own key
 * string (the plan's, the listing's) in lib/core/heap.ts KeyedSlots: no string or object of its
 * own per key. An object per key held ~90 bytes of heap more, 27 MiB at 300,000 keys. The bytes
 * of small objects are held aside, by slot.
 */
class ExpectedTable {
  private readonly slots = new KeyedSlots(() => ({ md5: Buffer.alloc(SLOT_CHUNK * 16), sizes: new Float64Array(SLOT_CHUNK), flags: new Uint8Array(SLOT_CHUNK) }));
  private readonly held = new Map<number, Buffer>();

  slot(bucket: string, key: string): number | undefined {
    return this.slots.find(bucket, key);
  }

  /** The slot of a key whose MD5 is known (not conflicted). */
  known(bucket: string, key: string): number | undefined {
    const i = this.slots.find(bucket, key);
    return i !== undefined && (this.flags(i) & (HAS_MD5 | CONFLICTED)) === HAS_MD5 ? i : undefined;
  }

  flags(i: number): number { return this.slots.chunk(i).flags[this.slots.offset(i)]!; }
  setFlag(i: number, flag: number, on: boolean): void {
    const { flags } = this.slots.chunk(i);
    const j = this.slots.offset(i);
    flags[j] = on ? flags[j]! | flag : flags[j]! & ~flag;
  }
  size(i: number): number { return this.slots.chunk(i).sizes[this.slots.offset(i)]!; }
  md5(i: number): string { const j = this.slots.offset(i); return this.slots.chunk(i).md5.toString('hex', j * 16, j * 16 + 16); }
  bytes(i: number): Buffer | undefined { return this.held.get(i); }
  hold(i: number, bytes: Buffer): void { this.held.set(i, bytes); }

  /** Sets bucket/key's entry: `md5` (hex) known, or (undefined) conflicted; replaces what was there. */
  set(bucket: string, key: string, md5: string | undefined, size: number, bytes?: Buffer): void {
    const i = this.slots.take(bucket, key);
    const c = this.slots.chunk(i);
    const j = this.slots.offset(i);
    if (md5 !== undefined) c.md5.write(md5, j * 16, 16, 'hex');
    c.sizes[j] = size;
    c.flags[j] = md5 !== undefined ? HAS_MD5 : CONFLICTED;
    if (bytes) this.held.set(i, bytes); else this.held.delete(i);
  }

  delete(bucket: string, key: string): void {
    const i = this.slots.drop(bucket, key);
    if (i !== undefined) this.held.delete(i);
  }
}

const ETAG_NONE = 0;
/** `"` + 32 lowercase hex digits + `"` (what S3 lists for a single-part object): held as 16 bytes. */
const ETAG_QUOTED_MD5 = 1;
/** 32 lowercase hex digits, unquoted: held as 16 bytes. */
const ETAG_BARE_MD5 = 2;
/** Any other ETag (multipart `-N`, uppercase, weak): held as its string. */
const ETAG_OTHER = 3;
const QUOTED_MD5 = /^"[0-9a-f]{32}"$/;
const BARE_MD5 = /^[0-9a-f]{32}$/;

/**
 * A listing kept for the rest of a run (issue 31): each object's key (the listing's own string),
 * size, Last-Modified and ETag in typed arrays, a single-part ETag as its 16 bytes. A RemoteObject
 * per object, with its quoted ETag string, held ~120 bytes of heap beside the key, 36 MiB at
 * 300,000 objects; this holds ~40. `objects()` gives them back as they were listed, made afresh for
 * each caller (one prefix at a time), so what outlives a caller is only this.
 */
export class CompactListing {
  private readonly keys: string[];
  private readonly sizes: Float64Array;
  /** Last-Modified, Unix seconds; NaN when the listing had none. */
  private readonly mtimes: Float64Array;
  private readonly etagKinds: Uint8Array;
  private readonly md5s: Buffer;
  private readonly otherEtags = new Map<number, string>();

  constructor(objects: readonly RemoteObject[]) {
    const n = objects.length;
    this.keys = new Array<string>(n);
    this.sizes = new Float64Array(n);
    this.mtimes = new Float64Array(n);
    this.etagKinds = new Uint8Array(n);
    this.md5s = Buffer.alloc(n * 16);
    objects.forEach((o, i) => {
      this.keys[i] = o.key;
      this.sizes[i] = o.size;
      this.mtimes[i] = o.mtime ?? NaN;
      const e = o.etag;
      if (e === undefined) this.etagKinds[i] = ETAG_NONE;
      else if (QUOTED_MD5.test(e)) { this.etagKinds[i] = ETAG_QUOTED_MD5; this.md5s.write(e.slice(1, 33), i * 16, 16, 'hex'); }
      else if (BARE_MD5.test(e)) { this.etagKinds[i] = ETAG_BARE_MD5; this.md5s.write(e, i * 16, 16, 'hex'); }
      else { this.etagKinds[i] = ETAG_OTHER; this.otherEtags.set(i, e); }
    });
  }

  get length(): number { return this.keys.length; }

  /** The i-th object listed, made afresh. */
  object(i: number): RemoteObject {
    const o: RemoteObject = { key: this.keys[i]!, size: this.sizes[i]! };
    const kind = this.etagKinds[i];
    if (kind === ETAG_QUOTED_MD5) o.etag = `"${this.md5s.toString('hex', i * 16, i * 16 + 16)}"`;
    else if (kind === ETAG_BARE_MD5) o.etag = this.md5s.toString('hex', i * 16, i * 16 + 16);
    else if (kind === ETAG_OTHER) o.etag = this.otherEtags.get(i);
    const mtime = this.mtimes[i]!;
    if (!Number.isNaN(mtime)) o.mtime = mtime;
    return o;
  }

  /** The objects as listed (those whose key starts with `prefix`, when given), in listing order. */
  objects(prefix?: string): RemoteObject[] {
    const out: RemoteObject[] = [];
    for (let i = 0; i < this.keys.length; i++) if (prefix === undefined || this.keys[i]!.startsWith(prefix)) out.push(this.object(i));
    return out;
  }

  /** The listing of the keys under `prefix` only (itself when every key is). */
  under(prefix: string): CompactListing {
    return this.keys.every((k) => k.startsWith(prefix)) ? this : new CompactListing(this.objects(prefix));
  }

  /** One caller's lookups by key (lookup's own index; nothing is added to this listing). */
  lookup(): ListingLookup {
    return new ListingLookup(this, this.keys);
  }
}

/**
 * One caller's view of a listing by key (a verifier's): each object made only when asked for, and
 * which keys were claimed, so that what is left is what no expected file names (stale objects). A
 * RemoteObject and a Map entry per listed object cost ~130 bytes each of 100,000s at once (issue 31);
 * this holds a slot number per key and a byte.
 */
export class ListingLookup {
  private readonly at = new Map<string, number>();
  private readonly claimed: Uint8Array;

  constructor(private readonly listing: CompactListing, keys: readonly string[]) {
    keys.forEach((k, i) => this.at.set(k, i));
    this.claimed = new Uint8Array(keys.length);
  }

  /** Objects listed. */
  get size(): number { return this.listing.length; }

  /** The object listed at `key`, if any. */
  get(key: string): RemoteObject | undefined {
    const i = this.at.get(key);
    return i === undefined ? undefined : this.listing.object(i);
  }

  /** get, and `key` counts as expected (not left over). */
  claim(key: string): RemoteObject | undefined {
    const i = this.at.get(key);
    if (i === undefined) return undefined;
    this.claimed[i] = 1;
    return this.listing.object(i);
  }

  /** The objects no claim named, in listing order. */
  *unclaimed(): Generator<RemoteObject> {
    for (let i = 0; i < this.claimed.length; i++) if (!this.claimed[i]) yield this.listing.object(i);
  }
}

export function runKnowledge(opts: RunKnowledgeOptions = {}): RunKnowledge {
  const id = (bucket: string, key: string) => `${bucket}\0${key}`;
  const expected = new ExpectedTable();
  // Each listing held compactly once it arrives (CompactListing); callers get RemoteObjects made afresh.
  const listings = new Map<string, { bucket: string; prefix: string; listing: Promise<CompactListing>; stale: boolean }>();
  let lists = 0;
  const planCompact = (bucket: string, prefix: string): Promise<CompactListing> | undefined => {
    const own = listings.get(id(bucket, prefix));
    if (own && !own.stale) return own.listing;
    for (const l of listings.values()) {
      if (l.stale || l.bucket !== bucket || !prefix.startsWith(l.prefix) || l.prefix === prefix) continue;
      return l.listing.then((all) => all.under(prefix));
    }
    return undefined;
  };
  const planListing = (bucket: string, prefix: string): Promise<RemoteObject[]> | undefined => planCompact(bucket, prefix)?.then((l) => l.objects());
  const listed = (bucket: string, prefix: string, objects: Promise<RemoteObject[]>) => {
    const listing = objects.then((o) => new CompactListing(o));
    const entry = { bucket, prefix, listing, stale: false };
    listings.set(id(bucket, prefix), entry);
    // A failed listing is not kept (the next caller lists again, and sees the error itself).
    listing.catch(() => { if (listings.get(id(bucket, prefix)) === entry) listings.delete(id(bucket, prefix)); });
  };
  const list = (bucket: string, prefix: string): Promise<RemoteObject[]> => {
    const known = planListing(bucket, prefix);
    if (known) return known;
    if (!opts.lister) throw new Error(`no listing of ${bucket}/${prefix} this run, and no lister to take one`);
    lists++;
    const listing = opts.lister(bucket, prefix).then((objects) => { opts.onListed?.(bucket, objects); return objects; });
    listed(bucket, prefix, listing);
    return listing;
  };
  return {
    md5: (bucket, key) => { const i = expected.known(bucket, key); return i === undefined ? undefined : { md5: expected.md5(i), size: expected.size(i) }; },
    bytes: async (bucket, key) => { const i = expected.known(bucket, key); return i === undefined ? undefined : expected.bytes(i); },
    written: (bucket, key) => { const i = expected.known(bucket, key); return i !== undefined && (expected.flags(i) & WRITTEN) !== 0; },
    expect(bucket, key, md5, size, bytes) {
      const hex = singlePartEtag(md5Hex(md5));
      const old = expected.slot(bucket, key);
      const conflicted = old !== undefined && (expected.flags(old) & CONFLICTED) !== 0;
      // Unknown bytes (a multipart ETag): know nothing of it (a HEAD decides).
      if (!hex) { if (old !== undefined && !conflicted) expected.delete(bucket, key); return; }
      if (conflicted) return;
      // Two expectations of other bytes at one key: know nothing of it (a HEAD decides).
      if (old !== undefined && (expected.md5(old) !== hex || expected.size(old) !== size)) { expected.set(bucket, key, undefined, size); return; }
      if (old === undefined) expected.set(bucket, key, hex, size, bytes);
      else if (bytes && !expected.bytes(old)) expected.hold(old, bytes);
    },
    forget(bucket, key) {
      expected.delete(bucket, key);
    },
    listed,
    touch(bucket, key) {
      const i = expected.slot(bucket, key);
      if (i !== undefined) expected.setFlag(i, WRITTEN, false);
      // A stale listing is never served again: dropped, so its objects are not held for the rest of the run.
      for (const [k, l] of listings) if (l.bucket === bucket && key.startsWith(l.prefix)) { l.stale = true; listings.delete(k); }
    },
    acknowledged(bucket, key, etag) {
      const i = expected.known(bucket, key);
      const got = singlePartEtag(etag);
      if (i !== undefined) expected.setFlag(i, WRITTEN, !!got && got === expected.md5(i));
    },
    planListing,
    planCompact,
    list,
    listCompact(bucket, prefix) {
      return planCompact(bucket, prefix) ?? list(bucket, prefix).then((objects) => planCompact(bucket, prefix) ?? new CompactListing(objects));
    },
    get lists() { return lists; },
  };
}
