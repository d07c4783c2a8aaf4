// The binary cache: from every store path of the manifest (and, for a build, its drvs and outputs),
// walk the closure through the narinfos themselves — what Nix will fetch, not what we staged: each
// narinfo exists, parses, is signed by the environment's key (ed25519 over Nix's fingerprint), and
// its URL object exists with FileSize bytes, its NAR listing (.ls) decodes and parses as that
// NAR's (required where the environment writes listings). --deep reads every NAR: FileHash over the bytes as
// stored, NarHash and NarSize over the decompressed NAR (Nix's own sha256, nix32).
//
// Requests (issue 16): when the caller hands in a listing of the cache prefix (scope.list: upload,
// which lists the whole cache prefix in its plan anyway), existence and size of every NAR and .ls
// come from it (no HEAD), and a narinfo or .ls whose listed single-part ETag is the MD5 of the
// bytes this run holds for it (scope.local: upload's staged files) is proven byte for byte by the
// listing: its local bytes are parsed and their signature checked, no GET. `releng verify` gets no
// listing handed in: a real cache (Lix's) holds far more objects than one closure, so listing it
// whole can cost more than the closure's requests. It lists at most listKeys objects (a few
// requests) and uses that listing for the keys it covers (all of a small cache; on a big one the
// keys up to the last listed, S3 listing in key order), asking the rest object by object: a HEAD
// per NAR, one GET per .ls and --deep NAR (its headers are what a HEAD gives). --deep decodes zstd
// in-process (decompress.ts).
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { hashPart } from '../nix/cache.ts';
import { nixSha256 } from '../nix/nix32.ts';
import { checkNarInfoSignature, parseNarInfoStrict, parseNixPublicKey, type NixPublicKey } from '../nix/narinfo.ts';
import { CompactListing } from '../s3/knowledge.ts';
import { normalizeEtag } from '../s3/record.ts';
import { withHeadFallback, type RemoteObject } from '../s3/store.ts';
import { decodeSmall, isZstd } from './decompress.ts';
import { listingProblem, sniffListingEncoding } from './listing.ts';
import { CHECKS_IN_FLIGHT, digestNar, hashStream, knownCompression, readAll } from './objects.ts';
import type { ObjectDigest } from '../hashing/digester.ts';
import { HashWorkerError } from '../hashing/pool.ts';
import { count, emptyReport, type DestinationVerifier } from './types.ts';

/** Narinfo bytes as served: plain text, or compressed (narinfo-compression) with a Content-Encoding. */
export function narinfoText(bytes: Buffer): string | undefined {
  const isXz = bytes.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  const enc = isZstd(bytes) ? 'zstd' : isXz ? 'xz' : bytes[0] === 0x1f && bytes[1] === 0x8b ? 'gzip' : undefined;
  if (enc) return decodeSmall(bytes, enc)?.toString('utf8');
  const plain = bytes.toString('utf8');
  if (plain.startsWith('StorePath:')) return plain;
  return decodeSmall(bytes, 'br')?.toString('utf8');
}

const md5Hex = (b: Buffer) => createHash('md5').update(b).digest('hex');

/**
 * The cache verifier. listKeys: how many objects `releng verify` lists at most when no listing is
 * handed in (scope.list), 1,000 a request: 20,000 by default, 20 requests, a small fraction of the
 * 2-3 requests per store path it saves on a closure of thousands of paths; bigger caches are covered
 * up to the last key listed and asked object by object beyond.
 */
