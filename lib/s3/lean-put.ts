// The PUT path of the S3 store without the SDK's middleware stack (issue 6): the SDK's own SigV4
// signer (@smithy/signature-v4) over node:http(s) with keep-alive sockets. The SDK costs ~1.5 ms of
// CPU per PutObject on this machine, four times a bare signed PUT, and the S3 server shares the
// CPU. x-amz-content-sha256 carries the sha256 we already know, so a real S3 rejects a body that
// does not match it (a file changed after planning) at no hashing cost. Large files go multipart
// streamed from disk in ranges (constant memory), each part signed with its own sha256.
import http from 'node:http';
import https from 'node:https';
import { createHash, createHmac } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { SignatureV4 } from '@smithy/signature-v4';
import { digestFile, md5Base64, sha256HexToBase64 } from '../hashing/checksums.ts';
import { ReleaseError } from '../core/errors.ts';
import type { S3Credentials } from './credentials.ts';

/** Keep-alive sockets shared by the SDK client and the lean path (one pool per process). */
export const keepAliveAgents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
};

/**
 * Bodies up to this size are read whole, synchronously, and sent in one write; larger ones are
 * streamed. A sync read from the page cache costs microseconds, less CPU than an async read's
 * thread-pool round trips, and CPU per PUT is what limits uploads of many small files.
 */
const READ_WHOLE_MAX = 1024 * 1024;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** No byte moving for this long on a socket: give up (retryable, apply retries). */
const IDLE_TIMEOUT_MS = 120_000;

/** What SignatureV4 wants as its hash: sha256, or HMAC-sha256 given a secret, on node:crypto. */
class NodeSha256 {
  private h;
  constructor(secret?: string | Uint8Array) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
  update(data: string | Uint8Array) { this.h.update(data); }
  async digest(): Promise<Uint8Array> { return new Uint8Array(this.h.digest()); }
  reset() { throw new Error('NodeSha256: reset is not used'); }
}

export interface LeanTarget {
  endpoint: string;
  region: string;
  forcePathStyle: boolean;
  credentials: () => Promise<S3Credentials>;
}

/** The checksum a PUT carries for the server to verify, besides the signed payload sha256 (config `s3.transitChecksum`). */
export type TransitChecksum = 'content-md5' | 'sha256' | 'payload-sha256-only';

export interface PutOptions {
  transit?: TransitChecksum;
  /** Base64 MD5 of the planned bytes (computed in the same read as their sha256), for Content-MD5. */
  md5?: string;
  /** Create only: `If-None-Match: *`. */
  ifNoneMatch?: boolean;
}

export interface LeanObject {
  bucket: string;
  key: string;
  /** Headers besides host/length/sha256: content-type, x-amz-meta-*, ... */
  headers: Record<string, string>;
}

/** S3 URI encoding of a key: every byte but unreserved characters and '/'. */
export function encodeKey(key: string): string {
  return key.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/');
}

/**
 * An S3 error in the shape explainS3Error/isRetryableS3Error read (name, $metadata.httpStatusCode),
 * with the server's clock when it said (the Date header; ServerTime of a RequestTimeTooSkewed body).
 */
function s3Error(status: number, body: string, headers?: http.IncomingHttpHeaders): Error {
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? (status === 404 ? 'NotFound' : status === 403 ? 'Forbidden' : `HTTP${status}`);
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? code;
  const serverTime = /<ServerTime>([^<]*)<\/ServerTime>/.exec(body)?.[1] ?? (typeof headers?.date === 'string' ? headers.date : undefined);
  return Object.assign(new Error(message), { name: code, $metadata: { httpStatusCode: status }, ...(serverTime ? { serverTime } : {}) });
}

const CONTENTS = Buffer.from('<Contents>');
const CONTENTS_END = Buffer.from('</Contents>');
const TAGS = new Map<string, [Buffer, Buffer]>();

/** The text of the first <name> element of raw[from, to), decoded as a string of its own (not a slice of the page). */
function rawElement(raw: Buffer, from: number, to: number, name: string): string | undefined {
  let tags = TAGS.get(name);
  if (!tags) TAGS.set(name, tags = [Buffer.from(`<${name}>`), Buffer.from(`</${name}>`)]);
  const open = raw.indexOf(tags[0], from);
  if (open < 0 || open >= to) return undefined;
  const a = open + tags[0].length;
  const close = raw.indexOf(tags[1], a);
  return close < 0 || close > to ? undefined : raw.toString('utf8', a, close);
}

