// `releng serve`: the local environment on fixed ports, to browse a local release. S3 requests
// (objects, S3 listings with a query, PUTs) pass through to the embedded S3 server; a GET of "/"
// or of a path ending in "/" answers an HTML index page instead of S3's XML. The embedded
// registry, when the environment has one, listens on --registry-port (default 5000).
import http from 'node:http';
import path from 'node:path';
import type { Context } from '../config/context.ts';
import { environmentNamed } from '../config/config.ts';
import { localDataDir } from '../environment/open.ts';
import { ReleaseError } from '../core/errors.ts';
import { entriesUnder, renderListing } from '../html/listing.ts';
import { createS3Client, s3Store, type S3Store } from '../s3/store.ts';
import { defaultServePorts } from '../local/ports.ts';
import { startLocalRegistry } from '../local/registry-server.ts';
import { embeddedCredentials, startLocalS3 } from '../local/s3-server.ts';

function portFlag(value: unknown, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ReleaseError(`--${flag} ${String(value)} is not a port number`, 'give a number from 0 to 65535 (0: any free port)');
  return port;
}

/** An HTML index for GET / and GET /BUCKET/PREFIX/ (no query); undefined when S3 should answer. */
async function listing(store: S3Store, url: URL, buckets: string[]): Promise<string | undefined> {
  if (url.search) return undefined;
  if (url.pathname === '/') return renderListing('/', buckets.map((b) => ({ name: `${b}/` })));
  if (!url.pathname.endsWith('/')) return undefined;
  const [bucket, ...rest] = decodeURIComponent(url.pathname.slice(1)).split('/');
  if (!bucket || !buckets.includes(bucket)) return undefined;
  const prefix = rest.join('/');
  const objects = await store.list(bucket, prefix);
  return renderListing(url.pathname, entriesUnder(prefix, objects));
}

export async function serve(ctx: Context): Promise<unknown> {
  const port = portFlag(ctx.flags.extra.port, 'port', defaultServePorts.s3);
  const registryPort = portFlag(ctx.flags.extra['registry-port'], 'registry-port', defaultServePorts.registry);
  const envName = ctx.flags.environment ?? 'local';
  const env = environmentNamed(ctx.loaded, envName);
  if (env.s3?.endpoint !== 'embedded') throw new ReleaseError(`serve only serves an environment whose s3.endpoint is "embedded" (environments.${envName}.s3.endpoint)`, 'use the environment\'s own endpoint to browse it');
  const buckets = [...new Set([env.releasesBucket, env.cacheBucket, env.docsBucket, ...(env.channelsBucket ? [env.channelsBucket] : [])].map((u) => u.slice(5).split('/')[0]!))];
  const s3 = await startLocalS3({ dir: path.join(localDataDir(ctx.root), 's3'), buckets });
  const store = s3Store(createS3Client({ ...env.s3!, endpoint: s3.endpoint }, { ...embeddedCredentials }), s3.endpoint);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const pass = () => {
      const up = http.request(`${s3.endpoint}${req.url}`, { method: req.method, headers: { ...req.headers, host: new URL(s3.endpoint).host } }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', (e) => { res.writeHead(502); res.end(`embedded S3 server: ${e.message}\n`); });
      req.pipe(up);
    };
    if (req.method !== 'GET') return pass();
    listing(store, url, buckets).then((html) => {
      if (html === undefined) return pass();
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    }, (e) => { res.writeHead(500, { 'content-type': 'text/plain' }); res.end(`${(e as Error).message}\n`); });
  });
  const closeAll = async () => { server.close(); await s3.stop(); };
  try {
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', () => resolve()); });
  } catch (e: any) {
    await s3.stop();
    throw new ReleaseError(`cannot listen on 127.0.0.1:${port}: ${e.code ?? e.message}`, 'pass --port with a free port');
  }
  const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const releases = env.releasesBucket.slice(5).replace(/\/?$/, '/');
  ctx.log.info(`serving ${s3.dir} on ${endpoint} (Ctrl-C stops)`);
  ctx.log.info(`  browse:        ${endpoint}/`);
  ctx.log.info(`  root manifest: ${endpoint}/${releases}manifest.nix`);
  // The images of a local release, when the environment has an embedded registry (docs/images.md).
  const embedded = env.docker.filter((d) => d.registry === 'embedded');
  let registry;
  try {
    registry = embedded.length ? await startLocalRegistry({ dir: path.join(localDataDir(ctx.root), 'registry'), port: registryPort || undefined }) : undefined;
  } catch (e) {
    await closeAll();
    throw e;
  }
  if (registry) {
    ctx.log.info(`serving the local registry on ${registry.host}`);
    for (const d of embedded) ctx.log.info(`  skopeo inspect --raw --tls-verify=false docker://${registry.host}/${d.repository}:TAG`);
  }
  await new Promise<void>((resolve) => { process.once('SIGINT', resolve); process.once('SIGTERM', resolve); });
  await closeAll();
  await registry?.stop();
  return { endpoint, registry: registry?.host };
}
