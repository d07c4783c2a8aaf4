// `build --target manual` (issue 17): Lix's nightly docs. Evaluates the release jobs, realises only
// the manual job and lays out release/manual with release/manual-build.json. No tag needed: a
// nightly manual is built from the main branch. Local writes only; `upload --target manual`
// (phases/upload-manual.ts) publishes it.
import { cp, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Context } from '../config/context.ts';
import { DryRunStop, UsageError } from '../core/errors.ts';
import { requirePrograms, run } from '../core/exec.ts';
import { gitAt } from '../git/git.ts';
import { evaluateProfile, manualSource, profileOf } from '../nix/release-jobs.ts';
import { writeManualBuild, type ManualBuild } from '../release/manual-build.ts';

export async function buildManual(ctx: Context): Promise<ManualBuild> {
  const { log, releaseDir, root, version, config, flags } = ctx;
  await requirePrograms('git', 'nix-instantiate', 'nix-store', 'tar', 'gzip');
  const git = gitAt(root);
  await git.topLevel();
  if (flags.extra['from-hydra'] !== undefined || flags.extra['hydra-json'] !== undefined) {
    throw new UsageError('--target manual builds the manual locally; it does not take --from-hydra / --hydra-json');
  }
  const profile = profileOf(ctx);
  let phase = log.phase(`evaluating release jobs (profile ${profile.profileName})`);
  const jobs = await evaluateProfile(ctx, profile);
  phase.succeed(`evaluated ${jobs.all.length} release jobs (profile ${profile.profileName})`);
  const manual = jobs.manual;
  if (flags.dryRun) {
    log.info(`[dry-run] nix-store --realise ${manual.job.drvPath} (${manual.job.attr}, output ${manual.output})`);
    log.info(`[dry-run] copy ${manual.manualPath} of it to ${path.join(releaseDir, 'manual')}`);
    throw new DryRunStop();
  }
  phase = log.phase(`building the manual (${manual.job.attr}, output ${manual.output})`);
  // A full build's result would no longer describe release/manual: remove it, so upload cannot mix them.
  for (const d of ['manual', 'build-result.json', 'manual-build.json']) await rm(path.join(releaseDir, d), { recursive: true, force: true });
  await mkdir(path.join(releaseDir, 'gcroots'), { recursive: true });
  await run('nix-store', ['--realise', '--add-root', path.join(releaseDir, 'gcroots', `${manual.job.attr}-${manual.output}`), '--indirect', '--', manual.job.drvPath], { cwd: root });
  const src = await manualSource(manual);
  const dest = path.join(releaseDir, 'manual');
  await cp(src, dest, { recursive: true, dereference: true });
  await run('chmod', ['-R', 'u+w', dest]);
  const record: ManualBuild = {
    schemaVersion: 1, target: 'manual', project: config.project, version: version.version, major: version.major,
    official: version.official, gitRevision: await git.head(), job: `${manual.job.attr}^${manual.output}`, storePath: manual.path,
  };
  await writeManualBuild(releaseDir, record);
  phase.succeed(`laid out the manual of ${config.project} ${version.version} in ${path.relative(process.cwd(), dest) || dest}`);
  return record;
}
