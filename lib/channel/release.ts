// Which release a run publishes: the Hydra build (from --build URL or the RunCommand HYDRA_JSON
// file), its evaluation, git revision, release name/version and release prefix. Reads only.
import { readFile } from 'node:fs/promises';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { hydraBaseOf, hydraClient, type FetchLike, type HydraReader, type HydraRetry } from '../hydra/client.ts';
import { runCommandSchema, type HydraBuild, type HydraEval } from '../hydra/schemas.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';
import type { ChannelKind, ChannelsConfig } from '../config/channels.ts';
import { fillTemplate, requireRelativePath, requireSegment } from './names.ts';

export type ReleaseSource = { buildUrl: string } | { hydraJsonFile: string };

export interface ChannelRelease {
  channel: string;
  kind: ChannelKind;
  /** Template variables: channel, the kind's named groups, release, version, rev. */
  vars: Record<string, string>;
  hydra: HydraReader;
  build: HydraBuild;
  evalId: number;
  evaluation: HydraEval;
  evalUrl: string;
  /** `nixname` of the build, e.g. nixos-24.11.1234.abcdef. */
  releaseName: string;
  /** The part after the first `-` followed by a digit (NixOS mirror's rule), e.g. 24.11.1234.abcdef. */
  version: string;
  rev: string;
  /** Where the revision can be fetched from (the evaluation input's URI), if Hydra says. */
  gitUri?: string;
  /** Channel directory + release name, e.g. nixos/24.11/nixos-24.11.1234.abcdef. */
  releasePrefix: string;
}

/** The first kind whose `match` matches the whole channel name, with its named groups. */
export function kindFor(channels: ChannelsConfig, channel: string, configFile: string): { kind: ChannelKind; groups: Record<string, string> } {
  for (const kind of channels.kinds) {
    const m = new RegExp(`^(?:${kind.match})$`).exec(channel);
    if (m) return { kind, groups: Object.fromEntries(Object.entries(m.groups ?? {}).map(([k, v]) => [k, v ?? ''])) };
  }
  throw new ReleaseError(`${configFile}: no channel kind matches "${channel}"`,
    `channels.kinds[].match are: ${channels.kinds.map((k) => k.match).join(', ')}`);
}

/** The commit of the evaluation: the git input's revision, else the rev in a locked flake reference. */
export function revisionOf(evaluation: HydraEval, input: string, evalUrl: string): { rev: string; uri?: string } {
  const inp = evaluation.jobsetevalinputs[input];
  let rev = inp?.revision ?? undefined;
  if (!rev && evaluation.flake) rev = /[?&]rev=([0-9a-f]{40,64})/.exec(evaluation.flake)?.[1] ?? /^[a-z]+:[^/]+\/[^/]+\/([0-9a-f]{40,64})$/.exec(evaluation.flake)?.[1];
  if (!rev) {
    throw new ReleaseError(`evaluation ${evalUrl} has no revision for input "${input}" (inputs: ${Object.keys(evaluation.jobsetevalinputs).join(', ') || 'none'}; flake: ${evaluation.flake ?? 'none'})`,
      'set channels.kinds[].gitInput to the jobset input holding the repository');
  }
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(rev)) throw new ReleaseError(`evaluation ${evalUrl}: revision ${JSON.stringify(rev)} of input "${input}" is not a git commit id`, 'nothing was published');
  const uri = inp?.uri ?? undefined;
  return { rev, uri: uri || undefined };
}

/** Reads the build (and its evaluation) a run publishes. */
export async function resolveRelease(opts: {
  channel: string; channels: ChannelsConfig; configFile: string; source: ReleaseSource; fetchImpl?: FetchLike; retry?: Partial<HydraRetry>;
}): Promise<ChannelRelease> {
  const { channel, channels } = opts;
  requireSegment(channel, 'channel name');
  const { kind, groups } = kindFor(channels, channel, opts.configFile);
  let hydra: HydraReader;
  let build: HydraBuild;
  if ('buildUrl' in opts.source) {
    const url = opts.source.buildUrl;
    if (!/^https?:\/\//.test(url)) throw new UsageError(`--build ${url}: expected an http(s):// Hydra build URL`);
    const first = hydraClient(channels.hydraUrl, opts.fetchImpl, opts.retry);
    const r = await first.buildAt(url);
    build = r.build;
    const base = hydraBaseOf(r.url) ?? hydraBaseOf(url) ?? channels.hydraUrl;
    hydra = hydraClient(base, opts.fetchImpl, opts.retry);
  } else {
    const file = opts.source.hydraJsonFile;
    let text: string;
    try { text = await readFile(file, 'utf8'); } catch (e: any) {
      throw new ReleaseError(`cannot read the Hydra RunCommand file ${file}: ${e.code ?? e.message}`, 'pass --hydra-json "$HYDRA_JSON" from a Hydra runcommand');
    }
    const event = parseWith(runCommandSchema, parseJsonText(text, file), file, 'expected the JSON file Hydra\'s RunCommand plugin names in $HYDRA_JSON');
    if (!event.finished || event.buildStatus !== 0) {
      throw new ReleaseError(`${file}: build ${event.build} (${event.job}) has not succeeded (finished: ${event.finished}, buildStatus: ${event.buildStatus})`, 'only successful builds are published; nothing was published');
    }
    hydra = hydraClient(channels.hydraUrl, opts.fetchImpl, opts.retry);
    build = await hydra.build(event.build);
    if (build.nixname !== event.nixName) {
      throw new ReleaseError(`${file} says build ${event.build} is ${event.nixName}, but ${hydra.base}/build/${event.build} says ${build.nixname}`, 'is channels.hydraUrl the Hydra that ran this command?');
    }
  }
  const buildUrl = `${hydra.base}/build/${build.id}`;
  if (!build.finished || build.buildstatus !== 0) {
    throw new ReleaseError(`build ${buildUrl} (${build.job}) has not succeeded (finished: ${build.finished}, buildstatus: ${build.buildstatus})`, 'publish a finished, successful build; nothing was published');
  }
  const releaseName = requireSegment(build.nixname, `release name (nixname of ${buildUrl})`);
  const version = /-([0-9].+)/.exec(releaseName)?.[1];
  if (!version) throw new ReleaseError(`release name ${releaseName} of ${buildUrl} has no version (no "-" followed by a digit)`, 'the channel job must be named like nixos-24.11.1234.abcdef');
  const evalId = build.jobsetevals[0]!;
  const evalUrl = `${hydra.base}/eval/${evalId}`;
  const evaluation = await hydra.evaluation(evalId);
  const { rev, uri } = revisionOf(evaluation, kind.gitInput, evalUrl);
  const vars: Record<string, string> = { ...groups, channel, release: releaseName, version, rev };
  const dir = requireRelativePath(fillTemplate(kind.prefix, vars, 'channels.kinds[].prefix'), 'release prefix');
  return { channel, kind, vars, hydra, build, evalId, evaluation, evalUrl, releaseName, version, rev, gitUri: uri, releasePrefix: `${dir}/${releaseName}` };
}
