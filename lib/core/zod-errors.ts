// Flattens zod issues into `path: message` lines that name the file and the field.
import type { z } from 'zod';
import { ReleaseError } from './errors.ts';

/** One line per problem, e.g. `environments.staging.releasesBucket: expected s3:// URL`. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => {
    const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[');
    return `${path || '(top level)'}: ${i.message}`;
  });
}

/** Parses `data` with `schema`, or throws a ReleaseError naming `source` and every bad field. */
export function parseWith<T extends z.ZodType>(schema: T, data: unknown, source: string, hint?: string): z.infer<T> {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const lines = formatIssues(r.error);
  throw new ReleaseError(`${source} is invalid:\n${lines.map((l) => `  ${l}`).join('\n')}`, hint);
}

/** JSON.parse with an error that names the file. */
export function parseJsonText(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ReleaseError(`${source} is not valid JSON: ${(e as Error).message}`, `fix the syntax of ${source}`);
  }
}
