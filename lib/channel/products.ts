// Choosing the Hydra product to mirror from a job's build (by subtype or file-name regex), and
// downloading it from the binary cache with `nix store cat`: into NAME.tmp, hashed on the way,
// renamed only when complete and equal to Hydra's sha256hash (else deleted: nothing is published).
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { execa } from 'execa';
import { sha256File } from '../hashing/checksums.ts';
import { MissingToolError, ReleaseError } from '../core/errors.ts';
import type { HydraBuild, HydraProduct } from '../hydra/schemas.ts';
import type { ChannelProduct } from '../config/channels.ts';
import { storePathBaseName } from './names.ts';

/** A file product with the size and sha256 Hydra recorded. */
export interface FileProduct extends HydraProduct {
  filesize: number;
  sha256hash: string;
}

/** The product of `build` that `spec` selects (by type, subtype and file-name regex, all that are set); undefined when there is none (caller decides if that is fatal). */
export function selectProduct(build: HydraBuild, spec: ChannelProduct, buildUrl: string): FileProduct | undefined {
  let products = Object.entries(build.buildproducts).sort(([a], [b]) => Number(a) - Number(b)).map(([, p]) => p);
  if (spec.type !== undefined) products = products.filter((p) => p.type === spec.type);
  if (spec.subtype !== undefined) products = products.filter((p) => (p.subtype ?? '') === spec.subtype);
  if (spec.fileMatches !== undefined) {
    const re = new RegExp(spec.fileMatches);
    products = products.filter((p) => re.test(p.path.split('/').at(-1) ?? ''));
  }
  if (products.length > 1) {
    const list = products.map((p) => `${p.subtype || '(no subtype)'} ${p.path.split('/').at(-1)}`).join(', ');
    throw new ReleaseError(`job ${spec.job} (${buildUrl}) has ${products.length} products matching the channel config (${list})`,
      'set "type", "subtype" or "fileMatches" on this product in channels.kinds[].products to pick one; nothing was published');
  }
  const p = products[0];
  if (!p) return undefined;
  if (p.type !== 'file' || p.sha256hash === null || p.filesize === null) {
    throw new ReleaseError(`job ${spec.job} (${buildUrl}): product ${p.path} is not a regular file with a sha256 (type ${p.type})`, 'pick a file product (subtype/fileMatches); nothing was published');
  }
  storePathBaseName(p.path, `job ${spec.job} (${buildUrl})`);
  return p as FileProduct;
}

export interface DownloadRequest {
  /** Nix store URL of the binary cache (https://cache.nixos.org, file:///..., http://...). */
  store: string;
  storePath: string;
  dest: string;
  sha256: string;
  size: number;
  onBytes?: (n: number) => void;
}

/** Fetches one product into dest (atomically) unless a complete, matching copy is already staged. */
export async function downloadProduct(req: DownloadRequest): Promise<'downloaded' | 'staged'> {
  const existing = await stat(req.dest).catch(() => undefined);
  if (existing?.isFile() && existing.size === req.size && (await sha256File(req.dest)) === req.sha256) {
    req.onBytes?.(req.size);
    return 'staged';
  }
  await rm(req.dest, { force: true });
  const tmp = `${req.dest}.tmp`;
  const hash = createHash('sha256');
  // Each process gets its own Nix cache dir: concurrent `nix store cat` runs sharing
  // ~/.cache/nix/binary-cache-v6.sqlite fail with "constraint failed" (measured with Nix 2.8).
  const cacheHome = await mkdtemp(path.join(os.tmpdir(), 'releng-nix-cache-'));
  const proc = execa('nix', ['--extra-experimental-features', 'nix-command', 'store', 'cat', '--store', req.store, '--', req.storePath],
    { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', buffer: { stdout: false, stderr: true }, reject: false, env: { XDG_CACHE_HOME: cacheHome } });
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) { hash.update(chunk); req.onBytes?.(chunk.length); cb(null, chunk); },
  });
  try {
    const [, result] = await Promise.all([pipeline(proc.stdout!, counter, createWriteStream(tmp)), proc]);
    if ((result as any).code === 'ENOENT' || (result as any).cause?.code === 'ENOENT') throw new MissingToolError('nix', 'nix-bin');
    if (result.exitCode !== 0) {
      throw new ReleaseError(`cannot fetch ${req.storePath} from the binary cache ${req.store} (nix store cat exit ${result.exitCode}):\n  ${String(result.stderr).trim().split('\n').slice(-5).join('\n  ')}`,
        'is the build in the cache yet? re-run later; nothing was published');
    }
    const actual = hash.digest('hex');
    if (actual !== req.sha256) {
      throw new ReleaseError(`${req.storePath} from ${req.store} is corrupt: sha256 ${actual}, but Hydra recorded ${req.sha256}`,
        'the file was deleted and nothing was published; check the binary cache');
    }
    await rename(tmp, req.dest);
    await rm(cacheHome, { recursive: true, force: true });
    return 'downloaded';
  } catch (e) {
    await rm(tmp, { force: true });
    await rm(cacheHome, { recursive: true, force: true });
    if ((e as any)?.code === 'ENOENT' && (e as any)?.syscall?.startsWith('spawn')) throw new MissingToolError('nix', 'nix-bin');
    throw e;
  }
}
