// One S3 adapter, split in two views: S3Reader for planners (reads only) and S3Writer for apply.
import type { S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Settings } from '../config/config.ts';
import { ReleaseError } from '../core/errors.ts';
import { registerSecret } from '../core/secrets.ts';
import { isRetryableS3Error, retriedRead, defaultRetry, type RetryPolicy } from '../core/retry.ts';
import { keyProblem } from '../config/keys.ts';
import { keepAliveAgents, leanClient } from './lean-put.ts';

import type { S3Credentials } from './credentials.ts';
export type { S3Credentials } from './credentials.ts';

export interface RemoteObject {
  key: string;
  size: number;
  etag?: string;
  /** Last modified, Unix seconds (mirror file lists); for file trees the newer of mtime and ctime. */
  mtime?: number;
}

export interface ObjectHead {
  size: number;
  /** Our own sha256 (object metadata `sha256`), never an ETag. */
  sha256?: string;
  redirect?: string;
  contentType?: string;
  contentEncoding?: string;
  cacheControl?: string;
  etag?: string;
  /** Last-Modified and the server's Date of the response, Unix seconds. */
  mtime?: number;
  serverTime?: number;
  metadata: Record<string, string>;
  /**
   * File trees only (lib/fs/store.ts): what releng's sidecar records for the file (the sha256 it
   * was written with, the size it recorded), even when it no longer describes the file; null when
   * the file has none. Undefined on S3, where the object's own metadata is that record.
   */
  sidecar?: { sha256: string; size: number } | null;
}

/** What planners may do with S3: read. */
export interface S3Reader {
  readonly endpoint: string;
  /** Every object under prefix, one flat listing (no delimiter: s3rver skips nested folders with one). */
  list(bucket: string, prefix: string): Promise<RemoteObject[]>;
  head(bucket: string, key: string): Promise<ObjectHead | undefined>;
  /**
   * At most about `maxKeys` objects under prefix, in key order: `complete` false when the listing
   * stopped short, and then only keys up to the last one listed are covered (the cache verifier of
   * `releng verify` on a cache far bigger than one closure).
   */
  listUpTo?(bucket: string, prefix: string, maxKeys: number): Promise<{ objects: RemoteObject[]; complete: boolean }>;
  getText(bucket: string, key: string): Promise<string | undefined>;
  /** Size and sha256 of an object's body, streamed (undefined when absent); for verifying published files. `limit`: of its first `limit` bytes only (a ranged GET). */
  sha256Of?(bucket: string, key: string, limit?: number): Promise<{ size: number; sha256: string } | undefined>;
  /** Throws a ReleaseError saying whether the endpoint, the bucket or the credentials are wrong. */
  checkBucket(bucket: string): Promise<void>;
  /** Streams an object to a local file (index validates uploads); returns its size and sha256. */
  download?(bucket: string, key: string, file: string): Promise<{ size: number; sha256: string }>;
}

/** What names and describes one object written: shared by PutRequest and the put/transfer actions (lib/s3/actions.ts). */
export interface ObjectFields {
  bucket: string;
  key: string;
  size: number;
  sha256: string;
  contentType: string;
  contentEncoding?: string;
  cacheControl?: string;
}

export interface PutRequest extends ObjectFields {
  /** A stream (promote's GET→PUT) must already be checked against sha256 by its producer before its last byte (lib/s3/actions.ts). */
  body: { file: string } | { text: string } | { stream: Readable };
  redirect?: string;
  /** Extra object metadata (x-amz-meta-NAME), e.g. the grant id of a contribution (issue 12). */
  metadata?: Record<string, string>;
  onProgress?: (bytes: number) => void;
  /** Base64 MD5 of the planned bytes, read with their sha256 (Content-MD5 transit checksum). */
  md5?: string;
  /**
   * Create only (`If-None-Match: *`) when the store has conditional writes on. A key that exists
   * is then re-read: same size and sha256 is success (another run wrote the same bytes first),
   * anything else a failure naming the key.
   */
  createOnly?: boolean;
}

