// `releng contribute --grant FILE FILES...`: the outside builder's side of a grant (issue 12).
// Checks every file against the grant first (name, size, expiry), then uploads them with their
// sha256 in metadata, the grant id, and a checksum the server checks in transit (the signed
// x-amz-content-sha256 for key grants; Content-MD5 for POST forms), through apply.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Plan } from '../actions/index.ts';
import { apply } from '../actions/index.ts';
import { sha256File } from '../hashing/checksums.ts';
import type { Context } from '../config/context.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { postWriter, type GrantPost } from '../grants/actions.ts';
import { readGrantFile, type GrantFile } from '../grants/grant-file.ts';
import { allowedName, globMatches } from '../grants/names.ts';
import { startLocalS3, type LocalS3 } from '../local/s3-server.ts';
import { humanBytes } from '../core/log.ts';
import type { S3Put } from '../s3/actions.ts';
import { createS3Client, s3Store } from '../s3/store.ts';

export interface ContributeResult {
  grant: string;
  uploader: string;
  dryRun: boolean;
  files: Array<{ key: string; size: number; sha256: string }>;
}

/** The content type an upload is stored with (index checks content, not this). */
function contentTypeOf(name: string): string {
  return name.endsWith('.deb') ? 'application/vnd.debian.binary-package' : 'application/octet-stream';
}

