// Reads one release of an environment back and lists what is wrong: what promote checks in the
// source before copying anything, and in the destination after. It is the verify promote expects
// from `releng verify` (lib/verify/, issue 10) — `verifyRelease(ctx, env, { deep })` — and promote
// takes that one through PromoteDeps.verifyRelease once it is on main; until then this reader
// covers the release prefix (SHA256SUMS), the manifest's closure in the cache (narinfo present,
// signed by the environment's key, NAR of the announced size) and, with deep, the bytes.
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { parseSha256Sums } from '../checksums.ts';
import type { BucketRef } from '../environment.ts';
import { hashPart, parseNarInfo } from '../nix/cache.ts';
import { narInfoFields, signedBy, type PublicKey } from '../nix/sign.ts';
import { objectUrl } from '../s3/actions.ts';
import type { S3Store } from '../s3/store.ts';

export interface ReleaseCheckTarget {
  name: string;
  store: S3Store;
  releases: BucketRef;
  cache: BucketRef;
}

export interface ReleaseCheck {
  ok: boolean;
  problems: string[];
  /** Objects and store paths looked at. */
  checked: number;
}

export async function checkRelease(t: ReleaseCheckTarget, opts: { project: string; version: string; key?: PublicKey; deep?: boolean; readManifest(text: string, where: string): Promise<Record<string, string>> }): Promise<ReleaseCheck> {
  const problems: string[] = [];
  let checked = 0;
  const prefix = `${t.releases.prefix}${opts.project}/${opts.project}-${opts.version}/`;
  const limit = pLimit(32);
  const sums = await t.store.getText(t.releases.bucket, `${prefix}SHA256SUMS`);
  const manifestText = await t.store.getText(t.releases.bucket, `${prefix}manifest.nix`);
  if (sums === undefined) problems.push(`${objectUrl(t.releases.bucket, `${prefix}SHA256SUMS`)}: missing`);
  if (manifestText === undefined) problems.push(`${objectUrl(t.releases.bucket, `${prefix}manifest.nix`)}: missing`);
  if (sums !== undefined) {
    const entries = [...parseSha256Sums(sums)];
    await Promise.all(entries.map(([name, sha]) => limit(async () => {
      checked++;
      const key = prefix + name;
      const h = await t.store.head(t.releases.bucket, key);
      if (!h) { problems.push(`${objectUrl(t.releases.bucket, key)}: missing (listed in SHA256SUMS)`); return; }
      if (h.sha256 !== sha) { problems.push(`${objectUrl(t.releases.bucket, key)}: sha256 ${h.sha256 ?? 'none'}, SHA256SUMS says ${sha}`); return; }
      if (opts.deep) {
        const s = await t.store.getStream?.(t.releases.bucket, key);
        if (s) {
          const hash = createHash('sha256');
          for await (const c of s as AsyncIterable<Buffer>) hash.update(c);
          const got = hash.digest('hex');
          if (got !== sha) problems.push(`${objectUrl(t.releases.bucket, key)}: its bytes hash to ${got}, SHA256SUMS says ${sha}`);
        }
      }
    })));
  }
  if (manifestText !== undefined) {
    let roots: string[] = [];
    try { roots = Object.values(await opts.readManifest(manifestText, objectUrl(t.releases.bucket, `${prefix}manifest.nix`))); } catch (e) {
      problems.push(`${objectUrl(t.releases.bucket, `${prefix}manifest.nix`)}: ${(e as Error).message}`);
    }
    const seen = new Set<string>();
    let wave = roots;
    for (let depth = 0; wave.length && depth < 10_000; depth++) {
      const next: string[] = [];
      await Promise.all(wave.map((p) => limit(async () => {
        if (seen.has(p)) return;
        seen.add(p);
        checked++;
        const key = `${t.cache.prefix}${hashPart(p)}.narinfo`;
        const text = await t.store.getText(t.cache.bucket, key);
        if (text === undefined) { problems.push(`${objectUrl(t.cache.bucket, key)}: narinfo of ${p} missing`); return; }
        let info;
        try { info = parseNarInfo(text, objectUrl(t.cache.bucket, key)); } catch (e) { problems.push((e as Error).message); return; }
        if (info.storePath !== p) problems.push(`${objectUrl(t.cache.bucket, key)}: describes ${info.storePath}, expected ${p}`);
        if (opts.key && !signedBy(narInfoFields(text, key), opts.key)) problems.push(`${objectUrl(t.cache.bucket, key)}: not signed by ${opts.key.name} (the key ${t.name} users trust)`);
        const nar = await t.store.head(t.cache.bucket, t.cache.prefix + info.url);
        if (!nar) problems.push(`${objectUrl(t.cache.bucket, t.cache.prefix + info.url)}: NAR of ${p} missing`);
        else if (nar.size !== info.fileSize) problems.push(`${objectUrl(t.cache.bucket, t.cache.prefix + info.url)}: ${nar.size} bytes, narinfo says ${info.fileSize}`);
        next.push(...info.references.filter((r) => !seen.has(r)));
      })));
      wave = [...new Set(next)];
    }
  }
  return { ok: problems.length === 0, problems: problems.sort(), checked };
}
