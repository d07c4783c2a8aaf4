// `releng lock` end to end with the real Nix (2.8 here) and git: local git+file:// inputs move, the
// CLI updates flake.lock on the stream's branch (releng/lock) and pushes it to a plain remote or to
// the fake Gerrit (test/helpers/gerrit.ts). Every flake.lock it commits is compared byte for byte
// with what `nix flake lock --update-input` writes in a fresh clone (the oracle); git ls-remote,
// nix flake metadata and nix eval read the results back.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { releng } from '../helpers/cli.ts';
import { flakeProject, type FlakeProject } from '../helpers/flake-fixture.ts';
import { fakeGerrit, type FakeGerrit } from '../helpers/gerrit.ts';
import { contextIn } from '../helpers/in-process.ts';
import { requireTool } from '../helpers/tools.ts';
import { defaultLockDeps, lock } from '../../lib/phases/lock.ts';
import { gitWriter } from '../../lib/git/push.ts';

const branch = 'releng/lock';
const lsRemote = (remote: string) => execFileSync('git', ['ls-remote', remote], { encoding: 'utf8' });
const json = (stdout: string) => JSON.parse(stdout);

let p: FlakeProject | undefined;
afterEach(async () => { await p?.cleanup(); p = undefined; });

/** Checks out `ref` of `remote` into a fresh clone and returns its directory. */
function cloneAt(project: FlakeProject, ref: string, name: string, remote = project.remote): string {
  const dir = path.join(project.base, name);
  execFileSync('git', ['clone', '-q', remote, dir]);
  execFileSync('git', ['fetch', '-q', 'origin', ref], { cwd: dir });
  execFileSync('git', ['checkout', '-q', '--detach', 'FETCH_HEAD'], { cwd: dir });
  return dir;
}

let oracles = 0;
/** The oracle: in a fresh clone of `commit`'s parent (main), with `commit`'s flake.nix, what
 *  `nix flake lock --update-input INPUT...` writes. Returns [releng's flake.lock, Nix's]. */
async function oracle(project: FlakeProject, commit: string, inputs: string[]): Promise<[string, string]> {
  const dir = path.join(project.base, `oracle-${++oracles}`);
  execFileSync('git', ['clone', '-q', '--no-checkout', project.dir, dir]);
  execFileSync('git', ['checkout', '-q', '--detach', `${commit}^`], { cwd: dir });
  const flakeDir = path.join(dir, path.dirname(project.lockPath));
  await writeFile(path.join(flakeDir, 'flake.nix'), project.git('show', `${commit}:${path.posix.join(path.dirname(project.lockPath), 'flake.nix')}`) + '\n');
  project.nix(['flake', 'lock', ...inputs.flatMap((i) => ['--update-input', i])], flakeDir);
  const theirs = await readFile(path.join(flakeDir, 'flake.lock'), 'utf8');
  const ours = execFileSync('git', ['show', `${commit}:${project.lockPath}`], { cwd: project.dir, encoding: 'utf8' });
  return [ours, theirs];
}

/** A commit on main (something else than the lock), pushed to `remotes`. */
async function moveMain(project: FlakeProject, file: string, remotes: string[]): Promise<void> {
  await writeFile(path.join(project.dir, file), `${file}\n`);
  project.git('add', file);
  project.git('commit', '-q', '-m', `add ${file}`);
  for (const r of remotes) project.git('push', '-q', r, 'main');
}

/** Adds environments and a `lock` section to releng.json and commits it (on main, pushed to `remotes`). */
async function configure(project: FlakeProject, change: (cfg: any) => void, remotes: string[] = [project.remote]): Promise<void> {
  const file = path.join(project.dir, 'releng.json');
  const cfg = JSON.parse(await readFile(file, 'utf8'));
  change(cfg);
  await writeFile(file, JSON.stringify(cfg, null, 2) + '\n');
  project.git('commit', '-q', '-am', 'releng.json: lock settings');
  for (const r of remotes) project.git('push', '-q', r, 'main');
}

