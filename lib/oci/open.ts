// Opens an environment's docker targets: resolves host, TLS and credentials, and checks every
// login before anything is planned or uploaded. Also the OciWriter apply uses for them.
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DockerTarget } from '../config/config.ts';
import { ReleaseError } from '../core/errors.ts';
import type { OciWriter } from './actions.ts';
import { findCredentials, type RegistryCredentials } from './auth.ts';
import { nodeTransport, registryClient, type RegistryClient } from './registry.ts';
import { pushDirImage } from './push.ts';
import { copyByDigest, type SkopeoRegistryOptions } from './skopeo.ts';

/** One docker target, ready to read from and write to. */
export interface OpenRegistry {
  target: DockerTarget;
  /** host[:port] actually used (the embedded registry's 127.0.0.1:PORT for `embedded`). */
  host: string;
  repository: string;
  client: RegistryClient;
  skopeo: SkopeoRegistryOptions;
  auth: 'anonymous' | 'basic' | 'bearer';
  /** Where the credentials came from (never the credentials). */
  authFile?: string;
}

export interface OpenRegistryOptions {
  /** Project root: certDir is relative to it. */
  root: string;
  /** host:port of the embedded registry, for targets whose registry is `embedded`. */
  embeddedHost?: string;
  /** Auth files to search (default: the usual places, lib/oci/auth.ts). */
  authFiles?: string[];
}

/** CA certificates (*.crt) for HOST: the target's certDir, else containers-certs.d(5) and docker's certs.d. */
async function caFor(host: string, certDir: string | undefined): Promise<{ dir?: string; ca: string[] }> {
  const dirs = certDir ? [certDir] : [
    path.join(process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config'), 'containers', 'certs.d', host),
    path.join('/etc/containers/certs.d', host), path.join('/etc/docker/certs.d', host),
  ];
  for (const dir of dirs) {
    let names: string[];
    try { names = await readdir(dir); } catch {
      if (certDir) throw new ReleaseError(`certDir ${certDir} of the docker target ${host} cannot be read`, 'create it with the registry\'s CA certificate as ca.crt, or remove certDir');
      continue;
    }
    const ca = await Promise.all(names.filter((n) => n.endsWith('.crt')).sort().map((n) => readFile(path.join(dir, n), 'utf8')));
    return { dir: certDir ? dir : undefined, ca };
  }
  return { ca: [] };
}

/** Opens one target and proves the login (pull and push on its repository). */
export async function openRegistry(target: DockerTarget, opts: OpenRegistryOptions): Promise<OpenRegistry> {
  const embedded = target.registry === 'embedded';
  if (embedded && !opts.embeddedHost) throw new Error('internal: embedded registry not started');
  const host = embedded ? opts.embeddedHost! : target.registry;
  const tlsVerify = embedded ? false : target.tlsVerify;
  const certDir = target.certDir ? path.resolve(opts.root, target.certDir) : undefined;
  const { ca } = embedded ? { ca: [] } : await caFor(host, certDir);
  const credentials: RegistryCredentials | undefined = embedded ? undefined : await findCredentials(host, target.repository, opts.authFiles);
  const transport = nodeTransport({ ca, tlsVerify });
  let scheme: 'http' | 'https' = embedded ? 'http' : 'https';
  if (!embedded && !tlsVerify && !(await answersHttps(transport, host))) scheme = 'http';
  // docker.io is an alias: its registry API lives at registry-1.docker.io (skopeo knows; our client must be told).
  const client = registryClient({ host: host === 'docker.io' ? 'registry-1.docker.io' : host, scheme, credentials, transport });
  const { auth } = await client.checkLogin(target.repository);
  return {
    target, host, repository: target.repository, client, auth, authFile: credentials?.authFile,
    skopeo: { tlsVerify, certDir, authFile: credentials?.authFile },
  };
}

/** With tlsVerify off, a registry may speak plain HTTP (as skopeo and docker fall back to it). */
async function answersHttps(transport: ReturnType<typeof nodeTransport>, host: string): Promise<boolean> {
  try { await transport({ method: 'GET', url: `https://${host}/v2/` }); return true; } catch { return false; }
}

/** Pushes images and PUTs indexes with the registry client of the target they name (every request retried, issue 25). */
export function ociWriter(registries: OpenRegistry[]): OciWriter {
  const find = (host: string, repository: string) => {
    const r = registries.find((x) => x.host === host && x.repository === repository);
    if (!r) throw new Error(`internal: no open registry for ${host}/${repository}`);
    return r;
  };
  return {
    async push(a) {
      const r = find(a.registry, a.repository);
      await pushDirImage(r.client, a.repository, a.dir, a.digest);
    },
    async putIndex(a) {
      return find(a.registry, a.repository).client.putManifest(a.repository, a.tag, a.body, a.mediaType);
    },
  };
}

/** The writer of promote: the destination's, plus registry → registry copies from the source's targets. */
export function promoteOciWriter(source: OpenRegistry[], dest: OpenRegistry[]): OciWriter {
  const base = ociWriter(dest);
  return {
    ...base,
    async copy(a) {
      const s = source.find((x) => x.host === a.fromRegistry && x.repository === a.fromRepository);
      const d = dest.find((x) => x.host === a.registry && x.repository === a.repository);
      if (!s || !d) throw new Error(`internal: no open registry for ${a.fromRegistry}/${a.fromRepository} or ${a.registry}/${a.repository}`);
      await copyByDigest(`${s.host}/${s.repository}@${a.digest}`, s.skopeo, `${d.host}/${d.repository}@${a.digest}`, d.skopeo);
    },
  };
}
