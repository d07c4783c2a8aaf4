// Plans the binary cache upload: the files Nix staged in release/cache/ENV (a signed file:// cache)
// go to the environment's cache bucket so that no reader ever sees a narinfo whose NAR or
// references are missing (issue 4). Reads only: the staged files and one flat bucket listing.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import type { Skip, Step } from '../actions.ts';
import { sha256File, sha256Text } from '../checksums.ts';
import type { BucketRef } from '../environment.ts';
import { ReleaseError } from '../errors.ts';
import { hashPart, parseNarInfo, readCacheMetadata, type NarInfo } from '../nix/cache.ts';
import type { S3Put } from '../s3/actions.ts';
import type { S3Reader } from '../s3/store.ts';

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
  /** Compressed copies of narinfo/.ls files (lib/nix/cache.ts encodeCacheMetadata); uploaded instead of the staged ones. */
  encodedDir?: string;
  /** --replace-cache-info: replace a nix-cache-info that differs from the staged one (default: keep it, report it). */
  replaceCacheInfo?: boolean;
}

/** The compressed copy of a staged file when there is one, else the staged file. */
async function encodedOr(input: CachePlanInput, name: string): Promise<string> {
  if (input.encodedDir) {
    const f = path.join(input.encodedDir, name);
    if (await stat(f).then(() => true, () => false)) return f;
  }
  return path.join(input.stagingDir, name);
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

/**
 * Why levels: a narinfo is what makes a path visible to Nix, so it may only appear once every
 * path it references is fetchable. All NARs and .ls listings go first (one concurrent step), then
 * the narinfos in topological levels of the reference graph: level 0 references nothing missing,
 * level n only paths of levels < n or already in the bucket. Each level is one concurrent step and
 * steps are barriers, so the invariant holds at every instant, even when a run is killed
 * half-way. One step per path in reference order would also be correct, but serial; levels keep
 * the parallelism of a closure's width (a closure of thousands of paths is a few dozen levels deep).
 */
export async function planCache(reader: S3Reader, bucket: BucketRef, input: CachePlanInput): Promise<{ steps: Step[]; skipped: Skip[] }> {
  const where = `s3://${bucket.bucket}/${bucket.prefix}`;
  // One flat listing: narinfos say which paths are complete, nar/ keys which NARs are already there
  // (NAR names are their file hash, so same key and size is the same NAR: no NAR is re-read).
  const remote = new Map((await reader.list(bucket.bucket, bucket.prefix)).map((o) => [o.key.slice(bucket.prefix.length), o.size]));
  const present = new Set([...remote.keys()].filter((k) => /^[0-9a-z]{32}\.narinfo$/.test(k)).map((k) => k.slice(0, 32)));

  const missing = input.paths.filter((p) => !present.has(hashPart(p)));
  const skipped: Skip[] = [];
  if (input.paths.length > missing.length) {
    const n = input.paths.length - missing.length;
    skipped.push({ what: `${n} store path${n === 1 ? '' : 's'} in ${where}`, reason: 'narinfo already in the cache (its NAR and references were uploaded before it)' });
  }

  const limit = pLimit(8);
  const infos = new Map<string, NarInfo & { file: string; text: string; contentEncoding?: string }>();
  await Promise.all(missing.map((p) => limit(async () => {
    const file = await encodedOr(input, `${hashPart(p)}.narinfo`);
    let meta;
    try { meta = await readCacheMetadata(file, input.narinfoCompression); } catch {
      throw new ReleaseError(`${p} is not in the staged cache (${file} is missing)`, 'delete the staged cache directory and re-run upload: Nix stages it again');
    }
    const info = parseNarInfo(meta.text, file);
    if (info.storePath !== p) throw new ReleaseError(`${file} describes ${info.storePath}, expected ${p}`, 'delete the staged cache directory and re-run upload');
    infos.set(p, { ...info, file, text: meta.text, contentEncoding: meta.contentEncoding });
  })));

  const puts: S3Put[] = [];
  const putFile = async (rel: string, contentType: string, contentEncoding?: string, from = path.join(input.stagingDir, rel)) => {
    const file = from;
    const size = (await stat(file)).size;
    const there = remote.get(rel);
    if (there === size) return false;
    puts.push({ kind: 's3.put', bucket: bucket.bucket, key: bucket.prefix + rel, source: { file }, size, sha256: await sha256File(file), contentType, contentEncoding, reason: there === undefined ? 'new' : 'changed' });
    return true;
  };

  // nix-cache-info: created when absent, never rewritten (as Nix's binary cache stores do): the
  // cache's owners may have set WantMassQuery or Priority, which Nix's staged file does not carry.
  const cacheInfoFile = path.join(input.stagingDir, 'nix-cache-info');
  const cacheInfoText = (await readCacheMetadata(cacheInfoFile, undefined)).text;
  const remoteInfo = remote.has('nix-cache-info') ? await reader.getText(bucket.bucket, bucket.prefix + 'nix-cache-info') : undefined;
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
  await Promise.all([...infos.values()].map((info) => limit(async () => {
    if (!(await putFile(info.url, cacheContentTypes.nar))) narsThere++;
    const ls = `${hashPart(info.storePath)}.ls`;
    const lsExists = await stat(path.join(input.stagingDir, ls)).then(() => true, () => false);
    if (lsExists) {
      const from = await encodedOr(input, ls);
      const enc = (await readCacheMetadata(from, input.lsCompression)).contentEncoding;
      await putFile(ls, cacheContentTypes.listing, enc, from);
    }
  })));
  if (narsThere) skipped.push({ what: `${narsThere} NAR${narsThere === 1 ? '' : 's'} in ${where}nar/`, reason: 'already uploaded by an earlier run (same content-addressed name and size)' });
  puts.sort((a, b) => a.key.localeCompare(b.key));

  // Topological levels over the references of the missing paths.
  const level = new Map<string, number>();
  const visiting = new Set<string>();
  const levelOf = (p: string): number => {
    const known = level.get(p);
    if (known !== undefined) return known;
    if (visiting.has(p)) throw new ReleaseError(`reference cycle through ${p} in the staged cache`);
    visiting.add(p);
    let l = 0;
    for (const r of infos.get(p)!.references) {
      if (r === p) continue;
      if (infos.has(r)) l = Math.max(l, levelOf(r) + 1);
      else if (!present.has(hashPart(r))) {
        throw new ReleaseError(`${p} references ${r}, which is neither in ${where} nor in the closure to upload`,
          'the closure computed from build-result.json is incomplete: re-run `releng build`');
      }
    }
    visiting.delete(p);
    level.set(p, l);
    return l;
  };
  const levels: S3Put[][] = [];
  for (const p of [...infos.keys()].sort()) {
    const info = infos.get(p)!;
    const l = levelOf(p);
    const key = `${bucket.prefix}${hashPart(p)}.narinfo`;
    const size = (await stat(info.file)).size;
    (levels[l] ??= []).push({ kind: 's3.put', bucket: bucket.bucket, key, source: { file: info.file }, size, sha256: await sha256File(info.file), contentType: cacheContentTypes.narinfo, contentEncoding: info.contentEncoding, reason: 'new' });
  }

  const steps: Step[] = [{ title: `cache NARs and listings to ${where}`, actions: puts }];
  levels.forEach((actions, l) => steps.push({ title: `cache narinfos, level ${l} of ${levels.length - 1}, to ${where}`, actions }));
  return { steps, skipped };
}
