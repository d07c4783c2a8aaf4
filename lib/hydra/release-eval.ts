// `build --from-hydra` (issue 15): which Hydra evaluation a release is built from, and its release
// jobs as releng's job list. Reads only (Hydra's JSON API through the retrying client); every refusal
// happens here, before anything is fetched or written.
//
// Hydra's shapes (NixOS/hydra): GET /eval/ID (JobsetEvals json_hint: jobsetevalinputs keyed by name,
// flake), GET /eval/ID/builds (JobsetEval.pm all_builds: each build as Builds.pm as_json, with job,
// finished, buildstatus, drvpath, buildoutputs), GET /jobset/P/J/latest-eval (Jobset.pm latest_eval:
// a redirect to the newest evaluation with no unfinished build), GET /build/ID (its jobsetevals).
import { readFile } from 'node:fs/promises';
import { EXIT_NOT_READY, NothingToDo, ReleaseError, UsageError } from '../core/errors.ts';
import type { Job } from '../nix/eval.ts';
import { classifyJobs, type ReleaseJobs, type ResolvedMapping } from '../nix/release-jobs.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';
import { hydraBaseOf, hydraBaseOfEval, hydraClient, type FetchLike, type HydraEvalReader, type HydraRetry } from './client.ts';
import { runCommandSchema, type HydraBuild, type HydraEval } from './schemas.ts';

/** Where the run takes its evaluation from: a URL (eval, latest-eval, jobset, build) or a RunCommand file. */
export type HydraSource = { url: string } | { hydraJsonFile: string };

/** What build-result.json records of the Hydra a release was built by. */
export interface HydraProvenance {
  url: string;
  evalId: number;
  evalUrl: string;
  /** Job name → Hydra build id, for every release job taken. */
  builds: Record<string, number>;
  cache: string;
  revision: string;
}

export interface HydraRelease {
  hydra: HydraEvalReader;
  evalId: number;
  evalUrl: string;
  revision: string;
  jobs: ReleaseJobs;
  builds: Record<string, number>;
}

/** Buildstatus names from Hydra's Builds schema (0 succeeded; the rest are failures of some kind). */
const statusNames: Record<number, string> = {
  1: 'failed', 2: 'dependency failed', 3: 'aborted', 4: 'cancelled', 6: 'failed with output', 7: 'timed out',
  9: 'aborted', 10: 'log limit exceeded', 11: 'output limit exceeded', 12: 'not deterministic',
};

/** The commit an evaluation built: the flake's locked rev, the named input's revision, or the only git input's. */
export function evalRevision(evaluation: HydraEval, evalUrl: string, input?: string): string {
  const inputs = evaluation.jobsetevalinputs;
  let rev: string | undefined;
  let from: string;
  if (input) {
    rev = inputs[input]?.revision ?? undefined;
    from = `input "${input}"`;
  } else if (evaluation.flake) {
    rev = /[?&]rev=([0-9a-f]{40})/.exec(evaluation.flake)?.[1] ?? /^[a-z]+:[^/]+\/[^/]+\/([0-9a-f]{40})$/.exec(evaluation.flake)?.[1];
    from = `flake ${evaluation.flake}`;
  } else {
    const git = Object.entries(inputs).filter(([, v]) => v.type === 'git');
    if (git.length !== 1) {
      throw new ReleaseError(`evaluation ${evalUrl} has ${git.length} git inputs (${git.map(([k]) => k).join(', ') || 'none'}); releng cannot tell which one is the release's`,
        'set hydra.input in releng.json to the jobset input holding the project\'s repository');
    }
    rev = git[0]![1].revision ?? undefined;
    from = `input "${git[0]![0]}"`;
  }
  if (!rev || !/^[0-9a-f]{40}$/.test(rev)) {
    throw new ReleaseError(`evaluation ${evalUrl}: no git commit for ${from} (inputs: ${Object.keys(inputs).join(', ') || 'none'}; flake: ${evaluation.flake ?? 'none'})`,
      'set hydra.input in releng.json to the jobset input holding the project\'s repository');
  }
  return rev;
}

/** A Hydra build as releng's evaluated job: Hydra's job name is the attribute path (hydraJobs.build.x86_64-linux → build.x86_64-linux). */
function jobOf(b: HydraBuild, base: string): Job | undefined {
  const outputs = Object.fromEntries(Object.entries(b.buildoutputs).map(([k, v]) => [k, v.path]));
  if (!Object.keys(outputs).length) return undefined;
  if (!b.drvpath || !/^\/nix\/store\/[0-9a-z]{32}-[^/]+\.drv$/.test(b.drvpath)) {
    throw new ReleaseError(`${base}/build/${b.id} (${b.job}) has no drvpath`, 'is this a Hydra of a supported version? nothing was written');
  }
  return { attr: b.job, drvPath: b.drvpath, system: b.system ?? 'unknown', name: b.nixname, outputs };
}

