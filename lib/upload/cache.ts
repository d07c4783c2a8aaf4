// Plans the binary cache upload: the files Nix staged in release/cache/ENV (a signed file:// cache)
// go to the environment's cache bucket so that no reader ever sees a narinfo whose NAR or
// references are missing (issue 4). Reads only: the staged files, one flat bucket listing, and
// HEADs where the upload record cannot vouch for a listed object.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { forEachLimited } from '../core/each.ts';
import type { Skip, Step as CoreStep } from '../core/plan.ts';
import type { S3Action } from '../s3/actions.ts';
import { nixSha256ToHex, sha256Text, type FileDigest, type Md5Wanted } from '../hashing/checksums.ts';
import type { HashCache } from '../hashing/hash-cache.ts';
import type { UploadRecord } from '../s3/record.ts';
import { judgeRemote, prefixOfSource } from '../s3/sync.ts';
import type { WriteIntents } from '../s3/intents.ts';
import type { BucketRef } from '../environment/open.ts';
import { ReleaseError } from '../core/errors.ts';
import { encodedDirName, hashPart, parseNarInfo, readCacheMetadata, type NarInfo } from '../nix/cache.ts';
import { parseNarInfoStrict } from '../nix/narinfo.ts';
import type { S3Put } from '../s3/actions.ts';
import type { RemoteObject, S3Reader } from '../s3/store.ts';
import type { LocalKnowledge } from '../verify/types.ts';
import { fileIdentity, namesIn } from './staged-check.ts';
import { fileDigest } from './inputs.ts';
import { createHash } from 'node:crypto';
type Step = CoreStep<S3Action>;

/**
 * What upload knows of the cache objects it staged (issue 16): MD5 and size of every narinfo and
 * .ls (always hashed: small) and of every NAR whose MD5 the hash memo or a content-md5 environment
 * gave, and the staged bytes of narinfos and .ls files. Filled by planCache (input.local); handed
 * to the closing verification as VerifyScope.local, where a listing proves an object with it.
 */
export interface CacheKnowledge extends LocalKnowledge {
  /**
   * `signedBy`: the staged check (lib/upload/staged-check.ts) found the very bytes of this digest
   * signed by that public key (the file unchanged from the check through the digest); signedBy
   * then answers with the key for bytes of this MD5.
   */
  note(bucket: string, key: string, file: string, digest: { size: number; md5?: string }, small: boolean, signedBy?: string): void;
}

/**
 * The same knowledge from a staged cache directory alone (`releng verify` in a project whose
 * release/cache/ENV upload staged): every narinfo and .ls in it, the compressed copy where there is
 * one (what upload sends). Possibly stale: it proves nothing by itself, only a listed ETag equal to
 * a file's MD5 does, so a file that differs from the bucket's object only costs the GET it saves.
 */
export async function stagedCacheKnowledge(stagingDir: string, bucket: BucketRef): Promise<CacheKnowledge | undefined> {
  let names: string[];
  try { names = readdirSync(stagingDir); } catch { return undefined; }
  const encoded = namesIn(path.join(stagingDir, encodedDirName));
  const k = cacheKnowledge();
  // Small files read synchronously: an async read per narinfo was four thread-pool round trips (issue 31).
  for (const n of names) {
    if (!n.endsWith('.narinfo') && !n.endsWith('.ls')) continue;
    const file = encoded.has(n) ? path.join(stagingDir, encodedDirName, n) : path.join(stagingDir, n);
    let bytes: Buffer;
    try { bytes = readFileSync(file); } catch { continue; }
    k.note(bucket.bucket, bucket.prefix + n, file, { size: bytes.length, md5: createHash('md5').update(bytes).digest('base64') }, true);
  }
  return k;
}

