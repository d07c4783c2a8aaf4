// Nix binary caches: the signing key, staging a signed cache with `nix copy --to file://`, and
// reading what Nix wrote (narinfo). Debian's Nix has no S3 store (and users' Nix may not either),
// so Nix writes the cache layout locally and releng uploads the files (issue 4).
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { lstatSync, readFileSync, statSync } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync, brotliDecompressSync } from 'node:zlib';
import type { Environment } from '../config/config.ts';
import { ReleaseError } from '../core/errors.ts';
import { argvBatches, run } from '../core/exec.ts';
import { nixFeatureArgs } from './eval.ts';

export interface SigningKey {
  /** Absolute path of the secret key file (never read into logs). */
  file: string;
  /** `NAME:BASE64` public key: what users put in trusted-public-keys. */
  publicKey: string;
  /** True when this run generated the key pair (local environment only). */
  generated: boolean;
}

/** The environment's signing key: must exist and be readable, except that `local` makes one when missing. */
export async function resolveSigningKey(opts: { root: string; envName: string; cache: NonNullable<Environment['cache']>; project: string; allowGenerate: boolean }): Promise<SigningKey> {
  const field = `environments.${opts.envName}.cache.signingKeyFile`;
  const file = path.resolve(opts.root, opts.cache.signingKeyFile);
  let generated = false;
  try {
    await access(file);
  } catch {
    if (!opts.allowGenerate) {
      throw new ReleaseError(`cache signing key ${file} (${field}) does not exist`,
        `put the environment's Nix secret key there (nix key generate-secret --key-name NAME > ${opts.cache.signingKeyFile}), or fix ${field} in releng.json`);
    }
    // Only the local environment: a throwaway key pair, so the quick start signs its cache too.
    await mkdir(path.dirname(file), { recursive: true });
    const secret = (await run('nix', [...nixFeatureArgs, 'key', 'generate-secret', '--key-name', `${opts.project}-${opts.envName}-1`])).stdout;
    await writeFile(file, secret, { mode: 0o600 });
    generated = true;
  }
  let secret: string;
  try { secret = await readFile(file, 'utf8'); } catch (e: any) {
    throw new ReleaseError(`cannot read cache signing key ${file} (${field}): ${e.code ?? e.message}`, `make it readable by this user, or fix ${field}`);
  }
  let publicKey: string;
  try {
    publicKey = publicKeyOf(secret) ?? (await run('nix', [...nixFeatureArgs, 'key', 'convert-secret-to-public'], { input: secret })).stdout.trim();
  } catch {
    // The error of the subprocess could echo the input; say only what is wrong.
    throw new ReleaseError(`${file} (${field}) is not a Nix secret key`, 'generate one with `nix key generate-secret --key-name NAME`');
  }
  if (generated) await writeFile(`${file}.pub`, publicKey + '\n');
  return { file, publicKey, generated };
}

// DER prefix of an Ed25519 private key (PKCS#8) around its 32-byte seed.
const PKCS8_SEED_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * `nix key convert-secret-to-public`, without a subprocess, for a key file in the form Nix writes
 * (`NAME:BASE64` of 64 bytes, seed then public key, an optional final newline): Nix answers NAME
 * and the stored public half. It is used only when that half is the one the seed derives (a key
 * whose halves disagree, or any other form, goes to Nix as before); undefined then.
 */
export function publicKeyOf(secret: string): string | undefined {
  const m = /^([^:\s]+):([A-Za-z0-9+/]{86}==)\n?$/.exec(secret);
  if (!m) return undefined;
  const raw = Buffer.from(m[2], 'base64');
  if (raw.length !== 64) return undefined;
  try {
    const derived = createPublicKey(createPrivateKey({ key: Buffer.concat([PKCS8_SEED_PREFIX, raw.subarray(0, 32)]), format: 'der', type: 'pkcs8' }))
      .export({ format: 'der', type: 'spki' }).subarray(-32);
    return derived.equals(raw.subarray(32)) ? `${m[1]}:${raw.subarray(32).toString('base64')}` : undefined;
  } catch { return undefined; }
}