/** What a put learnt from the server (the ETag feeds lib/s3/record.ts; never used for integrity). */
export interface PutResult {
  etag?: string;
  /** The key was created by someone else first, with the same size and sha256 (conditional writes). */
  alreadyThere?: boolean;
}

export interface CopyOptions {
  size?: number;
  /** The planned sha256 of the source's bytes: a file tree checks the copy against it (S3 copies carry the metadata). */
  sha256?: string;
  multipartAbove?: number;
  partSize?: number;
  /**
   * The source's ETag when the plan was made: the copy is refused (nothing written) if the source
   * changed since. Sent as AWS's x-amz-copy-source-if-match and as Ceph RGW's own spelling
   * x-amz-copy-if-match (RGW 16 honours only that one); s3rver honours neither and copies.
   */
  sourceEtag?: string;
}

/** What a server-side copy was acknowledged with (promote proves the copy by listing with it: issue 16). */
export interface CopyResult {
  /** The new object's ETag as the server answered it (CopyObjectResult); undefined for a multipart copy or a file tree. */
  etag?: string;
}

/**
 * Marks an error of put or copy that left the key exactly as it was (a conditional create someone
 * else won; a file tree's write that failed before its rename): the intent journal then closes the
 * intent instead of keeping it as evidence of a write that may have left bytes (lib/s3/intents.ts).
 */
export function nothingWritten<E>(e: E): E {
  if (e && typeof e === 'object') (e as { nothingWritten?: boolean }).nothingWritten = true;
  return e;
}

/** What apply may do with S3: write. */
export interface S3Writer {
  put(req: PutRequest): Promise<PutResult | void>;
  delete(bucket: string, key: string): Promise<void>;
  /** Server-side copy; with `size` above 5 GiB as a multipart copy (UploadPartCopy), S3's limit for one CopyObject. */
  copy(from: { bucket: string; key: string }, to: { bucket: string; key: string }, opts?: CopyOptions): Promise<CopyResult | void>;
}

/** Whole objects as streams, for `releng verify --deep` (planners never need the bytes). */
export interface S3StreamReader {
  /** The object's bytes, streamed (never whole in memory); undefined when there is no such key. */
  getStream(bucket: string, key: string): Promise<Readable | undefined>;
  /**
   * One GET giving what a HEAD would (from the GET's own headers) and the bytes, for --deep: half
   * the requests of HEAD then GET. Optional: verify falls back to HEAD + getStream without it.
   */
  getWithHead?(bucket: string, key: string): Promise<{ head: ObjectHead; stream: Readable } | undefined>;
}

export type S3Store = S3Reader & S3Writer & S3StreamReader;

/** getWithHead for an adapter without it: HEAD, then GET (two requests). */
export async function withHeadFallback(s: S3Reader & S3StreamReader, bucket: string, key: string): Promise<{ head: ObjectHead; stream: Readable } | undefined> {
  const head = await s.head(bucket, key);
  if (!head) return undefined;
  const stream = await s.getStream(bucket, key);
  return stream ? { head, stream } : undefined;
}

/**
 * Files from this size go multipart, streamed in parts (never read whole into memory). Below it one
 * streamed PUT signed with the file's known sha256: as rclone's 200 MiB cutoff, because a multipart
 * object costs the server a second pass (s3rver concatenates and re-hashes the parts) — issue 6.
 */
export const MULTIPART_THRESHOLD = 200 * 1024 * 1024;
const PART_SIZE = 16 * 1024 * 1024;

/** S3 refuses a single CopyObject above 5 GiB; larger objects are copied in parts (UploadPartCopy). */
export const MAX_COPY_OBJECT = 5 * 1024 ** 3;
const COPY_PART_SIZE = 512 * 1024 ** 2;

/** Adds Ceph RGW's spelling of the copy-source condition (x-amz-copy-if-match) next to AWS's, signed with the request. */
function ifSourceMatches<C extends { middlewareStack: { add: (...a: any[]) => void } }>(command: C, etag: string | undefined): C {
  if (etag) command.middlewareStack.add((next: any) => async (args: any) => { args.request.headers['x-amz-copy-if-match'] = etag; return next(args); }, { step: 'build', name: 'relengCopyIfMatch' });
  return command;
}

