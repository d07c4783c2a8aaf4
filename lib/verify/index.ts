// `releng verify` as a library: what the release is (from release/ or from what is published),
// the list of destination verifiers (the extension point), and verifyRelease(), which upload
// ends with and promote calls on its source environment. Reads only, from scratch.
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import type { BuildResult } from '../release/build-result.ts';
import { parseSha256Sums, sha256Text } from '../hashing/checksums.ts';
import type { Context } from '../config/context.ts';
import type { OpenEnvironment } from '../environment/open.ts';
import { ReleaseError } from '../core/errors.ts';
import { gitAt } from '../git/git.ts';
import { isMaintenanceRelease } from '../git/maintenance.ts';
import { resolveSigningKey } from '../nix/cache.ts';
import { prepareBuildImages } from '../oci/image.ts';
import type { TagRecord } from '../release/tag-record.ts';
import { imageIndex } from '../upload/images.ts';
import { majorOf } from '../config/version.ts';
import { readFile } from 'node:fs/promises';
import { cacheVerifier } from './cache.ts';
import { channelsVerifier, indexVerifier } from './published.ts';
import { docsVerifier } from './docs.ts';
import { gitVerifier } from './git.ts';
import { imagesVerifier } from './images.ts';
import { evaluatePublishedManifest, manifestVerifier } from './manifests.ts';
import { readAll } from './objects.ts';
import { releasePrefixVerifier } from './release-prefix.ts';
import type { DestinationVerifier, NotChecked, Problem, ReleaseSpec, ResolvedRelease, VerifyScope, VerifyTarget } from './types.ts';

export type { DestinationVerifier, Problem, ReleaseSpec, ResolvedRelease, VerifyTarget } from './types.ts';

/**
 * Every destination a release has, in the order problems are listed. New destinations (the
 * channel release verifier from lib/channel/, a filesystem mirror) add an entry here.
 */
export const destinationVerifiers: DestinationVerifier[] = [
  releasePrefixVerifier,
  manifestVerifier,
  cacheVerifier,
  imagesVerifier,
  docsVerifier,
  gitVerifier,
  channelsVerifier,
  indexVerifier,
];

export interface VerifyReport {
  ok: boolean;
  environment: string;
  project: string;
  version: string;
  /** Where the expected values came from: release/ (build) or the published SHA256SUMS and manifest. */
  source: ReleaseSpec['source'];
  deep: boolean;
  problems: Problem[];
  /** destination → what was looked at (objects, narinfos, NARs hashed, bytes read, tags, blobs, refs ...). */
  checked: Record<string, Record<string, number>>;
  notChecked: NotChecked[];
  seconds: number;
}

// One answer per run (upload plans with it and its closing verification asks again): the local
// tags and main refs do not change during a run, and both then agree on what users follow.
const maintenanceByRun = new WeakMap<Context, Map<string, Promise<boolean>>>();

/** isMaintenanceRelease at the project root, asked of git once per run and version. */
export function maintenanceRelease(ctx: Context, version: string): Promise<boolean> {
  let byVersion = maintenanceByRun.get(ctx);
  if (!byVersion) maintenanceByRun.set(ctx, byVersion = new Map());
  let p = byVersion.get(version);
  if (!p) {
    p = isMaintenanceRelease(gitAt(ctx.root), version, ctx.config.mainBranch);
    byVersion.set(version, p);
    p.catch(() => byVersion!.delete(version));
  }
  return p;
}

/** An unofficial build (a rehearsal) never moves what users follow (issue 26). */
export function unofficialKeep(result: Pick<BuildResult, 'version'>): string {
  return `${result.version} is an unofficial (rehearsal) build`;
}

/** Why the root manifest, stable/ docs and moving tags are not this release's to set (as upload decides). */
export async function whatUsersFollow(ctx: Context, result: BuildResult): Promise<string | undefined> {
  if (result.rehearsal) return unofficialKeep(result);
  const maintenance = await maintenanceRelease(ctx, result.version);
  return maintenance ? `${result.version} is a maintenance release (a newer version is tagged on ${ctx.config.mainBranch})`
    : result.profile !== ctx.config.defaultProfile ? `built with profile "${result.profile}", not the default "${ctx.config.defaultProfile}" (it would drop systems)` : undefined;
}

