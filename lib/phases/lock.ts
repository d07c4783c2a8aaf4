// lock: the bot that updates pinned inputs (flake.lock) and sends the update for review (issue 13).
// Nix updates the inputs in a temporary worktree of the main branch, so the user's checkout is never
// half-changed; the new flake.lock becomes a commit computed in memory (lib/git/objects.ts), whose
// id is known while planning. The writes (objects, branch releng/lock-DATE, the push) are a plan
// that apply.ts executes, so --dry-run prints the exact push and a re-run sees what is there.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Plan, Skip, Step } from '../actions/index.ts';
import { apply } from '../actions/index.ts';
import { environmentNamed } from '../config/config.ts';
import type { Context } from '../config/context.ts';
import { environmentName } from '../environment/open.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { requirePrograms } from '../core/exec.ts';
import { repoWriter, type RepoAction } from '../git/actions.ts';
import { gitAt, type Git } from '../git/git.ts';
import { fileCommitObjects, parseIdent, type ObjectReader } from '../git/objects.ts';
import { gitReader, gitWriter, resolveRemote, type GitPush, type GitReader, type GitWriter } from '../git/push.ts';
import { gitUrlOf, parseFlakeLock, registerLockCredentials, rootInputs, type FlakeLock } from '../lock/flake-lock.ts';
import { gitMirror, type Mirror } from '../lock/mirror.ts';
import { nixMessage, nixUpdater, updateArgs, updateStyleFor, type FlakeUpdater } from '../lock/nix.ts';
import { changeIdOf, commitMessage, diffLocks, locksDiffer, otherChangedNodes, type Failure, type InputChange } from '../lock/summary.ts';
import { redact } from '../core/secrets.ts';
import { requireIdentity } from '../git/git.ts';

/** The adapters lock uses (tests pass the real ones; another Nix could be injected). */
export interface LockDeps {
  nix: FlakeUpdater;
  mirror: Mirror;
  git: GitWriter;
  /** Today (for the branch name). */
  now: () => Date;
}

export const defaultLockDeps = (): LockDeps => ({ nix: nixUpdater, mirror: gitMirror(), git: gitWriter, now: () => new Date() });

/** What lock did (--json). */
export interface LockResult {
  status: 'updated' | 'nothing-to-update';
  dryRun: boolean;
  base: { branch: string; commit: string };
  inputs: InputChange[];
  /** The local branch and the commit on it (also when it already existed). */
  branch?: string;
  commit?: string;
  changeId?: string;
  message?: string;
  push?: { remote: string; refspec: string; status: 'pushed' | 'already-pushed' | 'planned' } | { status: 'not-requested' };
}

/** Lines of `git log` per input in the message. */
const logLines = 20;

/** The worktree Nix runs in: a detached checkout of `base`, removed afterwards whatever happens. */
async function withWorktree<T>(git: Git, base: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'releng-lock-'));
  const dir = path.join(tmp, 'worktree');
  await git.git(['worktree', 'add', '-q', '--detach', '--end-of-options', dir, base]);
  try {
    return await fn(dir);
  } finally {
    await git.tryGit(['worktree', 'remove', '--force', dir]);
    await rm(tmp, { recursive: true, force: true });
    await git.tryGit(['worktree', 'prune']);
  }
}

/** Runs Nix on the requested inputs: all at once, and one by one only if that fails, to name who failed. */
async function updateInputs(ctx: Context, deps: LockDeps, dir: string, inputs: string[], style: ReturnType<typeof updateStyleFor>): Promise<Failure[]> {
  const { log } = ctx;
  const phase = log.phase(`nix ${updateArgs(inputs, style).slice(2).join(' ')}`);
  try {
    await deps.nix.update(dir, inputs, style);
    phase.succeed();
    return [];
  } catch (e) {
    if (inputs.length === 1) { phase.fail(); return [{ input: inputs[0]!, message: redact(nixMessage(e)) }]; }
    phase.fail(`updating ${inputs.join(', ')} together failed; updating them one by one to find which input fails`);
  }
  const failures: Failure[] = [];
  for (const input of inputs) {
    const one = log.phase(`nix ${updateArgs([input], style).slice(2).join(' ')}`);
    try {
      await deps.nix.update(dir, [input], style);
      one.succeed();
    } catch (e) {
      one.fail();
      failures.push({ input, message: redact(nixMessage(e)) });
    }
  }
  return failures;
}

