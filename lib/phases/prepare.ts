// prepare: assemble the release notes from the fragments into rl-MAJOR.md (+ SUMMARY.md for a new
// major), `git rm` the fragments and commit only those paths. Checks and rendering happen while
// planning; the writes are repository actions applied (or, with --dry-run, printed) by apply.ts.
import path from 'node:path';
import type { Plan } from '../actions/index.ts';
import type { Context } from '../config/context.ts';
import { ReleaseError } from '../core/errors.ts';
import { requirePrograms } from '../core/exec.ts';
import { repoWriter, type RepoAction } from '../git/actions.ts';
import { gitAt, relengTrailer, requireBranch, requireIdentity, type Git } from '../git/git.ts';
// Shared with tag and lock (lib/git/git.ts); re-exported where they were first defined.
export { relengTrailer, requireBranch, requireIdentity } from '../git/git.ts';
import { applyOrRestore, snapshotRepo, type RepoSnapshot } from '../git/restore.ts';
import { assembleNotes, readIfExists } from '../release-notes/assemble.ts';
import { hasVersionSection, insertSummaryLine, renderNotesFile } from '../release-notes/render.ts';


/** What prepare did (printed with --json). */
export interface PrepareSummary {
  version: string;
  date: string;
  notesFile: string;
  fragments: string[];
  /** The commit made (undefined on --dry-run or when there was nothing to do). */
  commit?: string;
  dryRun: boolean;
  skipped?: string;
}

