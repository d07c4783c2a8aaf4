// S3 actions: plain data planned by phases, executed only by apply.ts through an S3Writer.
import { humanBytes } from '../core/log.ts';
import type { ApplyEnv, HandlerMap } from '../core/apply.ts';
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { ReleaseError } from '../core/errors.ts';
import { MULTIPART_THRESHOLD, type ObjectFields, type S3Store, type S3Writer } from './store.ts';

/** Upload one object (a local file or a small text) with its sha256 in metadata. */
export interface S3Put extends ObjectFields {
  kind: 's3.put';
  source: { file: string } | { text: string };
  /**
   * Why it is uploaded: new, other content, or `repair`: the bucket holds a damaged copy of this
   * very object (our sha256 in its metadata, but another size: a truncated or lost body).
   */
  reason: 'new' | 'changed' | 'repair';
  /** For a repair: why the object there is releng's own damaged write (lib/s3/sync.ts relengWasWriting). */
  why?: string;
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

/** Server-side copy (promote, channel aliases): CopyObject, or UploadPartCopy parts above 5 GiB when the size is known. */
export interface S3Copy {
  kind: 's3.copy';
  from: { bucket: string; key: string };
  bucket: string;
  key: string;
  /** Bytes of the source (promote plans it): picks multipart copy above 5 GiB, feeds the progress bar. */
  size?: number;
  sha256?: string;
  /** The source's ETag when planned: the copy is refused if the source changed since (where the server has conditional copies: lib/s3/store.ts). */
  sourceEtag?: string;
  /** Why: unset for a new object; `changed` or `repair` (with `why`) when it replaces one. */
  reason?: 'new' | 'changed' | 'repair';
  why?: string;
}

/**
 * Promote between endpoints (or S3 ↔ file tree): the source object's bytes are read through
 * `writers.s3Source` and put to the destination with the planned sha256 checked before the
 * final write (issue 11). Never a rebuild: the bytes are the source's.
 */
export interface S3Transfer extends ObjectFields {
  kind: 's3.transfer';
  from: { bucket: string; key: string };
  /** A redirect object is re-made as a redirect (symlink on file trees), not copied as bytes. */
  redirect?: string;
  reason: 'new' | 'changed' | 'repair';
  /** For a repair: why the object there is releng's own damaged write. */
  why?: string;
}

export type S3Action = S3Put | S3Delete | S3Redirect | S3Copy | S3Transfer;

/** `s3://BUCKET/KEY`, or `file:///DIR/KEY` for a filesystem bucket (lib/fs/store.ts). */
export function objectUrl(bucket: string, key: string): string {
  return bucket.startsWith('/') ? `file://${bucket}/${key}` : `s3://${bucket}/${key}`;
}

export const s3Renderers = {
  's3.put': (a: S3Put) => `s3 put ${objectUrl(a.bucket, a.key)} (${a.contentType}${a.contentEncoding ? `, ${a.contentEncoding}` : ''}, ${humanBytes(a.size)}, sha256 ${a.sha256.slice(0, 12)}, ${a.reason}${a.why ? `: ${a.why}` : ''})`,
  's3.delete': (a: S3Delete) => `s3 delete ${objectUrl(a.bucket, a.key)}`,
  's3.redirect': (a: S3Redirect) => `s3 redirect ${objectUrl(a.bucket, a.key)} -> ${a.location}`,
  's3.copy': (a: S3Copy) => `s3 copy ${objectUrl(a.from.bucket, a.from.key)} -> ${objectUrl(a.bucket, a.key)}${a.size !== undefined ? ` (server-side, ${humanBytes(a.size)}${a.reason && a.reason !== 'new' ? `, ${a.reason}${a.why ? `: ${a.why}` : ''}` : ''})` : a.reason && a.reason !== 'new' ? ` (${a.reason}${a.why ? `: ${a.why}` : ''})` : ''}`,
  's3.transfer': (a: S3Transfer) => a.redirect
    ? `s3 redirect ${objectUrl(a.bucket, a.key)} -> ${a.redirect} (as ${objectUrl(a.from.bucket, a.from.key)})`
    : `s3 transfer ${objectUrl(a.from.bucket, a.from.key)} -> ${objectUrl(a.bucket, a.key)} (${humanBytes(a.size)}, sha256 ${a.sha256.slice(0, 12)}, ${a.reason}${a.why ? `: ${a.why}` : ''})`,
};

/** The object's fields as S3Writer.put takes them, from a planned put or transfer (one place builds them). */
export function objectFields(a: ObjectFields): ObjectFields {
  return { bucket: a.bucket, key: a.key, size: a.size, sha256: a.sha256, contentType: a.contentType, contentEncoding: a.contentEncoding, cacheControl: a.cacheControl };
}

/** The writers S3 actions use: the destination, and for transfers the source (reads only). */
export interface S3Writers {
  s3?: S3Writer;
  /** Where s3.transfer actions read from (promote's source environment; reads only). */
  s3Source?: S3Store;
}

function writer(env: ApplyEnv<S3Writers>) {
  if (!env.writers.s3) throw new Error('internal: plan has S3 actions but apply got no S3 writer');
  return env.writers.s3;
}

export const s3Handlers: HandlerMap<S3Action, S3Writers> = {
  's3.put': (a, env) => writer(env).put({
    ...objectFields(a), body: 'file' in a.source ? { file: a.source.file } : { text: a.source.text },
    metadata: a.metadata, onProgress: env.onBytes, md5: a.md5, createOnly: a.createOnly,
  }).then(() => undefined),
  's3.delete': (a, env) => writer(env).delete(a.bucket, a.key),
  's3.redirect': (a, env) => writer(env).put({
    bucket: a.bucket, key: a.key, body: { text: '' }, size: 0,
    sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    contentType: 'text/plain', cacheControl: a.cacheControl, redirect: a.location,
  }).then(() => undefined),
  's3.copy': async (a, env) => {
    await writer(env).copy(a.from, { bucket: a.bucket, key: a.key }, a.size !== undefined || a.sourceEtag || a.sha256 ? { size: a.size, sourceEtag: a.sourceEtag, ...(a.sha256 ? { sha256: a.sha256 } : {}) } : undefined);
    if (a.size) env.onBytes(a.size);
  },
  's3.transfer': (a, env) => transfer(a, env),
};

/** Bytes an action moves (for the progress bar). */
export function bytesOf(a: S3Action): number {
  return a.kind === 's3.put' || a.kind === 's3.transfer' ? a.size : a.kind === 's3.copy' ? a.size ?? 0 : 0;
}

/**
 * The source's bytes as they stream, hashed; the last chunk is held back until the sha256 and size
 * are the planned ones, so a destination never receives a whole object that is not the source's
 * (an S3 PUT stays short of its Content-Length and fails; a file tree never renames it into place).
 */
export function verifiedStream(source: NodeJS.ReadableStream, planned: { size: number; sha256: string }, where: string): Transform {
  const hash = createHash('sha256');
  let size = 0;
  let held: Buffer | undefined;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      const out = held;
      held = chunk;
      cb(null, out);
    },
    flush(cb) {
      const got = hash.digest('hex');
      if (got !== planned.sha256 || size !== planned.size) {
        cb(new ReleaseError(`${where} read back as ${size} bytes, sha256 ${got}; planned ${planned.size}, ${planned.sha256}`, 'the source changed or is corrupt: run `releng verify` on the source environment; nothing was written for this object'));
        return;
      }
      cb(null, held);
    },
  });
  source.on('error', (e) => t.destroy(e));
  return source.pipe(t);
}

