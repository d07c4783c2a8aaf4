// isMaintenanceRelease against a real git repository: main with 2.90.0 and 2.91.0, release-2.90 branched at 2.90.0.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gitAt } from '../../lib/git/git.ts';
import { compareVersions, isMaintenanceRelease, latestTagReachable } from '../../lib/git/maintenance.ts';
import { requireTool } from '../helpers/tools.ts';

describe('compareVersions (Nix semantics)', () => {
  it('orders versions as builtins.compareVersions does', () => {
    requireTool('nix-instantiate', 'nix-bin');
    const cases: [string, string, number][] = [
      ['2.90.3', '2.91.0', -1], ['2.91.0', '2.9.9', 1], ['2.91.0', '2.91.0', 0], ['2.91', '2.91.0', -1],
      ['2.91.0pre20240101', '2.91.0', -1], ['2.3a', '2.3.1', -1], ['2.91.0-rc1', '2.91.0-rc2', -1],
    ];
    for (const [a, b, want] of cases) expect(compareVersions(a, b), `${a} vs ${b}`).toBe(want);
    // The same answers as Nix itself.
    const nix = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '--expr', `map (p: builtins.compareVersions (builtins.elemAt p 0) (builtins.elemAt p 1)) ${'[' + cases.map(([a, b]) => `["${a}" "${b}"]`).join(' ') + ']'}`], { encoding: 'utf8' }));
    expect(nix).toEqual(cases.map((c) => c[2]));
  });
});

describe('isMaintenanceRelease', () => {
  let dir: string;
  const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  const commit = (m: string) => git('commit', '-q', '--allow-empty', '-m', m);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-maint-'));
    git('init', '-q', '-b', 'main');
    git('config', 'user.name', 't'); git('config', 'user.email', 't@example.invalid');
    commit('a'); git('tag', '-a', '2.90.0', '-m', '2.90.0');
    git('branch', 'release-2.90');
    commit('b'); git('tag', '-a', '2.91.0', '-m', '2.91.0');
    commit('c');
    git('checkout', '-q', 'release-2.90');
    commit('fix'); git('tag', '-a', '2.90.1', '-m', '2.90.1');
  });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  it('a release on the maintenance branch is one (no latest)', async () => {
    git('checkout', '-q', '2.90.1');
    expect(await latestTagReachable(gitAt(dir), 'HEAD')).toBe('2.90.1');
    expect(await isMaintenanceRelease(gitAt(dir), '2.90.1', 'main')).toBe(true);
  });

  it('a release on main is not', async () => {
    git('checkout', '-q', 'main');
    commit('d'); git('tag', '-a', '2.92.0', '-m', '2.92.0');
    expect(await isMaintenanceRelease(gitAt(dir), '2.92.0', 'main')).toBe(false);
  });

  it('a branch ahead of main (next release cut before main is tagged) is not', async () => {
    git('checkout', '-q', '-b', 'release-2.93');
    commit('e');
    expect(await isMaintenanceRelease(gitAt(dir), '2.93.0', 'main')).toBe(false);
  });

  it('a stale local main does not hide a newer release on origin/main (Lix decides on origin/main)', async () => {
    git('checkout', '-q', '2.90.1');
    git('branch', 'stale', '2.90.0');
    expect(await isMaintenanceRelease(gitAt(dir), '2.90.1', 'stale')).toBe(false);
    git('update-ref', 'refs/remotes/origin/stale', 'main');
    expect(await isMaintenanceRelease(gitAt(dir), '2.90.1', 'stale')).toBe(true);
  });

  it('the newest version counts, not the nearest tag (git describe): a maintenance tag merged into main does not make main look older', async () => {
    // A maintenance branch with many backports, tagged 2.90.5, merged into main (e.g. to forward-port a fix).
    git('checkout', '-q', '-b', 'release-2.90-long', '2.90.1');
    for (let i = 0; i < 10; i++) commit(`backport ${i}`);
    git('tag', '-a', '2.90.5', '-m', '2.90.5');
    git('checkout', '-q', '-b', 'merged-main', 'main');
    git('merge', '-q', '--no-edit', '-s', 'ours', '2.90.5');
    // git describe, as Lix's latest_tag_on_branch, now names the nearer, older tag: Lix would let 2.90.6 take `latest`.
    expect(git('describe', '--abbrev=0', 'merged-main')).toBe('2.90.5');
    git('checkout', '-q', 'release-2.90-long');
    commit('another backport');
    expect(await isMaintenanceRelease(gitAt(dir), '2.90.6', 'merged-main')).toBe(true);
  });

  it('the main branch from origin counts when there is no local one; no main at all: not maintenance', async () => {
    git('checkout', '-q', '2.90.1');
    git('update-ref', 'refs/remotes/origin/trunk', 'main');
    expect(await isMaintenanceRelease(gitAt(dir), '2.90.1', 'trunk')).toBe(true);
    expect(await isMaintenanceRelease(gitAt(dir), '2.90.1', 'no-such-branch')).toBe(false);
  });
});