/** Reads the evaluation and its release jobs; refuses another revision, missing or failed jobs, and (exit 5) unfinished ones. */
export async function resolveHydraRelease(opts: {
  source: HydraSource; hydraUrl?: string; input?: string; expectedRevision: string; version: string;
  mapping: ResolvedMapping; systems: string[]; dockerSystems: string[]; profileName: string;
  fetchImpl?: FetchLike; retry?: Partial<HydraRetry>;
}): Promise<HydraRelease> {
  let hydra: HydraEvalReader;
  let candidates: number[];
  let evaluation: HydraEval | undefined;
  if ('url' in opts.source) {
    let url = opts.source.url.replace(/\/+$/, '');
    if (!/^https?:\/\//.test(url)) throw new UsageError(`--from-hydra ${url}: expected an http(s):// Hydra URL (…/eval/ID, …/jobset/PROJECT/JOBSET[/latest-eval] or …/build/ID)`);
    if (/\/jobset\/[^/]+\/[^/]+$/.test(url)) url += '/latest-eval';
    const base = hydraBaseOfEval(url) ?? hydraBaseOf(url);
    if (!base) throw new UsageError(`--from-hydra ${url}: expected …/eval/ID, …/jobset/PROJECT/JOBSET[/latest-eval] or …/build/ID`);
    hydra = hydraClient(base, opts.fetchImpl, opts.retry);
    if (hydraBaseOf(url)) {
      candidates = (await hydra.buildAt(url)).build.jobsetevals;
    } else {
      const r = await hydra.evaluationAt(url);
      evaluation = r.evaluation;
      candidates = [r.evaluation.id];
    }
  } else {
    const file = opts.source.hydraJsonFile;
    if (!opts.hydraUrl) throw new ReleaseError(`--hydra-json needs the Hydra's base URL: hydra.url is not set in releng.json`, 'set hydra.url (e.g. https://hydra.lix.systems); nothing was written');
    let text: string;
    try { text = await readFile(file, 'utf8'); } catch (e: any) {
      throw new ReleaseError(`cannot read the Hydra RunCommand file ${file}: ${e.code ?? e.message}`, 'pass --hydra-json "$HYDRA_JSON" from a Hydra runcommand');
    }
    const event = parseWith(runCommandSchema, parseJsonText(text, file), file, 'expected the JSON file Hydra\'s RunCommand plugin names in $HYDRA_JSON');
    hydra = hydraClient(opts.hydraUrl, opts.fetchImpl, opts.retry);
    const b = await hydra.build(event.build);
    if (b.job !== event.job) throw new ReleaseError(`${file} says build ${event.build} is job ${event.job}, but ${hydra.base}/build/${event.build} is ${b.job}`, 'is hydra.url the Hydra that ran this command?');
    candidates = b.jobsetevals;
  }

  // A build may belong to several evaluations (Hydra reuses it); the release's is the one of the tag's commit.
  const seen: string[] = [];
  let chosen: { id: number; ev: HydraEval; rev: string } | undefined;
  for (const id of [...candidates].sort((a, b) => b - a).slice(0, 10)) {
    const ev = evaluation?.id === id ? evaluation : await hydra.evaluation(id);
    const rev = evalRevision(ev, `${hydra.base}/eval/${id}`, opts.input);
    seen.push(`${hydra.base}/eval/${id} built ${rev}`);
    if (rev === opts.expectedRevision) { chosen = { id, ev, rev }; break; }
  }
  if (!chosen) {
    throw new ReleaseError(`no evaluation of commit ${opts.expectedRevision} (tag ${opts.version}): ${seen.join('; ')}`,
      'pass the evaluation of the tagged commit (wait for Hydra to evaluate it), or check out the tag the evaluation built; nothing was written');
  }
  const evalUrl = `${hydra.base}/eval/${chosen.id}`;
  const all = await hydra.evalBuilds(chosen.id);
  const jobs = all.map((b) => jobOf(b, hydra.base)).filter((j): j is Job => !!j);
  let classified: ReleaseJobs;
  try {
    classified = classifyJobs(jobs, opts.mapping, opts.systems, opts.dockerSystems, opts.profileName);
  } catch (e) {
    if (!(e instanceof ReleaseError)) throw e;
    throw new ReleaseError(`evaluation ${evalUrl}: ${e.message}`,
      'the jobset must expose the release jobs under these names (README: the release-jobs contract), or name its jobs in releng.json hydra.jobs (Lix\'s Hydra evaluates release.nix: build.SYSTEM, binaryTarball.SYSTEM, dockerImage.SYSTEM as an image description; docs/hydra.md); nothing was written');
  }
  const mapped = [...Object.values(classified.build), classified.manual, ...Object.values(classified.binaryTarball), ...Object.values(classified.dockerImage),
    ...(classified.aggregate ? [classified.aggregate] : [])];
  const releaseJobs = [...new Map(mapped.map((m) => [m.job.attr, m.job])).values()].sort((a, b) => a.attr.localeCompare(b.attr));
  const byJob = new Map(all.map((b) => [b.job, b]));
  const failed: string[] = [];
  const unfinished: string[] = [];
  for (const j of releaseJobs) {
    const b = byJob.get(j.attr)!;
    const url = `${hydra.base}/build/${b.id}`;
    if (!b.finished) unfinished.push(`${j.attr} (${url})`);
    else if (b.buildstatus !== 0) failed.push(`${j.attr} ${statusNames[b.buildstatus ?? -1] ?? `buildstatus ${b.buildstatus}`} (${url})`);
  }
  if (failed.length) {
    throw new ReleaseError(`evaluation ${evalUrl}: release job${failed.length === 1 ? '' : 's'} did not succeed:\n${failed.map((f) => `  ${f}`).join('\n')}`,
      'restart or fix the failed builds on Hydra, then run again; nothing was written');
  }
  if (unfinished.length) {
    throw new NothingToDo(`evaluation ${evalUrl}: ${unfinished.length} release job${unfinished.length === 1 ? '' : 's'} not finished yet:\n${unfinished.map((u) => `  ${u}`).join('\n')}`,
      'run again when Hydra has finished them (exit 5: not ready yet); nothing was written', EXIT_NOT_READY,
      { evalUrl, unfinished: unfinished.map((u) => u.replace(/ \(.*$/, '')) });
  }
  return {
    hydra, evalId: chosen.id, evalUrl, revision: chosen.rev,
    jobs: { ...classified, all: releaseJobs },
    builds: Object.fromEntries(releaseJobs.map((j) => [j.attr, byJob.get(j.attr)!.id])),
  };
}
