// Plans a promote: what the destination environment lacks or holds differently of one release of
// the source environment, as copies of the source's bytes (never a rebuild). Reads only, through
// the two environments' S3Readers (S3 or file trees alike). Order of the steps (issue 11):
//   1. binary cache: NARs and listings, then narinfos by reference level (narinfoLevels, as upload)
//   2. the release prefix PROJECT/PROJECT-VERSION/ (immutable: other content there is refused)
//   3. docs manual/PROJECT/MAJOR/
//   4. what users follow, last: root manifest.nix, stable/ docs, latest-PROJECT-MAJOR; each moves
//      only if the source moved it to this release and the destination is not at a newer one;
//   5. with --delete, the docs pages (MAJOR/, stable/) the source no longer has: never in a release
//      prefix or the cache, and after everything else, so no page goes before its replacement.
// (Images and the git push are planned by lib/promote/images.ts and the phase.)
import pLimit from 'p-limit';
import type { Skip, Step as CoreStep } from '../core/plan.ts';
import type { BucketRef } from '../environment/open.ts';
import { ReleaseError } from '../core/errors.ts';
import { hashPart, parseNarInfo } from '../nix/cache.ts';
import { narInfoFields, resign, signedBy, type PublicKey, type SecretKey } from '../nix/sign.ts';
import { compareVersions, parseDrvName } from '../nix/versions.ts';
import { objectUrl, type S3Action, type S3Copy, type S3Delete, type S3Put, type S3Transfer } from '../s3/actions.ts';
import { contentHeadersFor } from '../s3/content-type.ts';
import type { ObjectHead, RemoteObject, S3Reader } from '../s3/store.ts';
import { cutShort, relengWasWriting, type WriteEvidence } from '../s3/sync.ts';
import { sha256Text } from '../hashing/checksums.ts';
import { withRetries } from '../core/retry.ts';
import { cacheContentTypes, narinfoLevels } from '../upload/cache.ts';
import { manualPrefixes } from '../upload/docs.ts';
type Step = CoreStep<S3Action>;

export interface PromoteSide {
  name: string;
  store: S3Reader;
  /** The S3 endpoint, or `file://` for trees (server-side copy needs the same one on both sides). */
  endpoint: string;
  releases: BucketRef;
  cache: BucketRef;
  docs: BucketRef;
}

export interface PromoteRequest {
  project: string;
  version: string;
  major: string;
  source: PromoteSide;
  dest: PromoteSide;
  /** `auto`: server-side copy when both buckets are on one endpoint; `never`: always transfer. */
  serverSideCopy: 'auto' | 'never';
  /** Reads a manifest.nix text into `{ SYSTEM = STOREPATH }` (Nix itself, in the phase). */
  readManifest(text: string, where: string): Promise<Record<string, string>>;
  /** The key the destination's users trust: every narinfo must verify under it after promote. */
  destKey?: PublicKey;
  /** Re-sign with this key when a narinfo does not verify under destKey (promote.resign); undefined: refuse instead. */
  resignWith?: SecretKey;
  /** --delete: remove from the destination's mutable prefixes (docs) what the source no longer has. */
  deleteStale: boolean;
  /** --replace-artifacts: replace release-prefix objects that differ (only for a release never announced). */
  replaceArtifacts: boolean;
  /** Keep a latest-PROJECT-MAJOR pointer at the destination's releases root. */
  latestLink: boolean;
  concurrency?: number;
  /**
   * The ETag and size the source verification read back for an object (lib/promote/knowledge.ts),
   * when it did: a server-side copy of such an object, listed with that ETag and size, needs no HEAD
   * of the source (the verification checked its sha256 metadata; the server copies the metadata).
   */
  sourceVerified?(bucket: string, key: string): { etag: string; size: number } | undefined;
  /**
   * What this machine knows of its own writes to the destination (intent journal, upload record):
   * an object there that is not the source's is releng's interrupted or damaged write, replaced as
   * a `repair` instead of refused (lib/s3/sync.ts relengWasWriting).
   */
  destEvidence?: WriteEvidence;
  /**
   * Store paths copied with their closures besides the manifest's (issue 25): the build's drvs and
   * outPaths when promote runs in the checkout that built the release and the source holds them
   * all, so the destination's cache holds what upload published (and `releng verify` in that
   * checkout agrees with `verify --published`).
   */
  extraRoots?: string[];
}