/** The release as `build` laid it out (and `tag` recorded): what upload published, exactly. */
export async function releaseFromBuild(ctx: Context, result: BuildResult, tagRecord: TagRecord | undefined, opts: { images?: boolean } = {}): Promise<ReleaseSpec> {
  const prefix = `${result.releaseDir}/`;
  const files = new Map(result.artifacts.filter((a) => a.path.startsWith(prefix)).map((a) => [a.path.slice(prefix.length), { sha256: a.sha256, size: a.size }]));
  const images = opts.images !== false && result.dockerImages.length > 0 ? await prepareBuildImages(result, ctx.releaseDir) : [];
  return {
    source: 'build', project: result.project, version: result.version, major: result.major, official: result.official, rehearsal: !!result.rehearsal,
    releaseDir: result.releaseDir, files, manifest: result.manifest, keep: await whatUsersFollow(ctx, result),
    cacheRoots: [...result.drvs, ...result.outPaths],
    imageIndex: images.length ? imageIndex(images).digest : undefined,
    releaseCommit: tagRecord?.releaseCommit,
    gitSkip: tagRecord ? undefined : 'no release/tag.json (upload pushes git only after `releng tag`)',
  };
}

/** The release as published, for a machine without release/ (promote's source): SHA256SUMS and manifest.nix are the truth. */
export function releaseFromPublished(project: string, version: string): ReleaseSpec {
  return {
    source: 'published', project, version, major: majorOf(version), official: true,
    releaseDir: `${project}/${project}-${version}`,
    keep: 'verified from the published release alone: whether the root manifest.nix, stable/ docs and moving image tags should be this release\'s is not known here',
    cacheRoots: [],
  };
}

/** The environment's cache public key: --public-key, else KEYFILE.pub, else derived from the secret key with Nix. */
export async function environmentPublicKey(ctx: Context, target: OpenEnvironment, given?: string): Promise<string | undefined> {
  if (given) return given.trim();
  const cache = target.env.cache;
  if (!cache) return undefined;
  const file = path.resolve(ctx.root, cache.signingKeyFile);
  const pub = await readFile(`${file}.pub`, 'utf8').catch(() => undefined);
  if (pub?.trim()) return pub.trim();
  try {
    await access(file);
  } catch {
    throw new ReleaseError(`no public key to check the cache's signatures with: ${file} (environments.${target.name}.cache.signingKeyFile) and ${file}.pub do not exist here`,
      'pass the environment\'s public key: releng verify --public-key NAME:BASE64 (what users put in trusted-public-keys)');
  }
  return (await resolveSigningKey({ root: ctx.root, envName: target.name, cache, project: ctx.config.project, allowGenerate: false })).publicKey;
}

/** The read side of an opened environment. */
export function verifyTarget(ctx: Context, target: OpenEnvironment, publicKey: string | undefined): VerifyTarget {
  return {
    name: target.name, s3: target.s3, releases: target.releases, cache: target.cache, docs: target.docs, publicKey,
    narListings: target.env.cache?.storeOptions['write-nar-listing'] === 'true',
    channels: target.channels, environment: target.env, channelsConfig: ctx.config.channels,
    registries: target.registries.map((r) => ({ host: r.host, repository: r.repository, target: r.target, client: r.client })),
    git: target.env.git, root: ctx.root,
  };
}

/** Reads SHA256SUMS and the release's manifest.nix when the spec does not know them; a problem when it cannot. */
async function resolve(t: VerifyTarget, spec: ReleaseSpec, scope: VerifyScope): Promise<ResolvedRelease | Problem> {
  const prefix = `${t.releases.prefix}${spec.releaseDir}/`;
  let files = spec.files;
  if (!files) {
    const key = `${prefix}SHA256SUMS`;
    const stream = await scope.limit(() => t.s3.getStream(t.releases.bucket, key));
    if (!stream) return { destination: releasePrefixVerifier.name, where: `s3://${t.releases.bucket}/${key}`, what: `missing: nothing says what ${spec.project} ${spec.version} consists of`, repair: scope.repair, bucket: t.releases.bucket, key };
    const bytes = await readAll(stream);
    const sums = parseSha256Sums(bytes.toString('utf8'));
    if (sums.size === 0) return { destination: releasePrefixVerifier.name, where: `s3://${t.releases.bucket}/${key}`, what: 'lists no files (not a SHA256SUMS file)', repair: scope.repair, bucket: t.releases.bucket, key };
    files = new Map([...sums].map(([name, sha256]) => [name, { sha256 }]));
    files.set('SHA256SUMS', { sha256: sha256Text(bytes), size: bytes.length });
  }
  let manifest = spec.manifest;
  if (!manifest) {
    const key = `${prefix}manifest.nix`;
    const value = await evaluatePublishedManifest(t, scope, key);
    if (typeof value === 'string') return { destination: 'manifest', where: `s3://${t.releases.bucket}/${key}`, what: value, repair: scope.repair, bucket: t.releases.bucket, key };
    manifest = value;
  }
  if (!files.has('manifest.nix')) return { destination: releasePrefixVerifier.name, where: `s3://${t.releases.bucket}/${prefix}SHA256SUMS`, what: 'does not list manifest.nix', repair: scope.repair };
  return { ...spec, files, manifest };
}

