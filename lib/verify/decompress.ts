// Decompressing what a binary cache serves (NARs by their narinfo's Compression, narinfos and .ls
// listings by their bytes or Content-Encoding), for verification only. zstd — what Nix and Lix
// write by default — is decoded in-process by fzstd (pure JS, streaming: no process per NAR, no
// native build); gzip and brotli by node:zlib; xz and bzip2, rare in Nix caches, by their programs.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { brotliDecompressSync, createBrotliDecompress, createGunzip, gunzipSync } from 'node:zlib';
import { decompress as zstdSync } from 'fzstd';
import { ObjectDigester } from '../hashing/digester.ts';
import { debianPackageOf } from '../core/exec.ts';
import { MissingToolError } from '../core/errors.ts';

type Hashed = { sha256: string; digest: Buffer; size: number };

/** How each narinfo `Compression` (Nix's names) is decoded: in-process, or by a program. */
const decompressors: Record<string, string[] | 'gzip' | 'br' | 'zstd' | 'none'> = {
  none: 'none', '': 'none', xz: ['xz', '-dc'], zstd: 'zstd', bzip2: ['bzip2', '-dc'], gzip: 'gzip', br: 'br',
};

export function knownCompression(c: string): boolean {
  return c in decompressors;
}

const zstdMagic = 0xfd2fb528;
export function isZstd(bytes: Buffer): boolean {
  return bytes.length >= 4 && bytes.readUInt32LE(0) === zstdMagic;
}

/** A whole (small) zstd buffer decoded in-process; throws on bytes that are not zstd or are cut short. */
export function zstdDecompressSync(bytes: Buffer): Buffer {
  if (!isZstd(bytes)) throw new Error('not zstd data (no zstd frame magic)');
  const out = zstdSync(bytes);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** Small buffers (narinfos, .ls) in one of the encodings Nix writes; undefined: not decodable as `enc`. */
export function decodeSmall(bytes: Buffer, enc: 'zstd' | 'xz' | 'gzip' | 'br'): Buffer | undefined {
  try {
    if (enc === 'zstd') return zstdDecompressSync(bytes);
    if (enc === 'gzip') return gunzipSync(bytes);
    if (enc === 'br') return brotliDecompressSync(bytes);
    const r = spawnSync('xz', ['-dc'], { input: bytes });
    return r.status === 0 ? r.stdout : undefined;
  } catch { return undefined; }
}

async function hashIterable(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Hashed> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) { h.update(chunk); size += chunk.length; }
  const digest = h.digest();
  return { sha256: digest.toString('hex'), digest, size };
}

/** zstd through the one streaming decoder releng has (lib/hashing/digester.ts); throws where it stops. */
async function hashZstd(input: AsyncIterable<Buffer | Uint8Array>, onRaw: (chunk: Buffer) => void): Promise<Hashed> {
  const d = new ObjectDigester('zstd');
  for await (const c of input) {
    const chunk = Buffer.isBuffer(c) ? c : Buffer.from(c);
    onRaw(chunk);
    d.update(chunk);
  }
  const out = d.finish();
  if (out.decodeError !== undefined || !out.decoded) throw new Error(out.decodeError ?? 'no output');
  return { sha256: out.decoded.digest.toString('hex'), digest: out.decoded.digest, size: out.decoded.size };
}

/**
 * Feeds `input` through the decompressor for `compression` and hashes what comes out, while `onRaw`
 * sees the compressed bytes (one read of the object gives FileHash and NarHash).
 */
export async function hashDecompressed(input: Readable, compression: string, onRaw: (chunk: Buffer) => void): Promise<Hashed> {
  const how = decompressors[compression];
  if (!how) throw new Error(`unknown compression "${compression}"`);
  if (how === 'none') {
    const h = createHash('sha256');
    let size = 0;
    for await (const c of input) { onRaw(c); h.update(c); size += c.length; }
    const digest = h.digest();
    return { sha256: digest.toString('hex'), digest, size };
  }
  if (how === 'zstd') {
    try { return await hashZstd(input, onRaw); } catch (e) { input.destroy(); throw e; }
  }
  input.on('data', (c: Buffer) => onRaw(c));
  if (how === 'gzip' || how === 'br') return hashIterable(input.pipe(how === 'gzip' ? createGunzip() : createBrotliDecompress()));
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
  const [result, code] = await Promise.all([hashIterable(child.stdout), exited]);
  if (code !== 0) throw new Error(`${cmd} cannot decompress it (exit ${code}${stderr.trim() ? `: ${stderr.trim().split('\n').at(-1)}` : ''})`);
  return result;
}