/** The `file://` store URL Nix writes the staged cache to (compression, key and the environment's options). */
export function stagingStoreUrl(dir: string, cache: NonNullable<Environment['cache']>, keyFile: string): string {
  const params = new URLSearchParams({ compression: cache.compression, 'secret-key': keyFile, ...cache.storeOptions });
  // Nix parses the query itself: keep '/' readable and ',' unescaped.
  return `file://${dir}?${params.toString().replace(/%2F/g, '/')}`;
}

/** Copies the closures of the derivations (as derivations) and of the outputs into the staging cache. Local write only. */
export async function stageCache(opts: { dir: string; url: string; drvs: string[]; outPaths: string[] }): Promise<void> {
  await mkdir(opts.dir, { recursive: true });
  try {
    // Two calls: `--derivation` makes .drv arguments mean the derivation files, not their outputs.
    // In argument lists the kernel takes (lib/core/exec.ts argvBatches), however many roots there are.
    for (const drvs of argvBatches(opts.drvs)) await run('nix', [...nixFeatureArgs, 'copy', '--to', opts.url, '--derivation', '--', ...drvs]);
    for (const outs of argvBatches(opts.outPaths)) await run('nix', [...nixFeatureArgs, 'copy', '--to', opts.url, '--', ...outs]);
  } catch (e) {
    throw new ReleaseError(`staging the binary cache in ${opts.dir} failed: ${(e as Error).message}`, notInStoreHint, { cause: e });
  }
}

const notInStoreHint = 'the cache is staged from the local Nix store: run upload where `releng build` ran (release/gcroots keeps the outputs alive), or run `releng build` again';

/** Every store path in the closures of `paths` (for .drv files: the derivation closure, as `nix copy --derivation`). */
export async function closureOf(paths: string[]): Promise<string[]> {
  if (paths.length === 0) return [];
  const all = new Set<string>();
  for (const batch of argvBatches(paths)) {
    let out: string;
    try { out = (await run('nix-store', ['--query', '--requisites', '--', ...batch])).stdout; } catch (e) {
      throw new ReleaseError(`cannot compute the closure of build-result.json's drvs and outPaths: ${(e as Error).message}`, notInStoreHint, { cause: e });
    }
    for (const p of out.split('\n')) if (p) all.add(p);
  }
  return [...all].sort();
}

/** The fields of a narinfo the planner needs. */
export interface NarInfo {
  storePath: string;
  /** Relative URL of the NAR file (nar/HASH.nar.zst). */
  url: string;
  fileSize: number;
  /** Referenced store paths, absolute. */
  references: string[];
}

/** The 32-character hash part of a store path: the narinfo's name in a cache. */
export function hashPart(storePath: string): string {
  return path.basename(storePath).slice(0, 32);
}

/** Parses narinfo text (the `Key: value` lines Nix writes). */
export function parseNarInfo(text: string, source: string, storeDir = '/nix/store'): NarInfo {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(': ');
    if (i > 0) fields.set(line.slice(0, i), line.slice(i + 2));
    else if (line.endsWith(':')) fields.set(line.slice(0, -1), '');
  }
  const need = (k: string) => {
    const v = fields.get(k);
    if (v === undefined) throw new ReleaseError(`${source}: narinfo has no ${k} field`, 'delete the staged cache (release/cache/) and re-run: Nix rewrites it');
    return v;
  };
  const refs = need('References').trim();
  return {
    storePath: need('StorePath'),
    url: need('URL'),
    fileSize: Number(need('FileSize')),
    references: refs ? refs.split(/\s+/).map((r) => `${storeDir}/${r}`) : [],
  };
}

/**
 * Reads a narinfo (or .ls) file Nix wrote. Newer Nix compresses them with `narinfo-compression`
 * / `ls-compression`; Nix 2.8 ignores those options and writes plain text, so detect what is there.
 * Returns the text and the Content-Encoding the object must be served with (Nix's HTTP client
 * decompresses by that header).
 */