/** Checks the files against the grant and plans their upload; refuses before anything is sent. */
export async function planContribution(grant: GrantFile, files: string[], now = new Date()): Promise<Plan> {
  const expires = new Date(grant.expiresAt);
  if (expires <= now) {
    throw new ReleaseError(`grant ${grant.id} (uploader ${grant.uploader}, environment ${grant.environment}) expired at ${grant.expiresAt}`,
      `ask the maintainer for a new one: releng grant ${grant.uploader} --environment ${grant.environment}${grant.version ? ` --version ${grant.version}` : ''}`);
  }
  const seen = new Map<string, string>();
  const actions: Plan['steps'][number]['actions'] = [];
  for (const file of files) {
    const name = path.basename(file);
    let st;
    try { st = await stat(file); } catch (e: any) { throw new ReleaseError(`cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, 'pass the files to upload as arguments'); }
    if (!st.isFile()) throw new ReleaseError(`${file} is not a regular file`, 'pass files, not directories');
    if (seen.has(name)) throw new ReleaseError(`${file} and ${seen.get(name)} have the same name ${name}`, 'upload one file per name');
    seen.set(name, file);
    if (!allowedName(grant.files, name)) {
      throw new ReleaseError(`${file}: grant ${grant.id} does not allow the name "${name}"`, `allowed names: ${grant.files.join(', ')}`);
    }
    if (st.size === 0) throw new ReleaseError(`${file} is empty`, 'upload the built file');
    if (st.size > grant.maxSize) throw new ReleaseError(`${file} is ${humanBytes(st.size)}, more than the grant allows (${humanBytes(grant.maxSize)})`, 'ask the maintainer to raise uploaders.NAME.maxSize');
    const sha256 = await sha256File(file);
    const key = `${grant.prefix}${name}`;
    if (grant.access.method === 'presigned-post') {
      const form = grant.access.forms.findIndex((f) => globMatches(f.glob, name));
      if (form < 0) throw new ReleaseError(`${file}: no POST form of grant ${grant.id} covers "${name}"`, 'ask the maintainer for a new grant');
      const a: GrantPost = { kind: 'grant.post', url: grant.access.forms[form]!.url, bucket: grant.bucket, key, file, size: st.size, sha256, grantId: grant.id, form };
      actions.push(a);
    } else {
      const a: S3Put = {
        kind: 's3.put', bucket: grant.bucket, key, source: { file }, size: st.size, sha256,
        contentType: contentTypeOf(name), reason: 'new', metadata: { 'releng-grant': grant.id },
      };
      actions.push(a);
    }
  }
  return { steps: [{ title: `uploading ${files.length} file${files.length === 1 ? '' : 's'} to s3://${grant.bucket}/${grant.prefix} (grant ${grant.id})`, actions, concurrency: 4 }], skipped: [] };
}

/** Was this failure the server refusing the grant (403, expired token or policy)? */
function refusal(e: unknown): string | undefined {
  for (let x: any = e; x; x = x.cause) {
    const status = x?.$metadata?.httpStatusCode;
    if (status === 403 || ['AccessDenied', 'ExpiredToken', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden'].includes(x?.name)) return x.name ?? '403';
    // explainS3Error's ReleaseError (no cause): its status and S3 code, kept since the trust merge.
    if (x?.status === 403) return x.s3Name || '403';
    const m = /refused (?:the credentials|access) .*?\((\w+)\)/.exec(x?.message ?? '');
    if (m) return m[1];
  }
  return undefined;
}

export async function contribute(ctx: Context, positionals: string[]): Promise<ContributeResult> {
  const { log, flags } = ctx;
  const grantPath = flags.extra.grant;
  if (typeof grantPath !== 'string') throw new UsageError('releng contribute needs --grant FILE (the file `releng grant` wrote)');
  if (positionals.length === 0) throw new UsageError('releng contribute needs the files to upload: releng contribute --grant FILE FILES...');
  const grant = await readGrantFile(path.resolve(grantPath));
  log.info(`grant ${grant.id}: uploader ${grant.uploader} of environment ${grant.environment}, ${grant.access.method}, s3://${grant.bucket}/${grant.prefix}, expires ${grant.expiresAt}`);
  const plan = await planContribution(grant, positionals);
  let local: LocalS3 | undefined;
  let endpoint = grant.endpoint;
  try {
    if (endpoint === 'embedded' && !flags.dryRun) {
      // The local environment: its S3 server runs only while releng does, on the same machine.
      if (!grant.embeddedDir) throw new ReleaseError(`${grantPath}: an embedded grant without embeddedDir`, 'mint the grant again');
      local = await startLocalS3({ dir: grant.embeddedDir });
      endpoint = local.endpoint;
    }
    const writers = grant.access.method === 'presigned-post'
      ? { post: postWriter(grant.access.forms, local?.endpoint) }
      : { s3: s3Store(createS3Client({ endpoint, region: grant.region, forcePathStyle: grant.forcePathStyle, checksums: 'WHEN_REQUIRED' }, grant.access.credentials), endpoint) };
    try {
      await apply(plan, { log, dryRun: flags.dryRun, writers, attempts: 3, concurrency: 4, resumeHint: 're-run the same command while the grant is valid: files already uploaded are sent again under the same names' });
    } catch (e) {
      const code = refusal(e);
      if (!code) throw e;
      const expired = new Date(grant.expiresAt) <= new Date() || code === 'ExpiredToken' || /expired/i.test(String((e as Error).message));
      throw new ReleaseError(`the server refused the upload (${code}): ${(e as Error).message.split('\n')[0]}\n  ${expired ? `grant ${grant.id} has expired (${grant.expiresAt})` : `grant ${grant.id} does not allow this write (another prefix or name, too large, or revoked)`}`,
        expired ? `ask the maintainer for a new grant: releng grant ${grant.uploader} --environment ${grant.environment}${grant.version ? ` --version ${grant.version}` : ''}` : 'check the file names against the grant, or ask the maintainer for a new grant',
        { cause: e });
    }
  } finally {
    await local?.stop();
  }
  const files = plan.steps[0]!.actions.map((a) => {
    const x = a as S3Put | GrantPost;
    return { key: x.key, size: x.size, sha256: x.sha256 };
  });
  if (!flags.dryRun) log.info(`uploaded ${files.length} file(s) with grant ${grant.id}; the maintainer's \`releng index --environment ${grant.environment}\` validates and publishes them`);
  return { grant: grant.id, uploader: grant.uploader, dryRun: flags.dryRun, files };
}