type S3Sdk = typeof import('@aws-sdk/client-s3');
let sdkModule: Promise<S3Sdk> | undefined;

/**
 * @aws-sdk/client-s3, loaded on its first use. Its initialisation costs ~0.2 s of CPU per process
 * (issue 16's profile of the no-op upload), and listings, HEADs, GETs, PUTs and copies go through
 * the lean path (lean-put.ts) without it: only deletes, multipart copies and a few reads need it.
 */
export function loadS3Sdk(): Promise<S3Sdk> {
  // The bundle (scripts/build.mjs) turns the package's CommonJS build into a chunk whose only
  // export is `default` (module.exports); tsx and plain node give the named exports.
  return (sdkModule ??= import('@aws-sdk/client-s3').then((m) => ((m as any).S3Client ? m : (m as any).default) as S3Sdk));
}

/** An S3 client whose SDK is loaded and built on the first SDK request (createS3Client). */
export interface S3ClientHandle {
  readonly config: { endpoint: string; region: string; forcePathStyle: boolean; credentials: () => Promise<S3Credentials> };
  /** Sends an SDK command (built from @aws-sdk/client-s3's classes) with the client, built on first use. */
  send(command: any): Promise<any>;
  /** The SDK client itself (what @aws-sdk/s3-presigned-post takes). */
  client(): Promise<S3Client>;
}

/** Multipart server-side copy, the source's headers and metadata carried over (CopyObject's COPY directive does that itself). */
async function multipartCopy(client: S3ClientHandle, source: string, from: { bucket: string; key: string }, to: { bucket: string; key: string }, size: number, partSize: number, sourceEtag?: string): Promise<void> {
  const { HeadObjectCommand, CreateMultipartUploadCommand, UploadPartCopyCommand, CompleteMultipartUploadCommand, AbortMultipartUploadCommand } = await loadS3Sdk();
  const head = await client.send(new HeadObjectCommand({ Bucket: from.bucket, Key: from.key }));
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({
    Bucket: to.bucket, Key: to.key, ContentType: head.ContentType, ContentEncoding: head.ContentEncoding,
    CacheControl: head.CacheControl, Metadata: head.Metadata, WebsiteRedirectLocation: head.WebsiteRedirectLocation,
  }));
  try {
    const parts: { ETag?: string; PartNumber: number }[] = [];
    for (let start = 0, n = 1; start < size; start += partSize, n++) {
      const end = Math.min(start + partSize, size) - 1;
      const r = await client.send(ifSourceMatches(new UploadPartCopyCommand({ Bucket: to.bucket, Key: to.key, UploadId, PartNumber: n, CopySource: source, CopySourceRange: `bytes=${start}-${end}`, CopySourceIfMatch: sourceEtag }), sourceEtag));
      parts.push({ ETag: r.CopyPartResult?.ETag, PartNumber: n });
    }
    await client.send(new CompleteMultipartUploadCommand({ Bucket: to.bucket, Key: to.key, UploadId, MultipartUpload: { Parts: parts } }));
  } catch (e) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: to.bucket, Key: to.key, UploadId })).catch(() => undefined);
    throw e;
  }
}

/** How the store writes: transit checksum, conditional creates, multipart cut-off, read retries (issue 9). */
export interface StoreOptions {
  transitChecksum?: S3Settings['transitChecksum'];
  conditionalWrites?: boolean;
  /** Files from this size go multipart (default MULTIPART_THRESHOLD). */
  multipartThreshold?: number;
  partSize?: number;
  /** Retries of reads (HEAD, LIST, GET, bucket checks); writes are retried by apply. */
  readRetry?: RetryPolicy;
}