describe('releng lock (branches): one branch, kept current', () => {
  it('pushes releng/lock; re-runs do nothing; a new upstream or main replaces it with a lease on what releng pushed; merged, the next update starts from the new main', async () => {
    p = await flakeProject();
    await configure(p, (c) => { c.lock = { reviewers: ['alice@example.org'], cc: ['bob@example.org'], topic: 'flake-lock', hashtags: ['dependencies'] }; });
    const lockBefore = await readFile(path.join(p.dir, 'flake.lock'), 'utf8');
    const oldPlain = p.inputs.plain!.head();
    p.inputs.plain!.commit('plain 2', 'plain: second');
    const newPlain = p.inputs.plain!.commit('plain 3', 'plain: third');

    const r = await releng(['lock', '--push', '--json', '--verbose'], { cwd: p.dir, env: p.env });
    expect(r.stderr).not.toMatch(/error:/);
    expect(r.code).toBe(0);
    const res = json(r.stdout).result;
    expect(res).toMatchObject({ status: 'updated', branch, streams: [{ stream: 'all', branch, status: 'updated', commit: res.commit }] });
    const plain = res.inputs.find((i: any) => i.name === 'plain');
    expect(plain).toMatchObject({ status: 'updated', old: { rev: oldPlain }, new: { rev: newPlain }, url: p.inputs.plain!.url });
    expect(plain.commits).toMatchObject({ count: 2, fastForward: true });
    expect(plain.commits.log.map((l: string) => l.replace(/^\w+ /, ''))).toEqual(['plain: third', 'plain: second']);
    expect(res.inputs.filter((i: any) => i.status === 'unchanged').map((i: any) => i.name)).toEqual(['extra', 'lib']);
    expect(res.push).toMatchObject({ status: 'pushed', refspec: `${res.commit}:refs/heads/${branch}` });
    expect(r.stderr).toContain(`--force-with-lease=refs/heads/${branch}: `);

    // The remote has the branch at the commit; the commit changes flake.lock alone, on main; Nix agrees byte for byte.
    expect(lsRemote(p.remote)).toContain(`${res.commit}\trefs/heads/${branch}`);
    expect(p.git('rev-parse', `${res.commit}^`)).toBe(p.git('rev-parse', 'main'));
    expect(p.git('diff', '--name-only', 'main', res.commit)).toBe('flake.lock');
    const [ours, nix] = await oracle(p, res.commit, ['plain', 'lib', 'extra']);
    expect(ours).toBe(nix);
    const message = p.git('log', '-1', '--format=%B', res.commit);
    expect(message).toContain(`• plain: ${oldPlain.slice(0, 12)} → ${newPlain.slice(0, 12)}`);
    expect(message).toContain('2 commits:');
    expect(message).toContain('Unchanged: extra, lib');
    expect(message).not.toContain('Change-Id');
    // The review metadata as trailers, for the CI job that opens the pull request.
    expect(p.git('log', '-1', '--format=%(trailers:only,unfold)', res.commit)).toBe('Topic: flake-lock\nHashtag: dependencies\nReviewer: alice@example.org\nCc: bob@example.org');
    // The user's checkout is as it was: on main, clean, its flake.lock untouched, no worktree left.
    expect(p.git('symbolic-ref', '--short', 'HEAD')).toBe('main');
    expect(p.git('status', '--porcelain')).toBe('');
    expect(await readFile(path.join(p.dir, 'flake.lock'), 'utf8')).toBe(lockBefore);
    expect(p.git('worktree', 'list').split('\n')).toHaveLength(1);

    // Nix reads the pushed branch: the new revision, and the updated input's content.
    const clone = cloneAt(p, `refs/heads/${branch}`, 'check');
    expect(JSON.parse(p.nix(['flake', 'metadata', '--json'], clone)).locks.nodes.plain.locked.rev).toBe(newPlain);
    expect(p.nix(['eval', '--raw', '.#plainText'], clone)).toBe('plain 3');

    // The same update again (the same day, or any later day): the same commit, already there.
    const refsBefore = lsRemote(p.remote);
    const again = await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env });
    expect(again.code).toBe(0);
    expect(json(again.stdout).result).toMatchObject({ commit: res.commit, push: { status: 'already-pushed' } });
    expect(again.stderr).toMatch(/skip git push .*the remote already has/);
    expect(lsRemote(p.remote)).toBe(refsBefore);

    // Upstream moves again: the same branch, replaced, with a lease on the commit releng pushed.
    const newerPlain = p.inputs.plain!.commit('plain 4', 'plain: fourth');
    const moved = await releng(['lock', '--push', '--json', '--verbose'], { cwd: p.dir, env: p.env });
    expect(moved.code).toBe(0);
    const res2 = json(moved.stdout).result;
    expect(res2.branch).toBe(branch);
    expect(moved.stderr).toContain(`--force-with-lease=refs/heads/${branch}:${res.commit}`);
    expect(lsRemote(p.remote)).toContain(`${res2.commit}\trefs/heads/${branch}`);
    expect(lsRemote(p.remote).match(/refs\/heads\/releng\//g)).toHaveLength(1);
    expect(p.git('log', '-1', '--format=%B', res2.commit)).toContain(`• plain: ${oldPlain.slice(0, 12)} → ${newerPlain.slice(0, 12)}`);
    expect((await oracle(p, res2.commit, ['plain']))[0]).toBe((await oracle(p, res2.commit, ['plain']))[1]);

    // main moves (an unrelated commit): the same update on the new main, the same branch.
    await moveMain(p, 'README', [p.remote]);
    const rebased = await releng(['lock', '--push', '--json', '--verbose'], { cwd: p.dir, env: p.env });
    const res3 = json(rebased.stdout).result;
    expect(rebased.stderr).toContain(`--force-with-lease=refs/heads/${branch}:${res2.commit}`);
    expect(p.git('rev-parse', `${res3.commit}^`)).toBe(p.git('rev-parse', 'main'));
    expect(lsRemote(p.remote)).toContain(`${res3.commit}\trefs/heads/${branch}`);

    // Merged: main has the update, nothing to update, nothing pushed.
    p.git('merge', '-q', '--ff-only', branch);
    p.git('push', '-q', 'origin', 'main');
    const merged = await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env });
    expect(merged.code).toBe(0);
    expect(merged.stderr).toContain('nothing to update');
    expect(json(merged.stdout).result).toMatchObject({ status: 'nothing-to-update', streams: [{ status: 'nothing-to-update' }] });
    // The next update: from the new main, on the same branch (the merged commit is releng's: replaced).
    p.inputs.lib!.commit('lib 2', 'lib: second');
    const next = await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env });
    const res4 = json(next.stdout).result;
    expect(next.code).toBe(0);
    expect(p.git('rev-parse', `${res4.commit}^`)).toBe(p.git('rev-parse', 'main'));
    expect(p.git('log', '-1', '--format=%s', res4.commit)).toBe('flake.lock: update lib');
    expect(lsRemote(p.remote)).toContain(`${res4.commit}\trefs/heads/${branch}`);
    const [o4, n4] = await oracle(p, res4.commit, ['lib', 'plain', 'extra']);
    expect(o4).toBe(n4);
  });

  it('never replaces a commit someone else put on the branch: a fix on top, or an amend; and a lease lost to a push meanwhile fails naming the branch', async () => {
    p = await flakeProject();
    p.inputs.plain!.commit('plain 2', 'plain: second');
    const first = json((await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env })).stdout).result;
    // A reviewer adds a fix on the bot's branch.
    const work = cloneAt(p, `refs/heads/${branch}`, 'reviewer');
    await writeFile(path.join(work, 'FIX'), 'fix\n');
    const rg = (...args: string[]) => execFileSync('git', ['-c', 'user.name=Reviewer', '-c', 'user.email=r@example.invalid', ...args], { cwd: work, encoding: 'utf8' }).trim();
    rg('add', 'FIX');
    rg('commit', '-q', '-m', 'fix the build for plain 2');
    rg('push', '-q', 'origin', `HEAD:refs/heads/${branch}`);
    const fixed = rg('rev-parse', 'HEAD');
    p.inputs.plain!.commit('plain 3', 'plain: third');
    const r = await releng(['lock', '--push'], { cwd: p.dir, env: p.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${branch} on ${p.remote} is at ${fixed.slice(0, 12)}, which is not a commit releng made: its subject is "fix the build for plain 2"`);
    expect(r.stderr).toContain(`git push ${p.remote} --delete ${branch}`);
    expect(lsRemote(p.remote)).toContain(`${fixed}\trefs/heads/${branch}`);
    // An amend of releng's commit (its committer rewritten) is someone else's work too.
    rg('reset', '-q', '--hard', first.commit);
    rg('commit', '-q', '--amend', '--no-edit');
    rg('push', '-q', '--force', 'origin', `HEAD:refs/heads/${branch}`);
    const amended = await releng(['lock', '--push'], { cwd: p.dir, env: p.env });
    expect(amended.code).toBe(1);
    expect(amended.stderr).toMatch(/which is not a commit releng made: it was committed by Reviewer <r@example.invalid> after its author releng bot <bot@example.invalid> \(amended or rebased\)/);
    // Deleted: the next run starts the branch again.
    rg('push', '-q', 'origin', '--delete', branch);
    const restarted = await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env });
    expect(restarted.code).toBe(0);
    const res = json(restarted.stdout).result;
    expect(lsRemote(p.remote)).toContain(`${res.commit}\trefs/heads/${branch}`);

    // A push lands between planning and releng's push: the lease fails, the other push stays.
    p.inputs.plain!.commit('plain 4', 'plain: fourth');
    const lines: string[] = [];
    const ctx = await contextIn(p.dir, { extra: { push: true } }, (s) => lines.push(s), 'lock');
    const racing = {
      ...gitWriter,
      async push(cwd: string, remote: string, refspecs: string[], opts: any) {
        rg('fetch', '-q', 'origin', branch);
        rg('reset', '-q', '--hard', 'FETCH_HEAD');
        await writeFile(path.join(work, 'RACE'), 'race\n');
        rg('add', 'RACE');
        rg('commit', '-q', '-m', 'a push at the same time');
        rg('push', '-q', 'origin', `HEAD:refs/heads/${branch}`);
        return gitWriter.push(cwd, remote, refspecs, opts);
      },
    };
    const prev = process.env.RELENG_STATE_DIR;
    process.env.RELENG_STATE_DIR = p.env.RELENG_STATE_DIR;
    const err = await lock(ctx, [], { ...defaultLockDeps(), git: racing }).catch((e) => e).finally(() => { process.env.RELENG_STATE_DIR = prev; });
    expect(err.message).toContain(`another run (or person) updated refs/heads/${branch} at the same time`);
    expect(lsRemote(p.remote)).toContain(`${rg('rev-parse', 'HEAD')}\trefs/heads/${branch}`);
  });

  it('--dry-run prints the summary and the exact push, and writes nothing: no object, branch or remote ref', async () => {
    p = await flakeProject();
    p.inputs.lib!.commit('lib 2', 'lib: second');
    const refs = p.git('for-each-ref');
    const r = await releng(['lock', 'lib', '--push', '--dry-run', '--json'], { cwd: p.dir, env: p.env });
    expect(r.code).toBe(0);
    const res = json(r.stdout).result;
    expect(res).toMatchObject({ status: 'updated', dryRun: true, push: { status: 'planned' } });
    expect(r.stderr).toContain('flake.lock: update lib');
    expect(r.stderr).toContain(`[dry-run] git push --force-with-lease=refs/heads/${branch}: ${p.remote} ${res.commit}:refs/heads/${branch}`);
    expect(r.stderr).toContain(`[dry-run] git update-ref refs/heads/${branch} ${res.commit}`);
    expect(() => p!.git('cat-file', '-e', res.commit)).toThrow();
    expect(p.git('for-each-ref')).toBe(refs);
    expect(lsRemote(p.remote)).not.toContain('releng/');
    // The real run makes exactly the commit the dry run announced.
    const real = await releng(['lock', 'lib', '--json'], { cwd: p.dir, env: p.env });
    expect(json(real.stdout).result).toMatchObject({ commit: res.commit, push: { status: 'not-requested' } });
    expect(p.git('rev-parse', `refs/heads/${branch}`)).toBe(res.commit);
    p.git('fsck', '--no-dangling');
  });

  it('names an input that cannot be fetched (URL and Nix\'s message) and still updates the others; --all-or-nothing commits nothing (flake in a subdirectory)', async () => {
    p = await flakeProject({}, 'nix/flake');
    const newPlain = p.inputs.plain!.commit('plain 2', 'plain: second');
    p.inputs.extra!.commit('extra 2', 'extra: second');
    await rm(p.inputs.extra!.dir, { recursive: true, force: true });

    const strict = await releng(['lock', '--all-or-nothing'], { cwd: p.dir, env: p.env });
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain(`input extra (${p.inputs.extra!.url}) could not be updated`);
    expect(strict.stderr).toMatch(/does not appear to be a git repository/);
    expect(strict.stderr).toContain('with --all-or-nothing nothing is committed');
    expect(p.git('branch', '--list', 'releng/*')).toBe('');

    const r = await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env });
    expect(r.code).toBe(0);
    expect(lsRemote(p.remote)).toContain(`${json(r.stdout).result.commit}\trefs/heads/${branch}`);
    expect(r.stderr).toContain(`input extra (${p.inputs.extra!.url}) could not be updated`);
    const res = json(r.stdout).result;
    expect(res.inputs.find((i: any) => i.name === 'extra')).toMatchObject({ status: 'failed', url: p.inputs.extra!.url, error: expect.stringMatching(/does not appear to be a git repository/) });
    expect(res.inputs.find((i: any) => i.name === 'plain')).toMatchObject({ status: 'updated', new: { rev: newPlain } });
    const message = p.git('log', '-1', '--format=%B', branch);
    expect(message).toContain(`• extra (${p.inputs.extra!.url}): fatal: '${p.inputs.extra!.dir}' does not appear to be a git repository`);
    const lock = JSON.parse(p.git('show', `${branch}:${p.lockPath}`));
    expect(lock.nodes.plain.locked.rev).toBe(newPlain);
    expect(p.git('diff', '--name-only', 'main', branch)).toBe('nix/flake/flake.lock');
    expect(p.git('ls-tree', '-r', '--name-only', '--full-tree', branch)).toBe(p.git('ls-tree', '-r', '--name-only', '--full-tree', 'main'));

    // Only the failing input asked for: nothing updated is a failure, naming it.
    const only = await releng(['lock', 'extra'], { cwd: p.dir, env: p.env });
    expect(only.code).toBe(1);
    expect(only.stderr).toContain('nothing was updated: extra could not be updated');
  });

  it('refuses a dirty checkout, an unknown input, a missing remote setting and bad lock settings, changing nothing', async () => {
    p = await flakeProject({ nogit: {} });
    p.inputs.plain!.commit('plain 2', 'plain: second');
    const unknown = await releng(['lock', 'nixpkgs'], { cwd: p.dir, env: p.env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('flake.lock has no input "nixpkgs"');
    expect(unknown.stderr).toContain('inputs: extra, lib, plain');
    const noRemote = await releng(['lock', '--push', '--environment', 'nogit'], { cwd: p.dir, env: p.env });
    expect(noRemote.code).toBe(1);
    expect(noRemote.stderr).toContain('environments.nogit.git is not set');
    // lock settings: a ref bump of an input without a ref, a pattern without a version, a bad branch name.
    await configure(p, (c) => { c.lock = { refBumps: { plain: 'v(\\d+)' } }; });
    const noRef = await releng(['lock'], { cwd: p.dir, env: p.env });
    expect(noRef.code).toBe(1);
    expect(noRef.stderr).toContain(`lock.refBumps.plain in releng.json: input plain (${p.inputs.plain!.dir.replace(/^/, 'file://')}) has no ref in flake.nix to move`);
    await configure(p, (c) => { c.lock = { refBumps: { plain: 'v\\d+' }, branch: 'releng/..lock' }; });
    const bad = await releng(['lock'], { cwd: p.dir, env: p.env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('lock.branch');
    expect(bad.stderr).toContain('"releng/..lock" is not a valid git branch name');
    expect(bad.stderr).toContain('lock.refBumps.plain');
    expect(bad.stderr).toContain('needs a capture group for the version');
    await configure(p, (c) => { delete c.lock; });
    await writeFile(path.join(p.dir, 'flake.nix'), (await readFile(path.join(p.dir, 'flake.nix'), 'utf8')) + '\n');
    const dirty = await releng(['lock'], { cwd: p.dir, env: p.env });
    expect(dirty.code).toBe(1);
    expect(dirty.stderr).toContain('the working tree has uncommitted changes');
    expect(dirty.stderr).toContain('flake.nix');
    expect(p.git('branch', '--list', 'releng/*')).toBe('');
  });

  it('keeps a token in the remote URL out of every line it prints', async () => {
    const token = 'ghp_s3cr3tT0kenValue';
    p = await flakeProject({ ci: { git: { remote: `https://releng-bot:${token}@127.0.0.1:1/project.git`, gerrit: false } } });
    p.inputs.plain!.commit('plain 2', 'plain: second');
    const r = await releng(['lock', '--push', '--environment', 'ci', '--json', '--verbose'], { cwd: p.dir, env: p.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('https://releng-bot:***@127.0.0.1:1/project.git');
    expect(r.stdout + r.stderr).not.toContain(token);
  });
});

