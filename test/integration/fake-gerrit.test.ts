// The fake Gerrit (test/fixtures/gerrit-hooks, test/helpers/gerrit.ts) against Gerrit's documentation,
// with plain `git push` and no releng: the tests of `releng lock` and the release push are only
// as good as this stand-in, so what it does is checked on its own, rule by rule.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fakeGerrit, type FakeGerrit } from '../helpers/gerrit.ts';

const cid = (n: number) => `I${String(n).repeat(40).slice(0, 40)}`;

describe('the fake Gerrit (Gerrit\'s receive rules, from its documentation)', () => {
  let base: string;
  let gerrit: FakeGerrit;
  let work: string;
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=Dev', '-c', 'user.email=dev@example.invalid', ...args], { cwd: work, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  /** `git push`; the error's stderr when refused. */
  const push = (...args: string[]): string => {
    try { git('push', ...args); return ''; } catch (e: any) { return String(e.stderr); }
  };
  const commit = async (file: string, text: string, message: string) => {
    await writeFile(path.join(work, file), text);
    git('add', file);
    git('commit', '-q', '-m', message);
    return git('rev-parse', 'HEAD');
  };

  beforeEach(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'releng-fake-gerrit-'));
    work = path.join(base, 'work');
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', path.join(base, 'gerrit.git')]);
    execFileSync('git', ['init', '-q', '-b', 'main', work]);
    await commit('a', '1', 'initial');
    git('push', '-q', path.join(base, 'gerrit.git'), 'main');
    gerrit = await fakeGerrit(path.join(base, 'gerrit.git'));
    git('remote', 'add', 'gerrit', gerrit.dir);
  });
  afterEach(async () => { await rm(base, { recursive: true, force: true }); });

  it('a Change-Id makes a change, the next commit with it a patch set; options from % and -o are recorded', async () => {
    gerrit.defineLabel('Verified', ['-1 Fails', ' 0 No score', '+1 Verified']);
    const c1 = await commit('a', '2', `two\n\nChange-Id: ${cid(1)}`);
    expect(push('-q', 'gerrit', 'HEAD:refs/for/main%topic=deps,r=alice@example.invalid,hashtag=lock')).toBe('');
    git('reset', '-q', '--hard', 'HEAD^');
    const c2 = await commit('a', '3', `three\n\nChange-Id: ${cid(1)}`);
    expect(push('-q', '-o', 'cc=bob@example.invalid', '-o', 'l=Verified+1', '-o', 'hashtag=lock', 'gerrit', 'HEAD:refs/for/main')).toBe('');
    expect(gerrit.changes()).toEqual([{
      number: 1, changeId: cid(1), branch: 'main', status: 'NEW', patchSets: 2, current: c2, topic: 'deps',
      reviewers: ['alice@example.invalid'], cc: ['bob@example.invalid'], hashtags: ['lock'], labels: ['Verified+1'],
    }]);
    const refs = gerrit.git('for-each-ref', '--format=%(objectname) %(refname)');
    expect(refs).toContain(`${c1} refs/changes/01/1/1`);
    expect(refs).toContain(`${c2} refs/changes/01/1/2`);
    expect(refs).not.toContain('refs/for/');
    // Another Change-Id: another change.
    const c3 = await commit('b', '1', `bee\n\nChange-Id: ${cid(2)}`);
    expect(push('-q', 'gerrit', 'HEAD:refs/for/main')).toBe('');
    expect(gerrit.changes().map((c) => [c.number, c.changeId, c.current])).toEqual([[1, cid(1), c2], [2, cid(2), c3]]);
    expect((await gerrit.uploads()).map((u) => [u.change, u.patchSet])).toEqual([[1, 1], [1, 2], [2, 1]]);
  });

  it('refuses what Gerrit refuses: no Change-Id, a known commit, an identical patch set, a closed change, bad labels and options, no branch', async () => {
    gerrit.defineLabel('Verified', ['-1 Fails', ' 0 No score', '+1 Verified']);
    await commit('a', '2', 'no footer');
    expect(push('gerrit', 'HEAD:refs/for/main')).toMatch(/commit [0-9a-f]{7,}: missing Change-Id in message footer/);
    git('commit', '-q', '--amend', '-m', 'bad\n\nChange-Id: Ideadbeef');
    expect(push('gerrit', 'HEAD:refs/for/main')).toContain('invalid Change-Id line format in commit message footer');
    git('commit', '-q', '--amend', '-m', `two\n\nChange-Id: ${cid(1)}`);
    expect(push('gerrit', 'HEAD:refs/for/nope')).toContain('branch nope not found');
    expect(push('gerrit', 'HEAD:refs/for/main%l=Code-Review+2')).toContain('label "Code-Review" is not a configured label');
    expect(push('gerrit', 'HEAD:refs/for/main%l=Verified+2')).toContain('label "Verified": 2 is not a valid value');
    expect(push('gerrit', 'HEAD:refs/for/main%colour=red')).toContain('"--colour" is not a valid option');
    expect(gerrit.changes()).toEqual([]);
    expect(push('-q', 'gerrit', 'HEAD:refs/for/main')).toBe('');
    expect(push('gerrit', 'HEAD:refs/for/main')).toContain('no new changes');
    // The same files, message, author and parents under another committer date: no changes made.
    execFileSync('git', ['commit', '-q', '--amend', '--no-edit'], { cwd: work, env: { ...process.env, GIT_COMMITTER_DATE: '2030-01-01T00:00:00Z', GIT_COMMITTER_NAME: 'Other', GIT_COMMITTER_EMAIL: 'o@example.invalid' } });
    expect(push('gerrit', 'HEAD:refs/for/main')).toContain('no changes made');
    // Submitted: the branch has the change, the change is merged, and it takes no more patch sets.
    gerrit.submit(1);
    expect(gerrit.changes()[0]!.status).toBe('MERGED');
    expect(gerrit.git('rev-parse', 'main')).toBe(gerrit.changes()[0]!.current);
    git('reset', '-q', '--hard', gerrit.changes()[0]!.current);
    await commit('a', '3', `three\n\nChange-Id: ${cid(1)}`);
    expect(push('gerrit', 'HEAD:refs/for/main')).toContain('change 1 closed');
    // Abandoned changes are closed too.
    git('commit', '-q', '--amend', '-m', `three\n\nChange-Id: ${cid(3)}`);
    expect(push('-q', 'gerrit', 'HEAD:refs/for/main')).toBe('');
    gerrit.abandon(2);
    git('commit', '-q', '--amend', '-m', `three again\n\nChange-Id: ${cid(3)}`);
    expect(push('gerrit', 'HEAD:refs/for/main')).toContain('change 2 closed');
    // Direct pushes need the permission.
    expect(push('gerrit', 'HEAD:refs/heads/main')).toContain('not permitted');
  });
});
