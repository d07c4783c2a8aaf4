// Reading S3 objects back for verification. Quick: a listing whose single-part ETag is the MD5 of
// the expected local bytes (scope.local) proves the bytes; otherwise a HEAD (size and our `sha256`
// metadata). --deep: the whole object streamed and hashed. Only upload's closing verification gives
// it a local memo (scope.known), and then only to accept a listing in place of a HEAD; with it,
// our metadata must be vouched for too (this run's acknowledged write, this run's HEAD, a verification's).
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ObjectDigester, type ObjectDigest } from '../hashing/digester.ts';
import { poolForDownloads } from '../hashing/pool.ts';
import { hashDecompressed } from './decompress.ts';
import { singlePartEtag } from '../s3/knowledge.ts';
import { normalizeEtag } from '../s3/record.ts';
import type { RemoteObject } from '../s3/store.ts';
import type { DestinationReport, ExpectedFile, VerifyScope, VerifyTarget } from './types.ts';
import { count } from './types.ts';

/** sha256 (hex and raw) and byte count of a stream, read once. */
export async function hashStream(stream: AsyncIterable<Buffer | Uint8Array>): Promise<{ sha256: string; digest: Buffer; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) { h.update(chunk); size += chunk.length; }
  const digest = h.digest();
  return { sha256: digest.toString('hex'), digest, size };
}