/** The S3 client (SDK loaded and built on its first request): path style, checksum mode, keep-alive sockets, timeouts. */
export function createS3Client(settings: Pick<S3Settings, 'region' | 'forcePathStyle' | 'checksums'> & { endpoint: string }, creds: S3Credentials): S3ClientHandle {
  // The SDK warns on every run that Node 20 support ends; releng pins its Node, so the warning is only noise in release logs.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  registerSecret(creds.secretAccessKey);
  registerSecret(creds.sessionToken);
  let real: Promise<S3Client> | undefined;
  const client = () => (real ??= loadS3Sdk().then(({ S3Client }) => sdkClient(S3Client, settings, creds)));
  return {
    config: { endpoint: settings.endpoint, region: settings.region, forcePathStyle: settings.forcePathStyle ?? false, credentials: async () => creds },
    send: async (command) => (await client()).send(command),
    client,
  };
}

function sdkClient(Client: S3Sdk['S3Client'], settings: Pick<S3Settings, 'region' | 'forcePathStyle' | 'checksums'> & { endpoint: string }, creds: S3Credentials): S3Client {
  return new Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    credentials: creds,
    requestChecksumCalculation: settings.checksums,
    responseChecksumValidation: settings.checksums,
    maxAttempts: 1, // apply.ts owns retries (bounded, with jitter), so they are counted and logged once
    requestHandler: {
      httpAgent: keepAliveAgents.http,
      httpsAgent: keepAliveAgents.https,
      // A read that hangs is a failure apply or retriedRead can retry, never a stuck release.
      connectionTimeout: 10_000,
      requestTimeout: 120_000,
    } as any,
  });
}

/** Maps SDK/network failures to errors that name the endpoint/bucket/key and what to do. */
export function explainS3Error(e: any, endpoint: string, bucket: string, key?: string): Error {
  const where = `s3://${bucket}${key ? `/${key}` : ''} at ${endpoint}`;
  const name = e?.name ?? e?.Code ?? '';
  const code = e?.code ?? e?.cause?.code ?? '';
  if (['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN'].includes(code)) {
    return new ReleaseError(`cannot reach S3 endpoint ${endpoint} (${code})`, 'check environments.<env>.s3.endpoint in releng.json and that the server is up');
  }
  if (name === 'NoSuchBucket' || (name === 'NotFound' && !key)) {
    return new ReleaseError(`bucket ${bucket} does not exist at ${endpoint}`, 'create it, or fix the bucket URL in releng.json');
  }
  // Refusals keep the HTTP status (and S3 code) like other S3 errors: callers (grants' checks) read it.
  const refused = (err: ReleaseError) => Object.assign(err, { status: e?.$metadata?.httpStatusCode ?? 403, s3Name: name });
  if (name === 'RequestTimeTooSkewed' || /RequestTimeTooSkewed/.test(e?.message ?? '')) return refused(clockSkewError(e, where));
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken'].includes(name)) {
    return refused(new ReleaseError(`S3 refused the credentials for ${where} (${name})`, 'check the credentials source of this environment (the secret is not shown here)'));
  }
  if (['AccessDenied', 'Forbidden'].includes(name) || e?.$metadata?.httpStatusCode === 403) {
    // Some servers (Ceph RGW) answer AccessDenied to a bad signature too: name both causes.
    return refused(new ReleaseError(`S3 refused access to ${where} (${name || 403}): the credentials are wrong, or not allowed to do this here`,
      'check the credentials source of this environment and the bucket policy or scope of its keys (the credentials are not shown here)'));
  }
  const status = e?.$metadata?.httpStatusCode;
  const err = new ReleaseError(`S3 request for ${where} failed: ${name || code || 'error'}${status ? ` (HTTP ${status})` : ''}${e?.message && e.message !== name ? `: ${e.message}` : ''}`, undefined, { cause: e });
  (err as any).retryable = isRetryableS3Error(e);
  (err as any).status = status;
  (err as any).s3Name = name;
  return err;
}

/**
 * RequestTimeTooSkewed (issue 25): this machine's clock, not the credentials. Says the server's
 * time (ServerTime of the error, else its Date header) and ours, and how far apart they are.
 */
