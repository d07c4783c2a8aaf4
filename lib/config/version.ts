// version.json: the released project's version, whether it is official, and its release name.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ReleaseError } from '../core/errors.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';

/**
 * Why `v` cannot be a git tag name and one path segment (issue 9): the rules of
 * git-check-ref-format(1) for `refs/tags/V`, and no `/` (the version names a bucket directory).
 * Checked when version.json is read, so prepare refuses before it commits anything.
 */
export function tagNameProblem(v: string): string | undefined {
  if (v === '') return 'is empty';
  if (v.includes('/')) return 'contains "/" (it must be one path segment)';
  if (v.startsWith('.')) return 'starts with "."';
  if (v.endsWith('.')) return 'ends with "."';
  if (v.endsWith('.lock')) return 'ends with ".lock"';
  if (v.includes('..')) return 'contains ".."';
  if (v.includes('@{')) return 'contains "@{"';
  // eslint-disable-next-line no-control-regex
  const bad = /[\u0000-\u0020\u007f~^:?*[\\]/.exec(v);
  if (bad) return `contains ${JSON.stringify(bad[0])}`;
  return undefined;
}

/**
 * The longest version releng accepts (issue 25). Every path releng makes from it must fit a file
 * system's 255-byte name limit: the longest is PROJECT-VERSION-docker-image-SYSTEM.tar.gz.sha256
 * (release/artifacts/PROJECT/PROJECT-VERSION/), which with a project of at most 64 characters and a
 * system name like aarch64-darwin leaves room for 128; the git ref refs/tags/VERSION (a file
 * .git/refs/tags/VERSION.lock while git writes it) and S3 keys (1024 bytes) are shorter than that.
 */
export const MAX_VERSION_LENGTH = 128;

export const versionFileSchema = z.object({
  version: z.string().max(MAX_VERSION_LENGTH, `is longer than ${MAX_VERSION_LENGTH} characters: releng makes file names like PROJECT-VERSION-docker-image-SYSTEM.tar.gz.sha256 from it, which must fit in 255 bytes`).regex(/^\d+\.\d+(\.\d+)?([-.+~][0-9A-Za-z.-]+)?$/, 'expected a version like 2.93.0')
    .superRefine((v, ctx) => {
      const p = tagNameProblem(v);
      if (p) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} ${p}: it must be a valid git tag name (git check-ref-format) and one path segment` });
    }),
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
