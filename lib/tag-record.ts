// release/tag.json: what `releng tag` made (version, branch, release and merge commits), read by
// upload's git push, so tag and upload may run in separate invocations (issue 3 writes it, issue 4 reads it).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ReleaseError } from './errors.ts';
import { parseJsonText, parseWith } from './zod-errors.ts';

const commit = z.string().regex(/^[0-9a-f]{40}$/, 'expected a 40-hex commit id');

export const tagRecordSchema = z.object({
  version: z.string().min(1),
  /** The branch the release was tagged from; the merge commit is on it. */
  branch: z.string().min(1),
  /** The commit tag VERSION points at (official_release: true). */
  releaseCommit: commit,
  /** The `merge -s ours` of the release commit back into the branch. */
  mergeCommit: commit,
});

export type TagRecord = z.infer<typeof tagRecordSchema>;

export function tagRecordPath(releaseDir: string): string {
  return path.join(releaseDir, 'tag.json');
}

/** Reads release/tag.json; undefined when `tag` has not run. */
export async function readTagRecord(releaseDir: string): Promise<TagRecord | undefined> {
  const file = tagRecordPath(releaseDir);
  let text: string;
  try { text = await readFile(file, 'utf8'); } catch (e: any) {
    if (e?.code === 'ENOENT') return undefined;
    throw new ReleaseError(`cannot read ${file}: ${e?.message}`);
  }
  return parseWith(tagRecordSchema, parseJsonText(text, file), file, 'run `releng tag` again to rewrite it');
}
