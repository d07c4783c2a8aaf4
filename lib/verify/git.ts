// git: tag VERSION on the environment's remote points at the release commit (ls-remote, peeled).
import { gitAt } from '../git/git.ts';
import { gitReader, resolveRemote } from '../git/push.ts';
import { count, emptyReport, type DestinationVerifier } from './types.ts';

export const gitVerifier: DestinationVerifier = {
  name: 'git',
  async verify(t, release, scope) {
    const report = emptyReport();
    if (!t.git) { report.notChecked.push({ destination: this.name, what: 'tag', reason: `environment "${t.name}" has no git remote` }); return report; }
    if (release.gitSkip) { report.notChecked.push({ destination: this.name, what: `tag ${release.version}`, reason: release.gitSkip }); return report; }
    const reader = gitReader(gitAt(t.root));
    const remote = await resolveRemote(reader, t.name, t.git);
    const ref = `refs/tags/${release.version}`;
    const refs = await scope.limit(() => reader.lsRemote(remote, [ref, `${ref}^{}`]));
    count(report, 'refs');
    const commit = refs.get(`${ref}^{}`) ?? refs.get(ref);
    const where = `${remote} ${ref}`;
    if (!commit) report.problems.push({ destination: this.name, where, what: 'missing', repair: scope.repair });
    else if (release.releaseCommit && commit !== release.releaseCommit) {
      report.problems.push({ destination: this.name, where, what: `points at ${commit}, expected the release commit ${release.releaseCommit}`, repair: `${scope.repair} --force-push-tag (only if ${commit.slice(0, 12)} was never announced)` });
    }
    return report;
  },
};
