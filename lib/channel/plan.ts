// Plans a channel release: reads Hydra, the binary cache and the buckets, stages what must be
// uploaded, and returns the ordered writes: files → HTML page (the "prefix complete" marker) →
// git push of the channel branch → channel aliases → the channel object itself, last.
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import type { Plan as CorePlan, Skip, Step as CoreStep } from '../core/plan.ts';
import type { S3Action } from '../s3/actions.ts';
import type { GitPushAction } from '../git/push.ts';
import { sha256File, sha256Text } from '../hashing/checksums.ts';
import type { BucketRef } from '../environment/open.ts';
import { ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import type { GitPush } from '../git/push.ts';
import { HydraHttpError } from '../hydra/client.ts';
import { renderReleasePage } from '../html/release-page.ts';
import type { Logger } from '../core/log.ts';
import type { S3Put, S3Redirect } from '../s3/actions.ts';
import type { S3Reader } from '../s3/store.ts';
import { fillTemplate, redirectTarget, requireSegment } from './names.ts';
import { downloadProduct, selectProduct, type DownloadRequest, type FileProduct } from './products.ts';
import type { ChannelRelease } from './release.ts';
import { httpListingSource, type ListingSource } from './listings.ts';
import type { Evaluate } from './programs.ts';
import { preparePrograms, type ProgramsStepResult } from './programs-plan.ts';
type Plan = CorePlan<S3Action | GitPushAction>;
type Step = CoreStep<S3Action | GitPushAction>;

/** Cache-Control of every redirect object (NixOS channels: clients see a move within 10 minutes). */
export const REDIRECT_CACHE_CONTROL = 'max-age=600, stale-while-revalidate=1800, public';

/** Content headers as the NixOS mirror sets them (prior art §2.5). */
export function channelContentHeaders(name: string): { contentType: string; contentEncoding?: string } {
  if (/\.json\.br$/.test(name)) return { contentType: 'application/json', contentEncoding: 'br' };
  if (/\.sha256$/.test(name) || ['src-url', 'binary-cache-url', 'git-revision'].includes(name)) return { contentType: 'text/plain' };
  return { contentType: 'application/octet-stream' };
}

/** One file of the release prefix, before we know whether it must be uploaded. */
interface ReleaseFile {
  name: string;
  size: number;
  sha256: string;
  source: { text: string } | { file: string } | { product: FileProduct; job: string };
}

export interface GitTarget {
  /** Local repository holding the revision. */
  cwd: string;
  remote: string;
  branch: string;
  /** What the remote branch points at now (git ls-remote), if it exists. */
  remoteHead?: string;
  /** Non-fast-forward allowed (--force). */
  force: boolean;
}

export interface ChannelPlanInput {
  release: ChannelRelease;
  reader: S3Reader;
  releases: BucketRef;
  channels: BucketRef;
  /** Public URL of the releases bucket root (redirect targets). */
  releasesUrl: string;
  git: GitTarget;
  commitDate: Date;
  stagingDir: string;
  log: Logger;
  now?: Date;
  downloadConcurrency?: number;
  /** Downloader (default: nix store cat from the binary cache). */
  download?: (req: DownloadRequest) => Promise<'downloaded' | 'staged'>;
  /** programs.sqlite and debuginfo (kinds with `programs`): the environment's cacheBucket, where debuginfo/ entries go. */
  cache?: BucketRef;
  /** The channel's listing memo (STATE/listings/CHANNEL.sqlite). */
  memoFile?: string;
  /** Where NAR listings and narinfos are read (default: binaryCacheUrl over HTTP). */
  listingSource?: ListingSource;
  /** How the channel's packages are evaluated (default: nix-env). */
  evaluate?: Evaluate;
}

export interface ChannelPlan extends Plan {
  /** Whether the release prefix was already complete (its page exists). */
  prefixComplete: boolean;
  /** Products fetched from the binary cache in this run. */
  downloaded: string[];
  pageKey: string;
  channelKey: string;
  channelTarget: string;
  /** Aliases left pointing at an earlier release because this release lacks their file (logged and in --json). */
  staleAliases: StaleAlias[];
  /** programs.sqlite and the debug-info index, when the kind has `programs` and the prefix was not complete. */
  programs?: ProgramsSummary;
}

/** What --json says of programs.sqlite and debuginfo. */
export interface ProgramsSummary {
  repacked: ProgramsStepResult['repacked'];
  reused: boolean;
  rows?: number;
  packages?: number;
  paths?: number;
  fetched?: number;
  remembered?: number;
  missing?: number;
  debuginfo?: { planned: number; present: number; kept: Array<{ key: string; existing: string; wanted: string }> };
}

/** An alias of an optional product this release does not have: kept (it still works), never silently. */
export interface StaleAlias {
  /** Key in the channels bucket, e.g. nixos-24.11/latest-nixos-gnome-aarch64-linux.iso. */
  alias: string;
  /** Where it still points (a file of an earlier release). */
  target: string;
  /** Why this release has no such file. */
  reason: string;
}

/** An optional product left out of this release, with the aliases it would have had. */
interface SkippedProduct { job: string; what: string; reason: string; aliases: string[] }

interface ChosenProduct { job: string; product: FileProduct; file: string; redirects: ChannelRelease['kind']['products'][number]['redirects'] }

/** The alias names a product's redirects create (NAME, and NAME.sha256 when asked). */
function aliasNames(redirects: ChosenProduct['redirects'], vars: Record<string, string>, job: string): string[] {
  return redirects.flatMap((r) => {
    const name = fillTemplate(r.name, vars, `redirects of job ${job}`);
    return r.sha256 ? [name, `${name}.sha256`] : [name];
  });
}

/** The products configured for this channel: those without channelMatches, or whose channelMatches matches the whole name. */
export function productsFor(kind: ChannelRelease['kind'], channel: string): ChannelRelease['kind']['products'] {
  return kind.products.filter((p) => p.channelMatches === undefined || new RegExp(`^(?:${p.channelMatches})$`).test(channel));
}

/**
 * Looks up every configured product in the evaluation (Hydra reads only; no download). Every
 * required product must exist and have finished successfully, or the run stops here, before any
 * write; an optional one that is missing or failed is skipped with its reason.
 */
async function chooseProducts(release: ChannelRelease, skipped: Skip[], skippedProducts: SkippedProduct[]): Promise<ChosenProduct[]> {
  const out: ChosenProduct[] = [];
  const skip = (job: string, reason: string, spec: ChannelRelease['kind']['products'][number]) => {
    skipped.push({ what: `optional product of job ${job}`, reason });
    skippedProducts.push({ job, what: `optional product of job ${job} skipped`, reason, aliases: aliasNames(spec.redirects, release.vars, job) });
  };
  for (const spec of productsFor(release.kind, release.channel)) {
    const field = `channels.kinds[].products[${release.kind.products.indexOf(spec)}]`;
    const job = fillTemplate(spec.job, release.vars, `${field}.job`);
    const jobUrl = `${release.evalUrl}/job/${job}`;
    let build;
    try {
      build = await release.hydra.jobInEval(release.evalId, job);
    } catch (e) {
      if (e instanceof HydraHttpError && e.status === 404) {
        if (spec.optional) { skip(job, `no such job in evaluation ${release.evalId}`, spec); continue; }
        throw new ReleaseError(`evaluation ${release.evalUrl} has no job ${job}, which ${field} requires`, 'is this the right evaluation? mark the product optional, or limit it with channelMatches in releng.json; nothing was published', { cause: e });
      }
      throw e;
    }
    if (!build.finished || build.buildstatus !== 0) {
      const state = build.finished ? `failed, buildstatus ${build.buildstatus}` : 'not finished';
      if (spec.optional) { skip(job, `its build ${release.hydra.base}/build/${build.id} did not succeed (${state})`, spec); continue; }
      throw new ReleaseError(`job ${job} of evaluation ${release.evalUrl} has not succeeded (build ${release.hydra.base}/build/${build.id}: ${state})`, 'wait for it, or mark the product optional in releng.json; nothing was published');
    }
    const product = selectProduct(build, spec, jobUrl);
    if (!product) {
      if (spec.optional) { skip(job, 'no product matches type/subtype/fileMatches', spec); continue; }
      throw new ReleaseError(`job ${job} (${jobUrl}) has no product${spec.type !== undefined ? ` of type "${spec.type}"` : ''}${spec.subtype !== undefined ? ` of subtype "${spec.subtype}"` : ''}${spec.fileMatches ? ` matching /${spec.fileMatches}/` : ''}`,
        'fix type/subtype/fileMatches in channels.kinds[].products, or mark it optional; nothing was published');
    }
    const defaultName = product.path.split('/').at(-1)!;
    const file = requireSegment(spec.file ? fillTemplate(spec.file, release.vars, `${field}.file`) : defaultName, `destination file of job ${job}`);
    out.push({ job, product, file, redirects: spec.redirects });
  }
  const seen = new Map<string, string>();
  for (const c of out) {
    const other = seen.get(c.file);
    if (other) throw new ReleaseError(`jobs ${other} and ${c.job} both publish ${c.file}`, 'give one of them another "file" in releng.json');
    seen.set(c.file, c.job);
  }
  return out;
}

/** store-paths.xz: the evaluation's store paths, de-duplicated (first occurrence kept), xz-compressed. */
async function stageStorePaths(release: ChannelRelease, stagingDir: string): Promise<{ file: string; paths: string[] }> {
  const paths = [...new Set(await release.hydra.storePaths(release.evalId))];
  const plain = path.join(stagingDir, 'store-paths');
  await writeFile(plain, paths.length ? paths.join('\n') + '\n' : '');
  await run('xz', ['--force', '--keep', '-T1', plain]);
  return { file: `${plain}.xz`, paths };
}

export async function planChannel(input: ChannelPlanInput): Promise<ChannelPlan> {
  const { release, reader, releases, channels, log } = input;
  const skipped: Skip[] = [];
  const skippedProducts: SkippedProduct[] = [];
  const steps: Step[] = [];
  const pageKey = `${releases.prefix}${release.releasePrefix}`;
  const filesPrefix = `${pageKey}/`;
  const vars = { ...release.vars, lastModified: String(Math.floor(input.commitDate.getTime() / 1000)) };
  const chosen = await chooseProducts({ ...release, vars }, skipped, skippedProducts);
  const downloaded: string[] = [];
  let programs: ProgramsSummary | undefined;

  const page = await reader.head(releases.bucket, pageKey);
  const prefixComplete = !!page;
  if (prefixComplete) {
    skipped.push({ what: `release files and page of s3://${releases.bucket}/${pageKey}`, reason: 'the release page exists, so the prefix is complete' });
    if (release.kind.programs) skipped.push({ what: 'programs.sqlite and debuginfo entries', reason: 'made when the release files were (the prefix is complete)' });
  } else {
    await mkdir(input.stagingDir, { recursive: true });
    const text = (name: string, body: string): ReleaseFile => ({ name, size: Buffer.byteLength(body), sha256: sha256Text(body), source: { text: body } });
    const { file: storePaths, paths: storePathList } = await stageStorePaths(release, input.stagingDir);
    const { size: spSize } = await stat(storePaths);
    const files: ReleaseFile[] = [
      text('src-url', release.evalUrl),
      text('git-revision', release.rev),
      text('binary-cache-url', release.kind.binaryCacheUrl),
      { name: 'store-paths.xz', size: spSize, sha256: await sha256File(storePaths), source: { file: storePaths } },
    ];
    const productFiles = chosen.map((c): ReleaseFile => ({ name: c.file, size: c.product.filesize, sha256: c.product.sha256hash, source: { product: c.product, job: c.job } }));
    // programs.sqlite (issue 27): the tarballs become Hydra's with programs.sqlite added (new size and
    // sha256); the debuginfo entries are written first, before any release file.
    const cfg = release.kind.programs;
    if (cfg) {
      if (!input.cache || !input.memoFile) throw new ReleaseError('programs.sqlite needs the environment\'s cacheBucket and a memo file', 'this is a bug in the caller of planChannel');
      const r = await preparePrograms({
        cfg, files: productFiles, storePaths: storePathList, stagingDir: input.stagingDir, memoFile: input.memoFile,
        source: input.listingSource ?? httpListingSource(release.kind.binaryCacheUrl, { onRetry: (m) => log.warn(`binary cache: ${m}`) }),
        download: input.download ?? downloadProduct, binaryCacheUrl: release.kind.binaryCacheUrl, commitDate: input.commitDate,
        reader, cache: input.cache, log, skipped, evaluate: input.evaluate,
      });
      downloaded.push(...r.downloaded);
      const d = r.debuginfo;
      programs = {
        repacked: r.repacked, reused: r.reused, rows: r.stats?.rows, packages: r.stats?.packages, paths: r.stats?.paths, fetched: r.stats?.fetched,
        remembered: r.stats?.remembered, missing: r.stats?.missing, debuginfo: d && { planned: d.puts.length, present: d.present, kept: d.kept },
      };
      if (d) steps.push({ title: `debuginfo entries in s3://${input.cache.bucket}/${input.cache.prefix}debuginfo/ (before the release files)`, actions: d.puts });
    }
    for (const f of productFiles) {
      files.push(f);
      files.push(text(`${f.name}.sha256`, `${f.sha256}  ${f.name}`));
    }
    // What is already there (same size and our sha256 metadata) is neither downloaded nor uploaded again.
    const remote = new Map((await reader.list(releases.bucket, filesPrefix)).map((o) => [o.key, o]));
    const headLimit = pLimit(16);
    const needed = (await Promise.all(files.map((f) => headLimit(async () => {
      const r = remote.get(filesPrefix + f.name);
      if (r && r.size === f.size && (await reader.head(releases.bucket, filesPrefix + f.name))?.sha256 === f.sha256) return undefined;
      return { file: f, reason: (r ? 'changed' : 'new') as S3Put['reason'] };
    })))).filter((x) => x !== undefined);
    const present = files.length - needed.length;
    if (present) skipped.push({ what: `${present} file${present === 1 ? '' : 's'} in s3://${releases.bucket}/${filesPrefix}`, reason: 'already there with the same sha256 (not downloaded again)' });

    const toFetch = needed.filter((n) => 'product' in n.file.source);
    if (toFetch.length) {
      const total = toFetch.reduce((s, n) => s + n.file.size, 0);
      const progress = log.progress(`downloading ${toFetch.length} product${toFetch.length === 1 ? '' : 's'} from ${release.kind.binaryCacheUrl}`, total, 'bytes', toFetch.length);
      const limit = pLimit(input.downloadConcurrency ?? 4);
      const download = input.download ?? downloadProduct;
      try {
        // allSettled: on a failure, wait for the other downloads to stop before reporting it.
        const results = await Promise.allSettled(toFetch.map((n) => limit(async () => {
          const src = n.file.source as { product: FileProduct; job: string };
          const dest = path.join(input.stagingDir, n.file.name);
          const how = await download({ store: release.kind.binaryCacheUrl, storePath: src.product.path, dest, sha256: src.product.sha256hash, size: src.product.filesize, onBytes: (b) => progress.tick(b) });
          if (how === 'downloaded') downloaded.push(n.file.name);
          n.file.source = { file: dest };
          progress.item();
        })));
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      } finally {
        progress.stop();
      }
    }
    const puts: S3Put[] = needed.map(({ file: f, reason }) => ({
      kind: 's3.put', bucket: releases.bucket, key: filesPrefix + f.name, source: f.source as S3Put['source'],
      size: f.size, sha256: f.sha256, ...channelContentHeaders(f.name), reason,
    }));
    puts.sort((a, b) => a.key.localeCompare(b.key));
    steps.push({ title: `release files to s3://${releases.bucket}/${filesPrefix}`, actions: puts });

    const html = renderReleasePage({
      channel: release.channel, releaseName: release.releaseName, date: input.now ?? new Date(), rev: release.rev,
      commitUrl: fillTemplate(release.kind.commitUrl, vars, 'channels.kinds[].commitUrl'), commitDate: input.commitDate,
      evalId: release.evalId, evalUrl: release.evalUrl,
      files: files.filter((f) => !f.name.endsWith('.sha256')).map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 })),
    });
    steps.push({ title: 'release page (marks the prefix complete)', actions: [{
      kind: 's3.put', bucket: releases.bucket, key: pageKey, source: { text: html }, size: Buffer.byteLength(html),
      sha256: sha256Text(html), contentType: 'text/html', reason: 'new',
    }] });
  }

  // git: move the channel branch (skipped when it is already there).
  const { git } = input;
  if (git.remoteHead === release.rev) {
    skipped.push({ what: `git push ${git.remote} refs/heads/${git.branch}`, reason: `already at ${release.rev}` });
  } else {
    // --force moves the branch even when not a fast-forward, but only from the commit ls-remote saw.
    const push: GitPush = {
      kind: 'git.push', cwd: git.cwd, remote: git.remote, refspecs: [`${release.rev}:refs/heads/${git.branch}`], atomic: false, gerrit: false,
      ...(git.force ? { forceWithLease: [`refs/heads/${git.branch}:${git.remoteHead ?? ''}`] } : {}),
    };
    steps.push({ title: `channel branch ${git.branch}`, actions: [push], concurrency: 1 });
  }

  // Aliases under the channel, then the channel object last.
  const channelDir = `${channels.prefix}${release.channel}`;
  const aliases: Array<{ name: string; target: string; file: string }> = [];
  for (const [i, r] of release.kind.redirects.entries()) {
    const file = requireSegment(fillTemplate(r.file, vars, `channels.kinds[].redirects[${i}].file`), 'redirect file');
    const query = r.query ? fillTemplate(r.query, vars, `channels.kinds[].redirects[${i}].query`) : '';
    aliases.push({ name: fillTemplate(r.name, vars, `channels.kinds[].redirects[${i}].name`), target: redirectTarget(input.releasesUrl, release.releasePrefix, file, query), file });
  }
  for (const c of chosen) {
    for (const r of c.redirects) {
      const name = fillTemplate(r.name, vars, `redirects of job ${c.job}`);
      aliases.push({ name, target: redirectTarget(input.releasesUrl, release.releasePrefix, c.file, r.query ? fillTemplate(r.query, vars, `query of the redirect ${name} (job ${c.job})`) : ''), file: c.file });
      if (r.sha256) aliases.push({ name: `${name}.sha256`, target: redirectTarget(input.releasesUrl, release.releasePrefix, `${c.file}.sha256`), file: `${c.file}.sha256` });
    }
  }
  // A prefix completed by an earlier run holds what that run chose: an optional product that was
  // unfinished then is not there, so no alias may point at it now (never a redirect to nothing).
  if (prefixComplete) {
    const present = new Set((await reader.list(releases.bucket, filesPrefix)).map((o) => o.key.slice(filesPrefix.length)));
    for (const c of chosen) {
      if (present.has(c.file)) continue;
      const names = new Set(aliasNames(c.redirects, vars, c.job));
      skippedProducts.push({ job: c.job, what: `the file of job ${c.job} is missing`, reason: `${c.file} is not in the completed release prefix s3://${releases.bucket}/${filesPrefix}`, aliases: [...names] });
      for (let i = aliases.length - 1; i >= 0; i--) if (names.has(aliases[i]!.name)) aliases.splice(i, 1);
    }
    for (let i = aliases.length - 1; i >= 0; i--) {
      if (present.has(aliases[i]!.file)) continue;
      skipped.push({ what: `channel alias ${release.channel}/${aliases[i]!.name}`, reason: `${aliases[i]!.file} is not in the completed release prefix s3://${releases.bucket}/${filesPrefix}` });
      aliases.splice(i, 1);
    }
  }
  // Aliases of optional products this release lacks: an existing one keeps pointing at the earlier
  // release's file (a working download, rather than a 404), with a warning in the log and in --json;
  // none is created (never a redirect to nothing). docs/channel.md, "Optional products".
  const staleAliases: StaleAlias[] = [];
  for (const sp of skippedProducts) {
    for (const name of sp.aliases) {
      const key = `${channelDir}/${name}`;
      const h = await reader.head(channels.bucket, key);
      if (h?.redirect) {
        staleAliases.push({ alias: key, target: h.redirect, reason: `${sp.what}: ${sp.reason}` });
        log.warn(`channel alias s3://${channels.bucket}/${key} keeps pointing at ${h.redirect} (an earlier release): this release has no such file (${sp.what}: ${sp.reason})`);
      } else {
        skipped.push({ what: `channel alias ${release.channel}/${name}`, reason: `${sp.what} (${sp.reason}); no alias is created for it` });
      }
    }
  }
  const seen = new Set<string>();
  for (const a of aliases) {
    requireSegment(a.name, 'channel alias');
    if (seen.has(a.name)) throw new ReleaseError(`channel alias ${release.channel}/${a.name} is configured twice`, 'remove the duplicate from releng.json');
    seen.add(a.name);
  }
  const headLimit = pLimit(16);
  const redirectAction = (key: string, location: string): S3Redirect => ({ kind: 's3.redirect', bucket: channels.bucket, key, location, cacheControl: REDIRECT_CACHE_CONTROL });
  const current = await Promise.all(aliases.map((a) => headLimit(() => reader.head(channels.bucket, `${channelDir}/${a.name}`))));
  const redirects: S3Redirect[] = [];
  aliases.forEach((a, i) => {
    const h = current[i];
    if (h?.redirect === a.target && h.cacheControl === REDIRECT_CACHE_CONTROL) return;
    redirects.push(redirectAction(`${channelDir}/${a.name}`, a.target));
  });
  if (redirects.length < aliases.length) skipped.push({ what: `${aliases.length - redirects.length} channel aliases`, reason: 'already redirect to this release' });
  steps.push({ title: `channel aliases in s3://${channels.bucket}/${channelDir}/`, actions: redirects.sort((a, b) => a.key.localeCompare(b.key)) });
  const channelTarget = redirectTarget(input.releasesUrl, release.releasePrefix, undefined);
  const head = await reader.head(channels.bucket, channelDir);
  if (head?.redirect === channelTarget && head.cacheControl === REDIRECT_CACHE_CONTROL) {
    skipped.push({ what: `channel object s3://${channels.bucket}/${channelDir}`, reason: 'already points at this release' });
  } else {
    steps.push({ title: `channel ${release.channel} (last)`, actions: [redirectAction(channelDir, channelTarget)] });
  }
  return { steps, skipped, prefixComplete, downloaded, pageKey, channelKey: channelDir, channelTarget, staleAliases, programs };
}
