// S3 actions: plain data planned by phases, executed only by apply.ts through an S3Writer.
import { humanBytes } from '../log.ts';
import type { ApplyEnv, HandlerMap } from '../apply-types.ts';

/** Upload one object (a local file or a small text) with its sha256 in metadata. */
export interface S3Put {
  kind: 's3.put';
  bucket: string;
  key: string;
  source: { file: string } | { text: string };
  size: number;
  sha256: string;
  contentType: string;
  contentEncoding?: string;
  cacheControl?: string;
  /**
   * Why it is uploaded: new, other content, or `repair`: the bucket holds a damaged copy of this
   * very object (our sha256 in its metadata, but another size: a truncated or lost body).
   */
  reason: 'new' | 'changed' | 'repair';
  /** Extra object metadata (x-amz-meta-NAME), e.g. a contribution's grant id. */
  metadata?: Record<string, string>;
  /** Base64 MD5 of the file, read with its sha256 (the Content-MD5 transit checksum). */
  md5?: string;
  /** An immutable key created once (release prefix, NAR, narinfo): `If-None-Match: *` where the environment has conditional writes. */
  createOnly?: boolean;
}

/** Remove a stale object (manual sync with delete). */
export interface S3Delete {
  kind: 's3.delete';
  bucket: string;
  key: string;
}

/** An empty object whose x-amz-website-redirect-location points elsewhere (channels). */
export interface S3Redirect {
  kind: 's3.redirect';
  bucket: string;
  key: string;
  location: string;
  cacheControl?: string;
}

/** Server-side copy (promote, channel aliases). */
export interface S3Copy {
  kind: 's3.copy';
  from: { bucket: string; key: string };
  bucket: string;
  key: string;
}

export type S3Action = S3Put | S3Delete | S3Redirect | S3Copy;

export const s3Renderers = {
  's3.put': (a: S3Put) => `s3 put s3://${a.bucket}/${a.key} (${a.contentType}${a.contentEncoding ? `, ${a.contentEncoding}` : ''}, ${humanBytes(a.size)}, sha256 ${a.sha256.slice(0, 12)}, ${a.reason})`,
  's3.delete': (a: S3Delete) => `s3 delete s3://${a.bucket}/${a.key}`,
  's3.redirect': (a: S3Redirect) => `s3 redirect s3://${a.bucket}/${a.key} -> ${a.location}`,
  's3.copy': (a: S3Copy) => `s3 copy s3://${a.from.bucket}/${a.from.key} -> s3://${a.bucket}/${a.key}`,
};

function writer(env: ApplyEnv) {
  if (!env.writers.s3) throw new Error('internal: plan has S3 actions but apply got no S3 writer');
  return env.writers.s3;
}

export const s3Handlers: HandlerMap<S3Action> = {
  's3.put': (a, env) => writer(env).put({
    bucket: a.bucket, key: a.key, body: 'file' in a.source ? { file: a.source.file } : { text: a.source.text },
    size: a.size, sha256: a.sha256, contentType: a.contentType, contentEncoding: a.contentEncoding,
    cacheControl: a.cacheControl, metadata: a.metadata, onProgress: env.onBytes, md5: a.md5, createOnly: a.createOnly,
  }).then(() => undefined),
  's3.delete': (a, env) => writer(env).delete(a.bucket, a.key),
  's3.redirect': (a, env) => writer(env).put({
    bucket: a.bucket, key: a.key, body: { text: '' }, size: 0,
    sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    contentType: 'text/plain', cacheControl: a.cacheControl, redirect: a.location,
  }).then(() => undefined),
  's3.copy': (a, env) => writer(env).copy(a.from, { bucket: a.bucket, key: a.key }),
};

/** Bytes an action moves (for the progress bar). */
export function bytesOf(a: S3Action): number {
  return a.kind === 's3.put' ? a.size : 0;
}