/** The project with an environment `review` pushing to a fake Gerrit cloned from its remote. */
async function withGerrit(project: FlakeProject, lockSettings: Record<string, unknown> = {}): Promise<FakeGerrit> {
  const dir = path.join(project.base, 'gerrit.git');
  execFileSync('git', ['clone', '-q', '--bare', project.remote, dir]);
  const gerrit = await fakeGerrit(dir);
  gerrit.defineLabel('Verified', ['-1 Fails', ' 0 No score', '+1 Verified']);
  // The test's user owns the project: it may push main directly (releng.json, unrelated commits).
  gerrit.git('config', 'gerrit.allowDirectPush', 'true');
  await configure(project, (c) => {
    c.environments.review = { ...c.environments.local, git: { remote: dir, gerrit: true } };
    c.lock = lockSettings;
  }, [project.remote, dir]);
  return gerrit;
}

describe('releng lock (Gerrit): one change, kept current', () => {
  it('uploads refs/for/main with push options; new upstream and new main are new patch sets of the same change; merged, the next update is a new change', async () => {
    p = await flakeProject();
    const gerrit = await withGerrit(p, { topic: 'flake-lock', hashtags: ['dependencies'], reviewers: ['alice@example.org'], cc: ['bob@example.org'], labels: ['Verified+1'] });
    const run = async () => {
      const r = await releng(['lock', '--push', '--environment', 'review', '--json', '--verbose'], { cwd: p!.dir, env: p!.env });
      expect(r.stderr).not.toMatch(/error:/);
      expect(r.code).toBe(0);
      return { ...json(r.stdout).result, stderr: r.stderr };
    };
    const newLib = p.inputs.lib!.commit('lib 2', 'lib: second');
    const r1 = await run();
    expect(r1.changeId).toMatch(/^I[0-9a-f]{40}$/);
    expect(r1.push).toMatchObject({ status: 'pushed', refspec: `${r1.commit}:refs/for/main` });
    expect(r1.stderr).toContain(`git push -o topic=flake-lock -o hashtag=dependencies -o r=alice@example.org -o cc=bob@example.org -o l=Verified+1 ${gerrit.dir} ${r1.commit}:refs/for/main`);
    expect(gerrit.changes()).toEqual([{
      number: 1, changeId: r1.changeId, branch: 'main', status: 'NEW', patchSets: 1, current: r1.commit, topic: 'flake-lock',
      reviewers: ['alice@example.org'], cc: ['bob@example.org'], hashtags: ['dependencies'], labels: ['Verified+1'],
    }]);
    expect(p.git('log', '-1', '--format=%(trailers:only,unfold)', r1.commit)).toBe(`Change-Id: ${r1.changeId}`);
    const clone = cloneAt(p, 'refs/changes/01/1/1', 'review-check', gerrit.dir);
    expect(JSON.parse(p.nix(['flake', 'metadata', '--json'], clone)).locks.nodes.lib.locked.rev).toBe(newLib);
    expect(p.nix(['eval', '--raw', '.#greeting'], clone)).toBe('lib 2');
    const [o1, n1] = await oracle(p, r1.commit, ['lib', 'plain', 'extra']);
    expect(o1).toBe(n1);

    // The same update again: Gerrit has the patch set, nothing is uploaded.
    const again = await run();
    expect(again).toMatchObject({ commit: r1.commit, changeId: r1.changeId, push: { status: 'already-pushed' } });
    expect(await gerrit.uploads()).toHaveLength(1);

    // An input moves again: a new patch set of the same change.
    p.inputs.plain!.commit('plain 2', 'plain: second');
    const r2 = await run();
    expect(r2.changeId).toBe(r1.changeId);
    expect(gerrit.changes().map((c) => [c.number, c.patchSets, c.current])).toEqual([[1, 2, r2.commit]]);
    expect(p.git('log', '-1', '--format=%s', r2.commit)).toBe('flake.lock: update lib, plain');
    const [o2, n2] = await oracle(p, r2.commit, ['lib', 'plain', 'extra']);
    expect(o2).toBe(n2);

    // main moves (an unrelated commit): the same update on it, patch set 3 of the same change.
    await moveMain(p, 'README', [p.remote, gerrit.dir]);
    const r3 = await run();
    expect(r3.changeId).toBe(r1.changeId);
    expect(p.git('rev-parse', `${r3.commit}^`)).toBe(p.git('rev-parse', 'main'));
    expect(gerrit.changes().map((c) => [c.number, c.patchSets, c.current])).toEqual([[1, 3, r3.commit]]);

    // Submitted: main has the update, the change is merged; nothing to update.
    gerrit.submit(1);
    expect(gerrit.changes()[0]!.status).toBe('MERGED');
    p.git('pull', '-q', '--ff-only', gerrit.dir, 'main');
    const merged = await run();
    expect(merged.status).toBe('nothing-to-update');
    // The next update opens change 2; the merged change would have refused it ("change 1 closed").
    p.inputs.extra!.commit('extra 2', 'extra: second');
    const r4 = await run();
    expect(r4.changeId).not.toBe(r1.changeId);
    expect(gerrit.changes().map((c) => [c.number, c.status, c.patchSets])).toEqual([[1, 'MERGED', 3], [2, 'NEW', 1]]);
    expect((await gerrit.uploads()).map((u) => [u.change, u.patchSet])).toEqual([[1, 1], [1, 2], [1, 3], [2, 1]]);
    const [o4, n4] = await oracle(p, r4.commit, ['extra']);
    expect(o4).toBe(n4);

    // Abandoned by a reviewer: the next upload to it is refused, and releng says what to do.
    gerrit.abandon(2);
    p.inputs.extra!.commit('extra 3', 'extra: third');
    const refused = await releng(['lock', '--push', '--environment', 'review'], { cwd: p.dir, env: p.env });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('change 2 with this Change-Id is closed (merged or abandoned)');
    expect(refused.stderr).toContain('restore the change in Gerrit');
  });

  it('a vote Gerrit does not allow is refused with Gerrit\'s message, and nothing is uploaded', async () => {
    p = await flakeProject();
    const gerrit = await withGerrit(p, { labels: ['Verified+2'] });
    p.inputs.lib!.commit('lib 2', 'lib: second');
    const r = await releng(['lock', '--push', '--environment', 'review'], { cwd: p.dir, env: p.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('label "Verified": 2 is not a valid value');
    expect(gerrit.changes()).toEqual([]);
  });
});

describe('releng lock: inputs of inputs', () => {
  it('lists alpha/gamma by path with its revisions, dates and commits, never the node key gamma_2; the lock is Nix\'s', async () => {
    p = await flakeProject({}, '', { nested: true });
    const before = JSON.parse(await readFile(path.join(p.dir, 'flake.lock'), 'utf8'));
    expect(Object.keys(before.nodes)).toEqual(expect.arrayContaining(['gamma', 'gamma_2']));
    const oldGamma = p.inputs.gamma!.head();
    // gamma moves; alpha's maintainers update alpha's lock to it.
    const newGamma = p.inputs.gamma!.commit('gamma 2', 'gamma: second');
    const alphaDir = p.inputs.alpha!.dir;
    p.nix(['flake', 'lock', '--update-input', 'gamma'], alphaDir);
    p.inputs.alpha!.git('commit', '-q', '-am', 'alpha: update gamma');
    const newAlpha = p.inputs.alpha!.head();

    const r = await releng(['lock', 'alpha', '--json'], { cwd: p.dir, env: p.env });
    expect(r.code).toBe(0);
    const res = json(r.stdout).result;
    expect(res.inputs.filter((i: any) => i.status !== 'not-requested').map((i: any) => [i.name, i.status])).toEqual([['alpha', 'updated'], ['alpha/gamma', 'updated']]);
    const nested = res.inputs.find((i: any) => i.name === 'alpha/gamma');
    expect(nested).toMatchObject({ url: p.inputs.gamma!.url, old: { rev: oldGamma }, new: { rev: newGamma }, commits: { count: 1, log: [expect.stringMatching(/ gamma: second$/)] } });
    const message = p.git('log', '-1', '--format=%B', res.commit);
    expect(message.split('\n')[0]).toBe('flake.lock: update alpha');
    expect(message).toContain(`• alpha/gamma: ${oldGamma.slice(0, 12)} → ${newGamma.slice(0, 12)} (`);
    expect(message).toMatch(/• alpha\/gamma: \w{12} → \w{12} \(\d{4}-\d\d-\d\d → \d{4}-\d\d-\d\d\)\n {4}git\+file:\/\/.*\n {4}1 commit:\n {6}\w+ gamma: second/);
    expect(message).not.toContain('gamma_2');
    expect(message).not.toContain('inputs of inputs');
    const [ours, nix] = await oracle(p, res.commit, ['alpha']);
    expect(ours).toBe(nix);
    expect(JSON.parse(ours).nodes.alpha.locked.rev).toBe(newAlpha);
    // Nix itself prints the same path for the same change.
    const clone = cloneAt(p, 'refs/heads/main', 'nix-says');
    const said = execFileSync('sh', ['-c', 'nix flake lock --update-input alpha 2>&1'], { cwd: clone, encoding: 'utf8' });
    expect(said).toContain(`• Updated input 'alpha/gamma':`);
    expect(said).toContain(`rev=${oldGamma}`);
  });
});

describe('releng lock --per-input: one review per input', () => {
  it('keeps releng/lock-INPUT per input on branches, and one Gerrit change per input across merges of the others', async () => {
    p = await flakeProject();
    const gerrit = await withGerrit(p, { topic: 'flake-lock' });
    p.inputs.plain!.commit('plain 2', 'plain: second');
    p.inputs.lib!.commit('lib 2', 'lib: second');

    // Branches.
    const r = await releng(['lock', '--per-input', '--push', '--json'], { cwd: p.dir, env: p.env });
    expect(r.code).toBe(0);
    const res = json(r.stdout).result;
    expect(res.streams.map((s: any) => [s.stream, s.branch, s.status])).toEqual([
      ['extra', 'releng/lock-extra', 'nothing-to-update'], ['lib', 'releng/lock-lib', 'updated'], ['plain', 'releng/lock-plain', 'updated'],
    ]);
    expect(res.branch).toBeUndefined();
    expect(res.inputs.map((i: any) => [i.name, i.status])).toEqual([['extra', 'unchanged'], ['lib', 'updated'], ['plain', 'updated']]);
    const [lib1, plain1] = [res.streams[1], res.streams[2]];
    for (const [s, input] of [[lib1, 'lib'], [plain1, 'plain']] as const) {
      expect(lsRemote(p.remote)).toContain(`${s.commit}\trefs/heads/releng/lock-${input}`);
      expect(p.git('log', '-1', '--format=%s', s.commit)).toBe(`flake.lock: update ${input}`);
      const [ours, nix] = await oracle(p, s.commit, [input]);
      expect(ours).toBe(nix);
    }
    expect(lsRemote(p.remote)).not.toContain('releng/lock-extra');
    // plain moves again: only its branch changes.
    p.inputs.plain!.commit('plain 3', 'plain: third');
    const r2 = json((await releng(['lock', '--per-input', '--push', '--json'], { cwd: p.dir, env: p.env })).stdout).result;
    expect(r2.streams[1]).toMatchObject({ commit: lib1.commit, push: { status: 'already-pushed' } });
    expect(r2.streams[2].commit).not.toBe(plain1.commit);
    expect(lsRemote(p.remote)).toContain(`${r2.streams[2].commit}\trefs/heads/releng/lock-plain`);

    // Gerrit: one change per input.
    const g = async () => {
      const out = await releng(['lock', '--per-input', '--push', '--environment', 'review', '--json'], { cwd: p!.dir, env: p!.env });
      expect(out.code).toBe(0);
      return json(out.stdout).result.streams as any[];
    };
    const s1 = await g();
    const ids = Object.fromEntries(s1.filter((s) => s.status === 'updated').map((s) => [s.stream, s.changeId]));
    expect(Object.keys(ids)).toEqual(['lib', 'plain']);
    expect(ids.lib).not.toBe(ids.plain);
    const libChange = gerrit.changes().find((c) => c.changeId === ids.lib)!;
    const plainChange = gerrit.changes().find((c) => c.changeId === ids.plain)!;
    expect(gerrit.changes()).toHaveLength(2);
    // lib's change is merged; plain moves again: a new patch set of plain's open change, rebased on the new main.
    gerrit.submit(libChange.number);
    p.git('pull', '-q', '--ff-only', gerrit.dir, 'main');
    p.inputs.plain!.commit('plain 4', 'plain: fourth');
    const s2 = await g();
    expect(s2.find((s) => s.stream === 'lib').status).toBe('nothing-to-update');
    const plain2 = s2.find((s) => s.stream === 'plain');
    expect(plain2.changeId).toBe(ids.plain);
    expect(p.git('rev-parse', `${plain2.commit}^`)).toBe(p.git('rev-parse', 'main'));
    expect(gerrit.changes().find((c) => c.number === plainChange.number)).toMatchObject({ status: 'NEW', patchSets: 2, current: plain2.commit, topic: 'flake-lock' });
    // lib moves again after its merge: a new change for lib.
    p.inputs.lib!.commit('lib 3', 'lib: third');
    const s3 = await g();
    expect(s3.find((s) => s.stream === 'lib').changeId).not.toBe(ids.lib);
    const named = (id: string) => (id === ids.lib ? 'lib' : id === ids.plain ? 'plain' : 'lib, next');
    expect(gerrit.changes().map((c) => [named(c.changeId), c.status, c.patchSets])).toEqual([['lib', 'MERGED', 1], ['plain', 'NEW', 2], ['lib, next', 'NEW', 1]]);
    const [ours, nix] = await oracle(p, s3.find((s) => s.stream === 'lib').commit, ['lib']);
    expect(ours).toBe(nix);
  });
});

describe('releng lock: opt-in ref bumps', () => {
  it('moves channel from nixos-25.05 to nixos-25.11 once it exists, flake.nix with flake.lock; never an input not opted in', async () => {
    p = await flakeProject({}, '', { refBump: true });
    await configure(p, (c) => { c.lock = { refBumps: { channel: 'nixos-(\\d\\d)\\.(\\d\\d)' } }; });
    const ch = p.inputs.channel!;
    // Only older and unrelated refs exist: nothing to bump, nothing to update.
    const none = await releng(['lock', '--json'], { cwd: p.dir, env: p.env });
    expect(none.code).toBe(0);
    expect(json(none.stdout).result.status).toBe('nothing-to-update');
    // nixos-25.11 (and nixos-25.11-small, which the pattern does not match) appear.
    ch.git('checkout', '-q', '-b', 'nixos-25.11');
    const newRev = ch.commit('channel 25.11', 'channel: 25.11');
    ch.git('branch', 'nixos-25.11-small');
    ch.git('checkout', '-q', '-b', 'nixos-26.05-small');
    ch.commit('channel small', 'channel: small');
    const r = await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('ref bump: channel nixos-25.05 → nixos-25.11');
    const res = json(r.stdout).result;
    expect(res.inputs.find((i: any) => i.name === 'channel')).toMatchObject({ status: 'updated', ref: { old: 'nixos-25.05', new: 'nixos-25.11' }, new: { rev: newRev } });
    expect(p.git('diff', '--name-only', 'main', res.commit).split('\n')).toEqual(['flake.lock', 'flake.nix']);
    const nix = p.git('show', `${res.commit}:flake.nix`);
    expect(nix).toContain(`inputs.channel = { url = "${ch.url}?ref=nixos-25.11"; flake = false; };`);
    // `stable` pins the same repository at the same ref, and is not opted in: it stays.
    expect(nix).toContain(`inputs.stable = { url = "${ch.url}?ref=nixos-25.05"; flake = false; };`);
    const lock = JSON.parse(p.git('show', `${res.commit}:flake.lock`));
    expect(lock.nodes.channel.original.ref).toBe('nixos-25.11');
    expect(lock.nodes.stable.original.ref).toBe('nixos-25.05');
    const message = p.git('log', '-1', '--format=%B', res.commit);
    expect(message.split('\n')[0]).toBe('flake.lock: update channel (channel → nixos-25.11)');
    expect(message).toContain('    ref nixos-25.05 → nixos-25.11 (the newest of lock.refBumps.channel; flake.nix changed with it)');
    const [ours, theirs] = await oracle(p, res.commit, ['channel']);
    expect(ours).toBe(theirs);
    const clone = cloneAt(p, `refs/heads/${branch}`, 'bumped');
    expect(p.nix(['eval', '--raw', '.#channelText'], clone)).toBe('channel 25.11');
    // Re-run: the same commit, already pushed.
    const again = json((await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env })).stdout).result;
    expect(again).toMatchObject({ commit: res.commit, push: { status: 'already-pushed' } });
  });
});

