// The grant file `releng grant` writes and `releng contribute` reads (zod: data entering from a
// file that travelled to another machine). It holds the grant's own narrow credentials or POST
// policies, never the maintainer's keys.
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { ReleaseError } from '../core/errors.ts';
import { registerSecret } from '../core/secrets.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';

const postForm = z.object({
  /** The glob of names this form may write (its key `starts-with` the glob's literal head). */
  glob: z.string(),
  url: z.string().url(),
  fields: z.record(z.string(), z.string()),
}).strict();

export const grantFileSchema = z.object({
  releng: z.literal('grant'),
  formatVersion: z.literal(1),
  id: z.string().regex(/^[A-Za-z0-9_-]{8,32}$/),
  uploader: z.string(),
  environment: z.string(),
  kind: z.enum(['installers', 'apt']),
  /** The release version the grant is for (when the uploader's prefix has {version}). */
  version: z.string().optional(),
  createdAt: z.string().datetime(),
  expiresAt: z.string().datetime(),
  /** S3 endpoint; `embedded` = the local environment's s3rver over `embeddedDir` (same machine). */
  endpoint: z.union([z.literal('embedded'), z.string().url()]),
  embeddedDir: z.string().optional(),
  region: z.string(),
  forcePathStyle: z.boolean(),
  bucket: z.string(),
  /** The full key prefix every upload goes under (ends with /). */
  prefix: z.string().regex(/\/$/),
  files: z.array(z.string()).min(1),
  globs: z.array(z.string()).min(1),
  maxSize: z.number().int().positive(),
  access: z.discriminatedUnion('method', [
    z.object({
      method: z.enum(['sts', 'command']),
      credentials: z.object({ accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1), sessionToken: z.string().optional() }).strict(),
    }).strict(),
    z.object({ method: z.literal('presigned-post'), forms: z.array(postForm).min(1) }).strict(),
  ]),
}).strict();

export type GrantFile = z.infer<typeof grantFileSchema>;

/** Writes the grant for the uploader: owner-only permissions, since it holds a (narrow) credential. */
export async function writeGrantFile(file: string, grant: GrantFile): Promise<void> {
  await writeFile(file, JSON.stringify(grant, null, 2) + '\n', { mode: 0o600 });
  await chmod(file, 0o600);
}

/** Reads and validates a grant file; its secrets are registered so no log shows them. */
export async function readGrantFile(file: string): Promise<GrantFile> {
  let text: string;
  try { text = await readFile(file, 'utf8'); } catch (e: any) {
    throw new ReleaseError(`cannot read grant file ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, 'pass the file `releng grant` wrote (--grant FILE)');
  }
  const grant = parseWith(grantFileSchema, parseJsonText(text, file), file, 'ask the maintainer for a new grant (releng grant NAME)');
  if (grant.access.method !== 'presigned-post') {
    registerSecret(grant.access.credentials.secretAccessKey);
    registerSecret(grant.access.credentials.sessionToken);
  } else {
    for (const f of grant.access.forms) { registerSecret(f.fields.Policy); registerSecret(f.fields['X-Amz-Signature']); }
  }
  return grant;
}
