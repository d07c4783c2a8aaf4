// Local inputs checked against what build recorded, before anything is published (issue 9): every
// artifact against build-result.json's size and sha256, and the manual in release/manual against
// the manual files build recorded under the version directory. A file changed after build (even
// one byte with the size and mtime put back) refuses the upload, naming the file; nothing is
// written. The hash memo may answer only for files whose device, inode, size, mtime and ctime are
// unchanged since hashed (lib/hashing/hash-cache.ts). The digests (sha256 and, for Content-MD5, MD5) are
// the ones the PUTs then carry: each file is read once.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { forEachLimited } from '../core/each.ts';
import type { BuildResult } from '../release/build-result.ts';
import { digestBytes, digestFile, SYNC_READ_MAX_BYTES, wantsMd5, type FileDigest, type Md5Wanted } from '../hashing/checksums.ts';
import { ReleaseError } from '../core/errors.ts';
import { localTree } from './local-tree.ts';
import type { HashCache } from '../hashing/hash-cache.ts';
import type { LocalFile } from '../s3/sync.ts';

export type { Md5Wanted } from '../hashing/checksums.ts';

export interface CheckedInputs {
  /** Artifact path as build-result.json records it (relative to release/artifacts) → its digest, as read now (equal to build-result.json's). */
  artifacts: Map<string, FileDigest>;
  /** release/manual as LocalFiles (checked). */
  manual: LocalFile[];
}

/** The digest of one file: from the memo when its identity is unchanged, else read once (small files synchronously). */
export async function fileDigest(file: string, opts: { hashCache?: HashCache; md5?: Md5Wanted }): Promise<FileDigest> {
  const st = statSync(file, { bigint: true });
  const md5 = wantsMd5(opts.md5, st.size);
  const known = opts.hashCache?.getDigest(file, st);
  if (known && (!md5 || known.md5)) return known;
  const d = st.size <= BigInt(SYNC_READ_MAX_BYTES) ? digestBytes(readFileSync(file), { md5 }) : await digestFile(file, { md5 });
  if (d.size !== Number(st.size)) throw new ReleaseError(`${file} changed while it was read`, 'make sure nothing writes to release/ during upload, then re-run');
  opts.hashCache?.set(file, st, d.sha256, d.md5);
  return d;
}

const again = (what: string) => `${what} changed after \`releng build\` recorded it: run \`releng build\` again (or restore the file); nothing was uploaded`;

export async function checkLocalInputs(releaseDir: string, result: BuildResult, opts: { hashCache?: HashCache; md5?: Md5Wanted } = {}): Promise<CheckedInputs> {
  const artifactsDir = path.join(releaseDir, 'artifacts');
  const artifacts = new Map<string, FileDigest>();
  const problems: string[] = [];
  // Workers over the artifacts (lib/core/each.ts), not a queued promise per file (issue 31).
  await forEachLimited(result.artifacts, 4, async (a) => {
    const file = path.join(artifactsDir, a.path);
    let d: FileDigest;
    try { d = await fileDigest(file, opts); } catch (e: any) {
      problems.push(`${file}: ${e?.code === 'ENOENT' ? 'missing' : e?.message ?? e}`);
      return;
    }
    if (d.size !== a.size || d.sha256 !== a.sha256) {
      problems.push(`${file}: ${d.size} bytes, sha256 ${d.sha256}; build-result.json recorded ${a.size} bytes, sha256 ${a.sha256}`);
      return;
    }
    // Keyed by the artifact's own path string, holding its sha256 string: no absolute path or
    // second copy of the digest kept per file (issue 31).
    artifacts.set(a.path, { sha256: a.sha256, size: d.size, ...(d.md5 ? { md5: d.md5 } : {}) });
  });
  if (problems.length) {
    throw new ReleaseError(`release/artifacts does not match release/build-result.json:\n${problems.sort().slice(0, 20).map((p) => `  ${p}`).join('\n')}`, again('the release tree'));
  }

  // The manual: build copied one tree to release/manual (docs bucket) and to VERSION/manual/
  // (release bucket, recorded as artifacts); the docs copy must be the recorded one, file for file.
  const manualDir = path.join(releaseDir, 'manual');
  const manual = await localTree(manualDir, 4, { hashCache: opts.hashCache, md5: opts.md5 });
  const recordedPrefix = `${result.releaseDir}/manual/`;
  const recorded = new Map(result.artifacts.filter((a) => a.path.startsWith(recordedPrefix)).map((a) => [a.path.slice(recordedPrefix.length), a]));
  if (recorded.size > 0) {
    const bad: string[] = [];
    for (const f of manual) {
      const r = recorded.get(f.rel);
      if (!r) bad.push(`${path.join(manualDir, f.rel)}: not a file build recorded`);
      else if (r.size !== f.size || r.sha256 !== f.sha256) bad.push(`${path.join(manualDir, f.rel)}: ${f.size} bytes, sha256 ${f.sha256}; build recorded ${r.size} bytes, sha256 ${r.sha256}`);
      else f.sha256 = r.sha256; // the same digest: one string for both (issue 31)
    }
    const local = new Set(manual.map((f) => f.rel));
    for (const rel of recorded.keys()) if (!local.has(rel)) bad.push(`${path.join(manualDir, rel)}: missing (build recorded it)`);
    if (bad.length) throw new ReleaseError(`release/manual does not match the manual build recorded in release/build-result.json:\n${bad.sort().slice(0, 20).map((p) => `  ${p}`).join('\n')}`, again('the manual'));
  }
  return { artifacts, manual };
}

/**
 * The MD5 (hex) and size of each file of the release prefix as it lies in release/artifacts, for
 * the files whose size and sha256 are still the expected ones (a file changed since build proves
 * nothing and is left out: its objects are HEADed). `releng verify` proves objects by listing with
 * these (issue 16). Read-only: the hash memo answers for unchanged files and is not saved.
 */
export async function localReleaseDigests(releaseDir: string, releaseDirName: string, files: Map<string, { sha256: string; size?: number }>, opts: { hashCache?: HashCache } = {}): Promise<Map<string, { md5: string; size: number }>> {
  const out = new Map<string, { md5: string; size: number }>();
  await forEachLimited(files, 4, async ([rel, e]) => {
    const file = path.join(releaseDir, 'artifacts', releaseDirName, rel);
    let d: FileDigest | undefined;
    try {
      // A large file is read only if the memo already knows its MD5: reading it costs more than the
      // one HEAD that proves its object otherwise (MD5_PROOF_MAX_BYTES; the bench's verify of
      // 4 × 100 MiB tarballs took 3.7× rclone when it hashed them on every run).
      const st = statSync(file, { bigint: true });
      d = wantsMd5('proof', st.size) ? await fileDigest(file, { hashCache: opts.hashCache, md5: 'proof' }) : opts.hashCache?.getDigest(file, st);
    } catch { return; }
    if (!d) return;
    if (d.sha256 !== e.sha256 || (e.size !== undefined && d.size !== e.size) || !d.md5) return;
    out.set(rel, { md5: Buffer.from(d.md5, 'base64').toString('hex'), size: d.size });
  });
  return out;
}
