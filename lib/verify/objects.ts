// Reading S3 objects back for verification: HEAD (size and our `sha256` metadata) for the quick
// check, the whole object streamed and hashed for --deep. Nothing here consults a local memo.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip } from 'node:zlib';
import { debianPackageOf } from '../exec.ts';
import { MissingToolError } from '../errors.ts';
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

/** The programs that decompress each narinfo `Compression` (Nix's names); node:zlib where it can. */
const decompressors: Record<string, string[] | 'gzip' | 'br' | 'none'> = {
  none: 'none', '': 'none', xz: ['xz', '-dc'], zstd: ['zstd', '-dc'], bzip2: ['bzip2', '-dc'], gzip: 'gzip', br: 'br',
};

export function knownCompression(c: string): boolean {
  return c in decompressors;
}

/**
 * Feeds `input` through the decompressor for `compression` and hashes what comes out, while `onRaw`
 * sees the compressed bytes (one read of the object gives FileHash and NarHash).
 */
export async function hashDecompressed(input: Readable, compression: string, onRaw: (chunk: Buffer) => void): Promise<{ sha256: string; digest: Buffer; size: number }> {
  const how = decompressors[compression];
  if (!how) throw new Error(`unknown compression "${compression}"`);
  if (how === 'none') {
    const h = createHash('sha256');
    let size = 0;
    for await (const c of input) { onRaw(c); h.update(c); size += c.length; }
    const digest = h.digest();
    return { sha256: digest.toString('hex'), digest, size };
  }
  input.on('data', (c: Buffer) => onRaw(c));
  if (how === 'gzip' || how === 'br') return hashStream(input.pipe(how === 'gzip' ? createGunzip() : createBrotliDecompress()));
  const [cmd, ...args] = how;
  const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => { stderr += String(c); });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (e: any) => reject(e?.code === 'ENOENT' ? new MissingToolError(cmd!, debianPackageOf[cmd!] ?? cmd!) : e));
    child.on('close', (code) => resolve(code));
  });
  exited.catch(() => undefined);
  child.stdin.on('error', () => undefined); // the decompressor may stop reading a corrupt stream early
  input.on('error', (e) => child.stdin.destroy(e));
  input.pipe(child.stdin);
  const [result, code] = await Promise.all([hashStream(child.stdout), exited]);
  if (code !== 0) throw new Error(`${cmd} cannot decompress it (exit ${code}${stderr.trim() ? `: ${stderr.trim().split('\n').at(-1)}` : ''})`);
  return result;
}

/** What a check of one S3 object needs to report a problem. */
export interface ObjectCheck {
  destination: string;
  bucket: string;
  key: string;
  expected: ExpectedFile;
  /** Download and hash even in quick mode (small, important objects: SHA256SUMS, manifest.nix). */
  always?: boolean;
  /** Size the listing reported, when the caller listed (saves nothing, but a mismatch is named). */
  listed?: number;
}

/** Checks one object: present, size, our sha256 metadata; the content itself when deep (or `always`). */
export async function checkObject(t: VerifyTarget, scope: VerifyScope, c: ObjectCheck, report: DestinationReport, repair = scope.repair): Promise<void> {
  const where = `s3://${c.bucket}/${c.key}`;
  const problem = (what: string) => report.problems.push({ destination: c.destination, where, what, repair, bucket: c.bucket, key: c.key });
  const head = await scope.limit(() => t.s3.head(c.bucket, c.key));
  count(report, 'objects');
  if (!head) { problem('missing'); return; }
  if (c.expected.size !== undefined && head.size !== c.expected.size) problem(`size ${head.size}, expected ${c.expected.size}`);
  if (head.sha256 !== c.expected.sha256) {
    // upload refuses to replace an object of the (immutable) release prefix unless told to.
    const fix = c.destination === 'release prefix' ? `${repair} --replace-artifacts (only if this release was never announced)` : repair;
    report.problems.push({ destination: c.destination, where, what: head.sha256 ? `sha256 metadata ${head.sha256}, expected ${c.expected.sha256}` : `no sha256 metadata (expected ${c.expected.sha256})`, repair: fix, bucket: c.bucket, key: c.key });
  }
  if (!scope.deep && !c.always) { scope.progress.item(); return; }
  const got = await scope.limit(async () => {
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
  }
}
