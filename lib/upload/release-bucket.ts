// Plans the release bucket: every artifact of release/artifacts, then the root manifest.nix last
// (it is what moves `nix upgrade-nix` users, so it must never point at something not yet there).
import path from 'node:path';
import type { Step, Skip } from '../actions.ts';
import type { BuildResult } from '../build-result.ts';
import type { BucketRef } from '../environment.ts';
import type { S3Reader } from '../s3/store.ts';
import type { UploadRecord } from '../s3/record.ts';
import { planSync, type LocalFile } from '../s3/sync.ts';

export async function planReleaseBucket(reader: S3Reader, releases: BucketRef, result: BuildResult, releaseDir: string, opts: { record?: UploadRecord } = {}): Promise<{ steps: Step[]; skipped: Skip[] }> {
  const artifactsDir = path.join(releaseDir, 'artifacts');
  const toLocal = (a: BuildResult['artifacts'][number]): LocalFile => ({ rel: a.path, source: { file: path.join(artifactsDir, a.path) }, size: a.size, sha256: a.sha256 });
  const versioned = result.artifacts.filter((a) => a.path !== 'manifest.nix').map(toLocal);
  const root = result.artifacts.filter((a) => a.path === 'manifest.nix').map(toLocal);
  const files = await planSync(reader, { bucket: releases.bucket, prefix: releases.prefix, files: versioned, record: opts.record });
  // Only the root object is compared: a listing of the whole bucket root would walk every release.
  const pointer = await planSync(reader, { bucket: releases.bucket, prefix: `${releases.prefix}manifest.nix`, files: root.map((f) => ({ ...f, rel: '' })), record: opts.record });
  return {
    steps: [
      { title: `release files to ${releases.url}`, actions: files.puts },
      { title: `root manifest.nix to ${releases.url}`, actions: pointer.puts },
    ],
    skipped: [...files.skipped, ...pointer.skipped],
  };
}
