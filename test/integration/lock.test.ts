// `releng lock` end to end with the real Nix (2.8 here) and git: local git+file:// inputs move, the
// CLI updates flake.lock on releng/lock-DATE and pushes it; git ls-remote, nix flake metadata and
// nix eval read the result back. A bare repository with a post-receive hook stands in for Gerrit.
import { execFileSync } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { releng } from '../helpers/cli.ts';
import { flakeProject, type FlakeProject } from '../helpers/flake-fixture.ts';

const date = '2026-11-27';
const branch = `releng/lock-${date}`;
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

describe('releng lock (branches)', () => {
  it('updates the inputs, commits flake.lock alone on releng/lock-DATE, pushes it; a second run pushes nothing', async () => {
    p = await flakeProject();
    const lockBefore = await readFile(path.join(p.dir, 'flake.lock'), 'utf8');
    const oldPlain = p.inputs.plain!.head();
    p.inputs.plain!.commit('plain 2', 'plain: second');
    const newPlain = p.inputs.plain!.commit('plain 3', 'plain: third');

    const r = await releng(['lock', '--push', '--json', '--date', date], { cwd: p.dir, env: p.env });
    expect(r.stderr).not.toMatch(/error:/);
    expect(r.code).toBe(0);
    const res = json(r.stdout).result;
    expect(res.status).toBe('updated');
    expect(res.branch).toBe(branch);
    const plain = res.inputs.find((i: any) => i.name === 'plain');
    expect(plain).toMatchObject({ status: 'updated', old: { rev: oldPlain }, new: { rev: newPlain }, url: p.inputs.plain!.url });
    expect(plain.commits).toMatchObject({ count: 2, fastForward: true });
    expect(plain.commits.log.map((l: string) => l.replace(/^\w+ /, ''))).toEqual(['plain: third', 'plain: second']);
    expect(res.inputs.filter((i: any) => i.status === 'unchanged').map((i: any) => i.name)).toEqual(['extra', 'lib']);
    expect(res.push).toMatchObject({ status: 'pushed', refspec: `${res.commit}:refs/heads/${branch}` });

    // The remote has the branch at the commit; the commit changes flake.lock alone, on main.
    expect(lsRemote(p.remote)).toContain(`${res.commit}\trefs/heads/${branch}`);
    expect(p.git('rev-parse', `${res.commit}^`)).toBe(p.git('rev-parse', 'main'));
    expect(p.git('diff', '--name-only', 'main', res.commit)).toBe('flake.lock');
    const message = p.git('log', '-1', '--format=%B', res.commit);
    expect(message).toContain(`• plain: ${oldPlain.slice(0, 12)} → ${newPlain.slice(0, 12)}`);
    expect(message).toContain('2 commits:');
    expect(message).toContain('Unchanged: extra, lib');
    expect(message).not.toContain('Change-Id');
    // The user's checkout is as it was: on main, clean, its flake.lock untouched, no worktree left.
    expect(p.git('symbolic-ref', '--short', 'HEAD')).toBe('main');
    expect(p.git('status', '--porcelain')).toBe('');
    expect(await readFile(path.join(p.dir, 'flake.lock'), 'utf8')).toBe(lockBefore);
    expect(p.git('worktree', 'list').split('\n')).toHaveLength(1);

    // Nix reads the pushed branch: the new revision, and the updated input's content.
    const clone = cloneAt(p, `refs/heads/${branch}`, 'check');
    const meta = JSON.parse(p.nix(['flake', 'metadata', '--json'], clone));
    expect(meta.locks.nodes.plain.locked.rev).toBe(newPlain);
    expect(p.nix(['eval', '--raw', '.#plainText'], clone)).toBe('plain 3');
    expect(p.nix(['eval', '--raw', '.#greeting'], clone)).toBe('lib 1');

    // Same update again: the same commit, already on the remote, so no push.
    const refsBefore = lsRemote(p.remote);
    const again = await releng(['lock', '--push', '--json', '--date', date], { cwd: p.dir, env: p.env });
    expect(again.code).toBe(0);
    expect(json(again.stdout).result).toMatchObject({ commit: res.commit, push: { status: 'already-pushed' } });
    expect(again.stderr).toMatch(/skip git push .*the remote already has/);
    expect(lsRemote(p.remote)).toBe(refsBefore);

    // Next day, same update: still the same commit (dated by its content), found on yesterday's branch.
    const nextDay = await releng(['lock', '--push', '--json', '--date', '2026-11-28'], { cwd: p.dir, env: p.env });
    expect(json(nextDay.stdout).result).toMatchObject({ commit: res.commit, push: { status: 'already-pushed' } });
    expect(lsRemote(p.remote)).toBe(refsBefore);

    // main moves: the same update on the new main is a new commit, replacing today's branch (with lease).
    await writeFile(path.join(p.dir, 'README'), 'hello\n');
    p.git('add', 'README');
    p.git('commit', '-q', '-m', 'README');
    p.git('push', '-q', 'origin', 'main');
    const rebased = await releng(['lock', '--push', '--json', '--verbose', '--date', date], { cwd: p.dir, env: p.env });
    expect(rebased.code).toBe(0);
    const res2 = json(rebased.stdout).result;
    expect(res2.commit).not.toBe(res.commit);
    expect(res2.push.status).toBe('pushed');
    expect(rebased.stderr).toContain(`--force-with-lease=refs/heads/${branch}:${res.commit}`);
    expect(lsRemote(p.remote)).toContain(`${res2.commit}\trefs/heads/${branch}`);
    expect(p.git('rev-parse', `${res2.commit}^`)).toBe(p.git('rev-parse', 'main'));

    // Merged: main has the update, so there is nothing to update and nothing is committed.
    p.git('merge', '-q', '--ff-only', branch);
    p.git('push', '-q', 'origin', 'main');
    const merged = await releng(['lock', '--push', '--json', '--date', '2026-11-29'], { cwd: p.dir, env: p.env });
    expect(merged.code).toBe(0);
    expect(merged.stderr).toContain('nothing to update');
    expect(json(merged.stdout).result.status).toBe('nothing-to-update');
    expect(p.git('branch', '--list', 'releng/lock-2026-11-29')).toBe('');
    expect(lsRemote(p.remote)).not.toContain('releng/lock-2026-11-29');
  });

  it('--dry-run prints the summary and the exact push, and writes nothing: no object, branch or remote ref', async () => {
    p = await flakeProject();
    p.inputs.lib!.commit('lib 2', 'lib: second');
    const refs = p.git('for-each-ref');
    const r = await releng(['lock', 'lib', '--push', '--dry-run', '--json', '--date', date], { cwd: p.dir, env: p.env });
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
    const real = await releng(['lock', 'lib', '--json', '--date', date], { cwd: p.dir, env: p.env });
    expect(json(real.stdout).result).toMatchObject({ commit: res.commit, push: { status: 'not-requested' } });
    expect(p.git('rev-parse', `refs/heads/${branch}`)).toBe(res.commit);
    p.git('fsck', '--no-dangling');
  });

  it('names an input that cannot be fetched (URL and Nix\'s message) and still updates the others; --all-or-nothing commits nothing (flake in a subdirectory)', async () => {
    p = await flakeProject({}, 'nix/flake');
    const newPlain = p.inputs.plain!.commit('plain 2', 'plain: second');
    p.inputs.extra!.commit('extra 2', 'extra: second');
    await rm(p.inputs.extra!.dir, { recursive: true, force: true });

    const strict = await releng(['lock', '--all-or-nothing', '--date', date], { cwd: p.dir, env: p.env });
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain(`input extra (${p.inputs.extra!.url}) could not be updated`);
    expect(strict.stderr).toMatch(/does not appear to be a git repository/);
    expect(strict.stderr).toContain('with --all-or-nothing nothing is committed');
    expect(p.git('branch', '--list', 'releng/*')).toBe('');

    const r = await releng(['lock', '--push', '--json', '--date', date], { cwd: p.dir, env: p.env });
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
    const only = await releng(['lock', 'extra', '--date', date], { cwd: p.dir, env: p.env });
    expect(only.code).toBe(1);
    expect(only.stderr).toContain('nothing was updated: extra could not be updated');
  });

  it('refuses a dirty checkout, an unknown input and a missing remote setting, changing nothing', async () => {
    p = await flakeProject({ nogit: {} });
    p.inputs.plain!.commit('plain 2', 'plain: second');
    const unknown = await releng(['lock', 'nixpkgs'], { cwd: p.dir, env: p.env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('flake.lock has no input "nixpkgs"');
    expect(unknown.stderr).toContain('inputs: extra, lib, plain');
    const noRemote = await releng(['lock', '--push', '--environment', 'nogit'], { cwd: p.dir, env: p.env });
    expect(noRemote.code).toBe(1);
    expect(noRemote.stderr).toContain('environments.nogit.git is not set');
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
    const r = await releng(['lock', '--push', '--environment', 'ci', '--json', '--verbose', '--date', date], { cwd: p.dir, env: p.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('https://releng-bot:***@127.0.0.1:1/project.git');
    expect(r.stdout + r.stderr).not.toContain(token);
  });
});

/** A bare repository standing in for Gerrit: a push to refs/for/BRANCH becomes a patch set ref
 *  refs/changes/N/COMMIT (the hook logs `commit ref Change-Id`), and refs/for/BRANCH never stays. */
async function gerritLike(project: FlakeProject): Promise<{ url: string; received(): string[][] }> {
  const repo = path.join(project.base, 'gerrit.git');
  const log = path.join(project.base, 'gerrit-received.log');
  execFileSync('git', ['clone', '-q', '--bare', project.remote, repo]);
  const hook = path.join(repo, 'hooks', 'post-receive');
  await writeFile(hook, `#!/bin/sh
while read old new ref; do
  case "$ref" in
    refs/for/*)
      cid=$(git log -1 --format='%(trailers:key=Change-Id,valueonly)' "$new" | head -n 1)
      echo "$new $ref $cid" >> '${log}'
      n=$(wc -l < '${log}')
      git update-ref "refs/changes/$n/$new" "$new"
      git update-ref -d "$ref"
      ;;
  esac
done
`);
  await chmod(hook, 0o755);
  return {
    url: repo,
    received: () => { try { return execFileSync('cat', [log], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map((l) => l.split(' ')); } catch { return []; } },
  };
}

describe('releng lock (Gerrit)', () => {
  it('pushes to refs/for/main with a Change-Id that stays the same for the same update; a re-run pushes nothing; a new main gives a new patch set', async () => {
    p = await flakeProject();
    const gerrit = await gerritLike(p);
    const cfgFile = path.join(p.dir, 'releng.json');
    const cfg = JSON.parse(await readFile(cfgFile, 'utf8'));
    cfg.environments.review = { ...cfg.environments.local, git: { remote: gerrit.url, gerrit: true } };
    await writeFile(cfgFile, JSON.stringify(cfg, null, 2) + '\n');
    p.git('commit', '-q', '-am', 'releng.json: review environment');
    p.git('push', '-q', gerrit.url, 'main');
    const newLib = p.inputs.lib!.commit('lib 2', 'lib: second');

    const r = await releng(['lock', '--push', '--environment', 'review', '--json', '--date', date], { cwd: p.dir, env: p.env });
    expect(r.stderr).not.toMatch(/error:/);
    expect(r.code).toBe(0);
    const res = json(r.stdout).result;
    expect(res.changeId).toMatch(/^I[0-9a-f]{40}$/);
    expect(res.push).toMatchObject({ status: 'pushed', refspec: `${res.commit}:refs/for/main` });
    expect(gerrit.received()).toEqual([[res.commit, 'refs/for/main', res.changeId]]);
    expect(lsRemote(gerrit.url)).toContain(`${res.commit}\trefs/changes/1/${res.commit}`);
    expect(p.git('log', '-1', '--format=%(trailers:key=Change-Id,valueonly)', res.commit)).toBe(res.changeId);
    const clone = cloneAt(p, `refs/changes/1/${res.commit}`, 'review-check', gerrit.url);
    expect(JSON.parse(p.nix(['flake', 'metadata', '--json'], clone)).locks.nodes.lib.locked.rev).toBe(newLib);
    expect(p.nix(['eval', '--raw', '.#greeting'], clone)).toBe('lib 2');

    // The same update again: the remote has the patch set, nothing is pushed.
    const again = await releng(['lock', '--push', '--environment', 'review', '--json', '--date', date], { cwd: p.dir, env: p.env });
    expect(again.code).toBe(0);
    expect(json(again.stdout).result).toMatchObject({ commit: res.commit, changeId: res.changeId, push: { status: 'already-pushed' } });
    expect(gerrit.received()).toHaveLength(1);

    // main moves (an unrelated commit): a new commit of the same update, the same Change-Id: a new patch set.
    await writeFile(path.join(p.dir, 'README'), 'hello\n');
    p.git('add', 'README');
    p.git('commit', '-q', '-m', 'README');
    p.git('push', '-q', gerrit.url, 'main');
    const moved = await releng(['lock', '--push', '--environment', 'review', '--json', '--date', date], { cwd: p.dir, env: p.env });
    expect(moved.code).toBe(0);
    const res2 = json(moved.stdout).result;
    expect(res2.commit).not.toBe(res.commit);
    expect(res2.changeId).toBe(res.changeId);
    expect(gerrit.received()).toEqual([[res.commit, 'refs/for/main', res.changeId], [res2.commit, 'refs/for/main', res.changeId]]);
  });
});
