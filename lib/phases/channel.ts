// channel: publish a Hydra evaluation as a channel release and move the channel, never backwards.
// lock → resolve the release (Hydra) → rollback guard (also in --dry-run) → plan (reads, downloads
// into staging) → apply: files → page → git push → aliases → channel object. See docs/channel.md.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { countByKind, planSize } from '../actions/index.ts';
import { apply } from '../actions/index.ts';
import type { Writers } from '../actions/index.ts';
import { fillTemplate } from '../channel/names.ts';
import { checkChannelGuard, type GuardDecision } from '../channel/guard.ts';
import { checkBranchMove, fetchRevision, remoteBranchHead, resolveRemote } from '../channel/git.ts';
import { lockChannel } from '../channel/lock.ts';
import { planChannel, type ProgramsSummary, type StaleAlias } from '../channel/plan.ts';
import { memoFileOf } from '../channel/listing-memo.ts';
import { resolveRelease, type ReleaseSource } from '../channel/release.ts';
import { assertChannelRelease, programsCheckOf, releasesUrlOf as releasesUrlOfEnv, type ChannelVerifyResult } from '../channel/verify.ts';
import type { Context } from '../config/context.ts';
import { openEnvironment, type OpenEnvironment } from '../environment/open.ts';
import { EXIT_ALREADY_PUBLISHED, NothingToDo, ReleaseError, UsageError } from '../core/errors.ts';
import { gitWriter } from '../git/push.ts';
import type { FetchLike, HydraRetry } from '../hydra/client.ts';
import type { ListingSource } from '../channel/listings.ts';
import type { Evaluate } from '../channel/programs.ts';

/** Seams for tests: a fetch for Hydra, and a wrapper around the real writers (to inject crashes). */
export interface ChannelDeps {
  fetchImpl?: FetchLike;
  /** Retry settings of Hydra reads (tests shorten the delays). */
  hydraRetry?: Partial<HydraRetry>;
  wrapWriters?: (writers: Writers) => Writers;
  now?: Date;
  /** Where NAR listings are read for programs.sqlite (default: the kind's binaryCacheUrl over HTTP). */
  listingSource?: ListingSource;
  /** How the channel's packages are evaluated (default: nix-env). */
  evaluate?: Evaluate;
}

export interface ChannelSummary {
  channel: string;
  release: string;
  previous?: string;
  verdict: GuardDecision['verdict'];
  dryRun: boolean;
  releasePrefix?: string;
  channelUrl?: string;
  planned: Record<string, number>;
  applied: Record<string, number>;
  downloaded: string[];
  /** Aliases of skipped optional products that still point at an earlier release (docs/channel.md). */
  staleAliases: StaleAlias[];
  /** Where the downloads were staged, and whether they were kept (--keep-staged, --dry-run). */
  staging?: { dir: string; kept: boolean };
  /** programs.sqlite and debuginfo (kinds with `programs`; docs/channel.md). */
  programs?: ProgramsSummary;
}

/** Where a channel's files are staged between download and upload (kept for resuming after a crash). */
export function stagingDirOf(stateDir: string, channel: string, releaseName: string): string {
  return path.join(stateDir, 'channel', channel, releaseName);
}

/**
 * Bounds the staging of a channel to one release: a failed run's staging is reused when the next
 * run publishes the same release, and removed when it publishes another one (gigabytes of ISOs
 * must not pile up). Returns the directories removed.
 */
export async function pruneStaging(stateDir: string, channel: string, keepRelease: string): Promise<string[]> {
  const dir = path.join(stateDir, 'channel', channel);
  const entries = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const e of entries) {
    if (e === keepRelease) continue;
    await rm(path.join(dir, e), { recursive: true, force: true });
    removed.push(path.join(dir, e));
  }
  return removed;
}

/** Public URL of the releases bucket: redirect targets start with it. */
const releasesUrlOf = (target: OpenEnvironment): string => releasesUrlOfEnv(target.env, target.releases);

