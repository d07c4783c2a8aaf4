// Reads for the channel branch: a local bare mirror that fetches the release's revision (to push
// it and to read its commit date), and what the remote branch points at now. Pushes are actions.
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError } from '../core/errors.ts';
import { gitAt } from '../git/git.ts';

/** A remote given as a relative path is relative to releng.json's directory (git runs in the mirror). */
export function resolveRemote(remote: string, root: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(remote) || /^[^/]+@[^/:]+:/.test(remote) || path.isAbsolute(remote)) return remote;
  return path.resolve(root, remote);
}

/** Makes sure `rev` is in the mirror (fetching it from `source` if not); returns its commit date. */
export async function fetchRevision(mirror: string, source: string, rev: string, channel: string): Promise<Date> {
  await mkdir(mirror, { recursive: true });
  const g = gitAt(mirror);
  if (await access(path.join(mirror, 'HEAD')).then(() => false, () => true)) await g.git(['init', '--quiet', '--bare']);
  if ((await g.tryGit(['cat-file', '-e', '--end-of-options', `${rev}^{commit}`])) === undefined) {
    try {
      await g.git(['fetch', '--quiet', '--no-write-fetch-head', '--end-of-options', source, `+${rev}:refs/releng/channels/${channel}`]);
    } catch (e) {
      throw new ReleaseError(`cannot fetch revision ${rev} from ${source}: ${(e as Error).message}`,
        'set channels.kinds[].git.fetchFrom to a repository that has the commit; nothing was published', { cause: e });
    }
  }
  const seconds = Number(await g.git(['show', '-s', '--format=%ct', '--end-of-options', rev]));
  return new Date(seconds * 1000);
}

/** The commit the remote branch points at, or undefined when it does not exist yet. */
export async function remoteBranchHead(mirror: string, remote: string, branch: string): Promise<string | undefined> {
  let out: string;
  try {
    out = await gitAt(mirror).git(['ls-remote', '--end-of-options', remote, `refs/heads/${branch}`]);
  } catch (e) {
    throw new ReleaseError(`cannot read branch ${branch} of git remote ${remote}: ${(e as Error).message}`, 'check channels.kinds[].git.remote and access to it; nothing was published', { cause: e });
  }
  return out.split('\n').find((l) => l.endsWith(`\trefs/heads/${branch}`))?.split('\t')[0];
}

/** How the channel branch moves to the release's commit. */
export type BranchMove = 'create' | 'unchanged' | 'fast-forward' | 'forced';

/**
 * Checked before anything is uploaded: the branch must be absent, already at `rev`, or an ancestor
 * of `rev` (a fast-forward). Anything else needs --force (then pushed with --force-with-lease from
 * the commit seen here); without it the run stops, and nothing was written.
 */
export async function checkBranchMove(opts: { mirror: string; remote: string; branch: string; remoteHead?: string; rev: string; force: boolean }): Promise<BranchMove> {
  const { mirror, remote, branch, remoteHead, rev, force } = opts;
  if (!remoteHead) return 'create';
  if (remoteHead === rev) return 'unchanged';
  const g = gitAt(mirror);
  if ((await g.tryGit(['cat-file', '-e', '--end-of-options', `${remoteHead}^{commit}`])) === undefined) {
    try {
      await g.git(['fetch', '--quiet', '--no-write-fetch-head', '--end-of-options', remote, `+refs/heads/${branch}:refs/releng/remote-heads/${branch}`]);
    } catch (e) {
      throw new ReleaseError(`cannot fetch branch ${branch} from ${remote} to check that it can move to ${rev}: ${(e as Error).message}`, 'check access to the git remote; nothing was published', { cause: e });
    }
  }
  if ((await g.tryGit(['merge-base', '--is-ancestor', '--end-of-options', remoteHead, rev])) !== undefined) return 'fast-forward';
  if (force) return 'forced';
  throw new ReleaseError(`branch ${branch} on ${remote} is at ${remoteHead}, which is not an ancestor of ${rev}: moving it would not be a fast-forward`,
    'the branch moved elsewhere (check the remote); pass --force to move it anyway (pushed with --force-with-lease); nothing was published');
}
