// The git push to a Gerrit remote (issue 17), against a bare repository whose hooks refuse what
// Gerrit refuses (test/fixtures/gerrit-hooks): refs/for/ mixed with other refs, direct pushes
// without permission, a tag whose commit is not known yet; and turn refs/for/BRANCH into
// refs/changes/NN/N/1 as Gerrit does. Read back with `git ls-remote`.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderPlan, type Plan } from '../../lib/actions/index.ts';
import { apply } from '../../lib/actions/index.ts';
import { gitAt } from '../../lib/git/git.ts';
import { gitReader, gitWriter, planGitPush } from '../../lib/git/push.ts';
import { createLogger } from '../../lib/cli/log.ts';
import type { TagRecord } from '../../lib/release/tag-record.ts';
import { fakeGerrit } from '../helpers/gerrit.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { tagLikeReleng } from '../helpers/tagged.ts';
import { releng } from '../helpers/cli.ts';

const lsRemote = (remote: string) => execFileSync('git', ['ls-remote', remote], { encoding: 'utf8' });

describe('git push to Gerrit (a bare repository with Gerrit\'s refusals as hooks)', () => {
  let p: ScratchProject;
  let record: TagRecord;
  let mainBefore: string;
  const lines: string[] = [];
  const log = createLogger({ quiet: true });
  const capture = { ...log, info: (m: string) => { lines.push(m); } };
  const plan = (git: any) => planGitPush(gitReader(gitAt(p.dir)), { envName: 'production', git, record, cwd: p.dir, forcePushTag: false }).then((x): Plan => x);
  const remoteGit = (...args: string[]) => execFileSync('git', ['-C', p.remote, ...args], { encoding: 'utf8' });

  beforeEach(async () => {
    p = await scratchProject();
    p.git('push', '-q', 'origin', 'main');
    mainBefore = p.git('rev-parse', 'main');
    await fakeGerrit(p.remote);
    // The release's merge commit carries no Change-Id: this project allows that (Gerrit's default,
    // receive.requireChangeId = true, would refuse it: "missing Change-Id in commit message footer").
    remoteGit('config', 'gerrit.requireChangeId', 'false');
    record = await tagLikeReleng(p);
    lines.length = 0;
  });
  afterEach(async () => { await p.cleanup(); });

  it('the hooks refuse what Gerrit refuses: the atomic push of refs/for/ with the tag, and the non-Gerrit push', async () => {
    const mixed: Plan = { steps: [{ title: 'atomic mix', actions: [{ kind: 'git.push', cwd: p.dir, remote: p.remote, refspecs: [`${record.mergeCommit}:refs/for/main`, 'refs/tags/1.0.0:refs/tags/1.0.0'], atomic: true, gerrit: true }] }], skipped: [] };
    await expect(apply(mixed, { log, dryRun: false, writers: { git: gitWriter } })).rejects.toThrow(/refs\/for\/ cannot be pushed together with other refs/);
    // releng's non-Gerrit path (one atomic push to refs/heads/ and the tag) is refused too.
    await expect(apply(await plan({ remote: p.remote, gerrit: false }), { log, dryRun: false, writers: { git: gitWriter } })).rejects.toThrow(/prohibited by Gerrit/);
    expect(lsRemote(p.remote)).not.toContain('refs/tags/1.0.0');
    expect(lsRemote(p.remote)).not.toContain('refs/changes/');
  });

  it('gerrit: true pushes the merge commit for review, verifies the change, then pushes the tag and verifies it', async () => {
    const first = await plan({ remote: p.remote, gerrit: true });
    expect(first.steps.map((s) => s.title)).toEqual([`git push for review to ${p.remote}`, `git push tag to ${p.remote}`]);
    await apply(first, { log: capture as any, dryRun: false, writers: { git: gitWriter } });
    const remote = lsRemote(p.remote);
    expect(remote).toContain(`${record.mergeCommit}\trefs/changes/01/1/1`);
    expect(remote).toContain(`${record.releaseCommit}\trefs/tags/1.0.0^{}`);
    expect(remote).toContain(`${mainBefore}\trefs/heads/main`); // review, not a direct push
    expect(remote).not.toContain('refs/for/');
    expect(lines).toContain(`verified with git ls-remote: refs/changes/01/1/1 is at ${record.mergeCommit.slice(0, 12)} (the merge commit under review (refs/changes/) or on main)`);
    expect(lines).toContain(`verified with git ls-remote: refs/tags/1.0.0^{} is at ${record.releaseCommit.slice(0, 12)} (tag 1.0.0 at the release commit)`);

    // A re-run: Gerrit answers "no new changes" to the branch (success, verified again); the tag is there.
    const again = await plan({ remote: p.remote, gerrit: true });
    expect(renderPlan(again)).toContain(`git push for review to ${p.remote}:\n  [dry-run] git push ${p.remote} ${record.mergeCommit}:refs/for/main\n`);
    expect(again.steps).toHaveLength(1);
    expect(again.skipped.map((s) => s.reason)).toEqual([`refs/tags/1.0.0 is already on the remote at ${record.releaseCommit.slice(0, 12)}`]);
    await apply(again, { log: capture as any, dryRun: false, writers: { git: gitWriter } });
    expect(remoteGit('for-each-ref', '--format=%(refname)', 'refs/changes').trim().split('\n')).toEqual(['refs/changes/01/1/1']);
  });

  it('branchPush: direct pushes the branch to refs/heads/, then the tag, each verified', async () => {
    remoteGit('config', 'gerrit.allowDirectPush', 'true');
    await apply(await plan({ remote: p.remote, gerrit: true, branchPush: 'direct' }), { log: capture as any, dryRun: false, writers: { git: gitWriter } });
    const remote = lsRemote(p.remote);
    expect(remote).toContain(`${record.mergeCommit}\trefs/heads/main`);
    expect(remote).toContain(`${record.releaseCommit}\trefs/tags/1.0.0^{}`);
    expect(lines).toContain(`verified with git ls-remote: refs/heads/main is at ${record.mergeCommit.slice(0, 12)} (the merge commit on main)`);
  });

  it('a push the remote accepts but does not keep fails the ls-remote check, and the tag is not pushed', async () => {
    remoteGit('config', 'gerrit.dropChanges', 'true');
    const err = await apply(await plan({ remote: p.remote, gerrit: true }), { log, dryRun: false, writers: { git: gitWriter } }).catch((e) => e);
    expect(err.message).toContain(`git ls-remote shows no refs/changes/* or refs/heads/main at ${record.mergeCommit.slice(0, 12)}`);
    expect(lsRemote(p.remote)).not.toContain('refs/tags/1.0.0');
  });

  it('Change-Id: a Gerrit that requires one refuses the release\'s commits without it, as a releng error naming the commit-msg hook; with the hook, the push goes through', async () => {
    remoteGit('config', 'gerrit.requireChangeId', 'true');
    const err = await apply(await plan({ remote: p.remote, gerrit: true }), { log, dryRun: false, writers: { git: gitWriter } }).catch((e) => e);
    expect(err.message).toContain(`Gerrit (${p.remote}) refused the push to refs/for/main: a commit has no Change-Id footer`);
    expect(err.message).toMatch(/commit [0-9a-f]{7,}: missing Change-Id in message footer/);
    expect(err.hint).toContain('commit-msg hook');
    expect(lsRemote(p.remote)).not.toContain('refs/tags/1.0.0');
    expect(lsRemote(p.remote)).not.toContain('refs/changes/');
    // Gerrit's commit-msg hook in the checkout (a stand-in adding a Change-Id trailer), and the release made again.
    await writeFile(path.join(p.dir, '.git/hooks/commit-msg'), '#!/bin/sh\ngit interpret-trailers --in-place --trailer "Change-Id: I$(date +%s%N | sha1sum | cut -c1-40)" "$1"\n', { mode: 0o755 });
    p.git('checkout', '-q', 'main');
    p.git('reset', '-q', '--hard', mainBefore);
    p.git('tag', '-d', '1.0.0');
    execFileSync('git', ['checkout', '-q', '--', 'version.json'], { cwd: p.dir });
    record = await tagLikeReleng(p);
    expect(p.git('log', '-1', '--format=%B', record.mergeCommit)).toMatch(/\nChange-Id: I[0-9a-f]{40}$/);
    await apply(await plan({ remote: p.remote, gerrit: true }), { log, dryRun: false, writers: { git: gitWriter } });
    expect(lsRemote(p.remote)).toContain(`${record.releaseCommit}\trefs/tags/1.0.0^{}`);
  });

  it('a direct push without Push permission, and an annotated tag without Create Annotated Tag: each refusal is a releng error saying what to ask for', async () => {
    const direct = await apply(await plan({ remote: p.remote, gerrit: true, branchPush: 'direct' }), { log, dryRun: false, writers: { git: gitWriter } }).catch((e) => e);
    expect(direct.message).toContain('refused the push to refs/heads/main: no Push permission on this branch');
    expect(direct.hint).toContain('git.branchPush: "review"');
    remoteGit('config', 'gerrit.allowCreateTag', 'false');
    const tag = await apply(await plan({ remote: p.remote, gerrit: true }), { log, dryRun: false, writers: { git: gitWriter } }).catch((e) => e);
    expect(tag.message).toContain('refused the push to refs/tags/1.0.0: no Create Annotated Tag permission on refs/tags/*');
    expect(lsRemote(p.remote)).toContain('refs/changes/01/1/1'); // the change went in before the tag was refused
    expect(lsRemote(p.remote)).not.toContain('refs/tags/1.0.0');
  });

  it('branch-off to Gerrit: Create Reference, then Push for a commit on no branch yet, each refusal named; then created and verified', async () => {
    await apply(await plan({ remote: p.remote, gerrit: true }), { log, dryRun: false, writers: { git: gitWriter } });
    await p.editConfig((c: any) => {
      c.environments.gerrit = { ...c.environments.local, git: { remote: p.remote, gerrit: true }, confirm: false };
    });
    const branchOff = () => releng(['branch-off', '--environment', 'gerrit', '--noconfirm'], { cwd: p.dir });
    const noCreate = await branchOff();
    expect(noCreate.code).toBe(1);
    expect(noCreate.stderr).toContain('refused the push to refs/heads/release-1.0: no Create Reference permission on refs/heads/*');
    expect(noCreate.stderr).toContain('prohibited by Gerrit: not permitted: create');
    remoteGit('config', 'gerrit.allowCreate', 'true');
    const newCommit = await branchOff();
    expect(newCommit.code).toBe(1);
    expect(newCommit.stderr).toContain('the commit is on no branch or tag of Gerrit yet, and creating a branch at a new commit needs Push as well as Create Reference');
    expect(lsRemote(p.remote)).not.toContain('refs/heads/release-1.0');
    remoteGit('config', 'gerrit.allowDirectPush', 'true');
    const ok = await branchOff();
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toContain(`skip create release-1.0: refs/heads/release-1.0 is already at the merge commit ${record.mergeCommit.slice(0, 12)}`);
    expect(ok.stderr).toContain(`verified with git ls-remote: refs/heads/release-1.0 is at ${record.mergeCommit.slice(0, 12)}`);
    expect(lsRemote(p.remote)).toContain(`${record.mergeCommit}\trefs/heads/release-1.0`);
  });
});
