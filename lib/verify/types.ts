// What `releng verify` works with: the release as it should be (ReleaseSpec), the environment's
// read side (VerifyTarget), and one DestinationVerifier per kind of destination. Verifiers only
// read, from scratch: no upload record, no hash memo, nothing local but the expected values.
import type pLimit from 'p-limit';
import type { Environment } from '../config/config.ts';
import type { ChannelsConfig } from '../config/channels.ts';
import type { BucketRef } from '../environment/open.ts';
import type { Progress } from '../core/log.ts';
import type { RegistryClient } from '../oci/registry.ts';
import type { DockerTarget } from '../config/config.ts';
import type { UploadRecord } from '../s3/record.ts';
import type { RemoteObject, S3Reader, S3StreamReader } from '../s3/store.ts';

/** One thing found wrong: where, what differs, and the command that repairs it. */
export interface Problem {
  /** release prefix | root manifest | binary cache | images | docs | git (or a plug-in's name). */
  destination: string;
  /** s3://BUCKET/KEY, REGISTRY/REPO:TAG, REMOTE refs/tags/V ... */
  where: string;
  what: string;
  repair: string;
  /** For S3 objects: lets upload drop the key from its local record. */
  bucket?: string;
  key?: string;
}

/** Something deliberately not checked, and why (never silent). */
export interface NotChecked {
  destination: string;
  what: string;
  reason: string;
}

/** A file of the release prefix, relative to PROJECT/PROJECT-VERSION/. */
export interface ExpectedFile {
  sha256: string;
  /** Known from build-result.json; unknown when the release is read from its published SHA256SUMS. */
  size?: number;
}

/** What the release consists of. From release/build-result.json (+ tag.json), or from what is published. */
export interface ReleaseSpec {
  /** Where the expected values came from. */
  source: 'build' | 'published';
  project: string;
  version: string;
  major: string;
  official: boolean;
  /** A rehearsal build (issue 26): never the root manifest, stable/, MAJOR or latest. */
  rehearsal?: boolean;
  /** PROJECT/PROJECT-VERSION (no slashes at the ends). */
  releaseDir: string;
  /** Every file of the prefix, SHA256SUMS included; undefined: read from the published SHA256SUMS. */
  files?: Map<string, ExpectedFile>;
  /** system → store path; undefined: what the published PROJECT-VERSION/manifest.nix evaluates to. */
  manifest?: Record<string, string>;
  /** Why the root manifest.nix, stable/ docs and moving image tags are not this release's (maintenance, partial profile, unknown); undefined: they are. */
  keep?: string;
  /** Store paths the cache must hold with their closures, beyond the manifest's (build: drvs and outPaths). */
  cacheRoots: string[];
  /** The image index every tag must resolve to; undefined: whatever the version tag resolves to. */
  imageIndex?: string;
  /** The commit tag VERSION must point at on the remote; undefined: the tag must only exist. */
  releaseCommit?: string;
  /** Why git is not checked (no tag record and an untagged build), if so. */
  gitSkip?: string;
}

/** The read side of an environment, as verifiers see it. */
export interface VerifyTarget {
  name: string;
  s3: S3Reader & S3StreamReader;
  releases: BucketRef;
  cache: BucketRef;
  docs: BucketRef;
  /** The environment's cache public key (NAME:BASE64); undefined when it has no cache. */
  publicKey?: string;
  /** The channels bucket, when the environment declares one (channelsBucket). */
  channels?: BucketRef;
  /** The environment's settings, for verifiers of what other commands publish there (channels, index). */
  environment?: Environment;
  /** releng.json's `channels` (which channel kinds carry programs.sqlite and debuginfo; issue 27). */
  channelsConfig?: ChannelsConfig;
  /** The environment writes NAR listings (cache.storeOptions write-nar-listing): every path's .ls must be there. */
  narListings?: boolean;
  registries: { host: string; repository: string; target: DockerTarget; client: RegistryClient }[];
  git?: Environment['git'];
  /** Where git commands run (the project root; ls-remote needs no repository). */
  root: string;
}

/** Shared by the verifiers of one run. */
export interface VerifyScope {
  deep: boolean;
  /** Bounds requests in flight across all verifiers. */
  limit: ReturnType<typeof pLimit>;
  progress: Progress;
  /** The command that republishes this release to this environment. */
  repair: string;
  /** The command that removes stale docs pages, when not `repair` (promote: with --delete). */
  repairStale?: string;
  /** Temp directory for files Nix must read (manifest.nix); removed by the caller. */
  tmpDir: string;
  /**
   * Upload's closing verification only (never `releng verify`): the upload record. A quick check
   * accepts a listed object without a HEAD when a verification already HEADed it with this same
   * size, ETag and our expected sha256; every HEAD that reads an object back right is noted in it.
   */
  known?: Pick<UploadRecord, 'get' | 'markVerified'> & Partial<Pick<UploadRecord, 'headed'>>;
  /**
   * What the caller knows of the bytes expected at S3 keys (upload: what it staged, hashed and put;
   * promote: the verified source objects it copied; `releng verify` in a project: release/). Never
   * the truth by itself: only a listing or a read of the server can prove an object with it.
   */
  local?: LocalKnowledge;
  /**
   * Lists bucket/prefix for a verifier. Upload hands in its plan's listing (taken during this run)
   * of a prefix it wrote nothing under since; otherwise a fresh listing. Unset: `t.s3.list`.
   * Compact (lib/s3/knowledge.ts): a verifier looks objects up by key, none made until asked for.
   */
  list?: (bucket: string, prefix: string) => Promise<CompactListing>;
}

/** scope.list, else a fresh listing through the target's store; in scope.limit. */
export function listForVerify(t: VerifyTarget, scope: VerifyScope, bucket: string, prefix: string): Promise<CompactListing> {
  return scope.limit(() => scope.list ? scope.list(bucket, prefix) : t.s3.list(bucket, prefix).then((objects) => new CompactListing(objects)));
}

import { CompactListing, type LocalKnowledge } from '../s3/knowledge.ts';
export type { LocalKnowledge } from '../s3/knowledge.ts';

/** What one verifier found and how much it looked at (counts per kind, for --json). */
export interface DestinationReport {
  problems: Problem[];
  checked: Record<string, number>;
  notChecked: NotChecked[];
}

/** The release with everything expected resolved (SHA256SUMS read, manifest evaluated). */
export interface ResolvedRelease extends ReleaseSpec {
  files: Map<string, ExpectedFile>;
  manifest: Record<string, string>;
}

/**
 * One kind of destination. The list in lib/verify/index.ts is the extension point: the channel
 * verifier (lib/channel/) and any new destination add an entry there.
 */
export interface DestinationVerifier {
  /** Names the destination in problems and in --json's `checked`. */
  name: string;
  verify(target: VerifyTarget, release: ResolvedRelease, scope: VerifyScope): Promise<DestinationReport>;
}

export function emptyReport(): DestinationReport {
  return { problems: [], checked: {}, notChecked: [] };
}

export function count(report: DestinationReport, what: string, n = 1): void {
  report.checked[what] = (report.checked[what] ?? 0) + n;
}
