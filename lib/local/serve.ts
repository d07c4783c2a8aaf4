// `releng serve`: the local environment's S3 data on a fixed port, to browse a local release.
import type { Context } from '../context.ts';
import { environmentNamed, parseS3Url } from '../config.ts';
import { localDataDir } from '../environment.ts';
import { ReleaseError } from '../errors.ts';
import { startLocalRegistry } from './registry-server.ts';
import { startLocalS3 } from './s3-server.ts';
import path from 'node:path';

export async function serve(ctx: Context): Promise<unknown> {
  const portFlag = ctx.flags.extra.port;
  const port = portFlag === undefined ? 4566 : Number(portFlag);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ReleaseError(`--port ${portFlag} is not a port number`);
  const env = environmentNamed(ctx.loaded, ctx.flags.environment ?? 'local');
  if (env.s3?.endpoint !== 'embedded') throw new ReleaseError('serve only serves an environment whose s3.endpoint is "embedded"');
  process.env.RELENG_S3_PORT = String(port);
  const s3 = await startLocalS3({ dir: path.join(localDataDir(ctx.root), 's3') });
  const releases = parseS3Url(env.releasesBucket);
  ctx.log.info(`serving ${s3.dir} on ${s3.endpoint} (Ctrl-C stops)`);
  ctx.log.info(`  root manifest: ${s3.endpoint}/${releases.bucket}/${releases.prefix}manifest.nix`);
  ctx.log.info(`  listing:       ${s3.endpoint}/${releases.bucket}?list-type=2`);
  // The images of a local release, when the environment has an embedded registry (docs/images.md).
  const embedded = env.docker.filter((d) => d.registry === 'embedded');
  const registry = embedded.length ? await startLocalRegistry({ dir: path.join(localDataDir(ctx.root), 'registry') }) : undefined;
  if (registry) {
    ctx.log.info(`serving the local registry on ${registry.host}`);
    for (const d of embedded) ctx.log.info(`  skopeo inspect --raw --tls-verify=false docker://${registry.host}/${d.repository}:TAG`);
  }
  await new Promise<void>((resolve) => { process.once('SIGINT', resolve); process.once('SIGTERM', resolve); });
  await s3.stop();
  await registry?.stop();
  return { endpoint: s3.endpoint, registry: registry?.host };
}