/** `releng channel CHANNEL --verify`: reads the published release back (lib/channel/verify.ts); writes nothing. */
async function verifyOnly(ctx: Context, name: string): Promise<ChannelVerifyResult> {
  const target = await openEnvironment(ctx);
  try {
    if (!target.channels) throw new ReleaseError(`environment "${target.name}" has no channelsBucket`, `set environments.${target.name}.channelsBucket in ${ctx.loaded.file}`);
    const phase = ctx.log.phase(`verifying channel ${name}`);
    const r = await assertChannelRelease({ reader: target.s3, releases: target.releases, channels: target.channels, channel: name, releasesUrl: releasesUrlOf(target),
      programs: programsCheckOf(ctx.config.channels, name, target.cache) });
    const extra = r.checked.programsDatabases !== undefined ? `, ${r.checked.programsDatabases} programs.sqlite opened${r.checked.debuginfo !== undefined ? `, ${r.checked.debuginfo} debuginfo entries checked` : ''}` : '';
    phase.succeed(`channel ${name}: ${r.checked.files} files hashed, ${r.checked.sha256Files} .sha256 files and ${r.checked.redirects} redirects checked${extra} (s3://${target.releases.bucket}/${r.pageKey})`);
    return r;
  } finally {
    await target.close();
  }
}

function sourceFrom(ctx: Context): ReleaseSource {
  const build = ctx.flags.extra.build;
  const hydraJson = ctx.flags.extra['hydra-json'];
  if (typeof build === 'string' && typeof hydraJson === 'string') throw new UsageError('give either --build URL or --hydra-json FILE, not both');
  if (typeof build === 'string') return { buildUrl: build };
  if (typeof hydraJson === 'string') return { hydraJsonFile: hydraJson };
  throw new UsageError('which release? pass --build URL (a Hydra build) or --hydra-json FILE (e.g. "$HYDRA_JSON" in a Hydra runcommand)');
}