export interface VerifyOptions {
  deep?: boolean;
  /** What the release is; default: release/build-result.json (+ tag.json) when present, else the published release of version.json's version. */
  release: ReleaseSpec;
  publicKey?: string;
  /** The command that repairs this environment (default: releng upload --environment NAME). */
  repair?: string;
  /** The command that removes stale docs pages, when not `repair` (VerifyScope.repairStale). */
  repairStale?: string;
  verifiers?: DestinationVerifier[];
  /** Requests in flight (default 16). */
  concurrency?: number;
  /** Called with the release as resolved (SHA256SUMS read, manifest evaluated): promote checks the destination against the source's. */
  onResolved?: (release: ResolvedRelease) => void;
  /** Upload's closing verification only: its record, so listings stand in for HEADs it already did (VerifyScope.known). */
  known?: VerifyScope['known'];
  /** The expected bytes' MD5s (upload: what it hashed; verify: release/), so a listing proves them (VerifyScope.local). */
  local?: VerifyScope['local'];
  /** Listings the caller already holds (upload: its plan's, for prefixes it wrote nothing under; VerifyScope.list). */
  list?: VerifyScope['list'];
}

/** Verifies every destination of the release in one environment; never throws for what it finds, only for what stops it reading. */
export async function verifyRelease(ctx: Context, t: VerifyTarget, opts: VerifyOptions): Promise<VerifyReport> {
  const started = Date.now();
  const deep = !!opts.deep;
  const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'releng-verify-'));
  const bar = ctx.log.progress(`verifying ${opts.release.project} ${opts.release.version} in ${t.name}${deep ? ' (deep)' : ''}`, 0, 'files');
  const scope: VerifyScope = {
    deep, limit: pLimit(opts.concurrency ?? 16), tmpDir, ...(opts.known ? { known: opts.known } : {}),
    ...(opts.local ? { local: opts.local } : {}), ...(opts.list ? { list: opts.list } : {}),
    repair: opts.repair ?? `releng upload --environment ${t.name}`, ...(opts.repairStale ? { repairStale: opts.repairStale } : {}),
    progress: { tick: (n) => bar.tick(n), addTotal: (n) => bar.addTotal(n), item: () => bar.tick(1), stop: () => bar.stop() },
  };
  const report: VerifyReport = {
    ok: false, environment: t.name, project: opts.release.project, version: opts.release.version, source: opts.release.source, deep,
    problems: [], checked: {}, notChecked: [], seconds: 0,
  };
  try {
    const resolved = await resolve(t, opts.release, scope);
    if ('destination' in resolved) {
      report.problems.push(resolved);
    } else {
      opts.onResolved?.(resolved);
      const results = await Promise.all((opts.verifiers ?? destinationVerifiers).map(async (v) => ({ v, r: await v.verify(t, resolved, scope) })));
      for (const { v, r } of results) {
        report.problems.push(...r.problems);
        report.notChecked.push(...r.notChecked);
        report.checked[v.name] = r.checked;
      }
    }
  } finally {
    bar.stop();
    await rm(tmpDir, { recursive: true, force: true });
  }
  report.ok = report.problems.length === 0;
  report.seconds = Math.round((Date.now() - started) / 100) / 10;
  return report;
}

/** One line per problem: destination, where, what differs, and the repair. */
export function renderProblem(p: Problem): string {
  return `${p.destination}: ${p.where}: ${p.what} — repair: ${p.repair}`;
}

/** A one-line summary of what was checked, per destination. */
export function renderChecked(report: VerifyReport): string {
  return Object.entries(report.checked).map(([d, c]) => `${d}: ${Object.entries(c).map(([k, n]) => `${n} ${k}`).join(', ') || 'nothing'}`).join('; ');
}

/** Thrown when verification finds problems: the message lists them; --json carries the report. */
export class VerificationFailed extends ReleaseError {
  constructor(readonly report: VerifyReport, context: string, opts: { listedAbove?: boolean } = {}) {
    const n = report.problems.length;
    const shown = opts.listedAbove ? [] : report.problems.slice(0, 50).map((p) => `  ${renderProblem(p)}`);
    const more = !opts.listedAbove && n > 50 ? [`  ... and ${n - 50} more (--json lists all)`] : [];
    super(`${context}: ${n} problem${n === 1 ? '' : 's'} in ${report.environment}${opts.listedAbove ? ' (one line each above)' : `:\n${[...shown, ...more].join('\n')}`}`,
      'run the repair named on each line, then `releng verify` again');
    this.name = 'VerificationFailed';
  }
}
