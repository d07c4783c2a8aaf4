// The git.push action: push a revision to a remote ref (the channel branch). Planned as data,
// executed only by apply.ts through a GitWriter; the dry run prints the exact refspec.
import type { ApplyEnv, HandlerMap } from '../apply-types.ts';
import { run } from '../exec.ts';

/** `git -C CWD push REMOTE REFSPEC` (REFSPEC like `REV:refs/heads/BRANCH`, `+` prefix when forced). */
export interface GitPush {
  kind: 'git.push';
  /** Local repository holding the revision. */
  cwd: string;
  remote: string;
  refspec: string;
}

export type GitAction = GitPush;

/** What apply may do with git remotes. */
export interface GitWriter {
  push(cwd: string, remote: string, refspec: string): Promise<void>;
}

/** The real writer: git through an argument array. */
export const gitWriter: GitWriter = {
  async push(cwd, remote, refspec) {
    await run('git', ['push', '--quiet', remote, refspec], { cwd });
  },
};

export const gitRenderers = {
  'git.push': (a: GitPush) => `git push ${a.remote} ${a.refspec}`,
};

export const gitHandlers: HandlerMap<GitAction> = {
  'git.push': (a: GitPush, env: ApplyEnv) => {
    if (!env.writers.git) throw new Error('internal: plan has git actions but apply got no git writer');
    return env.writers.git.push(a.cwd, a.remote, a.refspec);
  },
};
