// Reads back what `releng index` publishes, from scratch (for `releng index` after applying, and for
// `releng verify`): the APT repository's signatures, every index's size and hashes, every pool
// file; the installers' SHA256SUMS against their objects and the latest copies against the newest.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseSha256Sums } from '../hashing/checksums.ts';
import { parseS3Url, type Environment } from '../config/config.ts';
import type { AptRepository, InstallersUploader } from '../config/grants.ts';
import { staticHead } from '../config/grants.ts';
import { allowedName, incomingKeyRegex } from '../grants/names.ts';
import { run } from '../core/exec.ts';
import { compareVersions } from '../nix/versions.ts';
import type { S3Reader } from '../s3/store.ts';
import { clearSignedText, exportPublicKey, parsePackages, releaseSha256, resolveSigner } from './apt.ts';

export interface IndexProblem {
  where: string;
  problem: string;
}

export interface VerifyOptions {
  /** Binary OpenPGP keyring with the repository's public key (what apt's signed-by gets). */
  keyring: string;
  /** Also download every pool file and hash it (default: size and sha256 metadata only). */
  deep?: boolean;
  /** Only the signatures and the indexes Release lists (not the pool): index's "still ours?" check. */
  releaseOnly?: boolean;
}

async function gpgvOk(keyring: string, files: string[]): Promise<string | undefined> {
  try {
    await run('gpgv', ['--keyring', keyring, ...files]);
    return undefined;
  } catch (e: any) {
    if (e?.name === 'MissingToolError') throw e;
    return (e.message as string).split('\n').slice(-2).join(' ').trim();
  }
}