export async function readCacheMetadata(file: string, configured: string | undefined): Promise<{ text: string; contentEncoding?: string }> {
  // A small file, read synchronously: from the page cache that is microseconds, where an async
  // read is four thread-pool round trips (issue 31: one narinfo per store path, 100,000 of them).
  const bytes = readFileSync(file);
  const isZstd = bytes.length >= 4 && bytes.readUInt32LE(0) === 0xfd2fb528;
  const isXz = bytes.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  const isGzip = bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (isZstd) return { text: (await run('zstd', ['-dc', '--', file])).stdout, contentEncoding: 'zstd' };
  if (isXz) return { text: (await run('xz', ['-dc', '--', file])).stdout, contentEncoding: 'xz' };
  if (isGzip) return { text: gunzipSync(bytes).toString('utf8'), contentEncoding: 'gzip' };
  const plain = bytes.toString('utf8');
  if (configured === 'br' && !plain.startsWith('StorePath:') && !plain.startsWith('{')) {
    return { text: brotliDecompressSync(bytes).toString('utf8'), contentEncoding: 'br' };
  }
  return { text: plain };
}

/** Where releng keeps the compressed narinfo/.ls copies it uploads (inside the staging dir, so a restage clears them). */
export const encodedDirName = '.releng-encoded';

/**
 * `narinfo-compression` / `ls-compression` as Lix's Nix applies them on its S3 store: the object is
 * the compressed file, served with `Content-Encoding: ALGO` (Nix's HTTP client decompresses by that
 * header). Nix's file:// store has no such settings (Debian's 2.8 says "unknown setting"), so the
 * staged files are plain: releng writes compressed copies beside them (the staged ones stay plain,
 * because Nix reads them back on the next `nix copy` to the staging store). Files Nix already
 * compressed, and copies made by an earlier run, are left as they are. Local writes only.
 */
export async function encodeCacheMetadata(stagingDir: string, paths: string[], opts: { narinfo?: string; ls?: string; field: string }): Promise<void> {
  const outDir = path.join(stagingDir, encodedDirName);
  await mkdir(outDir, { recursive: true });
  const jobs: { algo: string; name: string }[] = [];
  // The names there, read once (a stat per file per path cost more than the rest on big closures).
  let staged: Set<string> | undefined;
  let done: Set<string> | undefined;
  for (const [suffix, algo] of [['narinfo', opts.narinfo], ['ls', opts.ls]] as const) {
    if (!algo || algo === 'none') continue;
    if (algo !== 'zstd' && algo !== 'xz') {
      throw new ReleaseError(`${opts.field}.${suffix}-compression = ${algo}: releng can compress narinfo and .ls files with zstd or xz only`, `use zstd (as Lix) or xz, or remove ${suffix}-compression`);
    }
    staged ??= new Set(await readdir(stagingDir));
    done ??= new Set(await readdir(outDir));
    for (const p of paths) {
      const name = `${hashPart(p)}.${suffix}`;
      if (!staged.has(name)) continue; // no listing for this path
      if (done.has(name)) continue;
      if ((await readCacheMetadata(path.join(stagingDir, name), undefined)).contentEncoding) continue; // Nix compressed it already
      jobs.push({ algo, name });
    }
  }
  const zstd = jobs.filter((j) => j.algo === 'zstd').map((j) => j.name);
  // One zstd process for all files (a closure has thousands); -19 is small and fast enough for text this size.
  for (let i = 0; i < zstd.length; i += 500) {
    const batch = zstd.slice(i, i + 500);
    await run('zstd', ['-q', '-f', '-19', '--no-progress', '--output-dir-flat', outDir, '--', ...batch.map((n) => path.join(stagingDir, n))]);
    for (const n of batch) await rename(path.join(outDir, `${n}.zst`), path.join(outDir, n));
  }
  for (const j of jobs.filter((x) => x.algo === 'xz')) {
    await run('xz', ['-9', '-k', '-f', '--', path.join(stagingDir, j.name)]);
    await rename(path.join(stagingDir, `${j.name}.xz`), path.join(outDir, j.name));
  }
}

/**
 * The staging memo (`.releng/upload-state/staged-ENV.json`, docs/upload-performance.md): which
 * store paths a `nix copy` last staged, into which directory, with which store URL (compression,
 * key file, options) and public key, their closure, and the size of nix-cache-info and of every
 * narinfo, .ls and NAR file Nix wrote for them.
 */
interface StageMemo {
  version: 1;
  key: { dir: string; url: string; publicKey: string; drvs: string[]; outPaths: string[] };
  closure: string[];
  /** Path relative to the staging dir → size in bytes. */
  files: Record<string, number>;
}

