// All validation happens while planning, but a git step can still fail while applying (a hook, a
// full disk, a lock). Then the repository is put back as it was: branch and HEAD, the refs the run
// touched, the index entries and bytes of the files it wrote. The restore is itself a plan.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Plan } from '../core/plan.ts';
import { apply } from '../core/apply.ts';
import { describeError, ReleaseError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { repoKinds, type RepoAction, type RepoWriter } from './actions.ts';
import type { Git } from './git.ts';

/** What a run may change, as it was before (read while planning). */
export interface RepoSnapshot {
  branch: string;
  head: string;
  /** Refs the run may create or move, with their old value (null: absent). */
  refs: Record<string, string | null>;
  /** Files the run may write or remove (relative), with their old bytes (null: absent). */
  files: Record<string, string | null>;
}

/** Reads the snapshot of `files` and `refs` (plus the branch and HEAD) before a run. */
export async function snapshotRepo(git: Git, root: string, branch: string, refs: string[], files: string[]): Promise<RepoSnapshot> {
  const snap: RepoSnapshot = { branch, head: await git.head(), refs: {}, files: {} };
  for (const r of refs) snap.refs[r] = (await git.tryGit(['rev-parse', '--verify', '--quiet', r])) || null;
  for (const f of files) {
    try { snap.files[f] = await readFile(path.resolve(root, f), 'utf8'); } catch (e: any) { if (e.code !== 'ENOENT') throw e; snap.files[f] = null; }
  }
  return snap;
}

/** The plan that puts the repository back as the snapshot saw it (idempotent: safe after any partial run). */
export function planRestore(s: RepoSnapshot): Plan<RepoAction> {
  const actions: RepoAction[] = [
    { kind: 'git.merge', quit: true },
    { kind: 'git.update-ref', ref: `refs/heads/${s.branch}`, value: s.head },
    { kind: 'git.symbolic-ref', ref: 'HEAD', target: `refs/heads/${s.branch}` },
    ...Object.entries(s.refs).map(([ref, value]): RepoAction => ({ kind: 'git.update-ref', ref, value })),
  ];
  const files = Object.keys(s.files);
  if (files.length) actions.push({ kind: 'git.reset', paths: files });
  for (const [file, content] of Object.entries(s.files)) {
    actions.push(content === null ? { kind: 'file.remove', path: file } : { kind: 'file.write', path: file, content, reason: 'restore' });
  }
  return { steps: [{ title: 'restore the repository', actions, concurrency: 1 }], skipped: [] };
}

/** Applies a repository plan; if a step fails, applies the restore plan and rethrows saying so. */
export async function applyOrRestore(plan: Plan, snapshot: RepoSnapshot, opts: { log: Logger; writer: RepoWriter; dryRun: boolean; command: string }) {
  try {
    return await apply(plan, { log: opts.log, kinds: repoKinds, dryRun: opts.dryRun, writers: { repo: opts.writer }, resumeHint: `see the cause above; fix it and run \`releng ${opts.command}\` again` });
  } catch (failure) {
    const restore = planRestore(snapshot);
    try {
      await apply(restore, { log: opts.log, kinds: repoKinds, dryRun: false, writers: { repo: opts.writer }, attempts: 1 });
    } catch (restoreFailure) {
      throw new ReleaseError(`${describeError(failure)}\nand restoring the repository failed too: ${describeError(restoreFailure)}`,
        `restore by hand: git merge --quit; git checkout -f ${snapshot.branch}; git reset --hard ${snapshot.head}; ${Object.entries(snapshot.refs).map(([r, v]) => (v ? `git update-ref ${r} ${v}` : `git update-ref -d ${r}`)).join('; ')}`,
        { cause: failure });
    }
    if (failure instanceof ReleaseError) {
      throw new ReleaseError(`${failure.message}\n  the repository was restored: branch ${snapshot.branch} at ${snapshot.head.slice(0, 12)}, ${Object.keys(snapshot.refs).join(', ') || 'no refs'} and ${Object.keys(snapshot.files).join(', ')} as before`, failure.hint, { cause: failure });
    }
    throw failure;
  }
}
