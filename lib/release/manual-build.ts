// release/manual-build.json: what `build --target manual` laid out in release/manual (issue 17), so
// `upload --target manual` publishes the manual of the version it was built for.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ReleaseError } from '../core/errors.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';
import { readBuildResult } from './build-result.ts';

const manualBuildSchema = z.object({
  schemaVersion: z.literal(1),
  target: z.literal('manual'),
  project: z.string(),
  version: z.string(),
  major: z.string(),
  official: z.boolean(),
  gitRevision: z.string().regex(/^[0-9a-f]{40}$/),
  /** The manual job's attribute and output (e.g. build.x86_64-linux, doc). */
  job: z.string(),
  storePath: z.string(),
});
export type ManualBuild = z.infer<typeof manualBuildSchema>;


export function manualBuildFile(releaseDir: string): string {
  return path.join(releaseDir, 'manual-build.json');
}

export async function writeManualBuild(releaseDir: string, record: ManualBuild): Promise<void> {
  await writeFile(manualBuildFile(releaseDir), JSON.stringify(record, null, 2) + '\n');
}

/** Reads release/manual-build.json (or a full build's result): which version the manual is. */
export async function readManualBuild(releaseDir: string): Promise<Pick<ManualBuild, 'project' | 'version' | 'major' | 'official' | 'gitRevision'>> {
  const file = manualBuildFile(releaseDir);
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text !== undefined) return parseWith(manualBuildSchema, parseJsonText(text, file), file, 'run `releng build --target manual` again');
  const full = path.join(releaseDir, 'build-result.json');
  const fullText = await readFile(full, 'utf8').catch(() => undefined);
  if (fullText === undefined) throw new ReleaseError(`no ${file} (nor ${full})`, 'run `releng build --target manual` first');
  return readBuildResult(releaseDir);
}
