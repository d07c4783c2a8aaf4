// The embedded container registry of the local environment (and of the tests): Debian's
// docker-registry (CNCF distribution 2.8) on 127.0.0.1, filesystem storage, stopped with its parent.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { MissingToolError, ReleaseError } from '../core/errors.ts';
import { debianPackageOf } from '../core/exec.ts';

export interface LocalRegistry {
  /** The docker-registry process (its watching sh is releng's child). */
  pid?: number;
  /** host:port as used in image references (127.0.0.1:PORT). */
  host: string;
  port: number;
  url: string;
  dir: string;
  stop(): Promise<void>;
}

export interface LocalRegistryOptions {
  /** Storage and config live here (config.yml, data/). */
  dir: string;
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { certificate: string; key: string };
  /** Basic auth against an htpasswd file (bcrypt entries; distribution requires TLS for it). */
  htpasswd?: string;
  /** Token auth: the registry trusts JWTs signed by a key whose certificate is in rootCertBundle. */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Fixed port (default: a free one). */
  port?: number;
}

/** A free TCP port on 127.0.0.1 (docker-registry cannot report the port it got for :0). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts `docker-registry serve CONFIG.yml`; resolves once /v2/ answers. */
export async function startLocalRegistry(opts: LocalRegistryOptions): Promise<LocalRegistry> {
  await mkdir(path.join(opts.dir, 'data'), { recursive: true });
  let lastError = '';
  // A port picked free may be taken before the registry binds it: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = opts.port ?? await freePort();
    const config: any = {
      version: 0.1,
      log: { level: 'error', accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: path.join(opts.dir, 'data') }, delete: { enabled: true } },
      http: { addr: `127.0.0.1:${port}`, ...(opts.tls ? { tls: { certificate: opts.tls.certificate, key: opts.tls.key } } : {}) },
    };
    if (opts.htpasswd) config.auth = { htpasswd: { realm: 'releng', path: opts.htpasswd } };
    if (opts.token) config.auth = { token: { realm: opts.token.realm, service: opts.token.service, issuer: opts.token.issuer, rootcertbundle: opts.token.rootCertBundle } };
    const configFile = path.join(opts.dir, 'config.yml');
    await writeFile(configFile, stringify(config));
    // The registry runs under a small sh that watches a pipe from this process (issue 25): when
    // releng ends in any way, SIGKILL included, the pipe closes and the registry is stopped, so no
    // run leaves one behind. The first line sh prints is the registry's pid.
    const proc = spawn('sh', ['-c', watchedRegistry, 'sh', configFile], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d) => { stderr += d; });
    const registryPid = await new Promise<number | undefined>((resolve) => {
      createInterface({ input: proc.stdout! }).once('line', (l) => resolve(Number(l) || undefined));
      proc.once('exit', () => resolve(undefined));
      proc.once('error', () => resolve(undefined));
    });
    const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    const up = await waitUntilServing(proc, url);
    if (up === 'enoent' || /docker-registry: (not found|No such file)/.test(stderr)) throw new MissingToolError('docker-registry', debianPackageOf['docker-registry']!);
    if (up === 'exited') { lastError = stderr.trim(); if (opts.port) break; continue; }
    const killAll = () => { if (registryPid) { try { process.kill(registryPid, 'SIGKILL'); } catch { /* gone */ } } proc.kill('SIGKILL'); };
    // Never outlive releng, even when it dies on an error before stop() (the pipe covers SIGKILL).
    process.once('exit', killAll);
    const exited = new Promise<void>((r) => (proc.exitCode !== null ? r() : proc.once('exit', () => r())));
    return {
      host: `127.0.0.1:${port}`, port, url, dir: opts.dir, pid: registryPid,
      async stop() {
        process.removeListener('exit', killAll);
        proc.stdin!.end();
        const t = setTimeout(killAll, 5000);
        await exited;
        clearTimeout(t);
      },
    };
  }
  throw new ReleaseError(`the embedded registry (docker-registry) did not start: ${lastError.split('\n').slice(-3).join(' ')}`, 'check that docker-registry runs: docker-registry --version');
}

/**
 * `sh -c SCRIPT sh CONFIG`: docker-registry in the background, its pid printed, and a watcher that
 * stops it when stdin (a pipe from releng) reaches EOF; sh exits with the registry's status. An
 * asynchronous list reads /dev/null unless redirected, hence fd 3.
 */
const watchedRegistry = [
  'exec 3<&0',
  'docker-registry serve "$1" </dev/null 3<&- &',
  'pid=$!',
  'echo "$pid"',
  '{ read -r _ <&3; kill -TERM "$pid" 2>/dev/null; sleep 5; kill -KILL "$pid" 2>/dev/null; } >/dev/null 2>&1 &',
  'watcher=$!',
  'exec 3<&-',
  'wait "$pid"; status=$?',
  'kill "$watcher" 2>/dev/null',
  'exit "$status"',
].join('\n');

/** Polls GET /v2/ until the registry answers (any status) or the process exits. */
async function waitUntilServing(proc: ChildProcess, url: string): Promise<'up' | 'exited' | 'enoent'> {
  let state: 'running' | 'exited' | 'enoent' = 'running';
  proc.once('error', (e: any) => { state = e?.code === 'ENOENT' ? 'enoent' : 'exited'; });
  proc.once('exit', () => { if (state === 'running') state = 'exited'; });
  for (;;) {
    if (state !== 'running') return state;
    const ok = await new Promise<boolean>((resolve) => {
      const lib = url.startsWith('https') ? https : http;
      const req = lib.get(`${url}/v2/`, { rejectUnauthorized: false } as any, (res) => { res.resume(); resolve(true); });
      req.on('error', () => resolve(false));
    });
    if (ok) return 'up';
    await new Promise((r) => setTimeout(r, 50));
  }
}
