// Interop with Lix's scripts (issue 26): `python -m releng tag` records only the branch it merged the
// tag back into, in releng/prev-git-branch.txt, and no release/tag.json. A release tagged with Lix's
// scripts and uploaded with releng would otherwise skip the git push: this reads that file into the
// same record `releng tag` writes, from git (the tag's commit, and the `merge -s ours` of it on the branch).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError } from '../core/errors.ts';
import { readTagRecord, type TagRecord } from '../release/tag-record.ts';
import type { Git } from './git.ts';

/** Where Lix's create_release.xsh writes the branch name. */
export const lixPrevBranchFile = 'releng/prev-git-branch.txt';

/** release/tag.json, else the record Lix's releng/prev-git-branch.txt and git imply for VERSION; undefined when neither is there. */
export async function readTagRecordOrLix(root: string, git: Git, version: string): Promise<TagRecord | undefined> {
  const own = await readTagRecord(root);
  if (own) return own;
  const file = path.join(root, lixPrevBranchFile);
  const branch = (await readFile(file, 'utf8').catch(() => undefined))?.trim();
  if (!branch) return undefined;
  const releaseCommit = await git.commitOf(`refs/tags/${version}`);
  if (!releaseCommit) throw new ReleaseError(`${file} names branch ${branch}, but there is no tag ${version}`, 'run the tag step (`releng tag` or Lix\'s `python -m releng tag`) for this version first');
  if (!(await git.commitOf(`refs/heads/${branch}`))) throw new ReleaseError(`${file} names branch ${branch}, which does not exist here`, `check out ${branch} as the tag step left it, or run \`releng tag\``);
  // The merge of the tag back into the branch: a merge commit on it whose second parent is the tag's commit.
  const out = await git.git(['rev-list', '--merges', '--parents', '-n', '500', `refs/heads/${branch}`]);
  const merge = out.split('\n').map((l) => l.split(' ')).find((ids) => ids.slice(2).includes(releaseCommit))?.[0];
  if (!merge) {
    throw new ReleaseError(`${file} names branch ${branch}, but no merge of tag ${version} (${releaseCommit.slice(0, 12)}) is on it`, 'the tag step merges the tag back with `git merge -s ours VERSION`: run it again, or `releng tag`');
  }
  return { version, branch, releaseCommit, mergeCommit: merge };
}
