// Reads back what `releng index` publishes, from scratch (for `releng index` after applying, and for
// `releng verify`): the APT repository's signatures and Valid-Until, every index's size and hashes
// (by-hash copies too), every pool file, the published key; the installers' SHA256SUMS against their objects and the latest copies against the newest.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
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
import { aptKeyName, clearSignedText, dearmorKey, exportPublicKey, parsePackages, releaseSha256, resolveSigner, suiteDirs } from './apt.ts';
import { releaseTime } from './release.ts';

export interface IndexProblem {
  where: string;
  problem: string;
}

export interface VerifyOptions {
  /** Binary OpenPGP keyring with the repository's public key (what apt's signed-by gets). */
  keyring: string;
  /** Also download every pool file and hash it (default: size and sha256 metadata only). */
  deep?: boolean;
  /** Only the signatures and the indexes Release lists (not the pool, not the published key). */
  releaseOnly?: boolean;
  /** The time Valid-Until is checked against (default now). */
  now?: Date;
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

/** Checks an APT repository as apt would, and more: every suite, every pool file its indexes name, the published key. */
export async function verifyAptRepository(reader: S3Reader, repo: AptRepository, opts: VerifyOptions): Promise<IndexProblem[]> {
  const problems: IndexProblem[] = [];
  const root = parseS3Url(repo.root);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-verify-apt-'));
  try {
    const pool = new Map<string, { size: number; sha256: string; where: string }>();
    for (const { suite, dists } of suiteDirs(repo, root.prefix)) {
      problems.push(...await verifySuite(reader, root, suite, dists, path.join(dir, suite), opts, pool));
    }
    if (!opts.releaseOnly) {
      const url = (k: string) => `s3://${root.bucket}/${k}`;
      for (const [poolKey, want] of pool) {
        const h = await reader.head(root.bucket, poolKey);
        if (!h) { problems.push({ where: url(poolKey), problem: `missing (listed in ${want.where})` }); continue; }
        if (h.size !== want.size) problems.push({ where: url(poolKey), problem: `${h.size} bytes, ${want.where} says ${want.size}` });
        if (opts.deep) {
          const d = await reader.download!(root.bucket, poolKey, path.join(dir, 'pool.deb'));
          if (d.sha256 !== want.sha256) problems.push({ where: url(poolKey), problem: `content sha256 ${d.sha256}, ${want.where} says ${want.sha256}` });
        } else if (h.sha256 !== want.sha256) {
          problems.push({ where: url(poolKey), problem: `sha256 metadata ${h.sha256 ?? 'missing'}, ${want.where} says ${want.sha256}` });
        }
      }
      problems.push(...await verifyPublishedKeys(reader, repo, root, dir));
    }
    return problems;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One suite: signatures, Valid-Until, every listed index and its by-hash copy; collects the pool files its Packages name. */
async function verifySuite(reader: S3Reader, root: { bucket: string; prefix: string }, suite: string, dists: string, dir: string, opts: VerifyOptions, pool: Map<string, { size: number; sha256: string; where: string }>): Promise<IndexProblem[]> {
  const problems: IndexProblem[] = [];
  const url = (k: string) => `s3://${root.bucket}/${k}`;
  await mkdir(dir, { recursive: true });
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
  // apt refuses a Release after its Valid-Until ("is expired"): a timer must re-sign it before then.
  const until = releaseTime(release, 'Valid-Until');
  const now = opts.now ?? new Date();
  if (!until) problems.push({ where: url(`${dists}Release`), problem: 'has no Valid-Until: a replayed old Release would be accepted forever (releng index writes one)' });
  else if (until.getTime() <= now.getTime()) problems.push({ where: url(`${dists}Release`), problem: `expired at ${until.toISOString()} (Valid-Until): apt refuses it; run \`releng index --refresh\` (and from a timer, more often than apt.validFor)` });
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
      const hk = `${path.posix.dirname(key)}/by-hash/SHA256/${want.sha256}`;
      const h = await reader.head(root.bucket, hk);
      if (!h || h.size !== want.size || (h.sha256 !== undefined && h.sha256 !== want.sha256)) problems.push({ where: url(hk), problem: h ? `${h.size} bytes, sha256 ${h.sha256 ?? 'unknown'}; Release says ${want.size}, ${want.sha256}` : 'missing (Release says Acquire-By-Hash)' });
    }
    if (!opts.releaseOnly && path.posix.basename(rel) === 'Packages' && got.sha256 === want.sha256) {
      for (const s of parsePackages(await readFile(local, 'utf8'))) {
        const poolKey = root.prefix + s.Filename;
        if (!pool.has(poolKey)) pool.set(poolKey, { size: s.Size, sha256: s.SHA256, where: `${suite}/${rel}` });
      }
    }
  }
  return problems;
}

/** The key published beside the repository (NAME.gpg binary, NAME.asc armored), each able to verify what it signed, when there. */
async function verifyPublishedKeys(reader: S3Reader, repo: AptRepository, root: { bucket: string; prefix: string }, dir: string): Promise<IndexProblem[]> {
  const problems: IndexProblem[] = [];
  const name = aptKeyName(repo);
  const inRelease = path.join(dir, repo.suite, 'InRelease');
  const binaryKey = root.prefix + `${name}.gpg`;
  const armoredKey = root.prefix + `${name}.asc`;
  const binaryLocal = path.join(dir, 'published-key.gpg');
  const [b, a] = await Promise.all([reader.head(root.bucket, binaryKey), reader.head(root.bucket, armoredKey)]);
  if (!b && !a) return problems; // published by releng index from issue 30 on; older repositories have none
  for (const [key, head] of [[binaryKey, b], [armoredKey, a]] as const) if (!head) problems.push({ where: `s3://${root.bucket}/${key}`, problem: 'missing (the other form of the key is published)' });
  if (!existsSync(inRelease)) return problems; // its own problem is reported already
  if (b) {
    await reader.download!(root.bucket, binaryKey, binaryLocal);
    const bad = await gpgvOk(binaryLocal, [inRelease]);
    if (bad) problems.push({ where: `s3://${root.bucket}/${binaryKey}`, problem: `does not verify ${repo.suite}'s InRelease: ${bad}` });
  }
  if (a) {
    const armored = (await reader.getText(root.bucket, armoredKey)) ?? '';
    const dearmored = path.join(dir, 'published-key-dearmored.gpg');
    try {
      await dearmorKey(armored, dearmored);
      const bad = await gpgvOk(dearmored, [inRelease]);
      if (bad) problems.push({ where: `s3://${root.bucket}/${armoredKey}`, problem: `does not verify ${repo.suite}'s InRelease: ${bad}` });
    } catch (e) {
      problems.push({ where: `s3://${root.bucket}/${armoredKey}`, problem: `not an armored OpenPGP key: ${(e as Error).message.split('\n').slice(-1)[0]}` });
    }
  }
  return problems;
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