function clockSkewError(e: any, where: string): ReleaseError {
  const theirs = e?.serverTime ?? e?.ServerTime ?? e?.$response?.headers?.date ?? e?.$response?.headers?.Date;
  const server = theirs ? new Date(theirs) : undefined;
  const now = new Date();
  const apart = server && !Number.isNaN(server.getTime()) ? Math.round((now.getTime() - server.getTime()) / 1000) : undefined;
  const clocks = apart === undefined
    ? `this machine's clock says ${now.toISOString()}; the server did not say its time`
    : `the server's clock says ${server!.toISOString()}, this machine's ${now.toISOString()}: ours is ${Math.abs(apart)} s ${apart > 0 ? 'ahead' : 'behind'}`;
  return new ReleaseError(`S3 refused the request for ${where} because the clocks disagree (RequestTimeTooSkewed): ${clocks}`,
    'set this machine\'s clock (timedatectl set-ntp true, chronyc makestep, or ntpdate); S3 accepts signatures within about 15 minutes of its own time. The credentials are not the problem');
}

export { isRetryableS3Error } from '../core/retry.ts';

/** The S3 adapter over @aws-sdk/client-s3 (and the lean PUT path). Reads are retried (issue 9). */
export function s3Store(client: S3ClientHandle, endpoint: string, opts: StoreOptions = {}): S3Store {
  const transit = opts.transitChecksum ?? 'sha256';
  const threshold = opts.multipartThreshold ?? MULTIPART_THRESHOLD;
  const partSize = opts.partSize ?? PART_SIZE;
  const readRetry = opts.readRetry ?? defaultRetry;
  const wrap = async <T>(bucket: string, key: string | undefined, fn: () => Promise<T>): Promise<T> => {
    try { return await fn(); } catch (e) {
      if (e instanceof ReleaseError) throw e; // already says what and what to do (e.g. a file changed after planning)
      throw explainS3Error(e, endpoint, bucket, key);
    }
  };
  /** A read retried on transient failures; the final error names the request, URL and attempts. */
  const read = <T>(what: string, bucket: string, key: string | undefined, fn: () => Promise<T>): Promise<T> =>
    retriedRead(`${what} s3://${bucket}${key ? `/${key}` : ''} at ${endpoint}`, () => wrap(bucket, key, fn), readRetry);
  let lean: ReturnType<typeof leanClient> | undefined;
  // Listings and PUTs (the bulk of an upload) skip the SDK's middleware; the rest goes through it.
  const getLean = () => (lean ??= leanClient({ endpoint, region: client.config.region, forcePathStyle: client.config.forcePathStyle, credentials: client.config.credentials }));
  const getObjectCommand = async (bucket: string, key: string) => new (await loadS3Sdk()).GetObjectCommand({ Bucket: bucket, Key: key });

  const seconds = (name: 'mtime' | 'serverTime', http: string | undefined) => {
    const t = http === undefined ? NaN : Math.floor(Date.parse(http) / 1000);
    return Number.isNaN(t) ? {} : { [name]: t };
  };
  const headOf = (r: { size: number; headers: import('node:http').IncomingHttpHeaders; metadata: Record<string, string> }): ObjectHead => {
    const h = (name: string) => (typeof r.headers[name] === 'string' ? r.headers[name] as string : undefined);
    return {
      size: r.size,
      sha256: r.metadata.sha256,
      redirect: h('x-amz-website-redirect-location'),
      contentType: h('content-type'),
      contentEncoding: h('content-encoding'),
      cacheControl: h('cache-control'),
      etag: h('etag'),
      ...seconds('mtime', h('last-modified')),
      ...seconds('serverTime', h('date')),
      metadata: r.metadata,
    };
  };
  const head: S3Reader['head'] = (bucket, key) => read('HEAD', bucket, key, async () => {
    const r = await getLean().headObject(bucket, key);
    return r ? headOf(r) : undefined;
  });

  /** The sha256 of an object's bytes, streamed (for objects without our sha256 metadata). */
  const hashObject = (bucket: string, key: string) => read('GET', bucket, key, async () => {
    try {
      const r = await client.send(await getObjectCommand(bucket, key));
      const h = (await import('node:crypto')).createHash('sha256');
      for await (const c of r.Body as AsyncIterable<Uint8Array>) h.update(c);
      return h.digest('hex');
    } catch (e: any) {
      if (e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404) return undefined;
      throw e;
    }
  });

  /**
   * A conditional create answered 412: someone created the key first. Same size and sha256 (our
   * metadata, or the bytes hashed when it has none) is success; anything else names the key.
   */
  const settlePrecondition = async (req: PutRequest): Promise<PutResult> => {
    const there = await head(req.bucket, req.key);
    const where = `s3://${req.bucket}/${req.key}`;
    if (there && there.size === req.size) {
      const sha = there.sha256 ?? await hashObject(req.bucket, req.key);
      if (sha === req.sha256) return { etag: there.etag, alreadyThere: true };
    }
    throw nothingWritten(new ReleaseError(
      `${where} was created by another run at the same time with other content (there: ${there ? `${there.size} bytes, sha256 ${there.sha256 ?? 'unknown'}` : 'gone again'}; this run: ${req.size} bytes, sha256 ${req.sha256})`,
      'two uploads of this release with different files ran at once: find out which build is the release, then run `releng verify` (this run wrote nothing over it)'));
  };

  return {
    endpoint,
    async list(bucket, prefix) {
      return read('LIST', bucket, prefix || undefined, () => getLean().listObjects(bucket, prefix));
    },
    async listUpTo(bucket, prefix, maxKeys) {
      const page = Math.max(1, Math.min(1000, maxKeys));
      return read('LIST', bucket, prefix || undefined, async () => {
        const truncated = { yes: false };
        const objects = await getLean().listObjects(bucket, prefix, { onePage: page, maxPages: Math.ceil(maxKeys / page), truncated });
        return { objects, complete: !truncated.yes };
      });
    },
    head,
    async getText(bucket, key) {
      return read('GET', bucket, key, async () => {
        const body = await getLean().getObject(bucket, key);
        if (!body) return undefined;
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(c as Buffer);
        return Buffer.concat(chunks).toString('utf8');
      });
    },
    async sha256Of(bucket, key, limit) {
      return read('GET', bucket, key, async () => {
        try {
          const r = await client.send(limit === undefined ? await getObjectCommand(bucket, key)
            : new (await loadS3Sdk()).GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=0-${Math.max(0, limit - 1)}` }));
          if (limit === 0) { (r.Body as Readable | undefined)?.destroy?.(); return { size: 0, sha256: createHash('sha256').digest('hex') }; }
          const hash = createHash('sha256');
          let size = 0;
          for await (const chunk of r.Body as AsyncIterable<Uint8Array>) { hash.update(chunk); size += chunk.length; }
          return { size, sha256: hash.digest('hex') };
        } catch (e: any) {
          if (e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404) return undefined;
          throw e;
        }
      });
    },
    getStream(bucket, key) {
      // Retried until the response headers arrive, as every read; the body is the caller's to read.
      return read('GET', bucket, key, async () => (await getLean().getObject(bucket, key)) as Readable | undefined);
    },
    getWithHead(bucket, key) {
      // Retried until the response headers arrive (as a HEAD is); the body is the caller's to read.
      return read('GET', bucket, key, async () => {
        const r = await getLean().getObject(bucket, key);
        if (!r) return undefined;
        const metadata: Record<string, string> = {};
        for (const [k, v] of Object.entries(r.headers)) if (k.startsWith('x-amz-meta-') && typeof v === 'string') metadata[k.slice('x-amz-meta-'.length)] = v;
        return { head: headOf({ size: Number(r.headers['content-length'] ?? 0), headers: r.headers, metadata }), stream: r as Readable };
      });
    },
    async download(bucket, key, file) {
      // Retried like every read (a dropped body starts again into the same file, truncated anew).
      return read('GET', bucket, key, async () => {
        const r = await client.send(await getObjectCommand(bucket, key));
        const hash = createHash('sha256');
        let size = 0;
        const counter = new Transform({ transform(chunk, _enc, cb) { hash.update(chunk); size += chunk.length; cb(null, chunk); } });
        await pipeline(r.Body as NodeJS.ReadableStream, counter, createWriteStream(file));
        return { size, sha256: hash.digest('hex') };
      });
    },
    async checkBucket(bucket) {
      await read('HEAD', bucket, undefined, async () => {
        try {
          await getLean().headBucket(bucket);
        } catch (e: any) {
          if (e?.$metadata?.httpStatusCode === 404) throw explainS3Error({ name: 'NoSuchBucket' }, endpoint, bucket);
          // A HEAD answer has no body, so a 403 does not say whether the signature or a policy refused:
          // one key of a listing (a GET) brings the error code (SignatureDoesNotMatch, AccessDenied, ...).
          if (e?.$metadata?.httpStatusCode === 403) await getLean().listObjects(bucket, '', { onePage: 1 });
          throw e;
        }
      });
    },
    async put(req) {
      const problem = keyProblem(req.key);
      if (problem) throw new ReleaseError(`refusing to write s3://${req.bucket}/${req.key}: the key has ${problem}`, 'rename the file so that every path segment is plain (no %, ?, #, \\, control characters, . or ..)');
      const lean = getLean();
      const headers: Record<string, string> = { 'content-type': req.contentType, 'x-amz-meta-sha256': req.sha256 };
      if (req.contentEncoding) headers['content-encoding'] = req.contentEncoding;
      if (req.cacheControl) headers['cache-control'] = req.cacheControl;
      if (req.redirect) headers['x-amz-website-redirect-location'] = req.redirect;
      for (const [k, v] of Object.entries(req.metadata ?? {})) if (k !== 'sha256') headers[`x-amz-meta-${k}`] = v;
      const obj = { bucket: req.bucket, key: req.key, headers };
      const putOpts = { transit, md5: req.md5, ifNoneMatch: !!(opts.conditionalWrites && req.createOnly) };
      try {
        return await wrap(req.bucket, req.key, async () => {
          if ('stream' in req.body && req.size >= threshold) throw new Error(`internal: a streamed body of ${req.size} bytes goes multipart from a file, not a stream (s3://${req.bucket}/${req.key})`);
          if (!('file' in req.body) || req.size < threshold) {
            const etag = await lean.putObject(obj, req.body, req.size, req.sha256, putOpts);
            req.onProgress?.(req.size);
            return { etag };
          }
          // Ceph RGW 16 ignores If-None-Match on CompleteMultipartUpload: look first (a narrower race than none).
          if (putOpts.ifNoneMatch && await head(req.bucket, req.key)) return settlePrecondition(req);
          const etag = await lean.putMultipart(obj, req.body.file, req.size, req.sha256, partSize, 4, req.onProgress, putOpts);
          return { etag };
        });
      } catch (e: any) {
        const status = e?.status ?? e?.$metadata?.httpStatusCode;
        if (putOpts.ifNoneMatch && (status === 412 || e?.s3Name === 'PreconditionFailed')) return settlePrecondition(req);
        throw e;
      }
    },
    async delete(bucket, key) {
      await wrap(bucket, key, () => loadS3Sdk().then(({ DeleteObjectCommand }) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))));
    },
    async copy(from, to, opts) {
      const source = `${from.bucket}/${encodeURIComponent(from.key).replace(/%2F/g, '/')}`;
      const etag = opts?.sourceEtag;
      const changed = (e: any) => {
        if (!etag || !(e?.$metadata?.httpStatusCode === 412 || e?.name === 'PreconditionFailed')) return e;
        return new ReleaseError(`s3://${from.bucket}/${from.key} changed after it was planned (its ETag is no longer ${etag}): nothing was copied to s3://${to.bucket}/${to.key}`,
          're-run the command: it plans again from what is there now');
      };
      try {
        if (opts?.size !== undefined && opts.size > (opts.multipartAbove ?? MAX_COPY_OBJECT)) {
          await multipartCopy(client, source, from, to, opts.size!, opts.partSize ?? COPY_PART_SIZE, etag);
          return;
        }
        // CopyObject on the lean path (the bulk of a server-side promote): no SDK middleware per object.
        return { etag: await getLean().copyObject(from, to, etag) };
      } catch (e) {
        const err = changed(e);
        if (err instanceof ReleaseError) throw err;
        throw explainS3Error(e, endpoint, to.bucket, to.key);
      }
    },
  };
}