export function makeCacheVerifier(opts: { listKeys: number }): DestinationVerifier {
  return {
    name: 'binary cache',
    async verify(t, release, scope) {
      const report = emptyReport();
      const name = 'binary cache';
      const where = (rel: string) => `s3://${t.cache.bucket}/${t.cache.prefix}${rel}`;
      const problem = (rel: string, what: string, repair = scope.repair) => report.problems.push({ destination: name, where: where(rel), what, repair, bucket: t.cache.bucket, key: t.cache.prefix + rel });
      // upload skips a store path whose narinfo is there: a path is repaired by removing its narinfo
      // (and a NAR with wrong bytes), so that upload sends it again, NAR before narinfo.
      const redo = (...rels: string[]) => `delete ${rels.map(where).join(' and ')}, then ${scope.repair}`;
      if (!t.publicKey) {
        report.notChecked.push({ destination: name, what: where(''), reason: `environment "${t.name}" has no cache settings, so no public key to check signatures with` });
        return report;
      }
      let key: NixPublicKey;
      try { key = parseNixPublicKey(t.publicKey); } catch (e) {
        report.problems.push({ destination: name, where: where(''), what: (e as Error).message, repair: `fix the public key given (--public-key, or the environment's cache.signingKeyFile)` });
        return report;
      }
      const info = await scope.limit(() => t.s3.getText(t.cache.bucket, `${t.cache.prefix}nix-cache-info`));
      count(report, 'objects');
      if (info === undefined) problem('nix-cache-info', 'missing (Nix refuses a cache without it)');
      else if (!/^StoreDir: \/nix\/store$/m.test(info)) problem('nix-cache-info', `has no "StoreDir: /nix/store" line`);

      // The caller's listing of the cache prefix (upload's); else a bounded one (listKeys objects at
      // most, a few requests): on a cache bigger than that only keys up to the last one listed are
      // covered (S3 lists in key order), the rest is asked object by object. Keyed relative to the prefix.
      let listed: CompactListing | undefined;
      let coveredUpTo: string | undefined;
      if (scope.list) listed = await scope.list(t.cache.bucket, t.cache.prefix);
      else if (t.s3.listUpTo && opts.listKeys > 0) {
        const r = await scope.limit(() => t.s3.listUpTo!(t.cache.bucket, t.cache.prefix, opts.listKeys));
        listed = new CompactListing(r.objects);
        if (!r.complete) coveredUpTo = r.objects.at(-1)?.key.slice(t.cache.prefix.length) ?? '';
      }
      const byKey = listed?.lookup();
      if (byKey) count(report, 'objects listed', byKey.size);
      /** The listing's answer for rel: the object, 'absent', or undefined when the listing does not cover rel. */
      const lookup = (rel: string): RemoteObject | 'absent' | undefined => {
        if (!byKey || (coveredUpTo !== undefined && rel > coveredUpTo)) return undefined;
        return byKey.get(t.cache.prefix + rel) ?? 'absent';
      };
      /**
       * The bytes this run holds for `rel` when the listing proves the bucket holds exactly them: the
       * listed size is theirs and the listed ETag, a single-part one (32 hex digits, the server's MD5
       * of what it stores), is their MD5 — re-hashed here, so a local file changed since is no proof.
       */
      const provenByListing = async (rel: string): Promise<Buffer | undefined> => {
        const listed = lookup(rel);
        const local = scope.local;
        if (!listed || listed === 'absent' || !local?.bytes) return undefined;
        const etag = normalizeEtag(listed.etag)?.toLowerCase();
        const expected = local.md5(t.cache.bucket, t.cache.prefix + rel);
        if (!expected || !etag || !/^[0-9a-f]{32}$/.test(etag) || etag !== expected.md5.toLowerCase() || listed.size !== expected.size) return undefined;
        const bytes = await local.bytes(t.cache.bucket, t.cache.prefix + rel).catch(() => undefined);
        return bytes && bytes.length === listed.size && md5Hex(bytes) === etag ? bytes : undefined;
      };
      /** One GET that also gives what a HEAD would (adapters without it: HEAD, then GET). */
      const getWithHead = (rel: string) => (t.s3.getWithHead ? t.s3.getWithHead(t.cache.bucket, t.cache.prefix + rel) : withHeadFallback(t.s3, t.cache.bucket, t.cache.prefix + rel));

      /**
       * The NAR listing (HASH.ls): required where the environment writes them (write-nar-listing),
       * and wherever one is there it must decode by its Content-Encoding and be this NAR's listing.
       */
      const checkListing = async (storePath: string, narSize: number) => {
        const ls = `${hashPart(storePath)}.ls`;
        const absent = () => { if (t.narListings) { count(report, 'listings'); problem(ls, `missing: the NAR listing of ${storePath} (the environment sets write-nar-listing)`); } };
        const inListing = lookup(ls);
        if (inListing === 'absent') { absent(); return; }
        const local = await provenByListing(ls);
        if (local) {
          // Our staged bytes: their encoding is what they are (ls-compression), as upload sent them.
          count(report, 'listings');
          count(report, 'listings proven by listing');
          const wrong = listingProblem(local, sniffListingEncoding(local), narSize);
          if (wrong) problem(ls, `${wrong} (${storePath})`, redo(ls));
          return;
        }
        const got = await scope.limit(async () => {
          const r = await getWithHead(ls);
          return r ? { head: r.head, bytes: await readAll(r.stream) } : undefined;
        });
        if (!got) {
          if (inListing) { count(report, 'listings'); problem(ls, 'missing (listed, but GET did not find it)'); } else absent();
          return;
        }
        count(report, 'listings');
        const wrong = listingProblem(got.bytes, got.head.contentEncoding, narSize);
        if (wrong) problem(ls, `${wrong} (${storePath})`, redo(ls));
      };

      // Breadth-first over references; each path once. Bounded by the closure itself. At most
      // CHECKS_IN_FLIGHT paths are checked at once (issue 31): the others wait as a store path in
      // the queue, not as a running check holding its narinfo's bytes, text and parse (every path
      // of a 10,000-path closure was in flight at once, ~8 KB each).
      const seen = new Set<string>();
      const queue: ({ storePath: string; from?: string } | undefined)[] = [];
      let head = 0;
      const visit = (storePath: string, from?: string) => {
        const h = hashPart(storePath);
        if (seen.has(h)) return;
        seen.add(h);
        scope.progress.addTotal(1);
        queue.push(from ? { storePath, from } : { storePath });
      };
      const checkPath = async (storePath: string, from?: string): Promise<void> => {
        const rel = `${hashPart(storePath)}.narinfo`;
        const via = from ? ` (referenced by ${from})` : '';
        const inListing = lookup(rel);
        const local = inListing && inListing !== 'absent' ? await provenByListing(rel) : undefined;
        const bytes = local ?? (inListing === 'absent' ? undefined : await scope.limit(async () => {
          const s = await t.s3.getStream(t.cache.bucket, t.cache.prefix + rel);
          return s ? readAll(s) : undefined;
        }));
        count(report, 'narinfos');
        if (local) count(report, 'narinfos proven by listing');
        if (!bytes) { problem(rel, `missing: ${storePath}${via} cannot be fetched`); scope.progress.item(); return; }
        const text = narinfoText(bytes);
        const parsed = text === undefined ? { problems: ['neither text nor a compression Nix writes'] } : parseNarInfoStrict(text);
        if (!parsed.info) { problem(rel, `corrupt narinfo for ${storePath}: ${parsed.problems.join('; ')}`, redo(rel)); scope.progress.item(); return; }
        const ni = parsed.info;
        if (ni.storePath !== storePath) { problem(rel, `describes ${ni.storePath}, expected ${storePath}`, redo(rel)); scope.progress.item(); return; }
        // Bytes proven by listing that upload's staged check found signed by this very key (and
        // unchanged since): their signature was checked this run, or by its memo (issue 31).
        if (local && scope.local?.signedBy?.(t.cache.bucket, t.cache.prefix + rel, md5Hex(local)) === t.publicKey) count(report, 'signatures checked before upload');
        else {
          const sig = checkNarInfoSignature(ni, key);
          if (!sig.ok) problem(rel, `${sig.why} (trusted key ${key.name})`, redo(rel));
        }
        for (const r of ni.references) if (r !== storePath) visit(r, storePath);
        // The NAR (or whatever URL names) exists with the size the narinfo promises: from the
        // listing, else from the response to the one read of it (a HEAD; --deep: the GET).
        const missingNar = () => problem(ni.url, `missing: the NAR of ${storePath} (its narinfo ${rel} exists, so Nix fails fetching it)`, redo(rel));
        const checkSize = (size: number) => { if (ni.fileSize !== undefined && size !== ni.fileSize) problem(ni.url, `size ${size}, but ${rel} says FileSize ${ni.fileSize}`, redo(ni.url, rel)); };
        const listedNar = lookup(ni.url);
        if (listedNar) {
          count(report, 'objects');
          if (listedNar === 'absent') { missingNar(); scope.progress.item(); return; }
          checkSize(listedNar.size);
          // The narinfo is ours byte for byte, so its NAR is the one staged: a single-part ETag that
          // is not the staged NAR's MD5 says the bytes differ (a quick check cannot say more).
          const etag = normalizeEtag(listedNar.etag)?.toLowerCase();
          const staged = local ? scope.local?.md5(t.cache.bucket, t.cache.prefix + ni.url) : undefined;
          if (staged && etag && /^[0-9a-f]{32}$/.test(etag) && listedNar.size === staged.size && etag !== staged.md5.toLowerCase()) {
            problem(ni.url, `its bytes are not the NAR ${rel} describes (listed ETag ${etag}, the staged NAR's MD5 is ${staged.md5})`, /^releng upload\b/.test(scope.repair) ? `${scope.repair} --deep (it reads the NAR back and sends it again)` : redo(ni.url, rel));
          }
        } else if (!scope.deep) {
          const head = await scope.limit(() => t.s3.head(t.cache.bucket, t.cache.prefix + ni.url));
          count(report, 'objects');
          if (!head) { missingNar(); scope.progress.item(); return; }
          checkSize(head.size);
        }
        await checkListing(storePath, ni.narSize);
        if (!scope.deep) { scope.progress.item(); return; }
        if (!knownCompression(ni.compression)) { problem(rel, `Compression "${ni.compression}" is not one Nix writes`); scope.progress.item(); return; }
        await scope.limit(async () => {
          let stream: Readable;
          let size: number;
          if (listedNar) {
            size = listedNar.size;
            const s = await t.s3.getStream(t.cache.bucket, t.cache.prefix + ni.url);
            if (!s) { problem(ni.url, 'missing (listed, but GET did not find it)', redo(rel)); return; }
            stream = s;
          } else {
            const r = await getWithHead(ni.url);
            count(report, 'objects');
            if (!r) { missingNar(); return; }
            checkSize(r.head.size);
            size = r.head.size;
            stream = r.stream;
          }
          let got: ObjectDigest;
          try {
            got = await digestNar(stream, ni.compression, ni.fileSize ?? size, where(ni.url));
          } catch (e) {
            // A hash worker that died fails the run (naming the key); it says nothing of the NAR.
            if (e instanceof HashWorkerError) throw e;
            // A decompressor program (xz, bzip2) or node:zlib stopped early: hash the stored bytes in a
            // second read to say whether they changed (zstd and none hash every byte in one read).
            const again = await t.s3.getStream(t.cache.bucket, t.cache.prefix + ni.url);
            if (!again) { problem(ni.url, `cannot be decompressed as ${ni.compression}: ${(e as Error).message}`, redo(ni.url, rel)); return; }
            const raw = await hashStream(again);
            got = { raw: { digest: raw.digest, size: raw.size }, decodeError: (e as Error).message };
          }
          if (got.decodeError !== undefined || !got.decoded) {
            // Every stored byte was hashed even though decoding stopped: say whether they changed.
            if (ni.fileHash && !got.raw.digest.equals(Buffer.from(ni.fileHash))) {
              problem(ni.url, `FileHash ${nixSha256(got.raw.digest)} (${got.raw.size} bytes), but ${rel} says ${nixSha256(ni.fileHash)}; it does not decompress as ${ni.compression} either`, redo(ni.url, rel));
            } else {
              problem(ni.url, `cannot be decompressed as ${ni.compression}: ${got.decodeError ?? 'no output'}`, redo(ni.url, rel));
            }
            return;
          }
          const nar = got.decoded;
          const fileHash = got.raw.digest;
          const fileBytes = got.raw.size;
          count(report, 'bytes read', fileBytes);
          count(report, 'NARs hashed');
          // One line per NAR: stored bytes that differ usually unpack to another NAR too.
          const fileWrong = !!ni.fileHash && !fileHash.equals(Buffer.from(ni.fileHash));
          const narWrong = !nar.digest.equals(Buffer.from(ni.narHash)) || nar.size !== ni.narSize;
          const unpacks = `unpacks to a NAR with NarHash ${nixSha256(nar.digest)} and ${nar.size} bytes, but ${rel} says ${nixSha256(ni.narHash)} and ${ni.narSize}`;
          if (fileWrong) problem(ni.url, `FileHash ${nixSha256(fileHash)} (${fileBytes} bytes), but ${rel} says ${nixSha256(ni.fileHash!)}${narWrong ? `; it ${unpacks}` : ''}`, redo(ni.url, rel));
          else if (narWrong) problem(ni.url, unpacks, redo(ni.url, rel));
        });
        scope.progress.item();
      };
      for (const p of [...Object.values(release.manifest), ...release.cacheRoots]) visit(p);
      // Drain: checks add paths to the queue while they run; done when it is empty and none runs.
      await new Promise<void>((resolve, reject) => {
        let active = 0;
        let failed = false;
        const pump = () => {
          while (!failed && active < CHECKS_IN_FLIGHT && head < queue.length) {
            const next = queue[head]!;
            queue[head++] = undefined;
            if (head > 4096 && head * 2 > queue.length) { queue.splice(0, head); head = 0; }
            active++;
            checkPath(next.storePath, next.from).then(() => { active--; pump(); }, (e) => { failed = true; reject(e); });
          }
          if (!failed && active === 0 && head >= queue.length) resolve();
        };
        pump();
      });
      count(report, 'store paths', seen.size);
      return report;
    },
  };
}

export const cacheVerifier: DestinationVerifier = makeCacheVerifier({ listKeys: 20_000 });
