// Is this release from a maintenance branch? Then it must not move `latest` (container images).
import { compareVersions } from '../nix/versions.ts';
import type { Git } from './git.ts';

/** Version order is Nix's (the exact port in lib/nix/versions.ts), re-exported for callers here. */
export { compareVersions };

const looksLikeVersion = (t: string) => /^\d+\.\d+/.test(t);

/** The highest version-like tag reachable from `ref`, or undefined. */
export async function latestTagReachable(git: Git, ref: string): Promise<string | undefined> {
  const out = await git.git(['tag', `--merged=${ref}`]);
  const tags = out ? out.split('\n').filter(looksLikeVersion) : [];
  return tags.sort(compareVersions).at(-1);
}

/** The main branch's refs that exist here: the local branch and origin's (Lix looks at origin/main). */
async function mainRefs(git: Git, mainBranch: string): Promise<string[]> {
  const wanted = [`refs/heads/${mainBranch}`, `refs/remotes/origin/${mainBranch}`];
  // One git process for both (each spawn costs the client ~25 ms of CPU: issue 16's profile).
  const out = await git.git(['for-each-ref', '--format=%(refname)', ...wanted]);
  const there = new Set(out ? out.split('\n') : []);
  return wanted.filter((r) => there.has(r));
}

/** True when the newest release reachable from HEAD (counting `version` itself) is older, by
 *  version order, than the newest tag on the main branch: e.g. 2.90.3 while main has 2.91.0.
 *  The main branch is both the local one and origin's, whichever has the newer release: a stale
 *  local main must not let a maintenance release take `latest` (Lix reads origin/main; issue 17). */
export async function isMaintenanceRelease(git: Git, version: string, mainBranch: string): Promise<boolean> {
  const onMain = (await Promise.all((await mainRefs(git, mainBranch)).map((r) => latestTagReachable(git, r))))
    .filter((v): v is string => !!v).sort(compareVersions).at(-1);
  if (!onMain) return false;
  const here = [await latestTagReachable(git, 'HEAD'), version].filter((v): v is string => !!v).sort(compareVersions).at(-1)!;
  return compareVersions(here, onMain) < 0;
}