function objectReader(git: Git): ObjectReader {
  return {
    lsTree: (treeish) => git.git(['ls-tree', '-z', '--end-of-options', treeish]),
    async objectFormat() {
      const f = await git.tryGit(['rev-parse', '--show-object-format']);
      return f === 'sha256' ? 'sha256' : 'sha1';
    },
  };
}

/** The `lock` command. */
export async function lock(ctx: Context, positionals: string[], deps: LockDeps = defaultLockDeps()): Promise<LockResult> {
  const { log, flags, config } = ctx;
  await requirePrograms('git', 'nix');
  const push = !!flags.extra.push;
  const allOrNothing = !!flags.extra['all-or-nothing'];
  const date = (flags.extra.date as string | undefined) ?? deps.now().toISOString().slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new UsageError(`--date ${date}: expected YYYY-MM-DD`);

  // At the repository's top: `git ls-tree` in a subdirectory lists only that subdirectory.
  const top = await gitAt(ctx.root).topLevel();
  const git = gitAt(top);
  const flakeDir = path.relative(top, ctx.root).split(path.sep).join('/');
  const lockPath = flakeDir ? `${flakeDir}/flake.lock` : 'flake.lock';

  // The checkout must be clean: a bot's checkout with local edits is a checkout someone is using.
  const dirty = await git.dirtyFiles();
  if (dirty.length) {
    throw new ReleaseError(`the working tree has uncommitted changes:\n${dirty.slice(0, 20).map((l) => `  ${l}`).join('\n')}`,
      'commit or stash them first (lock works on a temporary worktree of the main branch, and refuses to run beside unfinished work)');
  }
  const mainBranch = config.mainBranch;
  const baseCommit = await git.commitOf(`refs/heads/${mainBranch}`);
  if (!baseCommit) {
    throw new ReleaseError(`the main branch ${mainBranch} (mainBranch in ${path.basename(ctx.loaded.file)}) does not exist in this repository`,
      `git fetch and check out ${mainBranch}, or set mainBranch to the branch updates are based on`);
  }
  const beforeText = await git.tryGit(['show', '--end-of-options', `${baseCommit}:${lockPath}`]);
  if (beforeText === undefined) {
    throw new ReleaseError(`${lockPath} is not committed on ${mainBranch}`, 'run `nix flake lock`, commit flake.lock, then run releng lock');
  }
  const before = parseFlakeLock(beforeText, `${lockPath} on ${mainBranch}`);
  registerLockCredentials(before);

  const declared = rootInputs(before);
  const updatable = declared.filter((i) => !i.follows).map((i) => i.name);
  for (const name of positionals) {
    const top = name.split('/')[0]!;
    const d = declared.find((i) => i.name === top);
    if (!d) throw new ReleaseError(`flake.lock has no input "${top}"`, `inputs: ${updatable.join(', ') || 'none'}`);
    if (d.follows && top === name) throw new ReleaseError(`input "${name}" follows ${d.follows.join('/')}: it is updated with that input`, `update ${d.follows[0]} instead`);
  }
  const requested = positionals.length ? [...new Set(positionals)] : updatable;
  if (requested.length === 0) throw new ReleaseError(`${lockPath} has no inputs to update`);

  // The environment's git settings: where --push goes, and whether commits carry a Gerrit Change-Id
  // (also without --push, so the commit is the same one a later --push sends).
  let target: { envName: string; remote: string; gerrit: boolean } | undefined;
  let gerrit = false;
  const envName = flags.environment ?? ('local' in config.environments ? 'local' : undefined);
  if (envName || push) {
    const name = envName ?? environmentName(ctx);
    const env = environmentNamed(ctx.loaded, name);
    gerrit = env.git?.gerrit ?? false;
    if (push) {
      if (!env.git) throw new ReleaseError(`environments.${name}.git is not set: --push needs the git remote to push to`, `add "git": { "remote": "URL" } (and "gerrit": true for Gerrit) to environments.${name} in releng.json`);
      const resolved = await resolveRemote(gitReader(git), name, env.git);
      // A relative path is relative to releng.json's directory; git itself would take it from the
      // repository's top (it runs there even when started in a subdirectory).
      target = { envName: name, remote: /^\.\.?\//.test(resolved) ? path.resolve(ctx.root, resolved) : resolved, gerrit };
    }
  }
  if (!flags.dryRun) await requireIdentity(git);

  const versionText = await deps.nix.version();
  const style = updateStyleFor(versionText);
  log.info(`${versionText}: updating ${requested.join(', ')} of ${lockPath} on ${mainBranch} (${baseCommit.slice(0, 12)})`);

  // Nix, in a worktree of the main branch.
  const { afterText, failures } = await withWorktree(git, baseCommit, async (wt) => {
    const failures = await updateInputs(ctx, deps, flakeDir ? path.join(wt, flakeDir) : wt, requested, style);
    return { afterText: await readFile(path.join(wt, lockPath), 'utf8'), failures };
  });
  const after = parseFlakeLock(afterText, `${lockPath} written by nix`);
  registerLockCredentials(after);
  for (const f of failures) {
    const c = diffLocks(before, after, requested, failures).find((x) => x.name === f.input.split('/')[0]);
    log.warn(`input ${f.input} (${c?.url ?? 'unknown URL'}) could not be updated:\n  ${f.message.split('\n').join('\n  ')}`);
  }
  if (failures.length && allOrNothing) {
    throw new ReleaseError(`${failures.length} of ${requested.length} inputs could not be updated (${failures.map((f) => f.input).join(', ')}); with --all-or-nothing nothing is committed`,
      'fix the input (its URL in flake.nix, access to it) or run without --all-or-nothing to update the others');
  }

  const inputs = diffLocks(before, after, requested, failures);
  const result: LockResult = { status: 'nothing-to-update', dryRun: flags.dryRun, base: { branch: mainBranch, commit: baseCommit }, inputs };
  if (!locksDiffer(before, after)) {
    if (failures.length) {
      throw new ReleaseError(`nothing was updated: ${failures.map((f) => f.input).join(', ')} could not be updated (see above)`,
        'fix the inputs named above (their URL in flake.nix, network, credentials) and run lock again');
    }
    log.info(`nothing to update: ${requested.join(', ')} ${requested.length === 1 ? 'is' : 'are'} already at the newest revision`);
    return result;
  }

  // What changed, with the commits of git inputs from the mirror.
  for (const c of inputs.filter((i) => i.status === 'updated')) {
    const url = gitUrlOf(rootInputs(after).find((i) => i.name === c.name)?.locked);
    if (!url || !c.old?.rev || !c.new?.rev || !/^[0-9a-f]{40,64}$/.test(c.old.rev)) continue;
    const phase = log.phase(`history of ${c.name}: git log ${c.old.rev.slice(0, 12)}..${c.new.rev.slice(0, 12)}`);
    const h = await deps.mirror.history(url, c.old.rev, c.new.rev, logLines);
    if ('unavailable' in h) { c.historyUnavailable = redact(h.unavailable); phase.fail(`history of ${c.name}: ${c.historyUnavailable}`); } else { c.commits = h; phase.succeed(`history of ${c.name}: ${h.count} commit${h.count === 1 ? '' : 's'}`); }
  }
  const changeId = gerrit ? changeIdOf(before, after) : undefined;
  // No credential of an input URL or of Nix's messages may reach the pushed commit message.
  const message = redact(commitMessage(inputs, { changeId, otherNodesChanged: otherChangedNodes(before, after) }));

  // The commit: flake.lock alone on the main branch's commit, dated by its content (the newest of
  // the main commit and the new inputs), so the same update on the same main is the same commit.
  const ident = parseIdent((await git.tryGit(['var', 'GIT_AUTHOR_IDENT'])) ?? 'releng <releng@localhost> 0 +0000');
  const baseTime = Number(await git.git(['show', '-s', '--format=%ct', '--end-of-options', baseCommit]));
  const newest = Math.max(baseTime, ...inputs.map((i) => i.new?.lastModified ?? 0));
  const objects = await fileCommitObjects(objectReader(git), { parent: baseCommit, path: lockPath, content: afterText, message, author: ident, date: newest });
  const commit = objects.at(-1)!.id;
  const branch = `releng/lock-${date}`;
  const branchRef = `refs/heads/${branch}`;
  Object.assign(result, { status: 'updated', branch, commit, changeId, message });

  const steps: Step[] = [];
  const skipped: Skip[] = [];
  const local: RepoAction[] = [];
  if (await git.tryGit(['cat-file', '-e', '--end-of-options', `${commit}^{commit}`]) === undefined) {
    local.push({ kind: 'git.objects', objects, commit, parent: baseCommit, path: lockPath });
  }
  const existing = await git.commitOf(branchRef);
  if (existing === commit) {
    skipped.push({ what: `branch ${branch}`, reason: `it is already at ${commit.slice(0, 12)}` });
  } else {
    if (existing && (await git.currentBranch()) === branch) {
      throw new ReleaseError(`${branch} is checked out here and is at ${existing.slice(0, 12)}, not at the new commit ${commit.slice(0, 12)}`, `check out ${mainBranch} (lock never moves the branch you are on)`);
    }
    local.push({ kind: 'git.update-ref', ref: branchRef, value: commit });
  }
  if (local.length) steps.push({ title: `commit ${lockPath} on ${branch}`, actions: local, concurrency: 1 });

  if (target) {
    const p = await planLockPush(gitReader(git), { ...target, cwd: top, commit, branch, mainBranch, baseCommit, log });
    if (p.step) steps.push(p.step); else skipped.push(p.skip!);
    result.push = { remote: target.remote, refspec: p.refspec, status: p.step ? (flags.dryRun ? 'planned' : 'pushed') : 'already-pushed' };
  } else {
    result.push = { status: 'not-requested' };
  }

  for (const l of message.trimEnd().split('\n')) log.info(`  ${l}`);
  const plan: Plan = { steps, skipped };
  await apply(plan, { log, dryRun: flags.dryRun, writers: { repo: repoWriter(top), git: deps.git }, resumeHint: 're-run `releng lock`: it computes the same commit and only does what is missing' });
  if (!flags.dryRun) log.info(`${branch} is at ${commit.slice(0, 12)}${target ? (result.push.status === 'pushed' ? `; pushed to ${target.remote}` : `; ${target.remote} already has it`) : '; pass --push to send it for review'}`);
  return result;
}

export interface LockPushInput {
  remote: string;
  gerrit: boolean;
  cwd: string;
  commit: string;
  branch: string;
  mainBranch: string;
  baseCommit: string;
  log: Context['log'];
}

/** The push of the lock commit: `refs/for/MAIN` on Gerrit, the branch elsewhere; nothing when the
 *  remote already has the commit (a change's patch set, or any releng/lock-* branch). */
export async function planLockPush(reader: GitReader, input: LockPushInput): Promise<{ refspec: string; step?: Step; skip?: Skip }> {
  const { remote, commit, gerrit, branch } = input;
  const branchRef = `refs/heads/${branch}`;
  const there = await reader.lsRemote(remote, gerrit ? ['refs/changes/*', `refs/heads/${input.mainBranch}`] : ['refs/heads/releng/lock-*', `refs/heads/${input.mainBranch}`]);
  const remoteMain = there.get(`refs/heads/${input.mainBranch}`);
  if (remoteMain && remoteMain !== input.baseCommit && !(await reader.isAncestor(remoteMain, input.baseCommit))) {
    input.log.warn(`${remote} has ${input.mainBranch} at ${remoteMain.slice(0, 12)}, which the local ${input.mainBranch} (${input.baseCommit.slice(0, 12)}) does not contain: the update is based on an older ${input.mainBranch} (git pull first)`);
  }
  const refspec = gerrit ? `${commit}:refs/for/${input.mainBranch}` : `${commit}:${branchRef}`;
  const holding = [...there].filter(([ref, id]) => id === commit && ref !== `refs/heads/${input.mainBranch}`).map(([ref]) => ref);
  if (holding.length) {
    return { refspec, skip: { what: `git push ${remote} ${refspec}`, reason: `the remote already has ${commit.slice(0, 12)} (${holding.join(', ')}): the same update was pushed before` } };
  }
  // Our own branch may hold an earlier commit (main moved, or an input moved again today): replace it,
  // but only if it is still what ls-remote saw.
  const action: GitPush = gerrit
    ? { kind: 'git.push', cwd: input.cwd, remote, refspecs: [refspec], atomic: false, gerrit: true }
    : { kind: 'git.push', cwd: input.cwd, remote, refspecs: [refspec], atomic: false, gerrit: false, forceWithLease: [`${branchRef}:${there.get(branchRef) ?? ''}`] };
  return { refspec, step: { title: `push to ${remote}`, actions: [action], concurrency: 1 } };
}