/** --date, or today in UTC; YYYY-MM-DD and a real calendar date. */
export function releaseDate(flag: unknown, now = new Date()): string {
  if (flag === undefined) return now.toISOString().slice(0, 10);
  const s = String(flag);
  const d = new Date(`${s}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s) || Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== s) {
    throw new ReleaseError(`--date ${s} is not a date`, 'use --date YYYY-MM-DD, e.g. --date 2024-07-10');
  }
  return s;
}


/** Fails when any of `paths` has staged or unstaged changes (their committed content is what prepare edits). */
async function requireUnchanged(git: Git, paths: string[]): Promise<void> {
  if (!paths.length) return;
  const out = await git.git(['status', '--porcelain', '--untracked-files=all', '--', ...paths]);
  const lines = out ? out.split('\n') : [];
  if (lines.length) {
    throw new ReleaseError(`files prepare edits or removes have uncommitted changes:\n${lines.map((l) => `  ${l}`).join('\n')}`,
      'commit them (a fragment must be committed before it is released) or restore them, then run prepare again');
  }
}

/** A text file with universal newlines (as Python's read_text gives Lix's scripts), or undefined if absent. */
/** prepare's plan with what it needs to print and to restore. */
export interface PreparePlan {
  plan: Plan;
  /** What to restore if applying fails (absent when there is nothing to do). */
  snapshot?: RepoSnapshot;
  notes: string;
  summary: PrepareSummary;
}

/** Reads the world and computes prepare's writes; every check is here, nothing is written. */
export async function planPrepare(ctx: Context, git: Git): Promise<PreparePlan> {
  const { config, root, version } = ctx;
  const settings = config.releaseNotes;
  const display = config.displayName ?? config.project;
  const date = releaseDate(ctx.flags.extra.date);
  const top = await git.topLevel();
  const rel = (p: string) => path.relative(top, path.resolve(root, p)).split(path.sep).join('/');

  const notesFile = path.join(settings.notesDir, `rl-${version.major}.md`);
  const existing = await readIfExists(path.resolve(root, notesFile));
  const summary: PrepareSummary = { version: version.version, date, notesFile: rel(notesFile), fragments: [], dryRun: ctx.flags.dryRun };
  // Already prepared (e.g. `releng release` run again): nothing to do, wherever HEAD is.
  if (hasVersionSection(existing, display, version.version)) {
    const reason = `${rel(notesFile)} already has the section "# ${display} ${version.version} (...)"`;
    return { plan: { steps: [], skipped: [{ what: 'release notes', reason }] }, notes: '', summary: { ...summary, skipped: reason } };
  }
  const branch = await requireBranch(git, 'prepare');

  const assembled = await assembleNotes(root, settings, config.project);
  if (assembled.missingDir) ctx.log.warn(`no fragments directory ${assembled.missingDir}: the notes for ${version.version} will have no entries`);
  const fragments = assembled.fragments.map((f) => rel(f.abs));
  summary.fragments = fragments;
  const notes = renderNotesFile({ displayName: display, version: version.version, major: version.major, releaseName: version.releaseName, date, body: assembled.body, existing });

  // SUMMARY.md gets the new major's line once, right after the marker.
  let summaryUpdate: { file: string; content: string } | undefined;
  if (existing === undefined) {
    const summaryFile = path.resolve(root, settings.summaryFile);
    const text = await readIfExists(summaryFile);
    if (text === undefined) throw new ReleaseError(`${rel(settings.summaryFile)} does not exist, so the new ${rel(notesFile)} cannot be listed in it`, 'set releaseNotes.summaryFile in releng.json to the manual\'s SUMMARY.md');
    const link = path.relative(path.dirname(summaryFile), path.resolve(root, notesFile)).split(path.sep).join('/');
    if (!text.includes(`](${link})`)) {
      const updated = insertSummaryLine(text, settings.summaryMarker, `- [${display} ${version.major} (${date})](${link})`);
      if (updated === undefined) {
        throw new ReleaseError(`${rel(settings.summaryFile)} has no line containing the marker "${settings.summaryMarker}"`,
          `add a line like "  ${settings.summaryMarker} -->" where new release notes are listed, or set releaseNotes.summaryMarker in releng.json`);
      }
      summaryUpdate = { file: rel(settings.summaryFile), content: updated };
    }
  }

  // Fragments must be committed and unchanged (git rm refuses modified files); the files we write too.
  const tracked = new Set((await git.git(['ls-files', '--', ...fragments, rel(notesFile), ...(summaryUpdate ? [summaryUpdate.file] : [])])).split('\n').filter(Boolean));
  const untracked = fragments.filter((f) => !tracked.has(f));
  if (untracked.length) {
    throw new ReleaseError(`fragments not committed to git:\n${untracked.map((f) => `  ${f}`).join('\n')}`, 'git add and commit them (or remove them), then run prepare again');
  }
  await requireUnchanged(git, [...fragments, rel(notesFile), ...(summaryUpdate ? [summaryUpdate.file] : [])]);
  await requireIdentity(git);

  const written = [rel(notesFile), ...(summaryUpdate ? [summaryUpdate.file] : [])];
  const actions: RepoAction[] = [
    { kind: 'file.write', path: rel(notesFile), content: notes, reason: existing === undefined ? 'new' : 'changed' },
    ...(summaryUpdate ? [{ kind: 'file.write', path: summaryUpdate.file, content: summaryUpdate.content, reason: 'changed' } as const] : []),
    { kind: 'git.add', paths: written },
    ...(fragments.length ? [{ kind: 'git.rm', paths: fragments } as const] : []),
    { kind: 'git.commit', message: `release: release notes for ${version.version}\n\n${relengTrailer}`, paths: [...written, ...fragments] },
  ];
  const snapshot = await snapshotRepo(git, top, branch, [], [...written, ...fragments]);
  return { plan: { steps: [{ title: `commit the release notes for ${version.version}`, actions, concurrency: 1 }], skipped: [] }, snapshot, notes, summary };
}


/** The `prepare` command: plan (all checks), show, apply or restore. */
export async function prepare(ctx: Context): Promise<PrepareSummary> {
  const { log, flags } = ctx;
  await requirePrograms('git');
  const git = gitAt(ctx.root);
  const planned = await planPrepare(ctx, git);
  const { plan, summary, snapshot } = planned;
  if (!snapshot) {
    for (const k of plan.skipped) log.skip(k.what, k.reason);
    return summary;
  }
  log.info(`release notes for ${summary.version} (${summary.date}) from ${summary.fragments.length} fragment${summary.fragments.length === 1 ? '' : 's'} -> ${summary.notesFile}`);
  if (flags.dryRun) {
    log.info(`[dry-run] ${summary.notesFile} would become:`);
    for (const l of planned.notes.replace(/\n$/, '').split('\n')) log.info(`  | ${l}`);
  }
  const writer = repoWriter(await git.topLevel());
  await applyOrRestore(plan, snapshot, { log, writer, dryRun: flags.dryRun, command: 'prepare' });
  if (!flags.dryRun) {
    summary.commit = await git.head();
    log.info(`committed ${summary.commit.slice(0, 12)} "release: release notes for ${summary.version}"`);
  }
  return summary;
}
