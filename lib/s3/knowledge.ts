// What one upload run knows of the objects it plans (issue 16): the MD5 and size of the bytes
// expected at each key (from the local files it hashed), which of its own writes the server
// acknowledged with exactly that MD5 as ETag, and the listings its plan took. The closing
// verification (lib/verify/objects.ts) proves a listed object by its single-part ETag against this
// MD5 instead of a HEAD each, and re-uses a plan's listing of a prefix nothing was written under.
// A local memo of this run only: never saved, never the truth by itself (only a listing or a
// read of the server proves an object with it).
import type { LocalKnowledge } from '../verify/types.ts';
import { normalizeEtag } from './record.ts';
import type { RemoteObject } from './store.ts';

/** A single-part ETag: 32 hex digits, the MD5 of the stored bytes (multipart ETags end in -N). */
export function singlePartEtag(etag: string | undefined): string | undefined {
  const e = normalizeEtag(etag)?.toLowerCase();
  return e && /^[0-9a-f]{32}$/.test(e) ? e : undefined;
}

export interface RunKnowledge extends LocalKnowledge {
  /** The bytes expected at bucket/key: their MD5 (hex or base64) and size. */
  expect(bucket: string, key: string, md5: string, size: number): void;
  /** A listing of bucket/prefix taken by the plan (before any write of this run). */
  listed(bucket: string, prefix: string, listing: Promise<RemoteObject[]>): void;
  /** Before any write (put, delete, copy) of bucket/key: a plan listing covering it is stale from now on. */
  touch(bucket: string, key: string): void;
  /** This run's PUT of bucket/key was acknowledged with `etag` (not "already there" by someone else). */
  acknowledged(bucket: string, key: string, etag: string | undefined): void;
  /** The plan's listing of exactly bucket/prefix, when nothing was written under it since; else undefined. */
  planListing(bucket: string, prefix: string): Promise<RemoteObject[]> | undefined;
}

/** MD5 as lowercase hex, from hex or base64. */
export function md5Hex(md5: string): string {
  return /^[0-9a-fA-F]{32}$/.test(md5) ? md5.toLowerCase() : Buffer.from(md5, 'base64').toString('hex');
}

export function runKnowledge(): RunKnowledge {
  const id = (bucket: string, key: string) => `${bucket}\0${key}`;
  const expected = new Map<string, { md5: string; size: number }>();
  const written = new Set<string>();
  const conflicted = new Set<string>();
  const listings = new Map<string, { bucket: string; prefix: string; listing: Promise<RemoteObject[]>; stale: boolean }>();
  return {
    md5: (bucket, key) => expected.get(id(bucket, key)),
    written: (bucket, key) => written.has(id(bucket, key)),
    expect(bucket, key, md5, size) {
      const hex = md5Hex(md5);
      const k = id(bucket, key);
      const old = expected.get(k);
      // Two plans expecting other bytes at one key: know nothing of it (a HEAD decides).
      if (conflicted.has(k) || (old && (old.md5 !== hex || old.size !== size))) { expected.delete(k); conflicted.add(k); return; }
      expected.set(k, { md5: hex, size });
    },
    listed(bucket, prefix, listing) {
      listing.catch(() => undefined);
      listings.set(id(bucket, prefix), { bucket, prefix, listing, stale: false });
    },
    touch(bucket, key) {
      written.delete(id(bucket, key));
      for (const l of listings.values()) if (l.bucket === bucket && key.startsWith(l.prefix)) l.stale = true;
    },
    acknowledged(bucket, key, etag) {
      const e = expected.get(id(bucket, key));
      const got = singlePartEtag(etag);
      if (e && got && got === e.md5) written.add(id(bucket, key));
    },
    planListing(bucket, prefix) {
      const l = listings.get(id(bucket, prefix));
      return l && !l.stale ? l.listing : undefined;
    },
  };
}
