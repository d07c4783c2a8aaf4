// Is this release from a maintenance branch? Then it must not move `latest` (container images).
import type { Git } from './git.ts';

/** Nix's builtins.compareVersions: components split at '.'/'-' and digit/letter changes; -1, 0 or 1. */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => v.match(/\d+|[^\d.-]+/g) ?? [];
  const ca = split(a);
  const cb = split(b);
  for (let i = 0; i < Math.max(ca.length, cb.length); i++) {
    const x = ca[i] ?? '';
    const y = cb[i] ?? '';
    if (componentLess(x, y)) return -1;
    if (componentLess(y, x)) return 1;
  }
  return 0;
}

// Nix's componentsLT (libexpr/primops.cc): numbers numerically, "" < number, "pre" first, 2.3a < 2.3.1.
function componentLess(c1: string, c2: string): boolean {
  const n1 = /^\d+$/.test(c1) ? Number(c1) : undefined;
  const n2 = /^\d+$/.test(c2) ? Number(c2) : undefined;
  if (n1 !== undefined && n2 !== undefined) return n1 < n2;
  if (c1 === '' && n2 !== undefined) return true;
  if (c1 === 'pre' && c2 !== 'pre') return true;
  if (c2 === 'pre') return false;
  if (n2 !== undefined) return true;
  if (n1 !== undefined) return false;
  return c1 < c2;
}

const looksLikeVersion = (t: string) => /^\d+\.\d+/.test(t);

/** The highest version-like tag reachable from `ref`, or undefined. */
export async function latestTagReachable(git: Git, ref: string): Promise<string | undefined> {
  const out = await git.git(['tag', '--merged', ref]);
  const tags = out ? out.split('\n').filter(looksLikeVersion) : [];
  return tags.sort(compareVersions).at(-1);
}

/** The main branch's ref: the local branch, else origin's; undefined when neither exists. */
async function mainRef(git: Git, mainBranch: string): Promise<string | undefined> {
  for (const ref of [`refs/heads/${mainBranch}`, `refs/remotes/origin/${mainBranch}`]) if (await git.commitOf(ref)) return ref;
  return undefined;
}

/** True when the newest release reachable from HEAD (counting `version` itself) is older, by
 *  version order, than the newest tag on the main branch: e.g. 2.90.3 while main has 2.91.0. */
export async function isMaintenanceRelease(git: Git, version: string, mainBranch: string): Promise<boolean> {
  const main = await mainRef(git, mainBranch);
  if (!main) return false;
  const onMain = await latestTagReachable(git, main);
  if (!onMain) return false;
  const here = [await latestTagReachable(git, 'HEAD'), version].filter((v): v is string => !!v).sort(compareVersions).at(-1)!;
  return compareVersions(here, onMain) < 0;
}
