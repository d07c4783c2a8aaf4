// A small OCI distribution (registry v2 API) client: HEAD/GET/PUT manifests, with Basic auth or
// the Bearer token exchange (https://distribution.github.io/distribution/spec/auth/token/).
// node:http(s) rather than fetch: it takes a per-registry CA (test certificates, certs.d) without a dependency.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { ReleaseError } from '../core/errors.ts';
import { retriedRead, retriedWrite } from '../core/retry.ts';
import { registerSecret } from '../core/secrets.ts';
import type { RegistryCredentials } from './auth.ts';

export const ociIndexMediaType = 'application/vnd.oci.image.index.v1+json';
export const ociManifestMediaType = 'application/vnd.oci.image.manifest.v1+json';
const acceptManifests = [
  ociIndexMediaType, ociManifestMediaType,
  'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface HttpResponse {
  status: number;
  headers: Record<string, string | undefined>;
  body: Buffer;
}

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST';
  url: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** A body streamed from a file of this size (blob uploads), instead of `body`. */
  bodyFile?: { path: string; size: number };
}

/** One HTTP exchange (injectable: tests could swap it; production uses node:http(s)). */
export type Transport = (req: HttpRequest) => Promise<HttpResponse>;

/** node:http(s) transport; `ca` adds trusted certificates, `tlsVerify: false` accepts any certificate. */
export function nodeTransport(opts: { ca?: string[]; tlsVerify?: boolean } = {}): Transport {
  // With a custom `ca` Node trusts only it: keep the public roots too.
  const agent = new https.Agent({ ca: opts.ca?.length ? [...tls.rootCertificates, ...opts.ca] : undefined, rejectUnauthorized: opts.tlsVerify !== false });
  return (req) => new Promise((resolve, reject) => {
    const u = new URL(req.url);
    const lib = u.protocol === 'https:' ? https : http;
    const length = req.bodyFile ? req.bodyFile.size : req.body ? req.body.length : req.method === 'PUT' || req.method === 'POST' ? 0 : undefined;
    const r = lib.request(u, { method: req.method, headers: { ...req.headers, ...(length !== undefined ? { 'content-length': String(length) } : {}) }, agent: u.protocol === 'https:' ? agent : undefined }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const headers: Record<string, string | undefined> = {};
        for (const [k, v] of Object.entries(res.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
        resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    r.on('error', reject);
    // A registry that stops answering must not hang the release forever.
    r.setTimeout(120_000, () => r.destroy(Object.assign(new Error(`no answer from ${u.host} in 120 s`), { code: 'ETIMEDOUT' })));
    if (req.bodyFile) {
      const f = createReadStream(req.bodyFile.path);
      f.on('error', (e) => r.destroy(e));
      f.pipe(r);
    } else r.end(req.body);
  });
}

/** A parsed WWW-Authenticate challenge: scheme (lowercase) and its parameters. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="https://auth",service="reg",scope="repository:a/b:pull"` (RFC 7235, quoted or token values). */
export function parseWwwAuthenticate(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z][\w-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)\s*/gy;
  const rest = m[2]!;
  let p: RegExpExecArray | null;
  while (re.lastIndex < rest.length && (p = re.exec(rest))) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

/** Whether a JWT bearer token grants ACTION on REPO (its `access` claim); true when the token is opaque. */
export function tokenGrants(token: string, repository: string, action: string): boolean {
  const parts = token.split('.');
  if (parts.length !== 3) return true;
  let claims: any;
  try { claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')); } catch { return true; }
  if (!Array.isArray(claims?.access)) return true;
  return claims.access.some((a: any) => a?.type === 'repository' && a?.name === repository && Array.isArray(a?.actions) && (a.actions.includes(action) || a.actions.includes('*')));
}

export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
}

export interface RegistryClientOptions {
  /** host[:port] as in image references. */
  host: string;
  /** http for a plain-HTTP registry (the embedded one); https otherwise. */
  scheme: 'http' | 'https';
  credentials?: RegistryCredentials;
  transport: Transport;
}

/** Thrown for unexpected registry answers; `status` lets callers decide (e.g. retry an index PUT on 404). */
export class RegistryError extends ReleaseError {
  /** `retryable`: worth a quick retry (5xx, 429, dropped connection); `eventual`: a 404 that a registry catching up answers (apply retries it). */
  constructor(message: string, readonly status: number, hint?: string, readonly retryable = false, readonly eventual = false) {
    super(message, hint);
    this.name = 'RegistryError';
  }
}

/** Read and write access to one registry. Tokens are cached per scope and never printed. */
export interface RegistryClient {
  readonly host: string;
  readonly baseUrl: string;
  /** Proves the credentials give pull and push on REPO (or that none are needed); throws a ReleaseError otherwise. */
  checkLogin(repository: string): Promise<{ auth: 'anonymous' | 'basic' | 'bearer' }>;
  headManifest(repository: string, reference: string): Promise<ManifestHead | undefined>;
  getManifest(repository: string, reference: string): Promise<{ head: ManifestHead; body: Buffer } | undefined>;
  /** HEAD of a blob (layer or config) by digest: its size, or undefined when the registry lacks it (releng verify). */
  headBlob(repository: string, digest: string): Promise<number | undefined>;
  /** PUTs a manifest (or index) under a tag or digest; returns the digest the registry reports. Retried on 5xx, 429 and dropped connections. */
  putManifest(repository: string, reference: string, body: Buffer, mediaType: string): Promise<string>;
  /** Uploads a blob from a file (POST an upload, PUT the whole body with its digest); retried as a whole on 5xx, 429 and dropped connections (issue 25). */
  uploadBlob(repository: string, digest: string, file: string, size: number): Promise<void>;
  /** GETs a blob (following a redirect to its storage) and hashes it: its sha256 and size, or undefined when the registry lacks it (releng verify --deep). */
  blobSha256(repository: string, digest: string): Promise<{ sha256: string; size: number } | undefined>;
}

export function registryClient(opts: RegistryClientOptions): RegistryClient {
  const baseUrl = `${opts.scheme}://${opts.host}`;
  const tokens = new Map<string, string>();
  let basic = false;
  const creds = opts.credentials;
  const basicHeader = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
  registerSecret(basicHeader?.slice(6));
  const loginHint = `log in: skopeo login ${opts.host} (credentials are read from $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json or ~/.docker/config.json)`;

  async function send(req: HttpRequest): Promise<HttpResponse> {
    try {
      return await opts.transport(req);
    } catch (e: any) {
      const tls = /certificate|self.signed|SSL|TLS|EPROTO/i.test(`${e?.code} ${e?.message}`);
      throw new RegistryError(`cannot reach registry ${opts.host} (${req.method} ${req.url}): ${e?.message ?? e}`, 0,
        tls ? 'the registry\'s certificate is not trusted: set certDir on the docker target (a directory with its CA as *.crt), or tlsVerify: false for a test registry'
          : 'is the registry running and the docker target\'s "registry" right?', !tls);
    }
  }

  async function fetchToken(ch: Challenge, scope: string): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw new RegistryError(`registry ${opts.host} asked for a Bearer token without a realm`, 401);
    const u = new URL(realm);
    if (ch.params.service) u.searchParams.set('service', ch.params.service);
    u.searchParams.set('scope', scope);
    const res = await send({ method: 'GET', url: u.toString(), headers: basicHeader ? { authorization: basicHeader } : {} });
    if (res.status === 401 || res.status === 403) {
      throw new RegistryError(`the token service ${u.origin}${u.pathname} refused ${creds ? `the credentials of "${creds.username}" (from ${creds.authFile})` : 'an anonymous request'} for ${opts.host} (HTTP ${res.status})`,
        res.status, loginHint);
    }
    if (res.status !== 200) throw new RegistryError(`the token service ${u.origin}${u.pathname} answered HTTP ${res.status} for ${opts.host}`, res.status, 'retry later, or check the registry\'s status', res.status >= 500);
    let json: any;
    try { json = JSON.parse(res.body.toString('utf8')); } catch { json = undefined; }
    const token = json?.token ?? json?.access_token;
    if (typeof token !== 'string' || !token) throw new RegistryError(`the token service ${u.origin}${u.pathname} answered without a token`, res.status);
    registerSecret(token);
    return token;
  }

  /** Sends a request, answering an auth challenge once (Bearer token for `scope`, or Basic). */
  async function authed(req: HttpRequest, scope: string): Promise<HttpResponse> {
    const withAuth = (): HttpRequest => {
      const t = tokens.get(scope);
      const authorization = t ? `Bearer ${t}` : basic ? basicHeader : undefined;
      return authorization ? { ...req, headers: { ...req.headers, authorization } } : req;
    };
    let res = await send(withAuth());
    if (res.status !== 401) return res;
    const ch = parseWwwAuthenticate(res.headers['www-authenticate'] ?? '');
    if (ch?.scheme === 'bearer') {
      if (!creds && scope.endsWith(',push')) throw new RegistryError(`registry ${opts.host} needs a login and no credentials for it were found`, 401, loginHint);
      tokens.set(scope, await fetchToken(ch, scope));
    } else if (ch?.scheme === 'basic' || !ch) {
      if (!basicHeader) throw new RegistryError(`registry ${opts.host} needs a login and no credentials for it were found`, 401, loginHint);
      if (basic) return res;
      basic = true;
    } else {
      throw new RegistryError(`registry ${opts.host} asks for unsupported authentication "${ch.scheme}"`, 401);
    }
    res = await send(withAuth());
    return res;
  }

  const pushScope = (repo: string) => `repository:${repo}:pull,push`;
  const unauthorized = (res: HttpResponse, what: string) => new RegistryError(
    `registry ${opts.host} refused ${creds ? `the credentials of "${creds.username}" (from ${creds.authFile})` : 'anonymous access'} for ${what} (HTTP ${res.status})`, res.status, loginHint);
  const unexpected = (res: HttpResponse, what: string) => new RegistryError(
    `registry ${opts.host}: ${what} answered HTTP ${res.status}${res.body.length ? `: ${res.body.toString('utf8').slice(0, 300)}` : ''}`, res.status, undefined, res.status >= 500 || res.status === 429);
  const headOf = (res: HttpResponse, body?: Buffer): ManifestHead => ({
    digest: res.headers['docker-content-digest'] ?? '',
    mediaType: (res.headers['content-type'] ?? '').split(';')[0]!.trim(),
    size: body ? body.length : Number(res.headers['content-length'] ?? 0),
  });
  const manifestUrl = (repo: string, ref: string) => `${baseUrl}/v2/${repo}/manifests/${ref}`;

  return {
    host: opts.host,
    baseUrl,
    async checkLogin(repository) {
      // A pull+push token proves the login with Bearer; with Basic, /v2/ answering 200 does.
      const res = await retriedRead(`GET ${baseUrl}/v2/ (login check for ${repository})`, async () => {
        const r = await authed({ method: 'GET', url: `${baseUrl}/v2/` }, pushScope(repository));
        if (r.status === 401 || r.status === 403) throw unauthorized(r, `${repository}`);
        if (r.status !== 200) throw unexpected(r, 'GET /v2/');
        return r;
      });
      const token = tokens.get(pushScope(repository));
      if (token && !tokenGrants(token, repository, 'push')) {
        throw new RegistryError(`registry ${opts.host} gave ${creds ? `"${creds.username}"` : 'us'} a token without push access to ${repository}`, 403,
          `check that this account may push to ${opts.host}/${repository}, then log in again: skopeo login ${opts.host}`);
      }
      return { auth: token ? 'bearer' : basic ? 'basic' : 'anonymous' };
    },
    // Reads are retried on 5xx, 429 and dropped connections (issue 9); the final error names the URL.
    async headManifest(repository, reference) {
      const what = `HEAD ${repository}:${reference}`;
      return retriedRead(`HEAD ${manifestUrl(repository, reference)}`, async () => {
        const res = await authed({ method: 'HEAD', url: manifestUrl(repository, reference), headers: { accept: acceptManifests } }, pushScope(repository));
        if (res.status === 404) return undefined;
        if (res.status === 401 || res.status === 403) throw unauthorized(res, what);
        if (res.status !== 200) throw unexpected(res, what);
        return headOf(res);
      });
    },
    async getManifest(repository, reference) {
      const what = `GET ${repository}:${reference}`;
      return retriedRead(`GET ${manifestUrl(repository, reference)}`, async () => {
        const res = await authed({ method: 'GET', url: manifestUrl(repository, reference), headers: { accept: acceptManifests } }, pushScope(repository));
        if (res.status === 404) return undefined;
        if (res.status === 401 || res.status === 403) throw unauthorized(res, what);
        if (res.status !== 200) throw unexpected(res, what);
        return { head: headOf(res, res.body), body: res.body };
      });
    },
    async headBlob(repository, digest) {
      const what = `HEAD blob ${repository}@${digest}`;
      const url = `${baseUrl}/v2/${repository}/blobs/${digest}`;
      return retriedRead(`HEAD ${url}`, async () => {
        const res = await authed({ method: 'HEAD', url }, pushScope(repository));
        if (res.status === 404) return undefined;
        if (res.status === 401 || res.status === 403) throw unauthorized(res, what);
        if (res.status !== 200) throw unexpected(res, what);
        return Number(res.headers['content-length'] ?? 0);
      });
    },
    async blobSha256(repository, digest) {
      const what = `GET blob ${repository}@${digest}`;
      const url = `${baseUrl}/v2/${repository}/blobs/${digest}`;
      return retriedRead(`GET ${url}`, async () => {
        let res = await authed({ method: 'GET', url }, pushScope(repository));
        // Registries on object storage answer with a redirect to a signed URL (no registry auth there).
        for (let hops = 0; hops < 3 && [301, 302, 303, 307, 308].includes(res.status) && res.headers.location; hops++) {
          res = await send({ method: 'GET', url: new URL(res.headers.location, url).toString() });
        }
        if (res.status === 404) return undefined;
        if (res.status === 401 || res.status === 403) throw unauthorized(res, what);
        if (res.status !== 200) throw unexpected(res, what);
        return { sha256: createHash('sha256').update(res.body).digest('hex'), size: res.body.length };
      });
    },
    async putManifest(repository, reference, body, mediaType) {
      const what = `PUT ${repository}:${reference}`;
      // A PUT of the same bytes is idempotent: retried on 5xx, 429 and dropped connections (issue 25).
      return retriedWrite(`PUT ${manifestUrl(repository, reference)}`, async () => {
        const res = await authed({ method: 'PUT', url: manifestUrl(repository, reference), headers: { 'content-type': mediaType }, body }, pushScope(repository));
        if (res.status === 401 || res.status === 403) throw unauthorized(res, what);
        if (res.status !== 201 && res.status !== 200) {
          // 404 / MANIFEST_UNKNOWN / MANIFEST_BLOB_UNKNOWN right after the children were pushed: the
          // registry is eventually consistent (S3-backed ones are), so the index PUT may be retried
          // (by apply, which waits longer than these quick retries).
          const err = unexpected(res, what);
          throw new RegistryError(err.message, res.status, err.hint, err.retryable, res.status === 404);
        }
        return res.headers['docker-content-digest'] ?? '';
      });
    },
    async uploadBlob(repository, digest, file, size) {
      const what = `blob upload ${repository}@${digest}`;
      const start = `${baseUrl}/v2/${repository}/blobs/uploads/`;
      await retriedWrite(`POST ${start} + PUT (${what}, ${size} bytes)`, async () => {
        // Each try starts its own upload session: a PUT that failed may have consumed the last one.
        const post = await retriedWrite(`POST ${start}`, async () => {
          const res = await authed({ method: 'POST', url: start }, pushScope(repository));
          if (res.status === 401 || res.status === 403) throw unauthorized(res, `POST ${start}`);
          if (res.status !== 202 || !res.headers.location) throw unexpected(res, `POST ${start}${res.status === 202 ? ' (no Location)' : ''}`);
          return res;
        });
        const location = new URL(post.headers.location!, start);
        location.searchParams.set('digest', digest);
        const res = await authed({ method: 'PUT', url: location.toString(), headers: { 'content-type': 'application/octet-stream' }, bodyFile: { path: file, size } }, pushScope(repository));
        if (res.status === 401 || res.status === 403) throw unauthorized(res, what);
        if (res.status !== 201) throw unexpected(res, `PUT ${location.origin}${location.pathname} (${what})`);
        const got = res.headers['docker-content-digest'];
        if (got && got !== digest) throw new RegistryError(`registry ${opts.host} stored ${what} as ${got}`, res.status, 'the blob file under release/oci does not hash to its name: delete release/oci and re-run');
      });
    },
  };
}
