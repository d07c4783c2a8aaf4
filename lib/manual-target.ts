// `--target manual` of build and upload (issue 17): Lix's nightly docs. `build --target manual`
// realises only the manual job and lays out release/manual; `upload --target manual` syncs it to
// the docs bucket and publishes nothing else: nightly/ for an unofficial version.json, MAJOR/ and
// stable/ for an official one (as Lix's upload_manual). The official-build check is relaxed for
// this target only: a nightly manual is built from the main branch, not from a tag.
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { countByKind, emptyPlan, planSize } from './actions.ts';
import { apply } from './apply.ts';
import { confirmationRequired, confirmRelease } from './confirm.ts';
import type { Context } from './context.ts';
import { openEnvironment } from './environment.ts';
import { DryRunStop, ReleaseError } from './errors.ts';
import { localTree } from './files.ts';
import { gitAt, requireOnCleanTag } from './git/git.ts';
import { isMaintenanceRelease } from './git/maintenance.ts';
import type { MappedJob } from './nix/release-jobs.ts';
import { run } from './exec.ts';
import { planDocs } from './upload/docs.ts';
import { parseJsonText, parseWith } from './zod-errors.ts';
import type { S3Put } from './s3/actions.ts';

const manualBuildSchema = z.object({
  schemaVersion: z.literal(1),
  target: z.literal('manual'),
  project: z.string(),
  version: z.string(),
  major: z.string(),
  official: z.boolean(),
  gitRevision: z.string().regex(/^[0-9a-f]{40}$/),
  /** The manual job's attribute and output (e.g. build.x86_64-linux, doc). */
  job: z.string(),
  storePath: z.string(),
});
export type ManualBuild = z.infer<typeof manualBuildSchema>;

const recordFile = (releaseDir: string) => path.join(releaseDir, 'manual-build.json');

/** Realises the manual job only and copies its HTML manual to release/manual. Local writes only. */
export async function buildManualOnly(ctx: Context, manual: MappedJob & { manualPath: string }): Promise<ManualBuild> {
  const { log, releaseDir, root, version, config } = ctx;
  if (ctx.flags.dryRun) {
    log.info(`[dry-run] nix-store --realise ${manual.job.drvPath} (${manual.job.attr}, output ${manual.output})`);
    log.info(`[dry-run] copy ${manual.manualPath} of it to ${path.join(releaseDir, 'manual')}`);
    throw new DryRunStop();
  }
  const phase = log.phase(`building the manual (${manual.job.attr}, output ${manual.output})`);
  // A full build's result would no longer describe release/manual: remove it, so upload cannot mix them.
  for (const d of ['manual', 'build-result.json', 'manual-build.json']) await rm(path.join(releaseDir, d), { recursive: true, force: true });
  await mkdir(path.join(releaseDir, 'gcroots'), { recursive: true });
  await run('nix-store', ['--realise', manual.job.drvPath, '--add-root', path.join(releaseDir, 'gcroots', `${manual.job.attr}-${manual.output}`), '--indirect'], { cwd: root });
  const { manualSource } = await import('./phases/build.ts');
  const src = await manualSource(manual);
  const dest = path.join(releaseDir, 'manual');
  await cp(src, dest, { recursive: true, dereference: true });
  await run('chmod', ['-R', 'u+w', dest]);
  const record: ManualBuild = {
    schemaVersion: 1, target: 'manual', project: config.project, version: version.version, major: version.major,
    official: version.official, gitRevision: await gitAt(root).head(), job: `${manual.job.attr}^${manual.output}`, storePath: manual.path,
  };
  await writeFile(recordFile(releaseDir), JSON.stringify(record, null, 2) + '\n');
  phase.succeed(`laid out the manual of ${config.project} ${version.version} in ${path.relative(process.cwd(), dest) || dest}`);
  return record;
}

export interface ManualUploadSummary {
  environment: string;
  version: string;
  target: 'manual';
  dryRun: boolean;
  planned: Record<string, number>;
  applied: Record<string, number>;
  docsUrl: string;
}

