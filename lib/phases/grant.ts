// `releng grant NAME`: mints a narrow, expiring upload grant for an outside builder (issue 12) and
// writes it as a JSON file for the uploader. The maintainer's keys sign the request and stay here.
import { appendFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { nanoid } from 'nanoid';
import { environmentNamed, parseS3Url } from '../config/config.ts';
import type { Context } from '../config/context.ts';
import { environmentName, localDataDir, openEnvironment } from '../environment/open.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { parseDuration } from '../config/grants.ts';
import { writeGrantFile, type GrantFile } from '../grants/grant-file.ts';
import { mintCommand, mintPost, mintSts, sessionPolicy, type MintRequest } from '../grants/mint.ts';
import { regexToGlob, resolvePrefix } from '../grants/names.ts';
import { resolveCredentials } from '../s3/credentials.ts';
import { createS3Client } from '../s3/store.ts';

export interface GrantResult {
  id: string;
  file: string;
  uploader: string;
  environment: string;
  method: string;
  bucket: string;
  prefix: string;
  globs: string[];
  expiresAt: string;
  dryRun: boolean;
}

/** Where the audit trail of grants goes (ids, scope, expiry; never credentials). */
export function grantLogFile(root: string, envName: string): string {
  return path.join(root, '.releng', 'grants', `${envName}.jsonl`);
}

export async function grant(ctx: Context, positionals: string[]): Promise<GrantResult> {
  const { log, flags } = ctx;
  const name = positionals[0];
  if (!name || positionals.length > 1) throw new UsageError('releng grant takes one uploader name: releng grant NAME --environment ENV [--version V] [--ttl 1h]');
  const envName = environmentName(ctx);
  const env = environmentNamed(ctx.loaded, envName);
  const uploader = env.uploaders[name];
  const field = `environments.${envName}.uploaders.${name}`;
  if (!uploader) {
    const names = Object.keys(env.uploaders);
    throw new ReleaseError(`${ctx.loaded.file}: environment "${envName}" has no uploader "${name}"`,
      names.length ? `use one of: ${names.join(', ')}` : `define ${field} (see docs/grants-and-index.md)`);
  }
  const method = env.grants;
  if (!method) throw new ReleaseError(`${ctx.loaded.file}: environment "${envName}" has no "grants" method`, `set environments.${envName}.grants to {"method": "sts", "roleArn": ...}, {"method": "presigned-post"} or {"method": "command", ...}`);
  const version = typeof flags.extra.version === 'string' ? flags.extra.version : undefined;
  const ttlText = typeof flags.extra.ttl === 'string' ? flags.extra.ttl : uploader.ttl;
  let ttlSeconds: number;
  try { ttlSeconds = parseDuration(ttlText); } catch (e) { throw new UsageError(`--ttl: ${(e as Error).message}`); }
  const maxTtl = parseDuration(uploader.maxTtl);
  if (ttlSeconds > maxTtl) throw new ReleaseError(`--ttl ${ttlText} is longer than ${field}.maxTtl (${uploader.maxTtl})`, 'ask for a shorter grant, or raise maxTtl in releng.json');
  const ref = parseS3Url(uploader.bucket);
  const prefix = ref.prefix + resolvePrefix(uploader.prefix, name, version, `${field}.prefix`);
  const globs = [...new Set(uploader.files.map(regexToGlob))];
  const id = nanoid(16);
  const output = path.resolve(typeof flags.extra.output === 'string' ? flags.extra.output : `releng-grant-${name}${version ? `-${version}` : ''}-${id}.json`);
  const releaseDir = path.resolve(ctx.releaseDir) + path.sep;
  if (output.startsWith(releaseDir)) throw new ReleaseError(`--output ${output} is under release/, which must never hold credentials`, 'write the grant elsewhere (the default is the current directory)');

  const scope = `${globs.map((g) => `s3://${ref.bucket}/${prefix}${g}`).join(', ')} (at most ${uploader.maxSize} bytes each)`;
  if (flags.dryRun) {
    const what = method.method === 'sts' ? `sts AssumeRole ${method.roleArn} session releng-grant-${id} for ${ttlSeconds}s with session policy ${sessionPolicy(ref.bucket, prefix, globs)}`
      : method.method === 'presigned-post' ? `presign ${globs.length} POST form(s) for ${ttlSeconds}s: key starts-with ${globs.map((g) => `${prefix}${g.split('*')[0]}`).join(', ')}, content-length-range 1..${uploader.maxSize}`
        : `run ${method.command[0]} (grants.command) for ${scope}`;
    log.info(`[dry-run] ${what}`);
    log.info(`[dry-run] write grant ${id} to ${output}`);
    return { id, file: output, uploader: name, environment: envName, method: method.method, bucket: ref.bucket, prefix, globs, expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString(), dryRun: true };
  }

  const phase = log.phase(`minting grant ${id} (${method.method}) for ${name}`);
  if (!env.s3) throw new ReleaseError(`environment "${envName}" has no s3 settings: grants are for S3 buckets`, `set environments.${envName}.s3`);
  const s3env = env.s3;
  const target = await openEnvironment(ctx, envName, { registries: false });
  try {
    if (!target.embeddedS3) await target.s3.checkBucket(ref.bucket);
    const req: MintRequest = { id, bucket: ref.bucket, prefix, globs, maxSize: uploader.maxSize, ttlSeconds, uploader: name, endpoint: target.endpoint, region: s3env.region };
    const maintainer = await resolveCredentials(envName, env);
    let minted;
    if (method.method === 'sts') {
      if (target.embeddedS3) throw new ReleaseError(`environment "${envName}" uses the embedded S3 server, which has no STS`, `use {"method": "presigned-post"} for environments.${envName}.grants`);
      minted = await mintSts(method, req, maintainer);
    } else if (method.method === 'presigned-post') {
      minted = await mintPost(await createS3Client({ ...s3env, endpoint: target.endpoint }, maintainer).client(), req, target.endpoint);
    } else {
      minted = await mintCommand(method, req, envName);
    }
    const now = new Date();
    const file: GrantFile = {
      releng: 'grant', formatVersion: 1, id, uploader: name, environment: envName, kind: uploader.kind,
      ...(version ? { version } : {}),
      createdAt: now.toISOString(), expiresAt: minted.expiresAt.toISOString(),
      endpoint: target.embeddedS3 ? 'embedded' : target.endpoint,
      ...(target.embeddedS3 ? { embeddedDir: path.join(localDataDir(ctx.root), 's3') } : {}),
      region: s3env.region, forcePathStyle: s3env.forcePathStyle,
      bucket: ref.bucket, prefix, files: uploader.files, globs, maxSize: uploader.maxSize,
      access: minted.access,
    };
    await writeGrantFile(output, file);
    const logFile = grantLogFile(ctx.root, envName);
    await mkdir(path.dirname(logFile), { recursive: true });
    await appendFile(logFile, JSON.stringify({ id, uploader: name, version, method: method.method, bucket: ref.bucket, prefix, globs, createdAt: file.createdAt, expiresAt: file.expiresAt, file: output }) + '\n');
    phase.succeed(`grant ${id}: ${scope}, expires ${file.expiresAt}`);
    log.info(`wrote ${output} (mode 0600): give it to the uploader over a private channel; they run \`releng contribute --grant ${path.basename(output)} FILES...\``);
    return { id, file: output, uploader: name, environment: envName, method: method.method, bucket: ref.bucket, prefix, globs, expiresAt: file.expiresAt, dryRun: false };
  } catch (e) {
    phase.fail();
    throw e;
  } finally {
    await target.close();
  }
}