export function cacheKnowledge(): CacheKnowledge {
  const known = new Map<string, { file: string; size: number; md5: string; small: boolean; signed?: true }>();
  const id = (b: string, k: string) => `${b}\0${k}`;
  // The one key the staged check vouched with (null: more than one, so none is answered).
  let signedWith: string | null | undefined;
  return {
    note(bucket, key, file, d, small, signedBy) {
      if (!d.md5) return;
      if (signedBy) signedWith = signedWith === undefined || signedWith === signedBy ? signedBy : null;
      known.set(id(bucket, key), { file, size: d.size, md5: Buffer.from(d.md5, 'base64').toString('hex'), small, ...(signedBy ? { signed: true as const } : {}) });
    },
    md5: (b, k) => { const e = known.get(id(b, k)); return e ? { md5: e.md5, size: e.size } : undefined; },
    // Small files, read synchronously (one narinfo per store path: an async read is four thread-pool round trips).
    bytes: async (b, k) => { const e = known.get(id(b, k)); if (!e?.small) return undefined; try { return readFileSync(e.file); } catch { return undefined; } },
    // Bytes of the MD5 noted are the bytes checked (whichever source read them).
    signedBy(b, k, md5) {
      const e = known.get(id(b, k));
      return e?.signed && signedWith && e.md5 === md5.toLowerCase() ? signedWith : undefined;
    },
    // The recording writer knows what this run put (listproof's LocalKnowledge answers that).
    written: () => false,
  };
}

/** Content types Nix's own S3 store uses for each kind of cache file. */
export const cacheContentTypes = {
  narinfo: 'text/x-nix-narinfo',
  cacheInfo: 'text/x-nix-cache-info',
  nar: 'application/x-nix-nar',
  listing: 'application/json',
} as const;

export interface CachePlanInput {
  /** The staged file:// cache directory. */
  stagingDir: string;
  /** Store paths to publish: the closures of build-result.json's drvs and outPaths. */
  paths: string[];
  /** `narinfo-compression` / `ls-compression` store options, if configured. */
  narinfoCompression?: string;
  lsCompression?: string;
  /** The upload record: stands in for a HEAD while the listing shows the size and ETag it recorded. */
  record?: UploadRecord;
  /** Writes earlier runs began and never saw acknowledged (lib/s3/intents.ts): evidence for a `repair`. */
  intents?: WriteIntents;
  /** upload --deep: every object read back (lib/s3/sync.ts WriteEvidence.deep). */
  deep?: boolean;
  /** The hash memo: staged files unchanged since hashed are not re-read. */
  hashCache?: HashCache;
  /** Compute MD5 with each sha256 (the environment's transit checksum is Content-MD5). */
  md5?: Md5Wanted;
  /** Compressed copies of narinfo/.ls files (lib/nix/cache.ts encodeCacheMetadata); uploaded instead of the staged ones. */
  encodedDir?: string;
  /** --replace-cache-info: replace a nix-cache-info that differs from the staged one (default: keep it, report it). */
  replaceCacheInfo?: boolean;
  /** Collects what the closing verification may prove by listing (cacheKnowledge()). */
  local?: CacheKnowledge;
  /** Told of the plan's listing of the cache prefix, so a closing verification that finds nothing written under it reuses it. */
  onListing?: (bucket: string, prefix: string, listing: Promise<RemoteObject[]>) => void;
  /** Narinfo files the staged check found signed by `publicKey`, with their identities then (stagedCacheProblems' vouch). */
  vouched?: { publicKey: string; files: Map<string, string> };
}


