// Streaming sha256 (never a whole file in memory), the transit checksum beside it in the same read
// (issue 9: Content-MD5 for servers that verify it), and the SHA256SUMS format (`sha256sum -c` reads it).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { FileDigest } from './digester.ts';
import { hashPool, type HashPool } from './pool.ts';

export type { FileDigest } from './digester.ts';

/**
 * Files from this size on may be hashed by the worker pool (lib/hashing/pool.ts) when another is
 * hashing on the main thread. Below it a file hashes here in ~1.5 ms per MiB, less than handing
 * it over is worth.
 */
export const POOL_FILE_MIN_BYTES = 8 * 1024 * 1024;

/** Hex sha256 of a file. */
export async function sha256File(file: string): Promise<string> {
  return (await digestFile(file)).sha256;
}

/**
 * sha256 (and MD5 with `md5: true`) of a file in one sequential read through one reused buffer:
 * here, or by a hash worker for a file from POOL_FILE_MIN_BYTES that comes while another large
 * one hashes here (pool: false keeps all here). Errors name the file.
 */
export async function digestFile(file: string, opts: { md5?: boolean; pool?: HashPool | false } = {}): Promise<FileDigest> {
  const st = await stat(file);
  const pool = opts.pool === false ? undefined : opts.pool ?? hashPool();
  if (!pool?.enabled || !st.isFile() || st.size < POOL_FILE_MIN_BYTES) return digestFileHere(file, opts);
  // The first large file hashes here; one that comes while another is hashing goes to a worker.
  // So one file alone starts no worker (its start-up, ~40 ms of CPU, would buy nothing), and
  // several hash on the main thread and the workers at once.
  if (largeHere > 0) return pool.digestFile(file, opts);
  largeHere++;
  try { return await digestFileHere(file, opts); } finally { largeHere--; }
}

/** Large files being hashed on the main thread now. */
let largeHere = 0;

/** The in-thread read: async reads into one reused 1 MiB buffer (a stream allocates one per chunk). */
async function digestFileHere(file: string, opts: { md5?: boolean }): Promise<FileDigest> {
  const sha = createHash('sha256');
  const md5 = opts.md5 ? createHash('md5') : undefined;
  let size = 0;
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.allocUnsafeSlow(1024 * 1024);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      sha.update(chunk);
      md5?.update(chunk);
      size += bytesRead;
    }
  } finally { await fh.close(); }
  return { sha256: sha.digest('hex'), ...(md5 ? { md5: md5.digest('base64') } : {}), size };
}

/** The same digest of bytes already in memory. */
export function digestBytes(bytes: Buffer | string, opts: { md5?: boolean } = {}): FileDigest {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return { sha256: sha256Text(buf), ...(opts.md5 ? { md5: md5Base64(buf) } : {}), size: buf.length };
}

export function sha256Text(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Base64 MD5, the form of Content-MD5. */
export function md5Base64(bytes: string | Buffer): string {
  return createHash('md5').update(bytes).digest('base64');
}

/** A hex sha256 as x-amz-checksum-sha256 carries it (base64 of the 32 bytes): free, no hashing. */
export function sha256HexToBase64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

/** `HEX  NAME` lines sorted by name, as `sha256sum` prints them. */
export function renderSha256Sums(entries: Array<{ name: string; sha256: string }>): string {
  return [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((e) => `${e.sha256}  ${e.name}\n`).join('');
}

/** Parses SHA256SUMS back into name → hex. */
export function parseSha256Sums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

/** Nix's base32 alphabet (no e, o, u, t). */
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

/** Decodes Nix's base32 (as in a narinfo's `FileHash: sha256:...`) to hex; undefined if malformed. */
export function nix32ToHex(s: string, bytes = 32): string | undefined {
  if (s.length !== Math.ceil((bytes * 8) / 5)) return undefined;
  const out = new Uint8Array(bytes);
  for (let n = 0; n < s.length; n++) {
    const digit = NIX32.indexOf(s[s.length - 1 - n]!);
    if (digit < 0) return undefined;
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    out[i]! |= (digit << j) & 0xff;
    if (i + 1 < bytes) out[i + 1]! |= digit >> (8 - j);
    else if (digit >> (8 - j)) return undefined;
  }
  return Buffer.from(out).toString('hex');
}

/** A `sha256:...` hash as Nix writes it (nix32, or hex) to hex; undefined if it is not one. */
export function nixSha256ToHex(h: string): string | undefined {
  const m = /^sha256:([0-9a-z]+)$/.exec(h);
  if (!m) return undefined;
  if (/^[0-9a-f]{64}$/.test(m[1]!)) return m[1];
  return nix32ToHex(m[1]!);
}

/** Hex to Nix's base32 (the inverse of nix32ToHex). */
export function hexToNix32(hex: string): string {
  const bytes = Buffer.from(hex, 'hex');
  const len = Math.ceil((bytes.length * 8) / 5);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    const c = ((bytes[i]! >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0)) & 0x1f;
    out += NIX32[c];
  }
  return out;
}

/**
 * Files up to this size are stat'ed and read synchronously, whole: from the page cache that takes
 * microseconds, less CPU than the 4–5 thread-pool round trips of an async read (issue 6: the
 * client shares 2 cores with the S3 server, so client CPU per file is upload time). Larger ones
 * are streamed.
 */
export const SYNC_READ_MAX_BYTES = 1024 * 1024;

/**
 * Up to this size upload reads a file's MD5 with its sha256 (issue 16), so that the closing
 * verification proves the object by the listing's ETag instead of a HEAD. Above it, the MD5 costs
 * more client CPU than the one HEAD it saves (~0.15 s per 100 MiB on one core, in the bench's
 * 4 × 100 MiB tarballs: 1.30× → 1.57× rclone), so large files are HEADed as before — unless the
 * environment sends Content-MD5, which needs it anyway.
 */
export const MD5_PROOF_MAX_BYTES = 16 * 1024 * 1024;

/** Which files get an MD5: all (`true`: Content-MD5), none, or those a listing proof pays for (`'proof'`). */
export type Md5Wanted = boolean | 'proof';

export function wantsMd5(md5: Md5Wanted | undefined, size: number | bigint): boolean {
  return md5 === true || (md5 === 'proof' && Number(size) <= MD5_PROOF_MAX_BYTES);
}

/** Size and sha256 of the first `n` bytes of a file (fewer when it is shorter): is an object cut short a prefix of it? (issue 25). */
export async function sha256OfPrefix(file: string, n: number): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  if (n > 0) for await (const chunk of createReadStream(file, { start: 0, end: n - 1 })) { hash.update(chunk as Buffer); size += (chunk as Buffer).length; }
  return { size, sha256: hash.digest('hex') };
}