/** A listed ETag, unescaped: `&quot;HEX&quot;` (as most servers list it) to `"HEX"` as one flat string. */
function unescapeEtag(s: string): string {
  if (s.startsWith('&quot;') && s.endsWith('&quot;') && s.indexOf('&', 6) === s.length - 6) return ['"', s.slice(6, -6), '"'].join('');
  return unescapeXml(s);
}

/** XML text to string: the five named entities and numeric references. */
export function unescapeXml(s: string): string {
  // Most keys have no entity, and listed ETags are `&quot;HEX&quot;`: no regex for those (issue 16's profile).
  if (!s.includes('&')) return s;
  if (s.startsWith('&quot;') && s.endsWith('&quot;') && s.indexOf('&', 6) === s.length - 6) return `"${s.slice(6, -6)}"`;
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) => (
    e === 'amp' ? '&' : e === 'lt' ? '<' : e === 'gt' ? '>' : e === 'quot' ? '"' : e === 'apos' ? "'"
      : String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10))));
}

/** The lean S3 requests (PUT, multipart, listing) of one endpoint. */
export function leanClient(target: LeanTarget) {
  const url = new URL(target.endpoint);
  const mod = url.protocol === 'https:' ? https : http;
  const agent = url.protocol === 'https:' ? keepAliveAgents.https : keepAliveAgents.http;
  const basePath = url.pathname.replace(/\/$/, '');
  let signer: SignatureV4 | undefined;
  const getSigner = () => (signer ??= new SignatureV4({
    service: 's3', region: target.region, credentials: target.credentials, sha256: NodeSha256 as any,
    uriEscapePath: false, applyChecksum: false,
  }));

  type RequestSpec = { bucket: string; key: string; query?: Record<string, string>; headers: Record<string, string>; payloadSha256: string; length: number; body?: Buffer | ((req: http.ClientRequest) => void) };

  /** One signed request; resolves with the response stream (not read). */
  async function open(method: string, o: RequestSpec): Promise<http.IncomingMessage> {
    const hostname = target.forcePathStyle ? url.hostname : `${o.bucket}.${url.hostname}`;
    const host = url.port ? `${hostname}:${url.port}` : hostname;
    // key '' addresses the bucket itself (listings).
    const objectPath = o.key === '' ? '' : `/${encodeKey(o.key)}`;
    const path = target.forcePathStyle ? `${basePath}/${o.bucket}${objectPath}` : `${basePath}${objectPath || '/'}`;
    const signed = await getSigner().sign({
      method, protocol: url.protocol, hostname, port: url.port ? Number(url.port) : undefined, path, query: o.query ?? {},
      headers: { ...o.headers, host, 'content-length': String(o.length), 'x-amz-content-sha256': o.payloadSha256 },
    } as any) as unknown as { headers: Record<string, string> };
    const qs = o.query ? `?${Object.entries(o.query).map(([k, v]) => (v === '' ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)).join('&')}` : '';
    const send = (retryStale: boolean): Promise<http.IncomingMessage> => new Promise((resolve, reject) => {
      const req = mod.request({ agent, method, hostname, port: url.port || undefined, path: path + qs, headers: signed.headers, setHost: false }, resolve);
      req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(Object.assign(new Error(`no progress for ${IDLE_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => {
        // A kept-alive socket the server closed as it was reused (its idle timeout): Node's advice is
        // to send again on a new socket. Only bodies that can be sent twice (a buffer, or none).
        if (retryStale && req.reusedSocket && e.code === 'ECONNRESET') resolve(send(false));
        else reject(e);
      });
      if (typeof o.body === 'function') o.body(req);
      else req.end(o.body);
    });
    return send(typeof o.body !== 'function');
  }

  /** One signed request, its answer read whole. */
  async function request(method: string, o: RequestSpec): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; raw: Buffer }> {
    const res = await open(method, o);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    return { status: res.statusCode ?? 0, headers: res.headers, body: raw.toString('utf8'), raw };
  }

  const ok = <R extends { status: number; body: string; headers?: http.IncomingHttpHeaders }>(r: R): R => { if (r.status < 200 || r.status >= 300) throw s3Error(r.status, r.body, r.headers); return r; };

  /**
   * Pipes a byte range of a file (planned at `total` bytes) into a request, and fails it rather
   * than send an object that is not the planned one: the range came out short, or the file has
   * grown or shrunk since planning (a real S3 would also reject it by x-amz-content-sha256).
   */
  const pipeRange = (file: string, start: number, length: number, total: number) => (req: http.ClientRequest) => {
    const changed = (what: string) => req.destroy(new ReleaseError(`${file} changed after planning (${what})`, 're-run: it re-plans with the file as it is now'));
    const sizeOk = () => {
      let size: number;
      try { size = statSync(file).size; } catch (e) { req.destroy(e as Error); return false; }
      if (size !== total) { changed(`now ${size} bytes, planned ${total}`); return false; }
      return true;
    };
    // Checked before the first byte (nothing is sent) and after the last (changed while sending).
    const finish = () => { if (sizeOk()) req.end(); };
    if (!sizeOk()) return;
    if (length === 0) { finish(); return; }
    const stream = createReadStream(file, { start, end: start + length - 1, highWaterMark: 1024 * 1024 });
    let sent = 0;
    stream.on('data', (c) => { sent += c.length; });
    stream.on('end', () => (sent !== length ? changed(`read ${sent} bytes of ${length} at offset ${start}`) : finish()));
    stream.on('error', (e) => req.destroy(e));
    stream.pipe(req, { end: false });
  };

  const bodyless = (bucket: string, key: string, headers: Record<string, string> = {}): RequestSpec => ({ bucket, key, headers, payloadSha256: EMPTY_SHA256, length: 0 });

  return {
    /**
     * HEAD of an object, its headers as the store reports them; undefined when absent (404). Lean
     * like PUT: promote and verify HEAD thousands of objects and the SDK's stack is their CPU cost.
     */
    async headObject(bucket: string, key: string): Promise<{ size: number; headers: http.IncomingHttpHeaders; metadata: Record<string, string> } | undefined> {
      const r = await request('HEAD', bodyless(bucket, key));
      if (r.status === 404) return undefined;
      ok(r);
      const metadata: Record<string, string> = {};
      for (const [k, v] of Object.entries(r.headers)) if (k.startsWith('x-amz-meta-') && typeof v === 'string') metadata[k.slice('x-amz-meta-'.length)] = v;
      return { size: Number(r.headers['content-length'] ?? 0), headers: r.headers, metadata };
    },

    /**
     * HeadBucket: resolves when the bucket answers 2xx; otherwise throws with the HTTP status (a HEAD
     * answer has no body, so no S3 code). Lean: the SDK's first request costs ~0.1 s of CPU
     * (endpoint rules, middleware), and every command starts with this check (issue 16).
     */
    async headBucket(bucket: string): Promise<void> {
      ok(await request('HEAD', bodyless(bucket, '')));
    },

    /** GET of an object as a stream (undefined when absent); the caller reads or destroys it. */
    async getObject(bucket: string, key: string): Promise<http.IncomingMessage | undefined> {
      const res = await open('GET', bodyless(bucket, key));
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) return res;
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      if (status === 404 && !/<Code>NoSuchBucket<\/Code>/.test(Buffer.concat(chunks).toString('utf8'))) return undefined;
      throw s3Error(status, Buffer.concat(chunks).toString('utf8'), res.headers);
    },

    /** CopyObject on the server (metadata copied); S3 may answer 200 with an <Error> body. */
    /** CopyObject; with `sourceEtag` conditional on the source (AWS's header and Ceph RGW's own spelling, lib/s3/store.ts). */
    /** CopyObject; returns the new object's ETag as the server answered it (CopyObjectResult), quotes kept. */
    async copyObject(from: { bucket: string; key: string }, to: { bucket: string; key: string }, sourceEtag?: string): Promise<string | undefined> {
      const ifMatch: Record<string, string> = sourceEtag ? { 'x-amz-copy-source-if-match': sourceEtag, 'x-amz-copy-if-match': sourceEtag } : {};
      const r = ok(await request('PUT', bodyless(to.bucket, to.key, { 'x-amz-copy-source': `${from.bucket}/${encodeKey(from.key)}`, 'x-amz-metadata-directive': 'COPY', ...ifMatch })));
      if (/<Error>/.test(r.body)) throw s3Error(500, r.body);
      const etag = /<ETag>([\s\S]*?)<\/ETag>/.exec(r.body)?.[1];
      return etag === undefined ? undefined : unescapeXml(etag);
    },

    /** ListObjectsV2, every page, flat (no delimiter): key, size, ETag. Parsed here: the SDK's XML parser costs ~0.1 ms per key cold. */
    async listObjects(bucket: string, prefix: string, opts: { onePage?: number; maxPages?: number; truncated?: { yes: boolean } } = {}): Promise<Array<{ key: string; size: number; etag?: string; mtime?: number }>> {
      const out: Array<{ key: string; size: number; etag?: string; mtime?: number }> = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const query: Record<string, string> = { 'list-type': '2', 'max-keys': String(opts.onePage ?? 1000) };
        if (prefix) query.prefix = prefix;
        if (token) query['continuation-token'] = token;
        const r = ok(await request('GET', { bucket, key: '', query, headers: {}, payloadSha256: EMPTY_SHA256, length: 0 }));
        // <Contents> elements found with indexOf, not regexes: a page of 1,000 keys is parsed on
        // every listing of an upload, verify and promote (issue 16's profile of the no-op upload).
        // Keys and ETags are decoded from the response's bytes, each its own string: a substring of
        // the page's text would keep the whole page (~400 bytes an object) alive for as long as any
        // key of it is (issue 31: listings of 300,000 objects are held through a verification).
        const raw = r.raw;
        for (let at = raw.indexOf(CONTENTS); at >= 0; at = raw.indexOf(CONTENTS, at)) {
          const end = raw.indexOf(CONTENTS_END, at);
          if (end < 0) break;
          const from = at + CONTENTS.length;
          at = end + CONTENTS_END.length;
          const key = rawElement(raw, from, end, 'Key');
          if (key === undefined) continue;
          const etag = rawElement(raw, from, end, 'ETag');
          const modified = rawElement(raw, from, end, 'LastModified');
          const mtime = modified ? Math.floor(Date.parse(modified) / 1000) : undefined;
          const size = Number(rawElement(raw, from, end, 'Size') ?? 0);
          out.push({ key: unescapeXml(key), size: Number.isNaN(size) ? 0 : size, etag: etag === undefined ? undefined : unescapeEtag(etag), ...(mtime !== undefined && !Number.isNaN(mtime) ? { mtime } : {}) });
        }
        const truncated = /<IsTruncated>true<\/IsTruncated>/.test(r.body);
        token = truncated ? unescapeXml(/<NextContinuationToken>([\s\S]*?)<\/NextContinuationToken>/.exec(r.body)?.[1] ?? '') || undefined : undefined;
        // A partial listing would make stale objects look absent (and deletes be missed): never accept one.
        if (truncated && !token) throw new ReleaseError(`listing s3://${bucket}/${prefix} was truncated without a continuation token`, 'the S3 server answered an incomplete listing; re-run, or report it to the server\'s operators');
        if (opts.onePage && !opts.maxPages) break;
        // A bounded listing (maxPages): the caller is told it stopped short (truncated.yes) and treats
        // only keys up to the last listed one as covered (S3 lists in key order).
        if (opts.maxPages && ++pages >= opts.maxPages && token) { if (opts.truncated) opts.truncated.yes = true; break; }
      } while (token);
      return out;
    },

    /**
     * One PUT of a whole body whose sha256 is known; returns the ETag. It carries the transit
     * checksum of `opts.transit` (the planned MD5 when the plan has one) and, with `ifNoneMatch`,
     * `If-None-Match: *` (the server answers 412 when the key exists).
     */
    async putObject(obj: LeanObject, body: { text: string } | { file: string } | { stream: Readable }, size: number, sha256: string, opts: PutOptions = {}): Promise<string | undefined> {
      const transit = opts.transit ?? 'sha256';
      let payload: Buffer | ((req: http.ClientRequest) => void);
      let payloadSha = sha256;
      let md5 = opts.md5;
      if ('text' in body) {
        payload = Buffer.from(body.text);
        payloadSha = createHash('sha256').update(payload).digest('hex'); // a text's hash is cheap and exact
        md5 = undefined;
      } else if ('stream' in body) {
        // Promote's GET→PUT: the stream is checked by its producer (it holds back its last chunk
        // until the sha256 matched); the server checks x-amz-content-sha256 again.
        const stream = body.stream;
        let sent = 0;
        payload = (req) => {
          stream.on('data', (c: Buffer) => { sent += c.length; });
          stream.on('error', (e) => req.destroy(e));
          stream.on('end', () => (sent !== size ? req.destroy(new ReleaseError(`s3://${obj.bucket}/${obj.key}: the stream brought ${sent} bytes, planned ${size}`, 're-run: it re-plans')) : req.end()));
          stream.pipe(req, { end: false });
        };
        md5 = undefined;
        if (transit === 'content-md5') throw new ReleaseError(`s3://${obj.bucket}/${obj.key}: a streamed copy cannot carry Content-MD5 (s3.transitChecksum content-md5)`, 'set s3.transitChecksum to sha256 or payload-sha256-only for this environment, or promote with promote.serverSideCopy');
      } else if (size <= READ_WHOLE_MAX) {
        payload = readFileSync(body.file);
        if (payload.length !== size) throw new ReleaseError(`${body.file} is ${payload.length} bytes, planned as ${size}: it changed after planning`, 're-run: it re-plans with the file as it is now');
      } else {
        payload = pipeRange(body.file, 0, size, size);
        if (transit === 'content-md5' && !md5) {
          // No MD5 in the plan: read it now, and make sure the file is still the planned one.
          const d = await digestFile(body.file, { md5: true });
          if (d.size !== size) throw new ReleaseError(`${body.file} changed after planning (now ${d.size} bytes, planned ${size})`, 're-run: it re-plans with the file as it is now');
          if (d.sha256 !== sha256) throw new ReleaseError(`${body.file} no longer has the size and sha256 planned for s3://${obj.bucket}/${obj.key}: it changed after planning`, 're-run: it re-plans with the file as it is now');
          md5 = d.md5;
        }
      }
      const headers = { ...obj.headers };
      if (transit === 'content-md5') headers['content-md5'] = md5 ?? md5Base64(payload as Buffer);
      else if (transit === 'sha256') headers['x-amz-checksum-sha256'] = sha256HexToBase64(payloadSha);
      if (opts.ifNoneMatch) headers['if-none-match'] = '*';
      const len = Buffer.isBuffer(payload) ? payload.length : size;
      // The MD5 of the body, when known without another read: a single-part ETag is the MD5 of what
      // the server stored (unless SSE-KMS/SSE-C), so an ETag that differs means the server keeps
      // other bytes than were sent (a server that checks neither payload hash nor checksum). Such an
      // object carries our sha256 metadata, so a HEAD would vouch for it: delete it and send again.
      const sentMd5 = Buffer.isBuffer(payload) ? createHash('md5').update(payload).digest('hex') : md5 ? Buffer.from(md5, 'base64').toString('hex') : undefined;
      for (let attempt = 1; ; attempt++) {
        const r = ok(await request('PUT', { ...obj, headers, payloadSha256: payloadSha, length: len, body: typeof payload === 'function' && attempt > 1 && 'file' in body ? pipeRange(body.file, 0, size, size) : payload }));
        const etag = String(r.headers.etag ?? '').replace(/^W\//, '').replace(/"/g, '').toLowerCase();
        const sse = String(r.headers['x-amz-server-side-encryption'] ?? '');
        const opaque = sse.startsWith('aws:kms') || !!r.headers['x-amz-server-side-encryption-customer-algorithm'];
        if (!sentMd5 || opaque || !/^[0-9a-f]{32}$/.test(etag) || etag === sentMd5) return r.headers.etag as string | undefined;
        await request('DELETE', { ...obj, headers: {}, payloadSha256: EMPTY_SHA256, length: 0 }).catch(() => undefined);
        if (attempt >= 3) {
          throw new ReleaseError(`s3://${obj.bucket}/${obj.key}: the server stored other bytes than were sent (ETag ${etag}, MD5 of the body ${sentMd5}), ${attempt} times; the object was deleted`,
            'the connection to the S3 endpoint corrupts data: check proxies on the way, set s3.transitChecksum to content-md5 or sha256 on a server that checks it, then re-run upload');
        }
      }
    },

    /** Multipart upload streamed from disk: `partSize` ranges, `queueSize` parts in flight, each signed with its sha256 and carrying its transit checksum. */
    async putMultipart(obj: LeanObject, file: string, size: number, sha256: string, partSize: number, queueSize: number, onPart?: (bytes: number) => void, opts: PutOptions = {}): Promise<string | undefined> {
      const transit = opts.transit ?? 'sha256';
      // One sequential read first: every part's sha256 (and MD5) and the whole file's. The object's
      // sha256 metadata is the planned one, so the file must still hash to it (S3 only checks each
      // part against its own checksums); then each part is sent with the checksums read here, and
      // S3 refuses a part that changed in between.
      const count = Math.max(1, Math.ceil(size / partSize));
      const whole = createHash('sha256');
      const partHashes: string[] = [];
      const partMd5s: string[] = [];
      let seen = 0;
      for (let i = 0; i < count; i++) {
        const start = i * partSize;
        const length = Math.min(partSize, size - start);
        const hash = createHash('sha256');
        const md5 = transit === 'content-md5' ? createHash('md5') : undefined;
        for await (const c of createReadStream(file, { start, end: start + length - 1, highWaterMark: 1024 * 1024 })) {
          hash.update(c as Buffer);
          md5?.update(c as Buffer);
          whole.update(c as Buffer);
          seen += (c as Buffer).length;
        }
        partHashes.push(hash.digest('hex'));
        partMd5s.push(md5?.digest('base64') ?? '');
      }
      if (seen !== size || whole.digest('hex') !== sha256) {
        throw new ReleaseError(`${file} no longer has the size and sha256 planned for s3://${obj.bucket}/${obj.key}: it changed after planning`, 're-run: it re-plans with the file as it is now');
      }
      const createHeaders = { ...obj.headers };
      if (transit === 'sha256') createHeaders['x-amz-checksum-algorithm'] = 'SHA256';
      const created = ok(await request('POST', { ...obj, headers: createHeaders, query: { uploads: '' }, payloadSha256: EMPTY_SHA256, length: 0 }));
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(created.body)?.[1];
      if (!uploadId) throw new Error(`CreateMultipartUpload for ${obj.key} answered without an UploadId`);
      const target = { bucket: obj.bucket, key: obj.key, headers: {} };
      try {
        const limit = pLimit(queueSize);
        const etags = await Promise.all(Array.from({ length: count }, (_, i) => limit(async () => {
          const start = i * partSize;
          const length = Math.min(partSize, size - start);
          const headers: Record<string, string> = {};
          if (transit === 'content-md5') headers['content-md5'] = partMd5s[i]!;
          else if (transit === 'sha256') headers['x-amz-checksum-sha256'] = sha256HexToBase64(partHashes[i]!);
          const r = ok(await request('PUT', { ...target, headers, query: { partNumber: String(i + 1), uploadId }, payloadSha256: partHashes[i]!, length, body: pipeRange(file, start, length, size) }));
          onPart?.(length);
          return r.headers.etag as string;
        })));
        const checksum = (i: number) => (transit === 'sha256' ? `<ChecksumSHA256>${sha256HexToBase64(partHashes[i]!)}</ChecksumSHA256>` : '');
        const xml = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag>${checksum(i)}</Part>`).join('')}</CompleteMultipartUpload>`;
        const body = Buffer.from(xml);
        const completeHeaders: Record<string, string> = { 'content-type': 'application/xml' };
        if (opts.ifNoneMatch) completeHeaders['if-none-match'] = '*';
        const done = ok(await request('POST', { ...target, query: { uploadId }, headers: completeHeaders, payloadSha256: createHash('sha256').update(body).digest('hex'), length: body.length, body }));
        // S3 may answer 200 with an <Error> body to a CompleteMultipartUpload.
        if (/<Error>/.test(done.body)) throw s3Error(500, done.body);
        return /<ETag>([^<]+)<\/ETag>/.exec(done.body)?.[1]?.replace(/&quot;/g, '"');
      } catch (e) {
        await request('DELETE', { ...target, query: { uploadId }, payloadSha256: EMPTY_SHA256, length: 0 }).catch(() => undefined);
        throw e;
      }
    },
  };
}