/** What differs between the bucket's nix-cache-info and Nix's, field by field (for the report). */
export function describeCacheInfoDiff(remote: string, staged: string): string {
  const fields = (t: string) => new Map(t.split('\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]));
  const r = fields(remote);
  const s = fields(staged);
  const out: string[] = [];
  for (const k of new Set([...r.keys(), ...s.keys()])) {
    if (r.get(k) !== s.get(k)) out.push(`${k}: bucket ${r.has(k) ? r.get(k) : '(absent)'}, Nix ${s.has(k) ? s.get(k) : '(absent)'}`);
  }
  return out.join('; ') || 'whitespace differs';
}

/** One staged file, hashed (once) in a single read, or from the hash memo (lib/upload/inputs.ts fileDigest). */
function stagedDigest(file: string, input: CachePlanInput, wanted: Md5Wanted | undefined = input.md5): Promise<FileDigest> {
  return fileDigest(file, { hashCache: input.hashCache, md5: wanted });
}

/**
 * Why levels: a narinfo is what makes a path visible to Nix, so it may only appear once every
 * path it references is fetchable. All NARs and .ls listings go first (one concurrent step), then
 * the narinfos in topological levels of the reference graph: level 0 references nothing missing,
 * level n only paths of levels < n or already in the bucket. Each level is one concurrent step and
 * steps are barriers, so the invariant holds at every instant, even when a run is killed
 * half-way. One step per path in reference order would also be correct, but serial; levels keep
 * the parallelism of a closure's width (a closure of thousands of paths is a few dozen levels deep).
 *
 * What is skipped is decided by the destination (issue 9): a NAR, listing or narinfo is skipped
 * only when the bucket holds it with the staged file's size and sha256 (a fresh listing, then our
 * sha256 metadata by HEAD, or the upload record while the listing shows the size and ETag it
 * recorded). A narinfo whose NAR went missing or was truncated gets its NAR sent again. Every
 * staged NAR is checked against its narinfo's FileSize and FileHash before anything is planned.
 */
export async function planCache(reader: S3Reader, bucket: BucketRef, input: CachePlanInput): Promise<{ steps: Step[]; skipped: Skip[] }> {
  const where = `s3://${bucket.bucket}/${bucket.prefix}`;
  const listing = reader.list(bucket.bucket, bucket.prefix);
  input.onListing?.(bucket.bucket, bucket.prefix, listing);
  const listed = new Map((await listing).map((o) => [o.key.slice(bucket.prefix.length), o]));
  // The staged and compressed files' names, read once (a stat per file cost more than the plan).
  const stagedNames = namesIn(input.stagingDir);
  const encodedNames = input.encodedDir ? namesIn(input.encodedDir) : new Set<string>();
  const encodedOr = (name: string) => encodedNames.has(name) ? path.join(input.encodedDir!, name) : path.join(input.stagingDir, name);
  /** A staged file compared with the bucket: a put when the bucket lacks it or holds other bytes. */
  const compare = async (rel: string, contentType: string, contentEncoding: string | undefined, createOnly: boolean, expect?: { size: number; sha256?: string; narinfo: string }, file = path.join(input.stagingDir, rel)): Promise<S3Put | undefined> => {
    // narinfos and .ls: MD5 too (small files), so the closing verification can prove them by listing
    // (the PUT carries it only where the environment's transit checksum is Content-MD5, as before).
    const small = !expect && !!input.local;
    const d = await stagedDigest(file, input, input.md5 || small).catch((e) => {
      if (e?.code === 'ENOENT') throw new ReleaseError(`${file} is missing from the staged cache${expect ? ` (named by ${expect.narinfo})` : ''}`, 'delete the staged cache directory and re-run upload: Nix stages it again');
      throw e;
    });
    // The staged NAR must be the one its narinfo describes (FileSize, FileHash): refuse, naming the file.
    if (expect && (d.size !== expect.size || (expect.sha256 && d.sha256 !== expect.sha256))) {
      throw new ReleaseError(`${file} does not match ${expect.narinfo}: ${d.size} bytes, sha256 ${d.sha256}; the narinfo says ${expect.size} bytes${expect.sha256 ? `, sha256 ${expect.sha256}` : ''}`,
        'the staged cache was changed after Nix wrote it: delete the staged cache directory (release/cache/ENV) and re-run upload; nothing was uploaded');
    }
    // The staged check vouched for this file's signature: the digest is of the bytes it checked
    // when the file's identity, taken after the digest, is still the one it checked.
    const vouched = input.vouched?.files.get(file);
    const signed = vouched !== undefined && vouched === fileIdentity(statSync(file, { bigint: true }));
    input.local?.note(bucket.bucket, bucket.prefix + rel, file, d, small, signed ? input.vouched!.publicKey : undefined);
    const { state, why } = await judgeRemote(reader, bucket.bucket, bucket.prefix + rel, listed.get(rel), { ...d, prefixOf: prefixOfSource({ file }) }, { record: input.record, intents: input.intents, deep: input.deep });
    if (state === 'same') return undefined;
    return {
      kind: 's3.put', bucket: bucket.bucket, key: bucket.prefix + rel, source: { file }, size: d.size, sha256: d.sha256, contentType, contentEncoding,
      reason: state === 'missing' ? 'new' : state === 'damaged' ? 'repair' : 'changed', ...(why ? { why } : {}), ...(d.md5 && (input.md5 || !small) ? { md5: d.md5 } : {}), ...(createOnly && state === 'missing' ? { createOnly: true } : {}),
    };
  };

  const puts: S3Put[] = [];
  const skipped: Skip[] = [];
  // nix-cache-info: created when absent, never rewritten (as Nix's binary cache stores do): the
  // cache's owners may have set WantMassQuery or Priority, which Nix's staged file does not carry.
  const cacheInfoFile = path.join(input.stagingDir, 'nix-cache-info');
  const cacheInfoText = (await readCacheMetadata(cacheInfoFile, undefined)).text;
  const remoteInfo = listed.has('nix-cache-info') ? await reader.getText(bucket.bucket, bucket.prefix + 'nix-cache-info') : undefined;
  const infoPut = (reason: 'new' | 'changed'): S3Put => ({ kind: 's3.put', bucket: bucket.bucket, key: `${bucket.prefix}nix-cache-info`, source: { text: cacheInfoText }, size: Buffer.byteLength(cacheInfoText), sha256: sha256Text(cacheInfoText), contentType: cacheContentTypes.cacheInfo, reason });
  if (remoteInfo === undefined) puts.push(infoPut('new'));
  else if (remoteInfo !== cacheInfoText) {
    const storeDir = (t: string) => /^StoreDir: (.*)$/m.exec(t)?.[1]?.trim();
    if (storeDir(remoteInfo) !== storeDir(cacheInfoText)) {
      throw new ReleaseError(`${where}nix-cache-info says StoreDir: ${storeDir(remoteInfo) ?? '(none)'}, but the paths to upload are in ${storeDir(cacheInfoText)}`,
        'this bucket is the cache of another store directory: check the environment\'s cacheBucket');
    }
    const diff = describeCacheInfoDiff(remoteInfo, cacheInfoText);
    if (input.replaceCacheInfo) puts.push(infoPut('changed'));
    else skipped.push({ what: `${where}nix-cache-info`, reason: `kept as it is (${diff}); Nix never rewrites an existing nix-cache-info; --replace-cache-info replaces it` });
  }
  let narsThere = 0;
  const narinfoPuts = new Map<string, S3Put>();
  // The references of the narinfos to put (for their levels): no path's narinfo is kept otherwise
  // (issue 31: its text and parse were ~1 KB a path, all of a closure at once).
  const toPut = new Map<string, { references: string[] }>();
  const otherNarinfos: string[] = [];
  await forEachLimited(input.paths, 8, async (p) => {
    const file = encodedOr(`${hashPart(p)}.narinfo`);
    let meta;
    try { meta = await readCacheMetadata(file, input.narinfoCompression); } catch {
      throw new ReleaseError(`${p} is not in the staged cache (${file} is missing)`, 'delete the staged cache directory and re-run upload: Nix stages it again');
    }
    const info = parseNarInfo(meta.text, file);
    if (info.storePath !== p) throw new ReleaseError(`${file} describes ${info.storePath}, expected ${p}`, 'delete the staged cache directory and re-run upload');
    const fileHash = /^FileHash: (.*)$/m.exec(meta.text)?.[1];
    const expectSha = fileHash ? nixSha256ToHex(fileHash.trim()) : undefined;
    if (fileHash && !expectSha) throw new ReleaseError(`${file}: FileHash ${fileHash} is not a sha256 Nix wrote`, 'delete the staged cache directory and re-run upload: Nix stages it again');
    const nar = await compare(info.url, cacheContentTypes.nar, undefined, true, { size: info.fileSize, sha256: expectSha, narinfo: file });
    if (nar) puts.push(nar); else narsThere++;
    const ls = `${hashPart(info.storePath)}.ls`;
    if (stagedNames.has(ls)) {
      const from = encodedOr(ls);
      const enc = (await readCacheMetadata(from, input.lsCompression)).contentEncoding;
      const l = await compare(ls, cacheContentTypes.listing, enc, false, undefined, from);
      if (l) puts.push(l);
    }
    const ni = await compare(`${hashPart(info.storePath)}.narinfo`, cacheContentTypes.narinfo, meta.contentEncoding, true, undefined, file);
    // A narinfo the bucket holds with other bytes is kept, as Nix's binary cache stores keep an
    // existing narinfo (the path is there for every reader that fetched it): the closing
    // verification checks its signature and NAR, and its repair line says to delete it first.
    // Only a copy of our own bytes cut short (same sha256 metadata, other size) is rewritten.
    // A narinfo that does not parse as this path's (cut short, garbage) is no narinfo: put ours.
    if (ni?.reason === 'changed') {
      const remote = await reader.getText(bucket.bucket, ni.key).catch(() => undefined);
      const parsed = remote?.startsWith('StorePath:') ? parseNarInfoStrict(remote, path.posix.dirname(info.storePath)).info : undefined;
      if (parsed && parsed.storePath === info.storePath) { otherNarinfos.push(ni.key); return; }
    }
    if (ni) { narinfoPuts.set(p, ni); toPut.set(p, { references: info.references }); }
  });
  const complete = input.paths.length - narinfoPuts.size - otherNarinfos.length;
  if (otherNarinfos.length) skipped.push({ what: `${otherNarinfos.length} narinfo${otherNarinfos.length === 1 ? '' : 's'} in ${where}`, reason: 'in the cache with other bytes: kept, as Nix keeps an existing narinfo; the closing verification checks them (to replace one, delete it and re-run upload)' });
  if (complete) skipped.push({ what: `${complete} narinfo${complete === 1 ? '' : 's'} in ${where}`, reason: 'already in the cache with the same size and sha256' });
  if (narsThere) skipped.push({ what: `${narsThere} NAR${narsThere === 1 ? '' : 's'} in ${where}nar/`, reason: 'already in the cache with the same size and sha256' });
  puts.sort((a, b) => a.key.localeCompare(b.key));

  // Topological levels over the references of the narinfos to put (narinfoLevels, shared with
  // promote); every other path of the closure is in the bucket already (its narinfo matched above).
  const present = new Set<string>([
    ...input.paths.filter((p) => !narinfoPuts.has(p)).map(hashPart),
    ...[...listed.keys()].filter((k) => k.endsWith('.narinfo')).map((k) => k.slice(0, -'.narinfo'.length)),
  ]);
  const levels: S3Put[][] = [];
  const byLevel = narinfoLevels(toPut, present, where, 'the closure computed from build-result.json is incomplete: re-run `releng build`');
  for (const [l, paths] of byLevel.entries()) for (const p of paths) (levels[l] ??= []).push(narinfoPuts.get(p)!);

  const steps: Step[] = [{ title: `cache NARs and listings to ${where}`, actions: puts }];
  levels.forEach((actions, l) => steps.push({ title: `cache narinfos, level ${l} of ${levels.length - 1}, to ${where}`, actions }));
  return { steps, skipped };
}

/**
 * The store paths to publish, grouped in topological levels of their references (see planCache):
 * level 0 references nothing missing, level n only paths of lower levels or already `present`
 * (hash parts). Upload and promote both order narinfos by it. Paths sorted within a level.
 */
export function narinfoLevels(infos: Map<string, { references: string[] }>, present: Set<string>, where: string, hint: string, setName = 'the closure to upload'): string[][] {
  const level = new Map<string, number>();
  const visiting = new Set<string>();
  const levelOf = (p: string): number => {
    const known = level.get(p);
    if (known !== undefined) return known;
    if (visiting.has(p)) throw new ReleaseError(`reference cycle through ${p}`);
    visiting.add(p);
    let l = 0;
    for (const r of infos.get(p)!.references) {
      if (r === p) continue;
      if (infos.has(r)) l = Math.max(l, levelOf(r) + 1);
      else if (!present.has(hashPart(r))) {
        throw new ReleaseError(`${p} references ${r}, which is neither in ${where} nor in ${setName}`, hint);
      }
    }
    visiting.delete(p);
    level.set(p, l);
    return l;
  };
  const out: string[][] = [];
  for (const p of [...infos.keys()].sort()) (out[levelOf(p)] ??= []).push(p);
  return out;
}
