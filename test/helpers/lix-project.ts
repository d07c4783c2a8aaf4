// A scratch Lix-shaped project (test/fixtures/lix-flake) released with examples/lix/releng.json:
// the fixture flake and Lix's release-note fragments in a git repository of its own, with a bare
// remote, and the example config whose environment ENV is pointed at servers the test started.
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { initWithRemote, repoRoot } from './project.ts';

export interface LixProject {
  base: string;
  dir: string;
  remote: string;
  /** The Nix secret key signing the cache (outside the project: never committed). */
  keyFile: string;
  publicKey: string;
  git(...args: string[]): string;
  cleanup(): Promise<void>;
}

export interface LocalServers {
  /** S3 endpoint the environment talks to (e.g. a recording proxy in front of s3rver). */
  s3Endpoint: string;
  /** host:port of a plain-HTTP docker-registry. */
  registryHost: string;
}

/** Copies the fixture, takes examples/lix/releng.json and points environment `env` at the local servers. */
export async function lixProject(env: string, servers: LocalServers): Promise<LixProject> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'releng-lix-'));
  const dir = path.join(base, 'lix');
  const remote = path.join(base, 'remote.git');
  await cp(path.join(repoRoot, 'test/fixtures/lix-flake'), dir, { recursive: true });
  await mkdir(path.join(dir, 'doc/manual/rl-next'), { recursive: true });
  await cp(path.join(repoRoot, 'test/fixtures/lix-style/rl-next'), path.join(dir, 'doc/manual/rl-next'), { recursive: true });
  await cp(path.join(repoRoot, 'test/fixtures/lix-style/change-authors.yml'), path.join(dir, 'doc/manual/change-authors.yml'));
  const keyFile = path.join(base, `${env}.key`);
  execFileSync('sh', ['-c', `nix --extra-experimental-features nix-command key generate-secret --key-name cache.${env}.lix.test-1 > "$1"`, 'sh', keyFile]);
  const publicKey = execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'convert-secret-to-public'], { input: await readFile(keyFile) }).toString().trim();

  // The example's config, every value kept but where the servers are (and the key file, and the credentials).
  const config = JSON.parse(await readFile(path.join(repoRoot, 'examples/lix/releng.json'), 'utf8'));
  const e = config.environments[env];
  e.s3.endpoint = servers.s3Endpoint;
  e.credentials = { source: 'env' };
  e.cache.signingKeyFile = keyFile;
  e.git = { ...e.git, remote: remote, remoteMatching: undefined };
  delete e.git.remoteMatching;
  e.docker = e.docker.map((d: any) => ({ ...d, registry: servers.registryHost, tlsVerify: false }));
  await writeFile(path.join(dir, 'releng.json'), JSON.stringify(config, null, 2) + '\n');

  const git = initWithRemote(dir, remote);
  git('push', '-q', 'origin', 'main');
  return { base, dir, remote, keyFile, publicKey, git, cleanup: () => rm(base, { recursive: true, force: true }) };
}

export interface SeenRequest { method: string; path: string; region?: string }

/** An HTTP proxy in front of an S3 server that records each request and the region its SigV4 signature names. */
export async function recordingProxy(target: string): Promise<{ url: string; seen: SeenRequest[]; close(): Promise<void> }> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const region = /Credential=[^/]+\/\d{8}\/([^/]+)\//.exec(String(req.headers.authorization ?? ''))?.[1];
    seen.push({ method: req.method!, path: decodeURIComponent(req.url!.split('?')[0]!), region });
    const up = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
