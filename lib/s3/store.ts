// One S3 adapter, split in two views: S3Reader for planners (reads only) and S3Writer for apply.
import {
  S3Client, HeadObjectCommand, GetObjectCommand,
  DeleteObjectCommand, CopyObjectCommand, HeadBucketCommand,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { S3Settings } from '../config.ts';
import { ReleaseError } from '../errors.ts';
import { registerSecret } from '../secrets.ts';
import { keepAliveAgents, leanClient } from './lean-put.ts';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface RemoteObject {
  key: string;
  size: number;
  etag?: string;
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
  metadata: Record<string, string>;
}

/** What planners may do with S3: read. */
export interface S3Reader {
  readonly endpoint: string;
  /** Every object under prefix, one flat listing (no delimiter: s3rver skips nested folders with one). */
  list(bucket: string, prefix: string): Promise<RemoteObject[]>;
  head(bucket: string, key: string): Promise<ObjectHead | undefined>;
  getText(bucket: string, key: string): Promise<string | undefined>;
  /** Size and sha256 of an object's body, streamed (undefined when absent); for verifying published files. */
  sha256Of?(bucket: string, key: string): Promise<{ size: number; sha256: string } | undefined>;
  /** Throws a ReleaseError saying whether the endpoint, the bucket or the credentials are wrong. */
  checkBucket(bucket: string): Promise<void>;
}

export interface PutRequest {
  bucket: string;
  key: string;
  body: { file: string } | { text: string };
  size: number;
  sha256: string;
  contentType: string;
  contentEncoding?: string;
  cacheControl?: string;
  redirect?: string;
  onProgress?: (bytes: number) => void;
}

/** What a put learnt from the server (the ETag feeds lib/s3/record.ts; never used for integrity). */
export interface PutResult {
  etag?: string;
}

/** What apply may do with S3: write. */
export interface S3Writer {
  put(req: PutRequest): Promise<PutResult | void>;
  delete(bucket: string, key: string): Promise<void>;
  copy(from: { bucket: string; key: string }, to: { bucket: string; key: string }): Promise<void>;
}

export type S3Store = S3Reader & S3Writer;

/**
 * Files from this size go multipart, streamed in parts (never read whole into memory). Below it one
 * streamed PUT signed with the file's known sha256: as rclone's 200 MiB cutoff, because a multipart
 * object costs the server a second pass (s3rver concatenates and re-hashes the parts) — issue 6.
 */
export const MULTIPART_THRESHOLD = 200 * 1024 * 1024;
const PART_SIZE = 16 * 1024 * 1024;

/** Builds the SDK client: path style, checksum mode, keep-alive sockets. */
export function createS3Client(settings: S3Settings & { endpoint: string }, creds: S3Credentials): S3Client {
  // The SDK warns on every run that Node 20 support ends; releng pins its Node, so the warning is only noise in release logs.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  registerSecret(creds.secretAccessKey);
  registerSecret(creds.sessionToken);
  return new S3Client({
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
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden', 'ExpiredToken'].includes(name) || e?.$metadata?.httpStatusCode === 403) {
    return new ReleaseError(`S3 refused the credentials for ${where} (${name || 403})`, 'check the credentials source of this environment (they are not shown here)');
  }
  const status = e?.$metadata?.httpStatusCode;
  const err = new ReleaseError(`S3 request for ${where} failed: ${name || code || 'error'}${status ? ` (HTTP ${status})` : ''}${e?.message && e.message !== name ? `: ${e.message}` : ''}`);
  (err as any).retryable = isRetryableS3Error(e);
  return err;
}

/** 5xx, SlowDown/throttling and dropped connections are worth another try; the rest is not. */
export function isRetryableS3Error(e: any): boolean {
  if (e?.retryable === true) return true;
  const status = e?.$metadata?.httpStatusCode;
  if (typeof status === 'number' && status >= 500) return true;
  const name = e?.name ?? '';
  if (['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'InternalError', 'ServiceUnavailable', 'TimeoutError'].includes(name)) return true;
  const code = e?.code ?? e?.cause?.code ?? '';
  return ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'EAI_AGAIN', 'UND_ERR_SOCKET'].includes(code) || /socket hang up/i.test(e?.message ?? '');
}

/**
 * Reads are idempotent: a dropped keep-alive connection, a timeout or a 5xx is tried again (3
 * attempts, jittered backoff) before it fails a plan. Writes are retried by apply.ts, once, there.
 */
async function retryRead<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try { return await fn(); } catch (e) {
      if (i >= attempts || !isRetryableS3Error(e)) throw e;
      await new Promise((r) => setTimeout(r, 100 * 2 ** i * (0.5 + Math.random() / 2)));
    }
  }
}

/** The S3 adapter over @aws-sdk/client-s3. */
export function s3Store(client: S3Client, endpoint: string): S3Store {
  const wrap = async <T>(bucket: string, key: string | undefined, fn: () => Promise<T>): Promise<T> => {
    try { return await fn(); } catch (e) {
      if (e instanceof ReleaseError) throw e; // already says what and what to do (e.g. a file changed after planning)
      throw explainS3Error(e, endpoint, bucket, key);
    }
  };
  let lean: ReturnType<typeof leanClient> | undefined;
  // Listings and PUTs (the bulk of an upload) skip the SDK's middleware; the rest goes through it.
  const getLean = () => (lean ??= leanClient({ endpoint, region: client.config.region as any, forcePathStyle: client.config.forcePathStyle ?? false, credentials: client.config.credentials as any }));
  return {
    endpoint,
    async list(bucket, prefix) {
      return wrap(bucket, prefix || undefined, () => retryRead(() => getLean().listObjects(bucket, prefix)));
    },
    async head(bucket, key) {
      try {
        const r = await retryRead(() => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })));
        return {
          size: Number(r.ContentLength ?? 0),
          sha256: r.Metadata?.sha256,
          redirect: r.WebsiteRedirectLocation,
          contentType: r.ContentType,
          contentEncoding: r.ContentEncoding,
          cacheControl: r.CacheControl,
          etag: r.ETag,
          metadata: r.Metadata ?? {},
        };
      } catch (e: any) {
        if (e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404) {
          if (e?.name === 'NoSuchBucket') throw explainS3Error(e, endpoint, bucket);
          return undefined;
        }
        throw explainS3Error(e, endpoint, bucket, key);
      }
    },
    async getText(bucket, key) {
      try {
        return await retryRead(async () => {
          const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
          return await r.Body!.transformToString();
        });
      } catch (e: any) {
        if (e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404) return undefined;
        throw explainS3Error(e, endpoint, bucket, key);
      }
    },
    async sha256Of(bucket, key) {
      try {
        return await retryRead(async () => {
          const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
          const hash = createHash('sha256');
          let size = 0;
          for await (const chunk of r.Body as AsyncIterable<Uint8Array>) { hash.update(chunk); size += chunk.length; }
          return { size, sha256: hash.digest('hex') };
        });
      } catch (e: any) {
        if (e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404) return undefined;
        throw explainS3Error(e, endpoint, bucket, key);
      }
    },
    async checkBucket(bucket) {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
      } catch (e: any) {
        if (e?.$metadata?.httpStatusCode === 404) throw explainS3Error({ name: 'NoSuchBucket' }, endpoint, bucket);
        throw explainS3Error(e, endpoint, bucket);
      }
    },
    async put(req) {
      const lean = getLean();
      const headers: Record<string, string> = { 'content-type': req.contentType, 'x-amz-meta-sha256': req.sha256 };
      if (req.contentEncoding) headers['content-encoding'] = req.contentEncoding;
      if (req.cacheControl) headers['cache-control'] = req.cacheControl;
      if (req.redirect) headers['x-amz-website-redirect-location'] = req.redirect;
      const obj = { bucket: req.bucket, key: req.key, headers };
      return wrap(req.bucket, req.key, async () => {
        if ('text' in req.body || req.size < MULTIPART_THRESHOLD) {
          const etag = await lean.putObject(obj, req.body, req.size, req.sha256);
          req.onProgress?.(req.size);
          return { etag };
        }
        const etag = await lean.putMultipart(obj, req.body.file, req.size, req.sha256, PART_SIZE, 4, req.onProgress);
        return { etag };
      });
    },
    async delete(bucket, key) {
      await wrap(bucket, key, () => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));
    },
    async copy(from, to) {
      await wrap(to.bucket, to.key, () => client.send(new CopyObjectCommand({
        Bucket: to.bucket, Key: to.key, CopySource: `${from.bucket}/${encodeURIComponent(from.key).replace(/%2F/g, '/')}`, MetadataDirective: 'COPY',
      })));
    },
  };
}
