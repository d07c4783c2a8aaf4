// Minting a grant: narrow, expiring write access to one prefix and a few names, by the
// environment's method. The maintainer's credentials sign the request; only the result (temporary
// keys, or POST forms) goes into the grant file.
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { createPresignedPost } from '@aws-sdk/s3-presigned-post';
import type { S3Client } from '@aws-sdk/client-s3';
import type { GrantMethod } from '../config/grants.ts';
import { ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import { registerSecret } from '../core/secrets.ts';
import type { S3Credentials } from '../s3/store.ts';
import { globHead } from './names.ts';
import type { GrantFile } from './grant-file.ts';

export interface MintRequest {
  id: string;
  bucket: string;
  /** Full key prefix, ending with '/'. */
  prefix: string;
  globs: string[];
  maxSize: number;
  ttlSeconds: number;
  uploader: string;
  /** S3 endpoint the maintainer's client talks to (for STS: the default STS endpoint). */
  endpoint: string;
  region: string;
}

/** The S3 IAM policy of a grant: PutObject (and multipart bookkeeping) on exactly the granted names. */
export function sessionPolicy(bucket: string, prefix: string, globs: string[]): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{
      Effect: 'Allow',
      Action: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
      Resource: globs.map((g) => `arn:aws:s3:::${bucket}/${prefix}${g}`),
    }],
  });
}

/** STS AssumeRole with the session policy: the result can do at most what both role and policy allow. */
export async function mintSts(method: Extract<GrantMethod, { method: 'sts' }>, req: MintRequest, maintainer: S3Credentials): Promise<{ access: GrantFile['access']; expiresAt: Date }> {
  const sts = new STSClient({ endpoint: method.endpoint ?? req.endpoint, region: req.region, credentials: maintainer, maxAttempts: 2 });
  let r;
  try {
    r = await sts.send(new AssumeRoleCommand({
      RoleArn: method.roleArn,
      RoleSessionName: `releng-grant-${req.id}`,
      DurationSeconds: req.ttlSeconds,
      Policy: sessionPolicy(req.bucket, req.prefix, req.globs),
    }));
  } catch (e: any) {
    const status = e?.$metadata?.httpStatusCode;
    throw new ReleaseError(`STS AssumeRole of ${method.roleArn} at ${method.endpoint ?? req.endpoint} failed: ${e?.name ?? 'error'}${status ? ` (HTTP ${status})` : ''}${e?.message && e.message !== e.name ? `: ${e.message}` : ''}`,
      `check grants.roleArn, that the environment's credentials may assume it, and that --ttl is within the role's session limits (AWS and RGW: at least 900s${req.ttlSeconds < 900 ? `; ${req.ttlSeconds}s was asked` : ''})`);
  }
  const c = r.Credentials;
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) throw new ReleaseError('STS AssumeRole answered without credentials', 'check the STS endpoint (grants.endpoint)');
  registerSecret(c.SecretAccessKey);
  registerSecret(c.SessionToken);
  return {
    access: { method: 'sts', credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken } },
    expiresAt: new Date(c.Expiration),
  };
}

/**
 * One presigned POST form per name glob: the key must start with the prefix and the glob's literal
 * head, the size lie within 1..maxSize, the grant id be the metadata the form sets; it expires.
 */
export async function mintPost(client: S3Client, req: MintRequest, endpointForUrls: string): Promise<{ access: GrantFile['access']; expiresAt: Date }> {
  const forms = [];
  for (const glob of req.globs) {
    const head = `${req.prefix}${globHead(glob)}`;
    const post = await createPresignedPost(client, {
      Bucket: req.bucket,
      // `${filename}` makes the SDK sign starts-with on the key instead of one exact key.
      Key: `${head}\${filename}`,
      Conditions: [
        ['starts-with', '$key', head],
        ['content-length-range', 1, req.maxSize],
        ['starts-with', '$Content-Type', ''],
        ['starts-with', '$Content-MD5', ''],
        ['starts-with', '$x-amz-meta-sha256', ''],
      ],
      Fields: { 'x-amz-meta-releng-grant': req.id },
      Expires: req.ttlSeconds,
    });
    const fields = { ...post.fields };
    delete fields.key; // the uploader sets the key (within starts-with)
    const url = `${endpointForUrls.replace(/\/$/, '')}/${req.bucket}`;
    registerSecret(fields['X-Amz-Signature']);
    forms.push({ glob, url, fields });
  }
  return { access: { method: 'presigned-post', forms }, expiresAt: new Date(Date.now() + req.ttlSeconds * 1000) };
}

/** Runs the configured command (Garage's key tool) with the grant's scope; it prints JSON keys. */
export async function mintCommand(method: Extract<GrantMethod, { method: 'command' }>, req: MintRequest, envName: string, vars: NodeJS.ProcessEnv = process.env): Promise<{ access: GrantFile['access']; expiresAt: Date }> {
  const fill = (a: string) => a.replaceAll('{bucket}', req.bucket).replaceAll('{prefix}', req.prefix)
    .replaceAll('{ttlSeconds}', String(req.ttlSeconds)).replaceAll('{grantId}', req.id).replaceAll('{name}', req.uploader);
  const [cmd, ...args] = method.command.map(fill);
  const { stdout } = await run(cmd!, args, { env: vars });
  let parsed: any;
  try { parsed = JSON.parse(stdout); } catch {
    throw new ReleaseError(`the grant command of environment "${envName}" (${cmd}) did not print JSON`, `it must print an object with "${method.accessKeyIdField}" and "${method.secretAccessKeyField}"`);
  }
  const id = parsed?.[method.accessKeyIdField];
  const secret = parsed?.[method.secretAccessKeyField];
  const token = method.sessionTokenField ? parsed?.[method.sessionTokenField] : undefined;
  registerSecret(typeof secret === 'string' ? secret : undefined);
  registerSecret(typeof token === 'string' ? token : undefined);
  if (typeof id !== 'string' || typeof secret !== 'string' || (method.sessionTokenField && typeof token !== 'string')) {
    const want = [method.accessKeyIdField, method.secretAccessKeyField, method.sessionTokenField].filter(Boolean).map((f) => `"${f}"`).join(', ');
    throw new ReleaseError(`the grant command of environment "${envName}" (${cmd}) printed JSON without string fields ${want}`,
      `fix environments.${envName}.grants.accessKeyIdField / secretAccessKeyField / sessionTokenField in releng.json`);
  }
  let expiresAt = new Date(Date.now() + req.ttlSeconds * 1000);
  if (method.expirationField) {
    const raw = parsed?.[method.expirationField];
    const d = typeof raw === 'number' ? new Date(raw * 1000) : new Date(String(raw));
    if (Number.isNaN(d.getTime())) throw new ReleaseError(`the grant command of environment "${envName}" printed "${method.expirationField}" that is not a date`, 'print an ISO date or seconds since the epoch, or drop grants.expirationField');
    expiresAt = d;
  }
  return { access: { method: 'command', credentials: { accessKeyId: id, secretAccessKey: secret, ...(typeof token === 'string' ? { sessionToken: token } : {}) } }, expiresAt };
}
