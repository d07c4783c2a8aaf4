// lock: the bot that updates pinned inputs (flake.lock) and keeps one review of the update current
// (issues 13, 29). An update stream is all the inputs together (branch `releng/lock`), or with
// --per-input one per input (`releng/lock-INPUT`). For each stream, Nix updates the inputs in a
// temporary worktree of the main branch, so the user's checkout is never half-changed; the new
// flake.lock (and flake.nix, when an opted-in input's ref moves) becomes a commit computed in
// memory (lib/git/objects.ts), whose id is known while planning. The writes (objects, the stream's
// branch, the push) are a plan that apply.ts executes, so --dry-run prints the exact push and a
// re-run sees what is there.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Plan, Skip, Step } from '../actions/index.ts';
import { apply } from '../actions/index.ts';
import { environmentNamed } from '../config/config.ts';
import type { Context } from '../config/context.ts';
import type { LockSettings } from '../config/lock.ts';
import { environmentName } from '../environment/open.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { requirePrograms } from '../core/exec.ts';
import { repoWriter, type RepoAction } from '../git/actions.ts';
import { gitAt, type Git } from '../git/git.ts';
import { fileCommitObjects, parseIdent, unsignedCommit, type GitObject, type ObjectReader } from '../git/objects.ts';
import { gitReader, gitWriter, resolveRemote, type GitWriter } from '../git/push.ts';
import { signPayload, type SigningKey } from '../git/sign.ts';
import { gpgAgentRunning, stopGpgAgent } from '../index/apt.ts';
import { allInputs, gitUrlOf, parseFlakeLock, pinsOf, registerLockCredentials, rootInputs, type FlakeLock } from '../lock/flake-lock.ts';
import { gitMirror, type Mirror } from '../lock/mirror.ts';
import { nixMessage, nixUpdater, updateArgs, updateStyleFor, type FlakeUpdater } from '../lock/nix.ts';
import { planStreamPush, type LockRemoteReader } from '../lock/push.ts';
import { bumpRefInFlakeNix, newerRef, refNames, refPattern, refVersion } from '../lock/ref-bump.ts';
import { changeIdOf, commitMessage, comparePaths, diffLocks, locksDiffer, type Failure, type InputChange } from '../lock/summary.ts';
import { redact } from '../core/secrets.ts';
import { requireIdentity } from '../git/git.ts';

/** The adapters lock uses (tests pass the real ones; another Nix could be injected). */
export interface LockDeps {
  nix: FlakeUpdater;
  mirror: Mirror;
  git: GitWriter;
}

export const defaultLockDeps = (): LockDeps => ({ nix: nixUpdater, mirror: gitMirror(), git: gitWriter });

type PushResult = { remote: string; refspec: string; status: 'pushed' | 'already-pushed' | 'planned' } | { status: 'not-requested' };

/** One update stream: its review (branch or Gerrit change) and what it updated. */
export interface StreamResult {
  /** `all` (every input together), or the input path with --per-input. */
  stream: string;
  branch: string;
  status: 'updated' | 'nothing-to-update' | 'failed';
  inputs: InputChange[];
  commit?: string;
  changeId?: string;
  message?: string;
  push?: PushResult;
}