describe('releng lock: signed commits', () => {
  it('signs with the SSH key of lock.signing: git verify-commit accepts the pushed commit, and the same update is the same signed commit', async () => {
    requireTool('ssh-keygen', 'openssh-client');
    p = await flakeProject();
    const key = path.join(p.base, 'bot-key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'lock-bot', '-f', key]);
    await configure(p, (c) => { c.lock = { signing: { format: 'ssh', key } }; });
    p.inputs.plain!.commit('plain 2', 'plain: second');
    const r = await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env });
    expect(r.code).toBe(0);
    const res = json(r.stdout).result;
    const clone = cloneAt(p, `refs/heads/${branch}`, 'verify');
    await writeFile(path.join(p.base, 'allowed'), `bot@example.invalid ${await readFile(`${key}.pub`, 'utf8')}`);
    execFileSync('git', ['-c', `gpg.ssh.allowedSignersFile=${path.join(p.base, 'allowed')}`, 'verify-commit', res.commit], { cwd: clone, stdio: ['ignore', 'pipe', 'pipe'] });
    expect(execFileSync('git', ['-c', `gpg.ssh.allowedSignersFile=${path.join(p.base, 'allowed')}`, 'log', '-1', '--format=%G?', res.commit], { cwd: clone, encoding: 'utf8' }).trim()).toBe('G');
    const again = json((await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env })).stdout).result;
    expect(again).toMatchObject({ commit: res.commit, push: { status: 'already-pushed' } });
    // A key that is not there: an error naming the setting, nothing written.
    await configure(p, (c) => { c.lock = { signing: { format: 'ssh', key: path.join(p!.base, 'missing-key') } }; });
    p.inputs.plain!.commit('plain 3', 'plain: third');
    const refsBefore = lsRemote(p.remote);
    const bad = await releng(['lock', '--push'], { cwd: p.dir, env: p.env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`cannot sign the commit with the SSH key ${path.join(p.base, 'missing-key')} (lock.signing in releng.json)`);
    expect(lsRemote(p.remote)).toBe(refsBefore);
  });

  it('signs with an OpenPGP key; a re-run (also from a fresh clone, also on Gerrit) reuses the commit it signed instead of a new signature', async () => {
    requireTool('gpg', 'gnupg');
    p = await flakeProject();
    const home = await mkdtemp(path.join(os.tmpdir(), 'releng-gpg-'));
    try {
      execFileSync('gpg', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'lock bot <bot@example.invalid>', 'ed25519', 'sign', 'never'], { stdio: 'ignore' });
      const gerrit = await withGerrit(p, { signing: { format: 'openpgp', key: 'bot@example.invalid', gnupgHome: home } });
      p.inputs.plain!.commit('plain 2', 'plain: second');
      const r = await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env });
      expect(r.code).toBe(0);
      const res = json(r.stdout).result;
      execFileSync('git', ['verify-commit', res.commit], { cwd: p.dir, env: { ...process.env, GNUPGHOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
      expect(execFileSync('git', ['log', '-1', '--format=%G? %GS', res.commit], { cwd: p.dir, encoding: 'utf8', env: { ...process.env, GNUPGHOME: home } }).trim()).toBe('G lock bot <bot@example.invalid>');
      // Same update, same repository: the local branch's signed commit, not a new one.
      const again = json((await releng(['lock', '--push', '--json'], { cwd: p.dir, env: p.env })).stdout).result;
      expect(again).toMatchObject({ commit: res.commit, push: { status: 'already-pushed' } });
      // Same update, a fresh clone (a CI job): the remote branch's commit is the same update, signed before.
      const fresh = path.join(p.base, 'fresh');
      execFileSync('git', ['clone', '-q', p.remote, fresh]);
      execFileSync('git', ['config', 'user.name', 'releng bot'], { cwd: fresh });
      execFileSync('git', ['config', 'user.email', 'bot@example.invalid'], { cwd: fresh });
      const fromFresh = await releng(['lock', '--push', '--json'], { cwd: fresh, env: p.env });
      expect(fromFresh.code).toBe(0);
      expect(json(fromFresh.stdout).result).toMatchObject({ commit: res.commit, push: { status: 'already-pushed' } });
      expect(fromFresh.stderr).toContain('the same update, signed by an earlier run');
      // Gerrit: uploaded once; the fresh clone's new signature is "no changes made", not a patch set.
      const g1 = await releng(['lock', '--push', '--environment', 'review', '--json'], { cwd: p.dir, env: p.env });
      expect(g1.code).toBe(0);
      // An OpenPGP signature holds its creation second and EdDSA is deterministic: signed in the
      // same second as g1's, the fresh clone's commit would be g1's commit, byte for byte, and the
      // push skipped before Gerrit sees it. Let the clock tick so this run takes Gerrit's path.
      await untilNextSecond();
      const g2 = await releng(['lock', '--push', '--environment', 'review', '--json'], { cwd: fresh, env: p.env });
      expect(g2.code).toBe(0);
      expect(g2.stderr).toContain('no changes made');
      expect(gerrit.changes().map((c) => c.patchSets)).toEqual([1]);
    } finally {
      execFileSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
      await rm(home, { recursive: true, force: true });
    }
  });
});

/** Resolves just after the wall clock's second changes. */
async function untilNextSecond(): Promise<void> {
  const now = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 1000 - (now % 1000) + 20));
}
