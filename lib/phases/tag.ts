// tag: the release commit and tag with a history that keeps the branch's tree unchanged (Lix's
// official_release_commit_tag + merge_to_release): detach, official_release: true, commit, annotated
// tag, back to the branch, `merge -s ours` the tag, detach onto the tag, record release/tag.json.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Plan } from '../actions/index.ts';
import type { Context } from '../config/context.ts';
import { DryRunStop, ReleaseError } from '../core/errors.ts';
import { requirePrograms } from '../core/exec.ts';
import { repoWriter, type RepoAction } from '../git/actions.ts';
import { gitAt, type Git } from '../git/git.ts';
import { applyOrRestore, snapshotRepo, type RepoSnapshot } from '../git/restore.ts';
import { readTagRecord, tagRecordPath, type TagRecord } from '../release/tag-record.ts';
import { versionFileSchema } from '../config/version.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';
import { relengTrailer, requireBranch, requireIdentity } from '../git/git.ts';

/** What tag did (printed with --json; the same SHAs as release/tag.json). */
export interface TagSummary {
  version: string;
  branch: string;
  dryRun: boolean;
  /** Set after a real run (also in release/tag.json). */
  releaseCommit?: string;
  mergeCommit?: string;
}

/**
 * version.json with `official_release: true`, changing only that value's bytes so the file keeps
 * its formatting (Lix rewrites it with `jq --indent 4`; we keep whatever style the project uses).
 */
export function setOfficialRelease(text: string, file: string): string {
  const before = parseWith(versionFileSchema, parseJsonText(text, file), file);
  if (before.official_release) {
    throw new ReleaseError(`${file} already says "official_release": true`,
      'the branch keeps official_release: false (tag sets true only in the release commit); set it back to false and commit, then run tag again');
  }
  const edited = text.replace(/("official_release"\s*:\s*)false\b/, '$1true');
  const after = JSON.parse(edited);
  if (edited !== text && after.official_release === true && JSON.stringify({ ...before, official_release: true }) === JSON.stringify(after)) return edited;
  // Unusual layouts (the key twice, escapes): re-serialise with the file's own indentation.
  const indentation = /\n([ \t]+)"/.exec(text)?.[1] ?? '  ';
  return JSON.stringify({ ...before, official_release: true }, null, indentation) + (text.endsWith('\n') ? '\n' : '');
}

/** Messages of the release commit/tag and of the merge (Lix's wording, with releng's trailer). */
export function tagMessages(version: string, releaseName: string): { release: string; merge: string } {
  return {
    release: `release: ${version} "${releaseName}"\n\n${relengTrailer}`,
    merge: `release: merge release ${version} back to mainline\n\nThis merge commit returns to the previous state prior to the release but leaves the tag in the branch history.\n${relengTrailer}`,
  };
}

/** tag's plan with the snapshot to restore if applying fails. */
export interface TagPlan {
  plan: Plan;
  snapshot: RepoSnapshot;
  summary: TagSummary;
}