export interface PromotePlanned {
  /** Every step in order: cache, release prefix, docs, then what users follow. */
  steps: Step[];
  /** The same steps in their groups, so the phase can put images between cache and release files (upload's order). */
  groups: { cache: Step[]; content: Step[]; pointers: Step[] };
  skipped: Skip[];
  /** Store paths in the closure of the release's manifest (for the summary and verify). */
  closure: string[];
  /** Whether the pointers users follow move (root manifest, stable/, latest link). */
  movesPointers: boolean;
  /** Narinfos re-signed for the destination. */
  resigned: number;
  /** The text of each narinfo copied as it is (destination bucket/key → text read from the source): what the copy must hold. */
  copiedNarinfos: Array<{ bucket: string; key: string; text: string }>;
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Same endpoint and same kind on both sides: CopyObject (or a file copy) instead of GET + PUT. */
function serverSide(req: PromoteRequest, from: BucketRef, to: BucketRef): boolean {
  if (req.serverSideCopy === 'never') return false;
  const fsFrom = from.bucket.startsWith('/');
  const fsTo = to.bucket.startsWith('/');
  if (fsFrom !== fsTo) return false;
  return fsFrom || req.source.endpoint === req.dest.endpoint;
}

type Reason = { reason: 'new' | 'changed' | 'repair'; why?: string };

/** One object copy, server-side or transferred, with the source head's headers. */
function copyAction(req: PromoteRequest, from: BucketRef, fromKey: string, to: BucketRef, toKey: string, head: ObjectHead, why: Reason['reason'] | Reason): S3Copy | S3Transfer {
  const { reason, why: because } = typeof why === 'string' ? { reason: why, why: undefined } : why;
  const tail = { ...(reason !== 'new' ? { reason } : {}), ...(because ? { why: because } : {}) };
  const sha256 = head.sha256;
  if (!sha256 && serverSide(req, from, to) && !head.redirect) return { kind: 's3.copy', from: { bucket: from.bucket, key: fromKey }, bucket: to.bucket, key: toKey, size: head.size, ...tail };
  if (!sha256) throw new ReleaseError(`${objectUrl(from.bucket, fromKey)} has no sha256 in its metadata`, `it was not published by releng (or was damaged): run \`releng verify --environment ${req.source.name}\` and republish it`);
  if (serverSide(req, from, to) && !head.redirect) return { kind: 's3.copy', from: { bucket: from.bucket, key: fromKey }, bucket: to.bucket, key: toKey, size: head.size, sha256, ...tail };
  const h = contentHeadersFor(toKey);
  return {
    kind: 's3.transfer', from: { bucket: from.bucket, key: fromKey }, bucket: to.bucket, key: toKey,
    size: head.redirect ? 0 : head.size, sha256: head.redirect ? EMPTY_SHA256 : sha256,
    contentType: head.contentType ?? h.contentType, contentEncoding: head.contentEncoding, cacheControl: head.cacheControl,
    redirect: head.redirect, reason, ...(because ? { why: because } : {}),
  };
}

/**
 * Why an object the destination holds, that is not the source's `planned` bytes, is replaced:
 * `repair` when it is releng's own damaged write (the planned sha256 with another size, or the
 * evidence of lib/s3/sync.ts relengWasWriting), else `changed` (other content: refused in the
 * release prefix). `dh` is the destination's HEAD when the caller has it.
 */
async function replacement(req: PromoteRequest, to: BucketRef, key: string, planned: { size: number; sha256?: string }, dh?: ObjectHead, from?: { bucket: string; key: string }): Promise<Reason> {
  const head = dh ?? await req.dest.store.head(to.bucket, key);
  if (head && planned.sha256 && head.sha256 === planned.sha256 && head.size !== planned.size) return { reason: 'repair', why: `it carries the planned sha256 with ${head.size} bytes of ${planned.size}` };
  // A body cut short without metadata (issue 25): proven against the source object's first bytes.
  const source = req.source.store;
  const prefixOf = from && source.sha256Of ? async (n: number) => (await source.sha256Of!(from.bucket, from.key, n)) ?? { size: -1, sha256: '' } : undefined;
  const why = planned.sha256
    ? relengWasWriting(to.bucket, key, { size: planned.size, sha256: planned.sha256 }, head, req.destEvidence ?? {})
      ?? await cutShort(req.dest.store, to.bucket, key, head, { size: planned.size, sha256: planned.sha256, prefixOf })
    : pendingCopy(req, to, key, planned.size);
  return why ? { reason: 'repair', why } : { reason: 'changed' };
}

/** An open intent for a copy planned without a sha256 (a content-addressed NAR copied server-side): by its size. */
function pendingCopy(req: PromoteRequest, to: BucketRef, key: string, size: number): string | undefined {
  const i = req.destEvidence?.intents?.pending(to.bucket, key);
  return i && (i.size === undefined || i.size === size) ? 'releng began writing this object here and never saw the write acknowledged (intent journal)' : undefined;
}

/** The version a store path of PROJECT names (`...-lix-2.93.0` → 2.93.0), if any. */
function versionOfStorePath(p: string, project: string): string | undefined {
  const name = p.split('/').pop()!.slice(33);
  const d = parseDrvName(name);
  // A per-system build may carry its system (`hello-1.0.0-x86_64-linux`): that is not part of the version.
  const v = d.version.replace(/-(x86_64|aarch64|i686|armv[67]l|riscv64|powerpc64le)-(linux|darwin)$/, '');
  return d.name === project && v ? v : undefined;
}

/** The version a release location names (`/lix/lix-2.93.0/` → 2.93.0). */
function versionOfLocation(loc: string, project: string): string | undefined {
  const m = new RegExp(`${project}-([^/]+)/?$`).exec(loc.replace(/\/+$/, ''));
  return m?.[1];
}

/** Compares one tree of the source with the destination: copies for missing or different objects, deletes if asked. */
async function planTree(req: PromoteRequest, from: BucketRef, fromPrefix: string, to: BucketRef, toPrefix: string, opts: { immutable: boolean; deleteStale: boolean }): Promise<{ actions: S3Action[]; skipped: Skip[]; deletes: S3Delete[] }> {
  const [src, dst] = await Promise.all([req.source.store.list(from.bucket, fromPrefix), req.dest.store.list(to.bucket, toPrefix)]);
  const there = new Map(dst.map((o) => [o.key.slice(toPrefix.length), o]));
  const limit = pLimit(req.concurrency ?? 32);
  const actions: S3Action[] = [];
  const changed: string[] = [];
  let same = 0;
  await Promise.all(src.map((o) => limit(async () => {
    const rel = o.key.slice(fromPrefix.length);
    const d = there.get(rel);
    // A new object the source verification read back, listed now with the same ETag and size (not
    // a redirect: those are 0 bytes and transferred): the listing stands for the HEAD.
    const v = !d && o.size > 0 && serverSide(req, from, to) ? req.sourceVerified?.(from.bucket, o.key) : undefined;
    if (v && v.size === o.size && o.etag && o.etag.replace(/^"(.*)"$/, '$1') === v.etag) {
      actions.push(copyAction(req, from, o.key, to, toPrefix + rel, { size: o.size, metadata: {} }, 'new'));
      return;
    }
    const head = await req.source.store.head(from.bucket, o.key);
    if (!head) throw new ReleaseError(`${objectUrl(from.bucket, o.key)} was listed but is gone`, 're-run promote');
    let reason: Reason = { reason: 'new' };
    if (d) {
      const dh = await req.dest.store.head(to.bucket, toPrefix + rel);
      if (dh && (head.redirect ? dh.redirect === head.redirect : dh.size === head.size && dh.sha256 === head.sha256)) { same++; req.destEvidence?.intents?.settled(to.bucket, toPrefix + rel); return; }
      if (dh) {
        // Not the source's bytes: releng's own damaged write is repaired, anything else is other content.
        reason = head.redirect ? { reason: 'changed' } : await replacement(req, to, toPrefix + rel, { size: head.size, sha256: head.sha256 }, dh, { bucket: from.bucket, key: o.key });
        if (reason.reason === 'changed') changed.push(toPrefix + rel);
      }
    }
    actions.push(copyAction(req, from, o.key, to, toPrefix + rel, head, reason));
  })));
  if (opts.immutable && changed.length && !req.replaceArtifacts) {
    throw new ReleaseError(`the release prefix ${objectUrl(to.bucket, toPrefix)} in ${req.dest.name} already holds ${changed.length} object${changed.length === 1 ? '' : 's'} with other content:\n${changed.sort().slice(0, 10).map((k) => `  ${k}`).join('\n')}`,
      'a published release is immutable: promote a new version, or pass --replace-artifacts if this prefix was never announced; nothing was copied');
  }
  actions.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const srcRel = new Set(src.map((o) => o.key.slice(fromPrefix.length)));
  const stale = dst.filter((o) => !srcRel.has(o.key.slice(toPrefix.length)));
  // Never a deletion in an immutable prefix (the release prefix), whatever the caller asks.
  const deletes: S3Delete[] = opts.deleteStale && !opts.immutable
    ? stale.map((o): S3Delete => ({ kind: 's3.delete', bucket: to.bucket, key: o.key })).sort((a, b) => (a.key < b.key ? -1 : 1))
    : [];
  const skipped: Skip[] = same ? [{ what: `${same} object${same === 1 ? '' : 's'} in ${objectUrl(to.bucket, toPrefix)}`, reason: `already in ${req.dest.name} with the same size and sha256` }] : [];
  if (stale.length && !opts.immutable && !opts.deleteStale) {
    skipped.push({ what: `${stale.length} object${stale.length === 1 ? '' : 's'} in ${objectUrl(to.bucket, toPrefix)} that ${req.source.name} no longer has`, reason: 'kept: pass --delete to remove them (the closing verification reports them as stale)' });
  }
  return { actions, skipped, deletes };
}

/** The store paths of the closure of `roots`, read from the source cache's narinfos (breadth first). */
async function sourceClosure(req: PromoteRequest, roots: string[], withHeads: boolean): Promise<Map<string, { text: string; head?: ObjectHead; info: ReturnType<typeof parseNarInfo> }>> {
  const { cache } = req.source;
  const out = new Map<string, { text: string; head?: ObjectHead; info: ReturnType<typeof parseNarInfo> }>();
  const limit = pLimit(req.concurrency ?? 32);
  let wave = [...new Set(roots)];
  for (let depth = 0; wave.length && depth < 10_000; depth++) {
    const next = new Set<string>();
    const inWave = new Set(wave); // a lookup per reference (issue 31: wave.includes made a wide closure quadratic)
    await Promise.all(wave.map((p) => limit(async () => {
      const key = `${cache.prefix}${hashPart(p)}.narinfo`;
      // HEADs only when the narinfo's headers are needed (a transfer); a server-side copy carries them.
      const [text, head] = await Promise.all([req.source.store.getText(cache.bucket, key), withHeads ? req.source.store.head(cache.bucket, key) : undefined]);
      if (text === undefined || (withHeads && !head)) throw new ReleaseError(`${p} is in the closure of ${req.project} ${req.version} but ${objectUrl(cache.bucket, key)} is missing in ${req.source.name}`, `the source cache is incomplete: run \`releng verify --environment ${req.source.name}\` and re-upload there first; nothing was copied`);
      const info = parseNarInfo(text, objectUrl(cache.bucket, key));
      out.set(p, { text, head, info });
      for (const r of info.references) if (!out.has(r) && !inWave.has(r)) next.add(r);
    })));
    wave = [...next].filter((p) => !out.has(p));
  }
  return out;
}

export async function planPromote(req: PromoteRequest): Promise<PromotePlanned> {
  const { source, dest, project, version } = req;
  const steps: Step[] = [];
  const skipped: Skip[] = [];
  const releaseRel = `${project}/${project}-${version}/`;
  const srcRelease = `${source.releases.prefix}${releaseRel}`;
  const dstRelease = `${dest.releases.prefix}${releaseRel}`;

  // The release's manifest.nix in the source: what the closure and the pointers are about.
  const manifestKey = `${srcRelease}manifest.nix`;
  const manifestText = await source.store.getText(source.releases.bucket, manifestKey);
  if (manifestText === undefined) {
    throw new ReleaseError(`${project} ${version} is not in ${source.name}: ${objectUrl(source.releases.bucket, manifestKey)} is missing`, `upload it to ${source.name} first (releng upload --environment ${source.name}), or check the version`);
  }
  const manifest = await req.readManifest(manifestText, objectUrl(source.releases.bucket, manifestKey));
  const roots = [...Object.values(manifest), ...(req.extraRoots ?? [])];

  // 1. Binary cache: the closure of the manifest, NARs (and .ls) first, narinfos by level.
  const dstCache = req.dest.cache;
  const cacheServerSide = serverSide(req, source.cache, dstCache);
  const closure = await sourceClosure(req, roots, !cacheServerSide);
  const dstListing = new Map((await dest.store.list(dstCache.bucket, dstCache.prefix)).map((o): [string, RemoteObject] => [o.key.slice(dstCache.prefix.length), o]));
  const srcListing = new Map((await source.store.list(source.cache.bucket, source.cache.prefix)).map((o): [string, RemoteObject] => [o.key.slice(source.cache.prefix.length), o]));
  const limit = pLimit(req.concurrency ?? 32);
  // A narinfo the destination lists counts as present unless it is releng's own damaged write
  // (issue 23): an open intent for it, an empty file, or, on a file tree (a local read each), text
  // that is not a narinfo of this path. Those are copied again (a repair), as if missing.
  const damagedNarinfos = new Map<string, string>();
  const dstOnFs = dstCache.bucket.startsWith('/');
  await Promise.all([...closure.keys()].map((p) => limit(async () => {
    const rel = `${hashPart(p)}.narinfo`;
    const listed = dstListing.get(rel);
    if (!listed) return;
    const key = dstCache.prefix + rel;
    if (req.destEvidence?.intents?.pending(dstCache.bucket, key)) damagedNarinfos.set(p, 'releng began writing it here and never saw the write acknowledged (intent journal)');
    else if (listed.size === 0) damagedNarinfos.set(p, 'an empty file, no narinfo');
    else if (dstOnFs && !(await dest.store.head(dstCache.bucket, key))?.contentEncoding) {
      // (A compressed narinfo, narinfo-compression, is left to the closing verification.)
      const text = await dest.store.getText(dstCache.bucket, key);
      let parsed: string | undefined;
      try { parsed = text?.startsWith('StorePath:') ? parseNarInfo(text, objectUrl(dstCache.bucket, key)).storePath : undefined; } catch { parsed = undefined; }
      if (parsed !== p) damagedNarinfos.set(p, `it is not a narinfo of ${p} (${text === undefined ? 'unreadable' : `${Buffer.byteLength(text)} bytes`}): a write cut short`);
    }
  })));
  const present = new Set([...dstListing.keys()].filter((k) => /^[0-9a-z]{32}\.narinfo$/.test(k)).map((k) => k.slice(0, 32)));
  for (const p of damagedNarinfos.keys()) present.delete(hashPart(p));
  const missing = new Map([...closure].filter(([p]) => !present.has(hashPart(p))));
  if (closure.size > missing.size) skipped.push({ what: `${closure.size - missing.size} store path${closure.size - missing.size === 1 ? '' : 's'} in ${objectUrl(dstCache.bucket, dstCache.prefix)}`, reason: `narinfo already in ${dest.name}` });
  const bodies: S3Action[] = [];
  let narsThere = 0;
  // A server-side copy needs no HEAD of the source (the listing has the size; the server copies the
  // metadata): 1,000 paths are 2,000 fewer requests. A transfer needs the sha256 and headers.
  const headOf = async (rel: string): Promise<ObjectHead> => {
    if (cacheServerSide) {
      const listed = srcListing.get(rel);
      if (listed) return { size: listed.size, metadata: {} };
    }
    const h = await source.store.head(source.cache.bucket, source.cache.prefix + rel);
    if (!h) throw new ReleaseError(`${objectUrl(source.cache.bucket, source.cache.prefix + rel)} is missing in ${source.name}`, `the source cache is incomplete: run \`releng verify --environment ${source.name}\`; nothing was copied`);
    return h;
  };
  /**
   * A NAR the destination lacks, lists with another size than the source's (its name is its file
   * hash: another size is a damaged copy), or releng was writing: copied. A .ls likewise, but one
   * of another size that is not releng's damaged write is kept as before (it may be another
   * ls-compression of the same listing).
   */
  const body = async (rel: string, counted: boolean) => {
    const src = srcListing.get(rel)!;
    const there = dstListing.get(rel);
    const key = dstCache.prefix + rel;
    if (there && there.size === src.size && !pendingCopy(req, dstCache, key, src.size)) { if (counted) narsThere++; return; }
    const head = await headOf(rel);
    const reason: Reason = there ? await replacement(req, dstCache, key, { size: src.size, sha256: head.sha256 }, undefined, { bucket: source.cache.bucket, key: source.cache.prefix + rel }) : { reason: 'new' };
    if (rel.endsWith('.ls') && reason.reason === 'changed') return;
    bodies.push(copyAction(req, source.cache, source.cache.prefix + rel, dstCache, key, head, reason));
  };
  // Every path of the closure, its narinfo present or not: a NAR (named by its file hash: the same
  // key and size is the same NAR) or .ls cut short under a narinfo already there is repaired too.
  await Promise.all([...closure.values()].map(({ info }) => limit(async () => {
    if (!srcListing.has(info.url)) throw new ReleaseError(`${info.storePath}'s NAR ${objectUrl(source.cache.bucket, source.cache.prefix + info.url)} is missing in ${source.name}`, `the source cache is incomplete: run \`releng verify --environment ${source.name}\`; nothing was copied`);
    await body(info.url, missing.has(info.storePath));
    const ls = `${hashPart(info.storePath)}.ls`;
    if (srcListing.has(ls)) await body(ls, false);
  })));
  if (narsThere) skipped.push({ what: `${narsThere} NAR${narsThere === 1 ? '' : 's'} in ${objectUrl(dstCache.bucket, dstCache.prefix)}nar/`, reason: 'already there (same content-addressed name and size)' });
  if (srcListing.has('nix-cache-info') && !dstListing.has('nix-cache-info')) bodies.push(copyAction(req, source.cache, `${source.cache.prefix}nix-cache-info`, dstCache, `${dstCache.prefix}nix-cache-info`, await headOf('nix-cache-info'), 'new'));
  bodies.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  steps.push({ title: `cache NARs and listings to ${objectUrl(dstCache.bucket, dstCache.prefix)}`, actions: bodies });

  let resigned = 0;
  const copiedNarinfos: PromotePlanned['copiedNarinfos'] = [];
  const narinfoReason = (p: string): Reason => { const why = damagedNarinfos.get(p); return why ? { reason: 'repair', why } : { reason: 'new' }; };
  const levels = narinfoLevels(new Map([...missing].map(([p, v]) => [p, v.info])), present, objectUrl(dstCache.bucket, dstCache.prefix),
    `the source cache is incomplete: run \`releng verify --environment ${source.name}\``, `the closure read from ${source.name}`);
  for (const [l, paths] of levels.entries()) {
    const actions: S3Action[] = await Promise.all(paths.map(async (p) => {
      const { text, head: known } = missing.get(p)!;
      const key = `${dstCache.prefix}${hashPart(p)}.narinfo`;
      const fields = narInfoFields(text, objectUrl(source.cache.bucket, key));
      const head = known ?? await headOf(`${hashPart(p)}.narinfo`);
      if (!req.destKey || signedBy(fields, req.destKey)) {
        copiedNarinfos.push({ bucket: dstCache.bucket, key, text });
        return copyAction(req, source.cache, `${source.cache.prefix}${hashPart(p)}.narinfo`, dstCache, key, head, narinfoReason(p));
      }
      if (!req.resignWith) {
        throw new ReleaseError(`${p}'s narinfo in ${source.name} is not signed by ${dest.name}'s key ${req.destKey.name}`,
          `enable environments.${dest.name}.promote.resign (the default) with ${dest.name}'s cache.signingKeyFile readable, or sign the source cache with ${dest.name}'s key; nothing was copied`);
      }
      resigned++;
      const body = resign(text, fields, req.resignWith);
      const put: S3Put = { kind: 's3.put', bucket: dstCache.bucket, key, source: { text: body }, size: Buffer.byteLength(body), sha256: sha256Text(body), contentType: cacheContentTypes.narinfo, contentEncoding: head.contentEncoding, cacheControl: head.cacheControl, ...narinfoReason(p) };
      return put;
    }));
    steps.push({ title: `cache narinfos, level ${l} of ${levels.length - 1}, to ${objectUrl(dstCache.bucket, dstCache.prefix)}`, actions });
  }

  // 2. The release prefix (immutable; never a delete there).
  const release = await planTree(req, source.releases, srcRelease, dest.releases, dstRelease, { immutable: true, deleteStale: false });
  steps.push({ title: `release files to ${objectUrl(dest.releases.bucket, dstRelease)}`, actions: release.actions });
  skipped.push(...release.skipped);

  // 3. Docs of this major (a mutable prefix: --delete removes pages the source no longer has).
  const [majorDocs, stableDocs] = manualPrefixes({ project, major: req.major, official: true } as any);
  const docs = await planTree(req, source.docs, source.docs.prefix + majorDocs, dest.docs, dest.docs.prefix + majorDocs, { immutable: false, deleteStale: req.deleteStale });
  steps.push({ title: `manual to ${objectUrl(dest.docs.bucket, dest.docs.prefix + majorDocs)}`, actions: docs.actions });
  // --delete: stale pages go last, after every copy and what users follow moved (issue 28), so no
  // page is removed before the pages that replace it and the pointers to them are in place.
  const deletes: S3Action[] = [...docs.deletes];
  skipped.push(...docs.skipped);

  // 4. What users follow, last, and never backwards.
  const pointers: S3Action[] = [];
  const srcRoot = await source.store.getText(source.releases.bucket, `${source.releases.prefix}manifest.nix`);
  const dstRootKey = `${dest.releases.prefix}manifest.nix`;
  const dstRoot = await dest.store.getText(dest.releases.bucket, dstRootKey);
  let movesPointers = false;
  if (srcRoot !== manifestText) {
    skipped.push({ what: `root manifest.nix, stable/ docs and latest link of ${dest.name}`, reason: `${source.name}'s root manifest.nix does not point at ${version} (a maintenance or partial release there): ${dest.name}'s stay as they are` });
  } else {
    const dstVersions = dstRoot === undefined ? [] : Object.values(await req.readManifest(dstRoot, objectUrl(dest.releases.bucket, dstRootKey))).map((p) => versionOfStorePath(p, project)).filter((v): v is string => !!v);
    const newer = dstVersions.find((v) => compareVersions(v, version) > 0);
    if (newer) {
      skipped.push({ what: `root manifest.nix, stable/ docs and latest link of ${dest.name}`, reason: `${dest.name}'s root manifest.nix is at ${newer}, newer than ${version}: it never moves back` });
    } else {
      movesPointers = true;
      // A server-side copy needs only the size, and the text was just read (the release's manifest,
      // verified): no HEAD. A transfer needs the sha256 and headers.
      const srcRootKey = `${source.releases.prefix}manifest.nix`;
      const rootHead = serverSide(req, source.releases, dest.releases) ? { size: Buffer.byteLength(srcRoot), metadata: {} } : await source.store.head(source.releases.bucket, srcRootKey);
      if (!rootHead) throw new ReleaseError(`${objectUrl(source.releases.bucket, srcRootKey)} was read but is gone`, 're-run promote');
      if (dstRoot !== manifestText) pointers.push(copyAction(req, source.releases, srcRootKey, dest.releases, dstRootKey, rootHead, dstRoot === undefined ? 'new' : 'changed'));
      else skipped.push({ what: `root manifest.nix of ${dest.name}`, reason: `already ${version}'s` });
    }
  }
  const pointerSteps: Step[] = [];
  if (movesPointers && stableDocs) {
    const stable = await planTree(req, source.docs, source.docs.prefix + stableDocs, dest.docs, dest.docs.prefix + stableDocs, { immutable: false, deleteStale: req.deleteStale });
    pointerSteps.push({ title: `manual to ${objectUrl(dest.docs.bucket, dest.docs.prefix + stableDocs)}`, actions: stable.actions });
    deletes.push(...stable.deletes);
    skipped.push(...stable.skipped);
  }
  if (movesPointers && req.latestLink) {
    const link = await planLatestLink(dest.store, dest.releases, project, req.major, version);
    pointers.push(...link.actions);
    skipped.push(...link.skipped);
  }
  pointerSteps.unshift({ title: `what users follow in ${dest.name} (root manifest.nix, latest link)`, actions: pointers });
  pointerSteps.push({ title: `stale docs pages in ${dest.name} (--delete: the source no longer has them)`, actions: deletes });
  const cacheCount = 1 + levels.length;
  const groups = { cache: steps.slice(0, cacheCount), content: steps.slice(cacheCount), pointers: pointerSteps };
  return { steps: [...steps, ...pointerSteps], groups, skipped, closure: [...closure.keys()].sort(), movesPointers, resigned, copiedNarinfos };
}

/**
 * The `latest-PROJECT-MAJOR` pointer at the releases root (a redirect object on S3, a relative
 * symlink on a file tree) to PROJECT/PROJECT-VERSION/, unless it already points there or at a newer
 * release (never backwards). Upload and promote call it only when the root manifest moves.
 */
export async function planLatestLink(reader: S3Reader, releases: BucketRef, project: string, major: string, version: string): Promise<{ actions: S3Action[]; skipped: Skip[] }> {
  const key = `${releases.prefix}latest-${project}-${major}`;
  const location = `/${releases.prefix}${project}/${project}-${version}/`;
  const cur = await reader.head(releases.bucket, key);
  const curVersion = cur?.redirect ? versionOfLocation(cur.redirect, project) : undefined;
  if (cur?.redirect === location) return { actions: [], skipped: [{ what: objectUrl(releases.bucket, key), reason: `already points at ${location}` }] };
  if (curVersion && compareVersions(curVersion, version) > 0) return { actions: [], skipped: [{ what: objectUrl(releases.bucket, key), reason: `points at ${curVersion}, newer than ${version}: it never moves back` }] };
  return { actions: [{ kind: 's3.redirect', bucket: releases.bucket, key, location }], skipped: [] };
}

/**
 * A reader whose reads are retried on transient failures (5xx, throttling, a keep-alive socket the
 * server closed): planning a large promote makes thousands of reads, and one dropped connection
 * must not end it. Same bounded, jittered policy as apply's writes.
 */
export function retryingReader<R extends S3Reader>(r: R, attempts = 4, backoffMs = 200): R {
  const retry = <T>(fn: () => Promise<T>) => withRetries(fn, attempts, backoffMs);
  return {
    ...r,
    list: (b: string, p: string) => retry(() => r.list(b, p)),
    head: (b: string, k: string) => retry(() => r.head(b, k)),
    getText: (b: string, k: string) => retry(() => r.getText(b, k)),
  };
}
