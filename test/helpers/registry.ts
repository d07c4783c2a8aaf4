// Real registries for tests: docker-registry on 127.0.0.1 (plain, htpasswd over TLS, or token auth),
// test certificates made with openssl, and a tiny token server in front of token auth.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomUUID, sign } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startLocalRegistry, type LocalRegistry } from '../../lib/local/registry-server.ts';

/** A self-signed certificate for 127.0.0.1 (also its own CA), and a cert dir holding it as ca.crt. */
export async function testCertificate(dir: string): Promise<{ cert: string; key: string; certDir: string; pem: string }> {
  const cert = path.join(dir, 'registry.crt');
  const key = path.join(dir, 'registry.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const certDir = path.join(dir, 'certs.d');
  await mkdir(certDir, { recursive: true });
  const pem = await readFile(cert, 'utf8');
  await writeFile(path.join(certDir, 'ca.crt'), pem);
  return { cert, key, certDir, pem };
}

/** An auth.json (containers-auth.json(5)) for HOST in DIR/containers/auth.json (use DIR as XDG_RUNTIME_DIR). */
export async function writeAuthJson(runtimeDir: string, host: string, user: string, password: string): Promise<string> {
  const file = path.join(runtimeDir, 'containers', 'auth.json');
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }));
  return file;
}

export interface TestRegistry extends LocalRegistry {
  /** Repositories in the registry (GET /v2/_catalog, as the given user when auth is on). */
  catalog(): Promise<string[]>;
}

/** docker-registry with htpasswd (bcrypt) basic auth over TLS. */
export async function startTlsRegistry(user: string, password: string): Promise<TestRegistry & { certDir: string; pem: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-registry-tls-'));
  const { cert, key, certDir, pem } = await testCertificate(dir);
  const htpasswd = path.join(dir, 'htpasswd');
  await writeFile(htpasswd, execFileSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8' }));
  const reg = await startLocalRegistry({ dir: path.join(dir, 'registry'), tls: { certificate: cert, key }, htpasswd });
  const auth = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  return {
    ...reg, certDir, pem,
    catalog: () => catalog(`${reg.url}/v2/_catalog`, { authorization: auth }, pem),
    async stop() { await reg.stop(); await rm(dir, { recursive: true, force: true }); },
  };
}

/** docker-registry with token auth, and an in-test token server (Basic-checked, RS256 JWT with x5c). */
export async function startTokenRegistry(user: string, password: string): Promise<TestRegistry & { tokenRequests: string[] }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-registry-token-'));
  const { cert, key, pem } = await testCertificate(dir);
  const der = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const privateKey = createPrivateKey(await readFile(key, 'utf8'));
  const service = 'releng-test-registry';
  const issuer = 'releng-test-token-server';
  const tokenRequests: string[] = [];
  const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    tokenRequests.push(u.searchParams.getAll('scope').join(' '));
    const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    if (req.headers.authorization !== expected) { res.writeHead(401, { 'content-type': 'application/json' }); res.end('{"errors":[{"code":"UNAUTHORIZED"}]}'); return; }
    const access = u.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean).map((s) => {
      const [type, ...rest] = s.split(':');
      const actions = rest.pop()!.split(',');
      return { type, name: rest.join(':'), actions };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [der] };
    const claims = { iss: issuer, sub: user, aud: service, exp: now + 600, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const token = `${input}.${b64url(sign('sha256', Buffer.from(input), privateKey))}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 600, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const realm = `http://127.0.0.1:${(server.address() as any).port}/token`;
  const reg = await startLocalRegistry({ dir: path.join(dir, 'registry'), token: { realm, service, issuer, rootCertBundle: cert } });
  return {
    ...reg, tokenRequests,
    catalog: async () => {
      const t = await (await fetch(`${realm}?service=${service}&scope=registry:catalog:*`, { headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } })).json() as any;
      return catalog(`${reg.url}/v2/_catalog`, { authorization: `Bearer ${t.token}` });
    },
    async stop() { await reg.stop(); await new Promise((r) => server.close(r)); await rm(dir, { recursive: true, force: true }); },
  };
}

async function catalog(url: string, headers: Record<string, string>, ca?: string): Promise<string[]> {
  const { nodeTransport } = await import('../../lib/oci/registry.ts');
  const res = await nodeTransport({ ca: ca ? [ca] : undefined })({ method: 'GET', url, headers });
  if (res.status !== 200) throw new Error(`catalog: HTTP ${res.status} ${res.body.toString()}`);
  return JSON.parse(res.body.toString()).repositories ?? [];
}
