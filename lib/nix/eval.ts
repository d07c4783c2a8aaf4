// Evaluates the release jobs of a profile into a list of derivations releng can realise.
// nix-eval-jobs when on PATH (parallel, what Lix uses); otherwise the Nix that is here.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { Config, Profile } from '../config/config.ts';
import { ReleaseError } from '../core/errors.ts';
import { hasProgram, run } from '../core/exec.ts';
import { parseWith } from '../core/zod-errors.ts';

export const nixFeatureArgs = ['--extra-experimental-features', 'nix-command flakes'];

const storePath = z.string().regex(/^\/nix\/store\/[0-9a-z]{32}-[^/]+$/, 'expected a /nix/store path');

export const jobSchema = z.object({
  attr: z.string().min(1),
  drvPath: storePath,
  system: z.string(),
  name: z.string().optional(),
  outputs: z.record(z.string(), storePath).refine((o) => 'out' in o || Object.keys(o).length > 0, 'no outputs'),
});
export type Job = z.infer<typeof jobSchema>;

/** One line of nix-eval-jobs' JSONL output (errors come as {attr, error}). */
export const nixEvalJobsLine = z.union([
  z.object({ attr: z.string(), error: z.string() }).passthrough(),
  z.object({ attr: z.string(), drvPath: storePath, system: z.string(), name: z.string().optional(), outputs: z.record(z.string(), storePath) }).passthrough(),
]);

const evalJobsNix = fileURLToPath(new URL('../../nix/eval-jobs.nix', import.meta.url));

/** Parses nix-eval-jobs JSONL; any job that failed to evaluate is an error naming it. */
export function parseNixEvalJobs(text: string, source: string): Job[] {
  const jobs: Job[] = [];
  const errors: string[] = [];
  text.split('\n').filter((l) => l.trim()).forEach((line, i) => {
    let data: unknown;
    try { data = JSON.parse(line); } catch { throw new ReleaseError(`${source}: line ${i + 1} is not JSON`); }
    const j = parseWith(nixEvalJobsLine, data, `${source} line ${i + 1}`);
    if ('error' in j) errors.push(`${j.attr}: ${j.error}`);
    else jobs.push({ attr: j.attr, drvPath: j.drvPath, system: j.system, name: j.name, outputs: j.outputs });
  });
  if (errors.length) throw new ReleaseError(`release jobs failed to evaluate:\n${errors.map((e) => `  ${e}`).join('\n')}`);
  return jobs;
}

/** nix-eval-jobs' arguments for a flake attribute: `--force-recurse` as Lix passes it, so jobs in
 *  attribute sets without recurseForDerivations (`build.SYSTEM`) are reached (issue 17). */
export function nixEvalJobsArgs(attr: string, forceRecurse: boolean): string[] {
  return [...nixFeatureArgs, ...(forceRecurse ? ['--force-recurse'] : []), '--flake', attr]; // the value of --flake: Nix takes the next argument whatever it starts with
}

export interface EvalRequest {
  root: string;
  config: Config;
  profileName: string;
  profile: Profile;
  /** nix-eval-jobs --workers (Lix: 4); the nix eval fallback evaluates in one process. */
  workers?: number;
  /** Where each evaluated derivation is rooted (Lix: --gc-roots-dir release/gcroots), so a garbage
   *  collection between evaluation and build cannot delete it (issue 26). */
  gcRootsDir?: string;
}

/** Evaluates the profile's release jobs; sorted by attribute name. */
export async function evalReleaseJobs(req: EvalRequest): Promise<Job[]> {
  const rj = req.config.releaseJobs;
  let jobs: Job[];
  if ('flake' in rj) {
    const attr = `${rj.flake}.${req.profileName}`;
    if (await hasProgram('nix-eval-jobs')) {
      const extra = [...(req.workers ? ['--workers', String(req.workers)] : []), ...(req.gcRootsDir ? ['--gc-roots-dir', req.gcRootsDir] : [])];
      const { stdout } = await run('nix-eval-jobs', [...extra, ...nixEvalJobsArgs(attr, rj.forceRecurse)], { cwd: req.root });
      jobs = parseNixEvalJobs(stdout, 'nix-eval-jobs');
    } else {
      // eval-jobs.nix walks every attribute set, as nix-eval-jobs --force-recurse does.
      const { stdout } = await run('nix', [...nixFeatureArgs, 'eval', '--json', '--impure', '--apply', `jobs: import ${evalJobsNix} { inherit jobs; }`, '--', attr], { cwd: req.root });
      jobs = parseJobsJson(stdout, `nix eval ${attr}`);
    }
  } else {
    const file = path.resolve(req.root, rj.file);
    const args = { systems: req.profile.systems, dockerSystems: req.profile.dockerSystems, ...rj.args };
    const expr = `let f = import ${JSON.stringify(file)}; a = builtins.fromJSON ${JSON.stringify(JSON.stringify(args))}; in import ${JSON.stringify(evalJobsNix)} { jobs = if builtins.isFunction f then f a else f; }`;
    const { stdout } = await run('nix-instantiate', ['--eval', '--strict', '--json', '--read-write-mode', '--expr', expr], { cwd: req.root });
    jobs = parseJobsJson(stdout, `nix-instantiate --eval ${rj.file}`);
  }
  if (jobs.length === 0) throw new ReleaseError(`release jobs of profile "${req.profileName}" are empty`, 'check releaseJobs in releng.json');
  // nix-eval-jobs roots what it evaluates itself; the fallback's derivations are rooted here.
  if (req.gcRootsDir && !(await hasProgram('nix-eval-jobs') && 'flake' in rj)) await rootDerivations(jobs, req.gcRootsDir, req.root);
  return jobs.sort((a, b) => a.attr.localeCompare(b.attr));
}

/** Roots each job's derivation under dir (an indirect root per job, as nix-eval-jobs --gc-roots-dir
 *  does): `nix-instantiate --add-root` of the .drv imported as a derivation, which builds nothing. */
export async function rootDerivations(jobs: Pick<Job, 'attr' | 'drvPath'>[], dir: string, cwd: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const j of jobs) {
    await run('nix-instantiate', ['--add-root', path.join(dir, `${j.attr}.drv`), '--indirect', '--expr', `import ${j.drvPath}`], { cwd });
  }
}

function parseJobsJson(text: string, source: string): Job[] {
  let data: unknown;
  try { data = JSON.parse(text); } catch { throw new ReleaseError(`${source} did not print JSON`); }
  return parseWith(z.array(jobSchema), data, source);
}

/** Realises derivations (one nix-store call, so Nix builds them in parallel) and roots each output under gcrootDir.
 *  `nixArgs`: e.g. `--max-jobs N --option builders SPEC` (build --builders / --max-jobs). */
export async function realiseJobs(jobs: Job[], gcrootDir: string, cwd: string, nixArgs: string[] = []): Promise<void> {
  await run('nix-store', ['--realise', ...nixArgs, '--', ...jobs.map((j) => j.drvPath)], { cwd });
  await rootOutputs(jobs, gcrootDir, cwd);
}

/** Roots every output of the jobs (already valid in the store) under gcrootDir, one indirect root each. */
export async function rootOutputs(jobs: Job[], gcrootDir: string, cwd: string): Promise<void> {
  for (const j of jobs) {
    for (const [out, p] of Object.entries(j.outputs)) {
      await run('nix-store', ['--realise', '--add-root', path.join(gcrootDir, `${j.attr}${out === 'out' ? '' : `-${out}`}`), '--indirect', '--', p], { cwd });
    }
  }
}