/** Checks an APT repository as apt would, and more: every pool file the indexes name. */
export async function verifyAptRepository(reader: S3Reader, repo: AptRepository, opts: VerifyOptions): Promise<IndexProblem[]> {
  const problems: IndexProblem[] = [];
  const root = parseS3Url(repo.root);
  const dists = `${root.prefix}dists/${repo.suite}/`;
  const url = (k: string) => `s3://${root.bucket}/${k}`;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-verify-apt-'));
  try {
    const [inRelease, release, releaseGpg] = await Promise.all(['InRelease', 'Release', 'Release.gpg'].map((n) => reader.getText(root.bucket, dists + n)));
    if (!inRelease) problems.push({ where: url(`${dists}InRelease`), problem: 'missing' });
    if (!release) problems.push({ where: url(`${dists}Release`), problem: 'missing' });
    if (!releaseGpg) problems.push({ where: url(`${dists}Release.gpg`), problem: 'missing' });
    if (!inRelease || !release) return problems;
    await writeFile(path.join(dir, 'InRelease'), inRelease);
    await writeFile(path.join(dir, 'Release'), release);
    const bad = await gpgvOk(opts.keyring, [path.join(dir, 'InRelease')]);
    if (bad) problems.push({ where: url(`${dists}InRelease`), problem: `signature not valid for the repository key: ${bad}` });
    if (releaseGpg) {
      await writeFile(path.join(dir, 'Release.gpg'), releaseGpg);
      const badD = await gpgvOk(opts.keyring, [path.join(dir, 'Release.gpg'), path.join(dir, 'Release')]);
      if (badD) problems.push({ where: url(`${dists}Release.gpg`), problem: `detached signature of Release not valid: ${badD}` });
    }
    if (clearSignedText(inRelease) !== release) problems.push({ where: url(`${dists}InRelease`), problem: 'signs a different text than Release' });
    const listed = releaseSha256(release);
    if (listed.size === 0) problems.push({ where: url(`${dists}Release`), problem: 'lists no SHA256 indexes' });
    const byHash = /^Acquire-By-Hash: yes$/m.test(release);
    for (const [rel, want] of listed) {
      const local = path.join(dir, `idx-${want.sha256}`);
      const key = dists + rel;
      let got;
      try { got = await reader.download!(root.bucket, key, local); } catch (e) { problems.push({ where: url(key), problem: `cannot read: ${(e as Error).message}` }); continue; }
      if (got.sha256 !== want.sha256 || got.size !== want.size) {
        problems.push({ where: url(key), problem: `Release says ${want.size} bytes sha256 ${want.sha256}, the object is ${got.size} bytes sha256 ${got.sha256}` });
      }
      if (byHash) {
        const h = await reader.head(root.bucket, `${path.posix.dirname(key)}/by-hash/SHA256/${want.sha256}`);
        if (!h || h.size !== want.size) problems.push({ where: url(`${path.posix.dirname(key)}/by-hash/SHA256/${want.sha256}`), problem: h ? `${h.size} bytes, Release says ${want.size}` : 'missing (Release says Acquire-By-Hash)' });
      }
      if (!opts.releaseOnly && path.posix.basename(rel) === 'Packages' && got.sha256 === want.sha256) {
        const text = await reader.getText(root.bucket, key) ?? '';
        for (const s of parsePackages(text)) {
          const poolKey = root.prefix + s.Filename;
          const h = await reader.head(root.bucket, poolKey);
          if (!h) { problems.push({ where: url(poolKey), problem: `missing (listed in ${rel})` }); continue; }
          if (h.size !== s.Size) problems.push({ where: url(poolKey), problem: `${h.size} bytes, ${rel} says ${s.Size}` });
          if (opts.deep) {
            const d = await reader.download!(root.bucket, poolKey, path.join(dir, 'pool.deb'));
            if (d.sha256 !== s.SHA256) problems.push({ where: url(poolKey), problem: `content sha256 ${d.sha256}, ${rel} says ${s.SHA256}` });
          } else if (h.sha256 !== s.SHA256) {
            problems.push({ where: url(poolKey), problem: `sha256 metadata ${h.sha256 ?? 'missing'}, ${rel} says ${s.SHA256}` });
          }
        }
      }
    }
    return problems;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One object under an installers uploader's publish pattern. */
export interface PublishedObject {
  key: string;
  version: string;
  /** The file name the pattern gives it; undefined for a key under the version's directory that the pattern does not match (deeper, or another shape). */
  file?: string;
}

/** The publish directory of one version (`{name}` and `{version}` filled in), under the bucket URL's prefix. */
export function publishPrefix(ref: { prefix: string }, u: InstallersUploader, name: string, version: string): string {
  return ref.prefix + u.publish.replaceAll('{name}', name).replaceAll('{version}', version);
}

/** Every published object of an installers uploader, with the version (and file) its key names: what index plans from and verifies. */
export async function listPublished(reader: S3Reader, ref: { bucket: string; prefix: string }, u: InstallersUploader, name: string): Promise<PublishedObject[]> {
  const head = ref.prefix + staticHead(u.publish, name);
  const re = incomingKeyRegex(ref.prefix, u.publish, name);
  const anyVersion = new RegExp(`^${head.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([^/]+)/`);
  const out: PublishedObject[] = [];
  for (const o of await reader.list(ref.bucket, head)) {
    const m = re.exec(o.key);
    if (m) { out.push({ key: o.key, version: m[1]!, file: m[2]! }); continue; }
    const v = anyVersion.exec(o.key)?.[1];
    if (v) out.push({ key: o.key, version: v });
  }
  return out;
}

/** Every version's SHA256SUMS matches its objects; the latest copies are the newest version's files. */
export async function verifyInstallers(reader: S3Reader, name: string, u: InstallersUploader): Promise<IndexProblem[]> {
  const problems: IndexProblem[] = [];
  const ref = parseS3Url(u.bucket);
  const versions = new Map<string, Map<string, string>>();
  const all = new Set<string>();
  for (const o of await listPublished(reader, ref, u, name)) {
    if (o.file === undefined) continue;
    all.add(o.version);
    if (o.file === u.sumsFile) versions.set(o.version, parseSha256Sums(await reader.getText(ref.bucket, o.key) ?? ''));
  }
  for (const [v, sums] of versions) {
    const prefix = publishPrefix(ref, u, name, v);
    for (const [file, sha] of sums) {
      if (!allowedName(u.files, file)) continue;
      const h = await reader.head(ref.bucket, prefix + file);
      if (!h) problems.push({ where: `s3://${ref.bucket}/${prefix}${file}`, problem: `missing (listed in ${u.sumsFile})` });
      else if (h.sha256 !== sha) problems.push({ where: `s3://${ref.bucket}/${prefix}${file}`, problem: `sha256 ${h.sha256 ?? 'missing'}, ${u.sumsFile} says ${sha}` });
    }
  }
  if (u.latest !== undefined) {
    const newest = [...all].sort((a, b) => compareVersions(b, a))[0];
    const sums = newest ? versions.get(newest) : undefined;
    for (const [file, sha] of sums ?? []) {
      if (!allowedName(u.files, file)) continue;
      const key = ref.prefix + u.latest.replaceAll('{name}', name) + file;
      const h = await reader.head(ref.bucket, key);
      if (h?.sha256 !== sha) problems.push({ where: `s3://${ref.bucket}/${key}`, problem: h ? `is not ${newest}'s ${file} (sha256 ${h.sha256})` : `missing (the newest release ${newest} has it)` });
    }
  }
  return problems;
}

/**
 * For `releng verify`: checks everything `releng index` publishes in an environment. The APT key is
 * apt.signingKey.publicKeyFile, else exported from its gnupgHome (relative to `root`).
 */
export async function verifyIndexesOf(reader: S3Reader, env: Environment, root: string, opts: { deep?: boolean } = {}): Promise<IndexProblem[]> {
  if (!env.apt) return verifyPublishedIndexes(reader, env, undefined);
  const k = env.apt.signingKey;
  if (k.publicKeyFile) return verifyPublishedIndexes(reader, env, { keyring: path.resolve(root, k.publicKeyFile), deep: opts.deep });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-apt-key-'));
  try {
    const signer = await resolveSigner({ keyId: k.keyId, gnupgHome: k.gnupgHome ? path.resolve(root, k.gnupgHome) : undefined }, 'apt.signingKey');
    await exportPublicKey(signer, path.join(dir, 'key.gpg'));
    return await verifyPublishedIndexes(reader, env, { keyring: path.join(dir, 'key.gpg'), deep: opts.deep });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Everything `releng index` publishes for an environment, given the APT public keyring. */
export async function verifyPublishedIndexes(reader: S3Reader, env: Environment, opts: VerifyOptions | undefined): Promise<IndexProblem[]> {
  const problems: IndexProblem[] = [];
  for (const [name, u] of Object.entries(env.uploaders)) if (u.kind === 'installers') problems.push(...await verifyInstallers(reader, name, u));
  if (env.apt && opts) problems.push(...await verifyAptRepository(reader, env.apt, opts));
  return problems;
}