const statSize = (file: string) => stat(file).then((s) => (s.isFile() ? s.size : undefined), () => undefined);

/** True when the memo's key is this run's, every closure path is still in the store, and every staged file it lists has its size. Stats only. */
async function stageMemoHolds(memo: StageMemo | undefined, key: StageMemo['key'], storeDir: string): Promise<boolean> {
  if (!memo || memo.version !== 1 || JSON.stringify(memo.key) !== JSON.stringify(key)) return false;
  if (!Array.isArray(memo.closure) || memo.closure.some((p) => typeof p !== 'string') || typeof memo.files !== 'object' || memo.files === null) return false;
  const names = Object.keys(memo.files);
  // Every closure path has its narinfo listed (the memo names what Nix wrote for each).
  if (memo.closure.some((p) => !(`${hashPart(p)}.narinfo` in memo.files))) return false;
  // Synchronous stats: thousands of them take a few ms, far less than queueing each on the thread pool.
  for (const p of memo.closure) if (!lstatSync(path.join(storeDir, path.basename(p)), { throwIfNoEntry: false })) return false;
  for (const n of names) {
    const st = statSync(path.join(key.dir, n), { throwIfNoEntry: false });
    if (!st?.isFile() || st.size !== memo.files[n]) return false;
  }
  return true;
}

/**
 * stageCache + closureOf, with the staging memo: when the memo says this exact set of paths was
 * staged into this directory with this store URL and key, every path of the closure still exists
 * in the store, and every narinfo/.ls/NAR file it names is still there with its size, neither
 * `nix copy` nor `nix-store --query` runs (a staged file deleted or changed, another key or URL,
 * other paths: both run, as without the memo). The memo only skips local work: the upload and its
 * closing verification read the destination as always. Returns the closure and whether it restaged.
 */
export async function stageCacheMemoised(opts: { dir: string; url: string; publicKey: string; drvs: string[]; outPaths: string[]; memoFile: string; storeDir?: string }): Promise<{ paths: string[]; staged: boolean }> {
  const key: StageMemo['key'] = { dir: opts.dir, url: opts.url, publicKey: opts.publicKey, drvs: [...opts.drvs].sort(), outPaths: [...opts.outPaths].sort() };
  const memo = await readFile(opts.memoFile, 'utf8').then((t) => JSON.parse(t) as StageMemo).catch(() => undefined); // unreadable or not JSON: no memo
  if (await stageMemoHolds(memo, key, opts.storeDir ?? '/nix/store').catch(() => false)) return { paths: memo!.closure, staged: false };
  await rm(opts.memoFile, { force: true });
  await stageCache(opts);
  const paths = await closureOf([...opts.drvs, ...opts.outPaths]);
  // What Nix wrote for each path: its narinfo, the NAR it names, and its .ls when there is one.
  const files: Record<string, number> = {};
  const info = await statSize(path.join(opts.dir, 'nix-cache-info'));
  if (info === undefined) return { paths, staged: true };
  files['nix-cache-info'] = info;
  for (const p of paths) {
    const narinfo = `${hashPart(p)}.narinfo`;
    const size = await statSize(path.join(opts.dir, narinfo));
    if (size === undefined) return { paths, staged: true }; // not what the memo expects: no memo
    files[narinfo] = size;
    const ls = `${hashPart(p)}.ls`;
    const lsSize = await statSize(path.join(opts.dir, ls));
    if (lsSize !== undefined) files[ls] = lsSize;
    let url: string;
    try { url = parseNarInfo((await readCacheMetadata(path.join(opts.dir, narinfo), undefined)).text, narinfo).url; } catch { return { paths, staged: true }; }
    const narSize = await statSize(path.join(opts.dir, url));
    if (narSize === undefined) return { paths, staged: true };
    files[url] = narSize;
  }
  const saved: StageMemo = { version: 1, key, closure: paths, files };
  try {
    await mkdir(path.dirname(opts.memoFile), { recursive: true });
    const tmp = `${opts.memoFile}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(saved));
    await rename(tmp, opts.memoFile);
  } catch { /* a memo only saves time */ }
  return { paths, staged: true };
}