/** Checks every precondition and computes the writes; nothing is written. */
export async function planTag(ctx: Context, git: Git): Promise<TagPlan> {
  const { version, flags } = ctx;
  const top = await git.topLevel();
  const tagRef = `refs/tags/${version.version}`;
  const existingTag = await git.tryGit(['rev-parse', '--verify', '--quiet', tagRef]);
  if (existingTag && !flags.extra['force-tag']) {
    // Detached at the tag: what a successful `tag` leaves behind.
    const atTag = !(await git.currentBranch()) && (await git.commitOf(tagRef)) === (await git.head());
    throw new ReleaseError(`tag ${version.version} already exists (${existingTag.slice(0, 12)})${atTag ? ' and HEAD is at it: tag has already run' : ''}`,
      atTag ? 'continue with `releng build` and `releng upload`; to re-tag, check out the branch and pass --force-tag'
        : `a released version is never re-tagged: bump the version in ${path.relative(ctx.root, version.file) || version.file}, or pass --force-tag to replace the tag`);
  }
  const branch = await requireBranch(git, 'tag');
  if (!flags.noCheckGit) {
    const dirty = await git.dirtyFiles();
    if (dirty.length) {
      throw new ReleaseError(`the working tree has uncommitted changes (staged or modified):\n${dirty.slice(0, 20).map((l) => `  ${l}`).join('\n')}`,
        'commit or stash them first (untracked files are fine); --no-check-git skips this check (testing only)');
    }
  }
  const versionRel = path.relative(top, version.file).split(path.sep).join('/');
  const tracked = await git.git(['ls-files', '--', versionRel]);
  if (!tracked) throw new ReleaseError(`${versionRel} is not committed to git`, `git add and commit ${versionRel}, then run tag again`);
  const newVersionJson = setOfficialRelease(await readFile(version.file, 'utf8'), versionRel);
  await requireIdentity(git);

  const messages = tagMessages(version.version, version.releaseName);
  const recordRel = path.relative(top, path.join(ctx.root, tagRecordPath)).split(path.sep).join('/');
  const actions: RepoAction[] = [
    { kind: 'git.checkout', detach: true },
    { kind: 'file.write', path: versionRel, content: newVersionJson, reason: 'changed' },
    { kind: 'git.add', paths: [versionRel] },
    { kind: 'git.commit', message: messages.release, paths: [versionRel] },
    { kind: 'git.tag', name: version.version, message: messages.release, force: !!existingTag },
    { kind: 'git.checkout', branch },
    { kind: 'git.merge', ref: version.version, strategy: 'ours', message: messages.merge },
    { kind: 'git.checkout', detach: true, ref: version.version },
    { kind: 'tag.record', file: recordRel, version: version.version, branch },
  ];
  const snapshot = await snapshotRepo(git, top, branch, [tagRef], [versionRel, recordRel]);
  return {
    plan: { steps: [{ title: `tag ${version.version} and merge it back into ${branch}`, actions, concurrency: 1 }], skipped: [] },
    snapshot,
    summary: { version: version.version, branch, dryRun: flags.dryRun },
  };
}

/** The `tag` command: plan (all preconditions), apply or restore; a dry run stops the release here. */
/** The tag record, when this version is tagged, HEAD is detached at the tag and the record agrees. */
async function alreadyTagged(ctx: Context, git: Git): Promise<TagRecord | undefined> {
  const record = await readTagRecord(ctx.root);
  if (!record || record.version !== ctx.version.version || await git.currentBranch()) return undefined;
  const tagCommit = await git.commitOf(`refs/tags/${record.version}`);
  return tagCommit && tagCommit === record.releaseCommit && tagCommit === await git.head() ? record : undefined;
}

export async function tag(ctx: Context): Promise<TagSummary> {
  const { log, flags } = ctx;
  await requirePrograms('git');
  const git = gitAt(ctx.root);
  // A re-run of `release` after a later phase failed: tag's work is done when HEAD is detached at
  // the tag and release/tag.json records it. Skip (with the reason) instead of failing.
  const done = await alreadyTagged(ctx, git);
  if (done && !flags.extra['force-tag']) {
    log.skip(`tag ${done.version}`, `HEAD is detached at tag ${done.version} (${done.releaseCommit.slice(0, 12)}) and release/tag.json records it: tag has already run`);
    return { version: done.version, branch: done.branch, dryRun: flags.dryRun, releaseCommit: done.releaseCommit, mergeCommit: done.mergeCommit };
  }
  const { plan, snapshot, summary } = await planTag(ctx, git);
  const writer = repoWriter(await git.topLevel());
  await applyOrRestore(plan, snapshot, { log, writer, dryRun: flags.dryRun, command: 'tag' });
  // Later phases (build, upload) need the tag to exist: a dry run cannot go further than this.
  if (flags.dryRun) throw new DryRunStop();
  {
    summary.releaseCommit = await git.head();
    summary.mergeCommit = (await git.commitOf(`refs/heads/${summary.branch}`))!;
    log.info(`tagged ${summary.version} at ${summary.releaseCommit.slice(0, 12)}; ${summary.branch} has the merge ${summary.mergeCommit.slice(0, 12)}; HEAD is detached at the tag`);
  }
  return summary;
}