/** Reads release/manual-build.json (or a full build's result): which version the manual is. */
async function readManualBuild(ctx: Context): Promise<Pick<ManualBuild, 'project' | 'version' | 'major' | 'official' | 'gitRevision'>> {
  const file = recordFile(ctx.releaseDir);
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text !== undefined) return parseWith(manualBuildSchema, parseJsonText(text, file), file, 'run `releng build --target manual` again');
  const full = path.join(ctx.releaseDir, 'build-result.json');
  const fullText = await readFile(full, 'utf8').catch(() => undefined);
  if (fullText === undefined) throw new ReleaseError(`no ${file} (nor ${full})`, 'run `releng build --target manual` first');
  const { readBuildResult } = await import('./build-result.ts');
  return readBuildResult(ctx.releaseDir);
}

/** `upload --target manual`: the docs bucket only. */
export async function uploadManualOnly(ctx: Context): Promise<ManualUploadSummary> {
  const { log, flags } = ctx;
  const built = await readManualBuild(ctx);
  if (built.version !== ctx.version.version || built.official !== ctx.version.official) {
    throw new ReleaseError(`release/manual was built for ${built.version}${built.official ? ' (official)' : ''}, but ${ctx.version.file} says ${ctx.version.version}${ctx.version.official ? ' (official)' : ''}`, 'run `releng build --target manual` again');
  }
  const git = gitAt(ctx.root);
  // Relaxed for this target only: an unofficial (nightly) manual needs no tag. An official one moves
  // MAJOR/ and stable/, so it must be the tag's, as a full upload.
  if (built.official && !flags.noCheckGit) {
    await requireOnCleanTag(git, built.version, 'upload --target manual');
    const head = await git.head();
    if (built.gitRevision !== head) throw new ReleaseError(`release/manual was built at ${built.gitRevision.slice(0, 12)}, not at tag ${built.version} (${head.slice(0, 12)})`, `run \`releng build --target manual\` at tag ${built.version}`);
  }
  const manual = await localTree(path.join(ctx.releaseDir, 'manual'), 4);
  if (manual.length === 0) throw new ReleaseError(`${path.join(ctx.releaseDir, 'manual')} is empty`, 'run `releng build --target manual` first');
  const target = await openEnvironment(ctx);
  try {
    const maintenance = built.official && await isMaintenanceRelease(git, built.version, ctx.config.mainBranch);
    const plan = emptyPlan();
    const docs = await planDocs(target.s3, target.docs, built, manual, { keepStable: maintenance ? `${built.version} is a maintenance release (a newer version is tagged on ${ctx.config.mainBranch})` : undefined });
    plan.steps.push(...docs.steps);
    plan.skipped.push(...docs.skipped);
    log.info(`planned ${planSize(plan)} writes to the docs bucket (upload --target manual: nothing else is published)`);
    await confirmRelease(target.name, { noconfirm: flags.noconfirm || flags.dryRun, required: confirmationRequired(target.name, target.env) });
    const applied = await apply(plan, { log, dryRun: flags.dryRun, writers: { s3: target.s3 }, resumeHint: 're-run `releng upload --target manual`: it re-plans against the docs bucket' });
    if (!flags.dryRun) {
      const bad: string[] = [];
      for (const p of plan.steps.flatMap((s) => s.actions).filter((a): a is S3Put => a.kind === 's3.put')) {
        const h = await target.s3.head(p.bucket, p.key);
        if (!h || h.size !== p.size || h.sha256 !== p.sha256) bad.push(`s3://${p.bucket}/${p.key}`);
      }
      if (bad.length) throw new ReleaseError(`verification after upload failed: ${bad.join(', ')}`, 're-run `releng upload --target manual`');
    }
    return {
      environment: target.name, version: built.version, target: 'manual', dryRun: flags.dryRun,
      planned: countByKind(plan), applied: applied.byKind, docsUrl: `s3://${target.docs.bucket}/${target.docs.prefix}manual/${built.project}/`,
    };
  } finally {
    await target.close();
  }
}