/** What lock did (--json). */
export interface LockResult {
  status: 'updated' | 'nothing-to-update';
  dryRun: boolean;
  base: { branch: string; commit: string };
  /** Every input of the flake, and each changed input of an input by its path. */
  inputs: InputChange[];
  streams: StreamResult[];
  /** Without --per-input, the one stream's branch, commit, Change-Id, message and push (also here). */
  branch?: string;
  commit?: string;
  changeId?: string;
  message?: string;
  push?: PushResult;
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

/** The remote reads of a stream's push over the local repository (fetches write no ref). */
function lockRemoteReader(git: Git): LockRemoteReader {
  const reader = gitReader(git);
  return {
    lsRemote: (remote, patterns) => reader.lsRemote(remote, patterns),
    isAncestor: (a, d) => reader.isAncestor(a, d),
    commitObject: async (id) => (await git.tryGit(['cat-file', '-e', `${id}^{commit}`])) === undefined ? undefined : (await git.git(['cat-file', 'commit', id])) + '\n',
    async fetch(remote, ref) {
      await git.git(['fetch', '-q', '--no-tags', '--refmap=', '--no-write-fetch-head', '--end-of-options', remote, ref]);
    },
    async changedPaths(id) {
      return (await git.git(['diff-tree', '--no-commit-id', '--name-only', '-r', `${id}^`, id])).split('\n').filter(Boolean);
    },
  };
}

/** A stream: the inputs it updates, and the root inputs whose pins name its Gerrit change. */
interface Stream { name: string; branch: string; inputs: string[]; covers: string[] }

/** A ref bump planned for an input: flake.nix moves `input` from `old` to `new`. */
interface RefBump { input: string; old: string; new: string }

/** Review metadata as trailers (branches; on Gerrit the same settings are push options). */
export function reviewTrailers(s: LockSettings): Array<[string, string]> {
  return [
    ...(s.topic ? [['Topic', s.topic] as [string, string]] : []),
    ...s.hashtags.map((h): [string, string] => ['Hashtag', h]),
    ...s.reviewers.map((r): [string, string] => ['Reviewer', r]),
    ...s.cc.map((c): [string, string] => ['Cc', c]),
  ];
}

/** Review metadata as Gerrit push options (user-upload.html#push_options). */
export function gerritPushOptions(s: LockSettings): string[] {
  return [
    ...(s.topic ? [`topic=${s.topic}`] : []),
    ...s.hashtags.map((h) => `hashtag=${h}`),
    ...s.reviewers.map((r) => `r=${r}`),
    ...s.cc.map((c) => `cc=${c}`),
    ...s.labels.map((l) => `l=${l}`),
  ];
}

/** The `lock` command. */
export async function lock(ctx: Context, positionals: string[], deps: LockDeps = defaultLockDeps()): Promise<LockResult> {
  const { log, flags, config } = ctx;
  await requirePrograms('git', 'nix');
  const settings = config.lock;
  const configName = path.basename(ctx.loaded.file);
  const push = !!flags.extra.push;
  const allOrNothing = !!flags.extra['all-or-nothing'];
  const perInput = !!flags.extra['per-input'];

  // At the repository's top: `git ls-tree` in a subdirectory lists only that subdirectory.
  const top = await gitAt(ctx.root).topLevel();
  const git = gitAt(top);
  const flakeDir = path.relative(top, ctx.root).split(path.sep).join('/');
  const lockPath = flakeDir ? `${flakeDir}/flake.lock` : 'flake.lock';
  const nixPath = flakeDir ? `${flakeDir}/flake.nix` : 'flake.nix';

  // The checkout must be clean: a bot's checkout with local edits is a checkout someone is using.
  const dirty = await git.dirtyFiles();
  if (dirty.length) {
    throw new ReleaseError(`the working tree has uncommitted changes:\n${dirty.slice(0, 20).map((l) => `  ${l}`).join('\n')}`,
      'commit or stash them first (lock works on a temporary worktree of the main branch, and refuses to run beside unfinished work)');
  }
  const mainBranch = config.mainBranch;
  const baseCommit = await git.commitOf(`refs/heads/${mainBranch}`);
  if (!baseCommit) {
    throw new ReleaseError(`the main branch ${mainBranch} (mainBranch in ${configName}) does not exist in this repository`,
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
    const first = name.split('/')[0]!;
    const d = declared.find((i) => i.name === first);
    if (!d) throw new ReleaseError(`flake.lock has no input "${first}"`, `inputs: ${updatable.join(', ') || 'none'}`);
    if (d.follows && first === name) throw new ReleaseError(`input "${name}" follows ${d.follows.join('/')}: it is updated with that input`, `update ${d.follows[0]} instead`);
  }
  const requested = positionals.length ? [...new Set(positionals)] : updatable;
  if (requested.length === 0) throw new ReleaseError(`${lockPath} has no inputs to update`);

  // Ref bumps: only inputs named in lock.refBumps, checked against flake.lock before Nix runs.
  const bumpRules = new Map<string, RegExp>();
  for (const [input, source] of Object.entries(settings.refBumps)) {
    const field = `lock.refBumps.${input} in ${configName}`;
    const d = declared.find((i) => i.name === input);
    if (!d) throw new ReleaseError(`${field}: ${lockPath} has no input "${input}"`, `inputs: ${updatable.join(', ') || 'none'}; remove or rename the entry`);
    if (d.follows) throw new ReleaseError(`${field}: input "${input}" follows ${d.follows.join('/')}: bump the input it follows`);
    const ref = d.original?.ref;
    if (typeof ref !== 'string') throw new ReleaseError(`${field}: input ${input} (${redact(String(d.original?.url ?? d.original?.type))}) has no ref in flake.nix to move`, `pin a ref in its URL (e.g. github:NixOS/nixpkgs/nixos-25.05), or remove ${field}`);
    const re = refPattern(source);
    if (!refVersion(re, ref)) throw new ReleaseError(`${field}: the pattern ${JSON.stringify(source)} does not match input ${input}'s ref ${ref}`, 'the pattern must match the whole ref name (its capture groups are the version)');
    if (!gitUrlOf(d.locked)) throw new ReleaseError(`${field}: input ${input} is not a git repository (${d.locked?.type}): its refs cannot be listed`);
    bumpRules.set(input, re);
  }

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
  let signing: SigningKey | undefined;
  if (settings.signing) {
    const s = settings.signing;
    signing = s.format === 'ssh' ? { format: 'ssh', key: path.resolve(ctx.root, s.key) }
      : { format: 'openpgp', key: s.key, ...(s.gnupgHome ? { gnupgHome: path.resolve(ctx.root, s.gnupgHome) } : {}) };
    const signer = s.format === 'ssh' ? 'ssh-keygen' : 'gpg';
    await requirePrograms(signer);
  }

  const streams: Stream[] = perInput
    ? requested.map((i) => ({ name: i, branch: settings.inputBranch.replace('{input}', i.replace(/\//g, '.')), inputs: [i], covers: [i.split('/')[0]!] }))
    : [{ name: 'all', branch: settings.branch, inputs: requested, covers: updatable }];
  for (const s of streams) {
    const clash = streams.find((o) => o !== s && o.branch === s.branch);
    if (clash) throw new ReleaseError(`inputs ${s.name} and ${clash.name} have the same branch ${s.branch} (lock.inputBranch in ${configName})`, 'name both inputs once, or make lock.inputBranch tell them apart');
  }

  const versionText = await deps.nix.version();
  const style = updateStyleFor(versionText);
  log.info(`${versionText}: updating ${requested.join(', ')} of ${lockPath} on ${mainBranch} (${baseCommit.slice(0, 12)})${perInput ? `, one review per input` : ''}`);

  // Nix, in a worktree of the main branch: each stream from main's flake.nix and flake.lock.
  const runs = await withWorktree(git, baseCommit, async (wt) => {
    const out: Array<{ afterText: string; nixText?: string; failures: Failure[]; bumps: RefBump[] }> = [];
    const flakeWt = flakeDir ? path.join(wt, flakeDir) : wt;
    for (const s of streams) {
      if (out.length) await git.git(['-C', wt, 'checkout', '-q', baseCommit, '--', lockPath, nixPath]);
      const bumps = await bumpRefs(ctx, deps, s, declared, bumpRules, path.join(wt, nixPath), nixPath);
      const failures = await updateInputs(ctx, deps, flakeWt, s.inputs, style);
      out.push({
        afterText: await readFile(path.join(wt, lockPath), 'utf8'),
        ...(bumps.length ? { nixText: await readFile(path.join(wt, nixPath), 'utf8') } : {}),
        failures,
        bumps,
      });
    }
    return out;
  });

  const allFailures = runs.flatMap((r) => r.failures);
  const afters = runs.map((r, i) => {
    const after = parseFlakeLock(r.afterText, `${lockPath} written by nix`);
    registerLockCredentials(after);
    for (const f of r.failures) {
      const c = diffLocks(before, after, streams[i]!.inputs, r.failures).find((x) => x.name === f.input.split('/')[0]);
      log.warn(`input ${f.input} (${c?.url ?? 'unknown URL'}) could not be updated:\n  ${f.message.split('\n').join('\n  ')}`);
    }
    for (const b of r.bumps) {
      const ref = rootInputs(after).find((x) => x.name === b.input)?.original?.ref;
      if (ref !== b.new && !r.failures.some((f) => f.input.split('/')[0] === b.input)) {
        throw new ReleaseError(`after moving input ${b.input} to ref ${b.new} in ${nixPath}, Nix locked it with ref ${String(ref)}`, `check ${nixPath}: the input's URL must hold its ref; or remove lock.refBumps.${b.input}`);
      }
    }
    return after;
  });
  if (allFailures.length && allOrNothing) {
    throw new ReleaseError(`${allFailures.length} of ${requested.length} inputs could not be updated (${allFailures.map((f) => f.input).join(', ')}); with --all-or-nothing nothing is committed`,
      'fix the input (its URL in flake.nix, access to it) or run without --all-or-nothing to update the others');
  }

  const ident = parseIdent((await git.tryGit(['var', 'GIT_AUTHOR_IDENT'])) ?? 'releng <releng@localhost> 0 +0000');
  const baseTime = Number(await git.git(['show', '-s', '--format=%ct', baseCommit]));
  const reader = lockRemoteReader(git);
  const steps: Step[] = [];
  const skipped: Skip[] = [];
  const results: StreamResult[] = [];
  // gpg starts an agent for the key; one this run started is stopped at the end (lib/index/apt.ts).
  const gnupgHome = signing?.format === 'openpgp' ? signing.gnupgHome : undefined;
  const agentBefore = signing?.format === 'openpgp' ? await gpgAgentRunning(gnupgHome) : true;
  try {
    for (const [i, s] of streams.entries()) {
      const run = runs[i]!;
      const after = afters[i]!;
      const inputs = diffLocks(before, after, s.inputs, run.failures);
      for (const b of run.bumps) {
        const c = inputs.find((x) => x.name === b.input);
        if (c) c.ref = { old: b.old, new: b.new };
      }
      const result: StreamResult = { stream: s.name, branch: s.branch, status: 'nothing-to-update', inputs };
      results.push(result);
      if (!locksDiffer(before, after) && !run.nixText) {
        if (run.failures.length) result.status = 'failed';
        else log.info(`nothing to update${perInput ? ` in ${s.name}` : ''}: ${s.inputs.join(', ')} ${s.inputs.length === 1 ? 'is' : 'are'} already at the newest revision`);
        continue;
      }

      // What changed, with the commits of git inputs (and of inputs of inputs) from the mirror.
      const byPath = new Map([...rootInputs(after).map((x) => [x.name, x.locked] as const)]);
      for (const [p, e] of allInputs(after)) if (!byPath.has(p)) byPath.set(p, e.locked);
      for (const c of inputs.filter((x) => x.status === 'updated')) {
        const url = gitUrlOf(byPath.get(c.name));
        if (!url || !c.old?.rev || !c.new?.rev || !/^[0-9a-f]{40,64}$/.test(c.old.rev)) continue;
        const phase = log.phase(`history of ${c.name}: git log ${c.old.rev.slice(0, 12)}..${c.new.rev.slice(0, 12)}`);
        const h = await deps.mirror.history(url, c.old.rev, c.new.rev, logLines);
        if ('unavailable' in h) { c.historyUnavailable = redact(h.unavailable); phase.fail(`history of ${c.name}: ${c.historyUnavailable}`); } else { c.commits = h; phase.succeed(`history of ${c.name}: ${h.count} commit${h.count === 1 ? '' : 's'}`); }
      }
      const changeId = gerrit ? changeIdOf(s.branch, mainBranch, pinsOf(before, s.covers)) : undefined;
      // No credential of an input URL or of Nix's messages may reach the pushed commit message.
      const message = redact(commitMessage(inputs, { changeId, trailers: gerrit ? [] : reviewTrailers(settings) }));

      // The commit: the lock files alone on the main branch's commit, dated by its content (the
      // newest of the main commit and the new inputs), so the same update on the same main is the same commit.
      const newest = Math.max(baseTime, ...inputs.map((x) => x.new?.lastModified ?? 0));
      const spec = {
        parent: baseCommit, path: lockPath, content: run.afterText, message, author: ident, date: newest,
        ...(run.nixText !== undefined ? { also: [{ path: nixPath, content: run.nixText }] } : {}),
      };
      let objects: GitObject[] = await fileCommitObjects(objectReader(git), spec);
      const unsigned = Buffer.from(objects.at(-1)!.data, 'base64').toString();
      const branchRef = `refs/heads/${s.branch}`;
      const existing = await git.commitOf(branchRef);
      let commit = objects.at(-1)!.id;
      if (signing) {
        // The same update signed by an earlier run (its branch here holds it): that commit, not a new signature.
        const raw = existing ? await reader.commitObject(existing) : undefined;
        if (existing && raw !== undefined && unsignedCommit(raw) === unsigned) {
          commit = existing;
          objects = [];
        } else {
          const key = signing;
          objects = await fileCommitObjects(objectReader(git), { ...spec, sign: (payload) => signPayload(key, payload, `lock.signing in ${configName}`) });
          commit = objects.at(-1)!.id;
        }
      }

      let pushStep: Step | undefined;
      if (target) {
        const p = await planStreamPush(reader, {
          ...target, cwd: top, commit, unsigned, branch: s.branch, mainBranch, baseCommit, lockFiles: [lockPath, nixPath],
          pushOptions: gerrit ? gerritPushOptions(settings) : [], log,
        });
        if (p.reuse) { commit = p.reuse; objects = []; }
        if (p.step) pushStep = p.step; else skipped.push(p.skip!);
        result.push = { remote: target.remote, refspec: p.refspec, status: p.step ? (flags.dryRun ? 'planned' : 'pushed') : 'already-pushed' };
      } else {
        result.push = { status: 'not-requested' };
      }
      Object.assign(result, { status: 'updated', commit, changeId, message });

      const local: RepoAction[] = [];
      if (objects.length && await git.tryGit(['cat-file', '-e', `${commit}^{commit}`]) === undefined) {
        local.push({ kind: 'git.objects', objects, commit, parent: baseCommit, path: run.nixText !== undefined ? `${lockPath}, ${nixPath}` : lockPath });
      }
      if (existing === commit) {
        skipped.push({ what: `branch ${s.branch}`, reason: `it is already at ${commit.slice(0, 12)}` });
      } else {
        if (existing && (await git.currentBranch()) === s.branch) {
          throw new ReleaseError(`${s.branch} is checked out here and is at ${existing.slice(0, 12)}, not at the new commit ${commit.slice(0, 12)}`, `check out ${mainBranch} (lock never moves the branch you are on)`);
        }
        local.push({ kind: 'git.update-ref', ref: branchRef, value: commit });
      }
      if (local.length) steps.push({ title: `commit ${lockPath} on ${s.branch}`, actions: local, concurrency: 1 });
      if (pushStep) steps.push(pushStep);
      if (perInput) log.info(`${s.name} (${s.branch}):`);
      for (const l of message.trimEnd().split('\n')) log.info(`  ${l}`);
    }
  } finally {
    if (!agentBefore) await stopGpgAgent(gnupgHome);
  }

  const updated = results.filter((r) => r.status === 'updated');
  if (updated.length === 0 && allFailures.length) {
    throw new ReleaseError(`nothing was updated: ${allFailures.map((f) => f.input).join(', ')} could not be updated (see above)`,
      'fix the inputs named above (their URL in flake.nix, network, credentials) and run lock again');
  }
  const result: LockResult = {
    status: updated.length ? 'updated' : 'nothing-to-update',
    dryRun: flags.dryRun,
    base: { branch: mainBranch, commit: baseCommit },
    inputs: perInput ? mergeInputs(diffLocks(before, before, requested, []), results) : results[0]!.inputs,
    streams: results,
  };
  if (!perInput) {
    const r = results[0]!;
    if (r.status === 'updated') Object.assign(result, { branch: r.branch, commit: r.commit, changeId: r.changeId, message: r.message, push: r.push });
  }
  if (updated.length === 0) return result;

  const plan: Plan = { steps, skipped };
  await apply(plan, { log, dryRun: flags.dryRun, writers: { repo: repoWriter(top), git: deps.git }, resumeHint: 're-run `releng lock`: it computes the same commit and only does what is missing' });
  if (!flags.dryRun) {
    for (const r of updated) {
      const pushed = r.push && 'remote' in r.push ? (r.push.status === 'pushed' ? `; pushed to ${r.push.remote}` : `; ${r.push.remote} already has it`) : '; pass --push to send it for review';
      log.info(`${r.branch} is at ${r.commit!.slice(0, 12)}${pushed}`);
    }
  }
  return result;
}

/** --per-input: each input's entries from its own stream, the others (follows, not requested) as main has them. */
function mergeInputs(unchanged: InputChange[], streams: StreamResult[]): InputChange[] {
  const out = new Map(unchanged.map((c) => [c.name, c]));
  for (const s of streams) {
    const first = s.stream.split('/')[0]!;
    for (const c of s.inputs) if (c.name === first || c.name.startsWith(`${first}/`)) out.set(c.name, c);
  }
  return [...out.values()].sort((a, b) => comparePaths(a.name, b.name));
}

/** Moves opted-in inputs of `s` to the newest ref of their pattern, editing flake.nix in the worktree. */
async function bumpRefs(ctx: Context, deps: LockDeps, s: Stream, declared: ReturnType<typeof rootInputs>, rules: Map<string, RegExp>, nixFile: string, nixPath: string): Promise<RefBump[]> {
  const bumps: RefBump[] = [];
  for (const input of s.inputs) {
    const re = rules.get(input);
    if (!re) continue;
    const d = declared.find((x) => x.name === input)!;
    const oldRef = String(d.original!.ref);
    const url = gitUrlOf(d.locked)!;
    let refs: string[];
    try {
      refs = refNames(await deps.mirror.refs(url));
    } catch (e) {
      ctx.log.warn(`ref bump of ${input}: cannot list the refs of ${redact(url)}, so it stays on ${oldRef}: ${redact((e as Error).message.split('\n').slice(-1)[0]!)}`);
      continue;
    }
    const newer = newerRef(re, oldRef, refs);
    if (!newer) { ctx.log.debug(`ref bump of ${input}: ${oldRef} is the newest ref matching lock.refBumps.${input}`); continue; }
    const text = await readFile(nixFile, 'utf8');
    await writeFile(nixFile, bumpRefInFlakeNix(text, nixPath, input, d.original!, oldRef, newer));
    ctx.log.info(`ref bump: ${input} ${oldRef} → ${newer} (the newest ref on its remote matching lock.refBumps.${input})`);
    bumps.push({ input, old: oldRef, new: newer });
  }
  return bumps;
}