/** Reads a whole stream (small objects only: narinfos, manifests, SHA256SUMS). */
export async function readAll(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

// Decompression (zstd in-process, issue 16) lives in decompress.ts; re-exported for existing importers.
export { hashDecompressed, knownCompression } from './decompress.ts';

/**
 * Objects from this size on are hashed by the worker pool (lib/hashing/pool.ts) while this thread
 * reads the next responses; their chunks are transferred, not copied. Smaller ones hash here: a
 * message round trip costs about what hashing 64 KiB does.
 */
export const POOL_OBJECT_MIN_BYTES = 1024 * 1024;
/** NARs are decoded (zstd) and hashed twice: from this size on they go to the pool. */
export const POOL_NAR_MIN_BYTES = 64 * 1024;

/** sha256 and size of an object's body: by a hash worker from POOL_OBJECT_MIN_BYTES (its size as the response says), else here. */
export async function hashBody(stream: AsyncIterable<Buffer | Uint8Array>, size: number | undefined, what: string): Promise<{ sha256: string; digest: Buffer; size: number }> {
  const pool = poolForDownloads();
  if (size === undefined || size < POOL_OBJECT_MIN_BYTES || !pool) return hashStream(stream);
  const d = await pool.digestStream(stream, what);
  return { sha256: d.raw.digest.toString('hex'), digest: d.raw.digest, size: d.raw.size };
}

/**
 * FileHash (sha256 of the stored bytes) and NarHash/NarSize (of what they decode to) in one read.
 * zstd (what Nix writes) and none: ObjectDigester, in a hash worker from POOL_NAR_MIN_BYTES, else
 * here; a decoding error comes back as decodeError with every stored byte hashed. Other
 * compressions (xz, bzip2 by their programs; gzip, br by node:zlib) decode here and throw.
 */
export async function digestNar(stream: Readable, compression: string, size: number | undefined, what: string): Promise<ObjectDigest> {
  const decode = compression === 'zstd' ? 'zstd' : compression === 'none' || compression === '' ? 'none' : undefined;
  if (decode) {
    const pool = poolForDownloads();
    if (size !== undefined && size >= POOL_NAR_MIN_BYTES && pool) return pool.digestStream(stream, what, decode);
    const d = new ObjectDigester(decode);
    try {
      for await (const c of stream) d.update(c as Buffer);
    } catch (e) { stream.destroy(); throw e; }
    return d.finish();
  }
  const raw = createHash('sha256');
  let rawSize = 0;
  const nar = await hashDecompressed(stream, compression, (c) => { raw.update(c); rawSize += c.length; });
  return { raw: { digest: raw.digest(), size: rawSize }, decoded: { digest: nar.digest, size: nar.size } };
}

/** Counted for objects `releng verify` quick proved by their bytes alone (no HEAD: sha256 metadata not read). */
export const metadataNotRead = 'objects whose metadata quick did not read';

/** Says (never silently) that quick proved objects by their bytes and did not read their metadata. */
export function metadataNote(report: DestinationReport, destination: string, where: string): void {
  const n = report.checked[metadataNotRead];
  if (!n) return;
  report.notChecked.push({ destination, what: `sha256 metadata of ${n} object${n === 1 ? '' : 's'} under ${where}`,
    reason: 'the listing proved their bytes (ETag = MD5 of the files in release/); `releng verify --deep` reads the metadata too' });
}

/**
 * Object checks a verifier runs at once (lib/core/each.ts workers): above the requests in flight
 * (VerifyScope.limit, 16), so that limit stays busy, while holding a few dozen checks instead of
 * one promise per object of the release (issue 31).
 */
export const CHECKS_IN_FLIGHT = 64;

/** What a check of one S3 object needs to report a problem. */
export interface ObjectCheck {
  destination: string;
  bucket: string;
  key: string;
  expected: ExpectedFile;
  /** Download and hash even in quick mode (small, important objects: SHA256SUMS, manifest.nix). */
  always?: boolean;
  /** The key's entry in a fresh listing of its prefix, when the caller listed (undefined: not listed, or absent). */
  listed?: RemoteObject;
}

/**
 * Whether a fresh listing proves what a HEAD would (upload's closing verification, quick mode): the
 * listed size is the expected one, and the listed ETag and Last-Modified are those a previous
 * verification's HEAD saw together with our expected sha256 metadata. A rewrite with other bytes
 * changes the ETag, any rewrite (metadata only too) the Last-Modified, so the listing shows the
 * very object that HEAD read back. Never for what the listing lacks.
 */
function vouchedByListing(scope: VerifyScope, c: ObjectCheck): boolean {
  if (!scope.known || !c.listed || scope.deep || c.always) return false;
  const etag = normalizeEtag(c.listed.etag);
  const e = scope.known.get(c.bucket, c.key);
  return !!(e?.verified !== undefined && e.verified === c.listed.mtime && etag && e.etag === etag && e.size === c.listed.size && e.sha256 === c.expected.sha256
    && (c.expected.size === undefined || c.expected.size === c.listed.size));
}

/**
 * What the listing says of the bytes, held against the caller's local knowledge (issue 16):
 * `proven` when the listed single-part ETag (the server's MD5 of what it stores) is the MD5 of the
 * expected local bytes at the expected size — byte for byte, which a HEAD (our sha256 metadata)
 * never showed; `contradicted` when it is another MD5 at that size (other bytes, or a server whose
 * ETags are no MD5s, as with SSE-KMS: the bytes are then read). Multipart ETags (`-N`) say neither.
 */
function bytesByListing(scope: VerifyScope, c: ObjectCheck): 'proven' | 'contradicted' | undefined {
  if (!scope.local || !c.listed || scope.deep || c.always) return undefined;
  const local = scope.local.md5(c.bucket, c.key);
  const etag = singlePartEtag(c.listed.etag);
  if (!local || !etag || local.size !== c.listed.size || (c.expected.size !== undefined && c.expected.size !== c.listed.size)) return undefined;
  return etag === local.md5 ? 'proven' : 'contradicted';
}

/**
 * Whether our metadata (the sha256 a HEAD shows; content type and encoding with it) is vouched for
 * without a HEAD, for an object whose bytes the listing proved: this run wrote it and the server
 * acknowledged the write with the ETag of these bytes (a PUT sets bytes and metadata together), or
 * a HEAD of this run (the plan's) saw our sha256 with this ETag and size, or a verification did
 * (vouchedByListing). Upload's closing verification only (scope.known): `releng verify` quick
 * proves bytes and leaves metadata to --deep (docs/verify.md, "What quick proves").
 */
function metadataVouched(scope: VerifyScope, c: ObjectCheck, etag: string): boolean {
  if (!scope.known) return true;
  if (scope.local?.written(c.bucket, c.key)) return true;
  const h = scope.known.headed?.(c.bucket, c.key);
  if (h && h.etag === etag && h.sha256 === c.expected.sha256 && h.size === c.listed!.size) return true;
  return vouchedByListing(scope, c);
}

/** Checks one object: present, size, our sha256 metadata; the content itself when deep (or `always`). */
export async function checkObject(t: VerifyTarget, scope: VerifyScope, c: ObjectCheck, report: DestinationReport, repair = scope.repair): Promise<void> {
  const where = `s3://${c.bucket}/${c.key}`;
  const problem = (what: string) => report.problems.push({ destination: c.destination, where, what, repair, bucket: c.bucket, key: c.key });
  const bytes = bytesByListing(scope, c);
  if (bytes === 'proven') {
    const etag = singlePartEtag(c.listed!.etag)!;
    if (metadataVouched(scope, c, etag)) {
      count(report, 'objects');
      count(report, 'objects proven by listing');
      if (!scope.known) count(report, metadataNotRead);
      // Noted with the listing's Last-Modified, so the next run's closing verification is a listing
      // too. The residual risk, unlike readBack's 2 s rule: another writer putting these same bytes
      // with other metadata within the second of our write keeps ETag and Last-Modified, and later
      // runs would not HEAD it. Its bytes stay proven by every listing (the ETag is their MD5); only
      // its metadata could be another writer's, which `releng verify --deep` reads.
      if (scope.known && c.listed!.mtime !== undefined) {
        scope.known.markVerified(c.bucket, c.key, { sha256: c.expected.sha256, size: c.listed!.size, etag, verified: c.listed!.mtime });
      }
      scope.progress.item();
      return;
    }
  } else if (bytes === undefined && vouchedByListing(scope, c)) {
    count(report, 'objects');
    count(report, 'objects proven by listing');
    scope.progress.item();
    return;
  }
  // --deep reads every byte anyway: one GET gives what the HEAD would (its headers) and the bytes.
  const oneGet = (scope.deep || c.always) && t.s3.getWithHead ? await scope.limit(async () => {
    const r = await t.s3.getWithHead!(c.bucket, c.key);
    return r ? { head: r.head, got: await hashBody(r.stream, r.head.size, `s3://${c.bucket}/${c.key}`) } : undefined;
  }) : undefined;
  const head = oneGet ? oneGet.head : (scope.deep || c.always) && t.s3.getWithHead ? undefined : await scope.limit(() => t.s3.head(c.bucket, c.key));
  count(report, 'objects');
  if (!head) { problem('missing'); return; }
  if (c.expected.size !== undefined && head.size !== c.expected.size) problem(`size ${head.size}, expected ${c.expected.size}`);
  const headEtag = normalizeEtag(head.etag);
  // Noted only when the server's clock was 2 s past the object's Last-Modified at this HEAD: any
  // later rewrite then has another Last-Modified second than the one noted.
  const readBack = () => {
    if (scope.known && headEtag && head.sha256 === c.expected.sha256 && (c.expected.size === undefined || head.size === c.expected.size)
      && head.mtime !== undefined && head.serverTime !== undefined && head.serverTime - head.mtime >= 2) {
      scope.known.markVerified(c.bucket, c.key, { sha256: head.sha256, size: head.size, etag: headEtag, verified: head.mtime });
    }
  };
  if (head.sha256 !== c.expected.sha256) {
    // upload refuses to replace an object of the (immutable) release prefix unless told to.
    const fix = c.destination === 'release prefix' ? `${repair} --replace-artifacts (only if this release was never announced)` : repair;
    report.problems.push({ destination: c.destination, where, what: head.sha256 ? `sha256 metadata ${head.sha256}, expected ${c.expected.sha256}` : `no sha256 metadata (expected ${c.expected.sha256})`, repair: fix, bucket: c.bucket, key: c.key });
  }
  // Our metadata with another ETag than the one a verification read back with it: the object was
  // rewritten since (same bytes keep their ETag), so its metadata proves nothing; read the bytes.
  const before = scope.known?.get(c.bucket, c.key);
  const rewritten = !!(before?.verified !== undefined && before.sha256 === c.expected.sha256 && headEtag && before.etag !== headEtag && head.sha256 === c.expected.sha256);
  if (rewritten) count(report, 'objects rewritten since verified (read)');
  // Our metadata over a listed ETag that is not the MD5 of the expected bytes: read them.
  const contradicted = bytes === 'contradicted' && head.sha256 === c.expected.sha256 && !rewritten;
  if (contradicted) count(report, 'objects whose ETag is not the local MD5 (read)');
  if (!scope.deep && !c.always && !rewritten && !contradicted) { readBack(); scope.progress.item(); return; }
  const got = oneGet ? oneGet.got : await scope.limit(async () => {
    const stream = await t.s3.getStream(c.bucket, c.key);
    return stream ? hashBody(stream, head.size, `s3://${c.bucket}/${c.key}`) : undefined;
  });
  count(report, 'bytes read', got?.size ?? 0);
  scope.progress.item();
  if (!got) { problem('missing (HEAD saw it, GET did not)'); return; }
  if (got.sha256 !== c.expected.sha256) {
    // Its metadata may still claim the right sha256, and upload skips what the server reports right.
    report.problems.push({ destination: c.destination, where, what: `content sha256 ${got.sha256} (${got.size} bytes), expected ${c.expected.sha256}${c.expected.size !== undefined ? ` (${c.expected.size} bytes)` : ''}`,
      // upload --deep reads every object back and sends again what differs (issue 25): no deletion needed.
      repair: /^releng upload\b/.test(repair) ? `${repair} --deep (its bytes are not what its metadata says: --deep reads them back and sends them again)` : `delete ${where} (its bytes are not what its metadata says), then ${repair}`, bucket: c.bucket, key: c.key });
  } else if (got.size === head.size) {
    readBack();
  }
}