/**
 * GET from the source, PUT to the destination. A file-tree source is put straight from its file; an
 * S3 source is streamed through verifiedStream (checked against the planned sha256 before its last
 * byte goes out; the destination's put checks it again on the wire). Objects at or above the
 * multipart threshold are spooled to a temporary file first (multipart parts are sent from ranges).
 */
async function transfer(a: S3Transfer, env: ApplyEnv<S3Writers>): Promise<void> {
  const dest = writer(env);
  const base = objectFields(a);
  if (a.redirect) {
    await dest.put({ ...base, body: { text: '' }, size: 0, redirect: a.redirect });
    return;
  }
  if (a.from.bucket.startsWith('/')) {
    const { fsPathOf } = await import('../fs/store.ts');
    await dest.put({ ...base, body: { file: fsPathOf(a.from.bucket, a.from.key) }, onProgress: env.onBytes });
    return;
  }
  const source = env.writers.s3Source;
  if (!source?.getStream) throw new Error('internal: plan has s3.transfer actions but apply got no source store');
  if (a.size < MULTIPART_THRESHOLD) {
    const stream = await source.getStream(a.from.bucket, a.from.key);
    if (!stream) throw new ReleaseError(`${objectUrl(a.from.bucket, a.from.key)} disappeared from the source after planning`, 're-run promote: it plans again');
    const body = verifiedStream(stream, a, objectUrl(a.from.bucket, a.from.key));
    try {
      await dest.put({ ...base, body: { stream: body }, onProgress: env.onBytes });
    } finally {
      // A failed PUT may leave the GET half read: release its socket.
      if (!stream.readableEnded) stream.destroy();
    }
    return;
  }
  const { createWriteStream } = await import('node:fs');
  const { mkdtemp, rm } = await import('node:fs/promises');
  const os = await import('node:os');
  const path = await import('node:path');
  const { pipeline } = await import('node:stream/promises');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-transfer-'));
  try {
    const stream = await source.getStream(a.from.bucket, a.from.key);
    if (!stream) throw new ReleaseError(`${objectUrl(a.from.bucket, a.from.key)} disappeared from the source after planning`, 're-run promote: it plans again');
    const tmp = path.join(dir, 'object');
    const hash = createHash('sha256');
    let size = 0;
    (stream as NodeJS.ReadableStream).on('data', (c: Buffer) => { hash.update(c); size += c.length; });
    await pipeline(stream, createWriteStream(tmp));
    const got = hash.digest('hex');
    if (got !== a.sha256 || size !== a.size) {
      throw new ReleaseError(`${objectUrl(a.from.bucket, a.from.key)} read back as ${size} bytes, sha256 ${got}; planned ${a.size}, ${a.sha256}`, 'the source changed or is corrupt: run `releng verify` on the source environment; nothing was written for this object');
    }
    await dest.put({ ...base, body: { file: tmp }, onProgress: env.onBytes });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
