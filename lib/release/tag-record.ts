// release/tag.json: what `releng tag` did, for `upload` to push (the branch and the tag). Lix keeps
// only the branch name (releng/prev-git-branch.txt); the SHAs let upload check it pushes what was tagged.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ReleaseError } from '../core/errors.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';

const sha = z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, 'expected a full commit SHA');

/** The file's shape, shared with upload's git push: exactly these four keys. */
export const tagRecordSchema = z.object({
  version: z.string().min(1),
  /** The branch that was checked out when tagging; it now holds the `merge -s ours` commit. */
  branch: z.string().min(1),
  /** The commit tag VERSION points at (official_release: true). */
  releaseCommit: sha,
  /** The merge of the tag back into `branch` (same tree as before tagging). */
  mergeCommit: sha,
}).strict();

export type TagRecord = z.infer<typeof tagRecordSchema>;

/** Where the record lives, relative to the project root. */
export const tagRecordPath = 'release/tag.json';

/** Serialises the record (stable key order, trailing newline). */
export function renderTagRecord(r: TagRecord): string {
  return JSON.stringify({ version: r.version, branch: r.branch, releaseCommit: r.releaseCommit, mergeCommit: r.mergeCommit }, null, 2) + '\n';
}

/** Writes the record through a writer (only apply's tag.record handler calls this). */
export async function writeTagRecord(w: { writeFile(rel: string, content: string): Promise<void> }, rel: string, r: TagRecord): Promise<void> {
  await w.writeFile(rel, renderTagRecord(parseWith(tagRecordSchema, r, rel)));
}

/** Reads and validates release/tag.json; undefined when `releng tag` has not run here. */
export async function readTagRecord(root: string): Promise<TagRecord | undefined> {
  const file = path.join(root, tagRecordPath);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e: any) {
    if (e.code === 'ENOENT') return undefined;
    throw new ReleaseError(`cannot read ${file}: ${e.message}`);
  }
  return parseWith(tagRecordSchema, parseJsonText(text, file), file, 'run `releng tag` again to rewrite it');
}
