// The binary cache: from every store path of the manifest (and, for a build, its drvs and outputs),
// walk the closure through the narinfos themselves — what Nix will fetch, not what we staged: each
// narinfo exists, parses, is signed by the environment's key (ed25519 over Nix's fingerprint), and
// its URL object exists with FileSize bytes, its NAR listing (.ls) decodes and parses as that
// NAR's (required where the environment writes listings). --deep reads every NAR: FileHash over the bytes as
// stored, NarHash and NarSize over the decompressed NAR (Nix's own sha256, nix32).
import { spawnSync } from 'node:child_process';
import { gunzipSync, brotliDecompressSync } from 'node:zlib';
import { hashPart } from '../nix/cache.ts';
import { nixSha256 } from '../nix/nix32.ts';
import { checkNarInfoSignature, parseNarInfoStrict, parseNixPublicKey, type NixPublicKey } from '../nix/narinfo.ts';
import { listingProblem } from './listing.ts';
import { hashDecompressed, hashStream, knownCompression, readAll } from './objects.ts';
import { count, emptyReport, type DestinationVerifier } from './types.ts';
import { createHash } from 'node:crypto';

/** Narinfo bytes as served: plain text, or compressed (narinfo-compression) with a Content-Encoding. */
function narinfoText(bytes: Buffer): string | undefined {
  const isZstd = bytes.length >= 4 && bytes.readUInt32LE(0) === 0xfd2fb528;
  const isXz = bytes.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  try {
    if (isZstd || isXz) {
      const r = spawnSync(isZstd ? 'zstd' : 'xz', ['-dc'], { input: bytes });
      return r.status === 0 ? r.stdout.toString('utf8') : undefined;
    }
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) return gunzipSync(bytes).toString('utf8');
    const plain = bytes.toString('utf8');
    if (plain.startsWith('StorePath:')) return plain;
    return brotliDecompressSync(bytes).toString('utf8');
  } catch { return undefined; }
}