export async function channel(ctx: Context, positionals: string[], deps: ChannelDeps = {}): Promise<ChannelSummary> {
  const { log, flags } = ctx;
  if (positionals.length !== 1) throw new UsageError('usage: releng channel CHANNEL (--build URL | --hydra-json FILE)');
  const name = positionals[0]!;
  // The name becomes an S3 key, a git branch and a lock file name: keep it plain.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || name.includes('..')) throw new UsageError(`channel name ${JSON.stringify(name)}: expected letters, digits, ".", "_" and "-" (e.g. nixos-24.11)`);
  if (ctx.flags.extra.verify === true) return verifyOnly(ctx, name) as unknown as ChannelSummary;
  const source = sourceFrom(ctx);
  const force = ctx.flags.extra.force === true;
  const keepStaged = ctx.flags.extra['keep-staged'] === true;
  const channels = ctx.config.channels;
  if (!channels) throw new ReleaseError(`${ctx.loaded.file} has no "channels" section`, 'see docs/channel.md for the channel configuration (examples/nixos/releng.json)');

  const stateDir = path.resolve(ctx.root, channels.stateDir);
  const lock = await lockChannel(path.join(stateDir, 'locks'), name);
  try {
    let phase = log.phase(`reading the release from Hydra`);
    const hydraRetry = { ...deps.hydraRetry, onRetry: (m: string) => log.warn(`Hydra: ${m}`) };
    const release = await resolveRelease({ channel: name, channels, configFile: ctx.loaded.file, source, fetchImpl: deps.fetchImpl, retry: hydraRetry });
    phase.succeed(`release ${release.releaseName} (build ${release.build.id}, evaluation ${release.evalId}, commit ${release.rev.slice(0, 12)}) → ${release.releasePrefix}`);

    phase = log.phase('connecting to environment');
    const target = await openEnvironment(ctx);
    phase.succeed(`environment ${log.colour(target.env.colour, target.name)}: S3 ${target.endpoint}`);
    try {
      if (!target.channels) throw new ReleaseError(`environment "${target.name}" has no channelsBucket`, `set environments.${target.name}.channelsBucket in ${ctx.loaded.file}`);
      const releasesUrl = releasesUrlOf(target);
      const channelKey = `${target.channels.prefix}${name}`;
      const decision = await checkChannelGuard({ reader: target.s3, bucket: target.channels.bucket, key: channelKey, channel: name, next: release.releaseName, force, log });
      const base = { channel: name, release: release.releaseName, previous: 'current' in decision ? decision.current : undefined, verdict: decision.verdict, dryRun: flags.dryRun };
      if (decision.verdict === 'same') {
        throw new NothingToDo(decision.reason, `exit status ${EXIT_ALREADY_PUBLISHED}: nothing to do (--force re-publishes)`, EXIT_ALREADY_PUBLISHED,
          { ...base, planned: {}, applied: {}, downloaded: [], staleAliases: [] });
      }
      log.info(`guard: ${decision.reason}`);

      phase = log.phase('reading the git revision');
      const gitCfg = release.kind.git;
      const mirror = path.join(stateDir, 'channel-git');
      const fetchFrom = gitCfg.fetchFrom ? resolveRemote(gitCfg.fetchFrom, ctx.root) : release.gitUri;
      if (!fetchFrom) throw new ReleaseError(`evaluation ${release.evalUrl} does not say where input "${release.kind.gitInput}" comes from`, 'set channels.kinds[].git.fetchFrom');
      const commitDate = await fetchRevision(mirror, fetchFrom, release.rev, name);
      const remote = resolveRemote(gitCfg.remote, ctx.root);
      const branch = fillTemplate(gitCfg.branch, release.vars, 'channels.kinds[].git.branch');
      const remoteHead = await remoteBranchHead(mirror, remote, branch);
      // Before anything is uploaded: the branch must be able to move (fast-forward, or --force).
      const move = await checkBranchMove({ mirror, remote, branch, remoteHead, rev: release.rev, force });
      phase.succeed(`commit ${release.rev.slice(0, 12)} of ${commitDate.toISOString()}; ${branch} on ${remote} is at ${remoteHead?.slice(0, 12) ?? '(no branch yet)'} (${move})`);
      if (move === 'forced') log.warn(`--force: branch ${branch} moves from ${remoteHead} to ${release.rev}, which is not a fast-forward`);

      const staging = stagingDirOf(stateDir, name, release.releaseName);
      for (const d of await pruneStaging(stateDir, name, release.releaseName)) log.info(`removed the staging of another release of ${name}: ${d}`);
      phase = log.phase('planning the channel release');
      const plan = await planChannel({
        release, reader: target.s3, releases: target.releases, channels: target.channels, releasesUrl,
        git: { cwd: mirror, remote, branch, remoteHead, force: move === 'forced' },
        commitDate, stagingDir: staging, log, now: deps.now, downloadConcurrency: channels.downloadConcurrency,
        cache: target.cache, memoFile: memoFileOf(stateDir, name), listingSource: deps.listingSource, evaluate: deps.evaluate,
      });
      phase.succeed(`planned ${planSize(plan)} writes${plan.prefixComplete ? ' (release prefix already complete)' : ''}`);

      const writers: Writers = { s3: target.s3, git: gitWriter };
      const applied = await apply(plan, {
        log, dryRun: flags.dryRun, writers: deps.wrapWriters ? deps.wrapWriters(writers) : writers,
        resumeHint: `fix the cause and re-run \`releng channel ${name}\` with the same release: it skips what is already published and finishes the job`,
      });
      if (!flags.dryRun) {
        const head = await target.s3.head(target.channels.bucket, channelKey);
        if (head?.redirect !== plan.channelTarget) {
          throw new ReleaseError(`after publishing, s3://${target.channels.bucket}/${channelKey} redirects to ${head?.redirect ?? 'nothing'}, not ${plan.channelTarget}`, 'another run may have moved it; re-run to check');
        }
        if (keepStaged) log.info(`--keep-staged: the downloads stay in ${staging}`);
        else await rm(staging, { recursive: true, force: true });
        log.info(`channel ${name} now points at ${plan.channelTarget}`);
      } else {
        log.info(`[dry-run] the downloads stay staged in ${staging} for the real run`);
      }
      return {
        ...base, releasePrefix: `s3://${target.releases.bucket}/${plan.pageKey}`, channelUrl: plan.channelTarget,
        planned: countByKind(plan), applied: applied.byKind, downloaded: plan.downloaded, staleAliases: plan.staleAliases,
        staging: { dir: staging, kept: flags.dryRun || keepStaged }, programs: plan.programs,
      };
    } finally {
      await target.close();
    }
  } finally {
    await lock.release();
  }
}
