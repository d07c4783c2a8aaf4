// Reading S3 objects back for verification: HEAD (size and our `sha256` metadata) for the quick
// check, the whole object streamed and hashed for --deep. Only upload's closing verification gives
// it a local memo (scope.known), and then only to accept a listing in place of a HEAD.
import { createHash } from 'node:crypto';
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

/** Checks one object: present, size, our sha256 metadata; the content itself when deep (or `always`). */
export async function checkObject(t: VerifyTarget, scope: VerifyScope, c: ObjectCheck, report: DestinationReport, repair = scope.repair): Promise<void> {
  const where = `s3://${c.bucket}/${c.key}`;
  const problem = (what: string) => report.problems.push({ destination: c.destination, where, what, repair, bucket: c.bucket, key: c.key });
  if (vouchedByListing(scope, c)) {
    count(report, 'objects');
    count(report, 'objects proven by listing');
    scope.progress.item();
    return;
  }
  // --deep reads every byte anyway: one GET gives what the HEAD would (its headers) and the bytes.
  const oneGet = (scope.deep || c.always) && t.s3.getWithHead ? await scope.limit(async () => {
    const r = await t.s3.getWithHead!(c.bucket, c.key);
    return r ? { head: r.head, got: await hashStream(r.stream) } : undefined;
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
  if (!scope.deep && !c.always && !rewritten) { readBack(); scope.progress.item(); return; }
  const got = oneGet ? oneGet.got : await scope.limit(async () => {
    const stream = await t.s3.getStream(c.bucket, c.key);
    return stream ? hashStream(stream) : undefined;
  });
  count(report, 'bytes read', got?.size ?? 0);
  scope.progress.item();
  if (!got) { problem('missing (HEAD saw it, GET did not)'); return; }
  if (got.sha256 !== c.expected.sha256) {
    // Its metadata may still claim the right sha256, and upload skips what the server reports right.
    report.problems.push({ destination: c.destination, where, what: `content sha256 ${got.sha256} (${got.size} bytes), expected ${c.expected.sha256}${c.expected.size !== undefined ? ` (${c.expected.size} bytes)` : ''}`,
      repair: `delete ${where} (its bytes are not what its metadata says), then ${repair}`, bucket: c.bucket, key: c.key });
  } else if (got.size === head.size) {
    readBack();
  }
}