export const cacheVerifier: DestinationVerifier = {
  name: 'binary cache',
  async verify(t, release, scope) {
    const report = emptyReport();
    const name = this.name;
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

    /**
     * The NAR listing (HASH.ls): required where the environment writes them (write-nar-listing),
     * and wherever one is there it must decode by its Content-Encoding and be this NAR's listing.
     */
    const checkListing = async (storePath: string, narSize: number) => {
      const ls = `${hashPart(storePath)}.ls`;
      const lsHead = await scope.limit(() => t.s3.head(t.cache.bucket, t.cache.prefix + ls));
      if (!lsHead) {
        if (t.narListings) { count(report, 'listings'); problem(ls, `missing: the NAR listing of ${storePath} (the environment sets write-nar-listing)`); }
        return;
      }
      const bytes = await scope.limit(async () => {
        const s = await t.s3.getStream(t.cache.bucket, t.cache.prefix + ls);
        return s ? readAll(s) : undefined;
      });
      count(report, 'listings');
      if (!bytes) { problem(ls, 'missing (HEAD saw it, GET did not)'); return; }
      const wrong = listingProblem(bytes, lsHead.contentEncoding, narSize);
      if (wrong) problem(ls, `${wrong} (${storePath})`, redo(ls));
    };

    // Breadth-first over references; each path once. Bounded by the closure itself.
    const seen = new Set<string>();
    const pending: Promise<void>[] = [];
    const visit = (storePath: string, from?: string) => {
      const h = hashPart(storePath);
      if (seen.has(h)) return;
      seen.add(h);
      scope.progress.addTotal(1);
      pending.push(checkPath(storePath, from));
    };
    const checkPath = async (storePath: string, from?: string): Promise<void> => {
      const rel = `${hashPart(storePath)}.narinfo`;
      const via = from ? ` (referenced by ${from})` : '';
      const bytes = await scope.limit(async () => {
        const s = await t.s3.getStream(t.cache.bucket, t.cache.prefix + rel);
        return s ? readAll(s) : undefined;
      });
      count(report, 'narinfos');
      if (!bytes) { problem(rel, `missing: ${storePath}${via} cannot be fetched`); scope.progress.item(); return; }
      const text = narinfoText(bytes);
      const parsed = text === undefined ? { problems: ['neither text nor a compression Nix writes'] } : parseNarInfoStrict(text);
      if (!parsed.info) { problem(rel, `corrupt narinfo for ${storePath}: ${parsed.problems.join('; ')}`, redo(rel)); scope.progress.item(); return; }
      const ni = parsed.info;
      if (ni.storePath !== storePath) { problem(rel, `describes ${ni.storePath}, expected ${storePath}`, redo(rel)); scope.progress.item(); return; }
      const sig = checkNarInfoSignature(ni, key);
      if (!sig.ok) problem(rel, `${sig.why} (trusted key ${key.name})`, redo(rel));
      for (const r of ni.references) if (r !== storePath) visit(r, storePath);
      // The NAR (or whatever URL names) exists with the size the narinfo promises.
      const head = await scope.limit(() => t.s3.head(t.cache.bucket, t.cache.prefix + ni.url));
      count(report, 'objects');
      if (!head) { problem(ni.url, `missing: the NAR of ${storePath} (its narinfo ${rel} exists, so Nix fails fetching it)`, redo(rel)); scope.progress.item(); return; }
      if (ni.fileSize !== undefined && head.size !== ni.fileSize) problem(ni.url, `size ${head.size}, but ${rel} says FileSize ${ni.fileSize}`, redo(ni.url, rel));
      await checkListing(storePath, ni.narSize);
      if (!scope.deep) { scope.progress.item(); return; }
      if (!knownCompression(ni.compression)) { problem(rel, `Compression "${ni.compression}" is not one Nix writes`); scope.progress.item(); return; }
      await scope.limit(async () => {
        const stream = await t.s3.getStream(t.cache.bucket, t.cache.prefix + ni.url);
        if (!stream) { problem(ni.url, 'missing (HEAD saw it, GET did not)'); return; }
        const file = createHash('sha256');
        let fileBytes = 0;
        let nar;
        try {
          nar = await hashDecompressed(stream, ni.compression, (c) => { file.update(c); fileBytes += c.length; });
        } catch (e) {
          // The decompressor stopped early: hash the stored bytes in a second read to say whether they changed.
          const again = await t.s3.getStream(t.cache.bucket, t.cache.prefix + ni.url);
          const raw = again ? await hashStream(again) : undefined;
          if (raw && ni.fileHash && !raw.digest.equals(Buffer.from(ni.fileHash))) {
            problem(ni.url, `FileHash ${nixSha256(raw.digest)} (${raw.size} bytes), but ${rel} says ${nixSha256(ni.fileHash)}; it does not decompress as ${ni.compression} either`, redo(ni.url, rel));
          } else {
            problem(ni.url, `cannot be decompressed as ${ni.compression}: ${(e as Error).message}`, redo(ni.url, rel));
          }
          return;
        }
        count(report, 'bytes read', fileBytes);
        count(report, 'NARs hashed');
        const fileHash = file.digest();
        if (ni.fileHash && !fileHash.equals(Buffer.from(ni.fileHash))) problem(ni.url, `FileHash ${nixSha256(fileHash)} (${fileBytes} bytes), but ${rel} says ${nixSha256(ni.fileHash)}`, redo(ni.url, rel));
        if (!nar.digest.equals(Buffer.from(ni.narHash)) || nar.size !== ni.narSize) {
          problem(ni.url, `unpacks to a NAR with NarHash ${nixSha256(nar.digest)} and ${nar.size} bytes, but ${rel} says ${nixSha256(ni.narHash)} and ${ni.narSize}`, redo(ni.url, rel));
        }
      });
      scope.progress.item();
    };
    for (const p of [...Object.values(release.manifest), ...release.cacheRoots]) visit(p);
    // Drain: visits add promises while earlier ones run.
    for (let i = 0; i < pending.length; i++) await pending[i];
    count(report, 'store paths', seen.size);
    return report;
  },
};
