// version.json: the released project's version, whether it is official, and its release name.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ReleaseError } from './errors.ts';
import { parseJsonText, parseWith } from './zod-errors.ts';

export const versionFileSchema = z.object({
  version: z.string().regex(/^\d+\.\d+(\.\d+)?([-.+~][0-9A-Za-z.-]+)?$/, 'expected a version like 2.93.0'),
  official_release: z.boolean(),
  release_name: z.string().min(1, 'must not be empty'),
}).passthrough();

export interface VersionInfo {
  version: string;
  /** First two components: 2.93 for 2.93.0. */
  major: string;
  official: boolean;
  releaseName: string;
  file: string;
}

/** MAJOR of a version: its first two dot-separated components. */
export function majorOf(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

/** Reads version.json (path relative to the project root). */
export async function loadVersion(root: string, versionFile: string): Promise<VersionInfo> {
  const file = path.resolve(root, versionFile);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e: any) {
    throw new ReleaseError(`cannot read version file ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`,
      'set "versionFile" in releng.json to the project\'s version.json');
  }
  const v = parseWith(versionFileSchema, parseJsonText(text, file), file);
  return { version: v.version, major: majorOf(v.version), official: v.official_release, releaseName: v.release_name, file };
}
