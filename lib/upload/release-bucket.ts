// Plans the release bucket: every artifact of release/artifacts, then the root manifest.nix last
// (it is what moves `nix upgrade-nix` users, so it must never point at something not yet there).
// The release prefix is immutable: an object there with other content is an error unless forced;
// releng's own interrupted or damaged write of the planned bytes is repaired (lib/s3/sync.ts
// relengWasWriting says what counts as evidence of that, issue 23).
import path from 'node:path';
import type { Step as CoreStep, Skip } from '../core/plan.ts';
import type { S3Action } from '../s3/actions.ts';
import { ReleaseError } from '../core/errors.ts';
import type { BuildResult } from '../release/build-result.ts';
import type { BucketRef } from '../environment/open.ts';
import type { S3Reader } from '../s3/store.ts';
import type { RunKnowledge } from '../s3/knowledge.ts';
import type { UploadRecord } from '../s3/record.ts';
import type { WriteIntents } from '../s3/intents.ts';
import { planSync, type LocalFile } from '../s3/sync.ts';
import { flatString } from '../core/heap.ts';
type Step = CoreStep<S3Action>;

export interface ReleaseBucketOptions {
  record?: UploadRecord;
  /** Writes earlier runs began and never saw acknowledged: an object there that is not the plan is releng's own, repaired (lib/s3/sync.ts relengWasWriting). */
  intents?: WriteIntents;
  /** This run's knowledge (lib/s3/knowledge.ts): the files' MD5s and the listings, for the closing verification. */
  knowledge?: RunKnowledge;
  /** Why the root manifest.nix must not move (maintenance or partial release); undefined: it moves. */
  keepRootManifest?: string;
  /** --replace-artifacts: allow replacing objects of the release prefix whose content differs. */
  replaceArtifacts?: boolean;
  /** Digests of the artifacts as checked before planning, by build-result.json's path (lib/upload/inputs.ts): their MD5s ride along for Content-MD5. */
  digests?: Map<string, { md5?: string }>;
  /** upload --deep: every object read back (lib/s3/sync.ts WriteEvidence.deep). */
  deep?: boolean;
}

function localFile(rel: string, artifact: string, file: string, size: number, sha256: string, opts: ReleaseBucketOptions): LocalFile {
  const md5 = opts.digests?.get(artifact)?.md5;
  return { rel, source: { file: flatString(file) }, size, sha256, ...(md5 ? { md5 } : {}) };
}

export async function planReleaseBucket(reader: S3Reader, releases: BucketRef, result: BuildResult, releaseDir: string, opts: ReleaseBucketOptions = {}): Promise<{ steps: Step[]; skipped: Skip[] }> {
  const artifactsDir = path.join(releaseDir, 'artifacts');
  const versionPrefix = `${result.releaseDir}/`;
  // Listed under the version directory only: the bucket holds every past release.
  const versioned = result.artifacts.filter((a) => a.path.startsWith(versionPrefix))
    .map((a): LocalFile => localFile(a.path.slice(versionPrefix.length), a.path, path.join(artifactsDir, a.path), a.size, a.sha256, opts));
  // The version directory is immutable: new objects are created with If-None-Match where the environment has conditional writes.
  const files = await planSync(reader, { bucket: releases.bucket, prefix: `${releases.prefix}${versionPrefix}`, files: versioned, record: opts.record, intents: opts.intents, deep: opts.deep, knowledge: opts.knowledge, createOnly: !opts.replaceArtifacts });
  const changed = files.puts.filter((p) => p.reason === 'changed');
  if (changed.length && !opts.replaceArtifacts) {
    throw new ReleaseError(`the release prefix s3://${releases.bucket}/${releases.prefix}${versionPrefix} already holds ${changed.length} object${changed.length === 1 ? '' : 's'} with other content:\n${changed.slice(0, 10).map((p) => `  ${p.key}`).join('\n')}`,
      'a published release is immutable: release a new version, or pass --replace-artifacts if this prefix was never announced');
  }
  const steps: Step[] = [{ title: `release files to ${releases.url}`, actions: files.puts }];
  const skipped: Skip[] = [...files.skipped];
  const root = result.artifacts.find((a) => a.path === 'manifest.nix');
  if (root && opts.keepRootManifest) {
    skipped.push({ what: `root manifest.nix of ${releases.url}`, reason: opts.keepRootManifest });
  } else if (root) {
    // Only the root object is compared: a listing of the whole bucket root would walk every release.
    const pointer = await planSync(reader, { bucket: releases.bucket, prefix: `${releases.prefix}manifest.nix`, files: [localFile('', root.path, path.join(artifactsDir, root.path), root.size, root.sha256, opts)], record: opts.record, intents: opts.intents, deep: opts.deep, knowledge: opts.knowledge });
    steps.push({ title: `root manifest.nix to ${releases.url}`, actions: pointer.puts });
    skipped.push(...pointer.skipped);
  }
  return { steps, skipped };
}
