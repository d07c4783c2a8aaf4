// The git push planner and handler against real repositories: a scratch project and its bare
// remote (as the quick start makes), read back with `git ls-remote`.
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderPlan, type Plan } from '../../lib/actions/index.ts';
import { apply } from '../../lib/actions/index.ts';
import { gitAt } from '../../lib/git/git.ts';
import { gitReader, gitWriter, planGitPush, type GitWriter } from '../../lib/git/push.ts';
import { createLogger } from '../../lib/cli/log.ts';
import { redact } from '../../lib/core/secrets.ts';
import type { TagRecord } from '../../lib/release/tag-record.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { tagLikeReleng } from '../helpers/tagged.ts';

const log = createLogger({ quiet: true });
const lsRemote = (remote: string) => execFileSync('git', ['ls-remote', remote], { encoding: 'utf8' });

describe('git push of branch and tag', () => {
  let p: ScratchProject;
  let record: TagRecord;
  const plain = { remote: '../remote.git', gerrit: false };
  const plan = (git: any = plain, forcePushTag = false) =>
    planGitPush(gitReader(gitAt(p.dir)), { envName: 'local', git, record, cwd: p.dir, forcePushTag }).then((x): Plan => x);

  beforeEach(async () => {
    p = await scratchProject();
    p.git('push', '-q', 'origin', 'main');
    record = await tagLikeReleng(p);
  });
  afterEach(async () => { await p.cleanup(); });

  it('plans one atomic push of branch and tag, and ls-remote then shows the tag at the release commit', async () => {
    const first = await plan();
    expect(renderPlan(first)).toBe(`git push to ../remote.git:\n  [dry-run] git push --atomic ../remote.git ${record.mergeCommit}:refs/heads/main refs/tags/1.0.0:refs/tags/1.0.0`);
    await apply(first, { log, dryRun: false, writers: { git: gitWriter } });
    const remote = lsRemote(p.remote);
    expect(remote).toContain(`${record.releaseCommit}\trefs/tags/1.0.0^{}`);
    expect(remote).toContain(`${record.mergeCommit}\trefs/heads/main`);
    // Re-planning finds both there: nothing to do, each with its reason.
    const again = await plan();
    expect(again.steps).toEqual([]);
    expect(again.skipped.map((s) => s.reason)).toEqual([
      `refs/heads/main on the remote already contains the merge commit ${record.mergeCommit.slice(0, 12)}`,
      `refs/tags/1.0.0 is already on the remote at ${record.releaseCommit.slice(0, 12)}`,
    ]);
  });

  it('a tag on the remote at another commit is an error unless --force-push-tag', async () => {
    p.git('tag', '-f', '-a', '1.0.0', '-m', 'elsewhere', 'main~1');
    p.git('push', '-q', 'origin', 'refs/tags/1.0.0');
    p.git('tag', '-f', '-a', '1.0.0', '-m', 'release', record.releaseCommit);
    await expect(plan()).rejects.toThrow(/already has tag 1\.0\.0 at [0-9a-f]{12}, not at the release commit/);
    const forced = await plan(plain, true);
    expect(renderPlan(forced)).toContain(`git push --atomic ../remote.git ${record.mergeCommit}:refs/heads/main +refs/tags/1.0.0:refs/tags/1.0.0`);
    await apply(forced, { log, dryRun: false, writers: { git: gitWriter } });
    expect(lsRemote(p.remote)).toContain(`${record.releaseCommit}\trefs/tags/1.0.0^{}`);
  });

  it('Gerrit remotes get the branch as refs/for/BRANCH, then the tag, in two pushes (as Lix pushes)', async () => {
    expect(renderPlan(await plan({ remote: '../remote.git', gerrit: true }))).toBe([
      'git push for review to ../remote.git:', `  [dry-run] git push ../remote.git ${record.mergeCommit}:refs/for/main`,
      'git push tag to ../remote.git:', '  [dry-run] git push ../remote.git refs/tags/1.0.0:refs/tags/1.0.0',
    ].join('\n'));
    expect(renderPlan(await plan({ remote: '../remote.git', gerrit: true, branchPush: 'direct' }))).toContain(`git push ../remote.git ${record.mergeCommit}:refs/heads/main\n`);
  });

  it('remoteMatching picks the one remote whose push URL matches, else says which exist', async () => {
    expect(renderPlan(await plan({ remoteMatching: 'remote\\.git$', gerrit: false }))).toContain(`git push --atomic origin ${record.mergeCommit}:refs/heads/main`);
    await expect(plan({ remoteMatching: '^ssh://gerrit', gerrit: true })).rejects.toThrow(/no git remote matches environments\.local\.git\.remoteMatching \(\^ssh:\/\/gerrit\); remotes: origin /);
    p.git('remote', 'add', 'mirror', p.remote);
    await expect(plan({ remoteMatching: 'remote\\.git$', gerrit: false })).rejects.toThrow('several git remotes match environments.local.git.remoteMatching');
  });

  it('never shows the password of a remote URL (errors list remotes)', async () => {
    p.git('remote', 'add', 'forge', 'https://bot:ghp_S3CRETtoken@forge.example.invalid/hello.git');
    const err = await plan({ remoteMatching: '^ssh://gerrit', gerrit: true }).catch((e) => e);
    expect(err.message).toContain('forge');
    expect(redact(err.message)).not.toContain('ghp_S3CRETtoken');
    expect(redact(err.message)).toContain('https://bot:***@forge.example.invalid/hello.git');
  });

  it('refuses when the local tag is not what tag.json recorded', async () => {
    p.git('tag', '-f', '-a', '1.0.0', '-m', 'moved', 'main~1');
    await expect(plan()).rejects.toThrow(/tag 1\.0\.0 is at [0-9a-f]{12}, but release\/tag\.json says/);
  });

  it('an unreachable remote is an error naming it', async () => {
    await expect(plan({ remote: '../nowhere.git', gerrit: false })).rejects.toThrow('cannot read git remote ../nowhere.git');
  });

  it('falls back to one push per ref, tag last, when the remote cannot push atomically', async () => {
    const calls: string[][] = [];
    const noAtomic: GitWriter = {
      async push(cwd, remote, refspecs, opts) {
        calls.push([opts.atomic ? '--atomic' : '', ...refspecs]);
        if (opts.atomic) throw new Error('fatal: the receiving end does not support --atomic push');
        await gitWriter.push(cwd, remote, refspecs, opts);
      },
    };
    await apply(await plan(), { log, dryRun: false, writers: { git: noAtomic } });
    expect(calls).toEqual([['--atomic', `${record.mergeCommit}:refs/heads/main`, 'refs/tags/1.0.0:refs/tags/1.0.0'], ['', `${record.mergeCommit}:refs/heads/main`], ['', 'refs/tags/1.0.0:refs/tags/1.0.0']]);
    expect(lsRemote(p.remote)).toContain(`${record.releaseCommit}\trefs/tags/1.0.0^{}`);
  });
});
