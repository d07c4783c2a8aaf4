// A filesystem "bucket" (`file:///srv/mirror/releases`) behind the same S3Reader/S3Writer interface
// as lib/s3/store.ts, so the same planners, skip rules, verify and promote work on a mirror tree
// (issue 11). Decisions, documented in docs/promote.md:
// - the bucket name is the absolute directory (BucketRef.bucket starts with '/'), keys are paths below it;
// - metadata (sha256, content type/encoding, cache control) lives in a sidecar JSON under
//   ROOT/.releng/meta/KEY.json, never next to the file, so rsync mirrors exclude one directory
//   (`exclude = /.releng/`). xattrs were not chosen: tmpfs and many NFS setups drop user.* attributes
//   and Node has no xattr API without a native module. A sidecar is trusted only while it records the
//   file's current size and mtime; otherwise head() hashes the file itself (decisions come from the
//   destination, never from a memo);
// - a redirect to a path (`/lix/lix-2.93.0/`) is a relative symlink, which web servers and rsync
//   (`-l`) follow; a redirect to a URL is an empty file whose sidecar holds the location;
// - every write goes to a temporary name in the same directory, then rename(2): a reader (or an
//   rsync mirror) sees the old file or the new one, never half of one;
// - a file is hashed as its bytes go into the temporary file (a Transform in the one pipeline from
//   the source to the write stream: nothing reads the source before the file does), its size and
//   sha256 are compared with the plan, it is fsynced, its sidecar (recording the size the file
//   really has) is put in place, and only then the file is renamed, so a file under its final name
//   always has its sidecar (issue 23: a `'data'` listener attached before an awaited import let the
//   hash see bytes the file never got, and sidecars recorded the planned sha256 beside empty files);
// - temporary names carry the writer's pid (`.releng-tmp-PID-RANDOM-NAME`): one left by a run that
//   was killed is removed by the next write into its directory once that pid is gone.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, readlink, rename, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sha256File, sha256OfPrefix } from '../hashing/checksums.ts';
import { ReleaseError } from '../core/errors.ts';
import { nothingWritten, type ObjectHead, type PutRequest, type RemoteObject, type S3Store } from '../s3/store.ts';

/** Directory under a bucket root holding releng's sidecars; mirrors exclude it. */
export const META_DIR = '.releng';
/** Prefix of temporary names (same directory as the target, renamed into place). */
const TMP_PREFIX = '.releng-tmp-';

interface Sidecar {
  sha256: string;
  size: number;
  mtimeMs: number;
  contentType?: string;
  contentEncoding?: string;
  cacheControl?: string;
  redirect?: string;
}

/** Is this bucket name a filesystem directory (from a file:// URL)? */
export function isFsBucket(bucket: string): boolean {
  return bucket.startsWith('/');
}

/** The directory of a `file:///abs/dir` URL. */
export function fsUrlPath(url: string): string {
  const p = decodeURIComponent(new URL(url).pathname).replace(/\/+$/, '');
  return p || '/';
}

/** The file of a key, refusing keys that would leave the bucket root or touch releng's sidecars. */
export function fsPathOf(bucket: string, key: string): string {
  const parts = key.split('/');
  if (!key || key.startsWith('/') || parts.some((p) => p === '..' || p === '.') || parts[0] === META_DIR) {
    throw new ReleaseError(`key "${key}" cannot be stored in the directory ${bucket}`, 'keys must be relative paths without "." or ".." segments and outside .releng/');
  }
  return path.join(bucket, ...parts.filter(Boolean));
}

function sidecarPath(bucket: string, key: string): string {
  return path.join(bucket, META_DIR, 'meta', ...key.split('/').filter(Boolean)) + '.json';
}

function tmpName(file: string): string {
  return path.join(path.dirname(file), `${TMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}-${path.basename(file)}`);
}

/** Is a process of this pid alive here? (EPERM: it is, under another user.) */
function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e: any) { return e?.code === 'EPERM'; }
}

/** Temporary names without a pid (older releng) are stale after this long. */
const OLD_TMP_STALE_MS = 60 * 60 * 1000;

/**
 * Removes temporary files a killed writer left in `dir`: those whose pid (in the name) is not a
 * live process here, and those of older releng (no pid) not touched for an hour. A tree written by
 * several hosts at once is not supported (a pid names a process of this host).
 */
async function sweepStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try { names = await readdir(dir); } catch { return; }
  await Promise.all(names.filter((n) => n.startsWith(TMP_PREFIX)).map(async (n) => {
    const pid = /^(\d+)-/.exec(n.slice(TMP_PREFIX.length))?.[1];
    const file = path.join(dir, n);
    if (pid !== undefined) {
      if (Number(pid) === process.pid || alive(Number(pid))) return;
    } else {
      const st = await lstat(file).catch(() => undefined);
      if (!st || Date.now() - st.mtimeMs < OLD_TMP_STALE_MS) return;
    }
    await rm(file, { force: true }).catch(() => undefined);
  }));
}

/** fsync of a directory (the rename in it made durable); skipped where the filesystem refuses it. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => undefined);
  if (!fh) return;
  try { await fh.sync(); } catch { /* EINVAL/EISDIR on some filesystems: nothing to make durable there */ } finally { await fh.close(); }
}

/** Counts and hashes the bytes on their way into the file (the one pipeline from source to write stream). */
class HashingTransform extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  constructor(private readonly onProgress?: (n: number) => void) { super(); }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    this.onProgress?.(chunk.length);
    cb(null, chunk);
  }
}

/** What a written file is: the bytes that reached it, as hashed on the way in and as fstat sees them. */
interface Written { size: number; sha256: string; mtimeMs: number }

interface WriteOptions {
  onProgress?: (n: number) => void;
  /**
   * fsync the file before, and its directory after, the rename (default true). Sidecars skip both:
   * one lost or emptied by a crash is no sidecar, and head() then hashes the file itself.
   */
  durable?: boolean;
  /** Called once before writing into a directory (the store's sweep of stale temporary files). */
  sweep?: (dir: string) => Promise<void>;
  /** Runs once the bytes are checked and durable, before the rename (the sidecar is written here); returns how to undo it if the rename fails. */
  beforeRename?: (w: Written) => Promise<() => Promise<void>>;
}

/**
 * Writes `source` to a temporary name beside `file`, hashing the bytes as they reach it; refuses
 * (removing the temporary file, the old `file` kept) when their size or sha256 is not `planned`'s
 * (either may be unknown for a copy) or when the file does not hold as many bytes as went in;
 * fsyncs it, renames it into place and fsyncs the directory. `what` names the source in errors.
 */
async function writeVerified(file: string, source: Buffer | Readable, planned: { size?: number; sha256?: string }, what: string, opts: WriteOptions = {}): Promise<Written> {
  const { onProgress } = opts;
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  await opts.sweep?.(dir);
  const tmp = tmpName(file);
  try {
    let size: number;
    let sha256: string;
    if (Buffer.isBuffer(source)) {
      await writeFile(tmp, source, { flag: 'wx', mode: 0o644 });
      size = source.length;
      sha256 = createHash('sha256').update(source).digest('hex');
      onProgress?.(size);
    } else {
      // Source, hash and file in one pipeline: nothing consumes the source before the file does.
      const hasher = new HashingTransform(onProgress);
      await pipeline(source, hasher, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
      size = hasher.size;
      sha256 = hasher.hash.digest('hex');
    }
    if ((planned.sha256 !== undefined && sha256 !== planned.sha256) || (planned.size !== undefined && size !== planned.size)) {
      throw new ReleaseError(`${what} no longer matches its plan for ${file} (size ${size}, sha256 ${sha256}; planned ${planned.size ?? 'any size'}, ${planned.sha256 ?? 'any sha256'})`,
        're-run the command: it plans again from what is there now; nothing was written under that name');
    }
    // Durable before it gets its name, and holding every byte that went in.
    const fh = await open(tmp, 'r+');
    let st;
    try { if (opts.durable !== false) await fh.sync(); st = await fh.stat(); } finally { await fh.close(); }
    if (st.size !== size) {
      throw new ReleaseError(`${file}: ${size} bytes were written but the file holds ${st.size}`, 'check the filesystem (full, or changed by another program) and re-run the command; nothing was written under that name');
    }
    const undo = await opts.beforeRename?.({ size, sha256, mtimeMs: st.mtimeMs });
    try { await rename(tmp, file); } catch (e) { await undo?.().catch(() => undefined); throw e; }
    if (opts.durable !== false) await syncDir(dir);
    return { size, sha256, mtimeMs: st.mtimeMs };
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** A small file (a sidecar) written whole, its size checked, renamed into place. */
async function writeAtomic(file: string, data: string | Buffer, sweep?: (dir: string) => Promise<void>): Promise<void> {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data);
  await writeVerified(file, bytes, { size: bytes.length }, 'a sidecar', { durable: false, sweep });
}

/** Writes a sidecar ahead of its file's rename; the undo puts back what was there (or removes it). */
async function sidecarAhead(file: string, side: Sidecar, sweep?: (dir: string) => Promise<void>): Promise<() => Promise<void>> {
  const before = await readFile(file).catch(() => undefined);
  await writeAtomic(file, JSON.stringify(side) + '\n', sweep);
  return () => (before ? writeAtomic(file, before, sweep) : rm(file, { force: true }));
}

/** A file's sidecar; undefined when there is none, or it is not one (cut short, or not releng's shape). */
async function readSidecar(bucket: string, key: string): Promise<Sidecar | undefined> {
  try {
    const side = JSON.parse(await readFile(sidecarPath(bucket, key), 'utf8')) as Sidecar;
    return side && typeof side.sha256 === 'string' && typeof side.size === 'number' && typeof side.mtimeMs === 'number' ? side : undefined;
  } catch { return undefined; }
}

async function lstatOrUndefined(file: string): Promise<Stats | undefined> {
  try { return await lstat(file); } catch (e: any) {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** The location a symlink redirect stands for: `/KEY-OF-TARGET` relative to the bucket root. */
function locationOfLink(bucket: string, file: string, target: string): string {
  const abs = path.resolve(path.dirname(file), target);
  const rel = path.relative(bucket, abs).split(path.sep).join('/');
  return `/${rel}${target.endsWith('/') ? '/' : ''}`;
}

/** The relative symlink target for a path redirect (`/lix/lix-2.93.0/` from `latest-lix-2`). */
function linkTargetFor(bucket: string, file: string, location: string): string {
  const abs = path.join(bucket, ...location.split('/').filter(Boolean));
  const rel = path.relative(path.dirname(file), abs) || '.';
  return location.endsWith('/') ? `${rel}/` : rel;
}

/** Streams a file's sha256 (for sidecar-less files). */
async function hashOf(file: string): Promise<string> {
  return sha256File(file);
}

export interface FsStoreOptions {
  /** Directories may be created on first write (default: true; checkBucket still needs the root). */
  createDirs?: boolean;
}

/** The filesystem adapter: one instance serves every file:// bucket (the bucket is the root directory). */
export function fsStore(): S3Store & { localFile(bucket: string, key: string): string } {
  // Each directory is swept of stale temporary files once per store (per run), before its first write.
  const swept = new Map<string, Promise<void>>();
  const sweep = (dir: string): Promise<void> => {
    let p = swept.get(dir);
    if (!p) swept.set(dir, p = sweepStaleTemps(dir));
    return p;
  };
  const explain = (e: any, bucket: string, key?: string): Error => {
    if (e instanceof ReleaseError) return e;
    const hint = e?.code === 'EACCES' || e?.code === 'EPERM' ? 'give this user write access to the mirror tree'
      : e?.code === 'ENOSPC' || e?.code === 'EDQUOT' ? `free space on the filesystem of ${bucket} (or make it larger); nothing half-written was left under a final name, and the same command, re-run, continues from what is there`
        : undefined;
    return new ReleaseError(`filesystem store ${bucket}${key ? `/${key}` : ''}: ${e?.code ?? ''} ${e?.message ?? e}`.trim(), hint);
  };
  return {
    endpoint: 'file://',
    localFile: (bucket, key) => fsPathOf(bucket, key),
    async list(bucket, prefix) {
      const out: RemoteObject[] = [];
      // Walk only what the prefix can name: its directory, and there only entries starting with its
      // last segment (listing `manifest.nix` must not walk every release of the bucket).
      const slash = prefix.lastIndexOf('/');
      const startRel = slash >= 0 ? prefix.slice(0, slash) : '';
      const namePrefix = prefix.slice(slash + 1);
      const start = startRel ? path.join(bucket, ...startRel.split('/')) : bucket;
      let top;
      try { top = await readdir(start, { withFileTypes: true }); } catch (e: any) {
        if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return [];
        throw explain(e, bucket, prefix);
      }
      const add = async (abs: string, isFile: boolean) => {
        const key = path.relative(bucket, abs).split(path.sep).join('/');
        if (key === META_DIR || key.startsWith(`${META_DIR}/`) || path.basename(abs).startsWith(TMP_PREFIX) || !key.startsWith(prefix)) return;
        const st = await lstat(abs);
        out.push({ key, size: isFile ? st.size : 0, mtime: Math.floor(Math.max(st.mtimeMs, st.ctimeMs) / 1000) });
      };
      for (const e of top) {
        if (!e.name.startsWith(namePrefix) || (!startRel && e.name === META_DIR)) continue;
        const abs = path.join(start, e.name);
        if (e.isFile() || e.isSymbolicLink()) { await add(abs, e.isFile()); continue; }
        if (!e.isDirectory()) continue;
        for (const d of await readdir(abs, { withFileTypes: true, recursive: true })) {
          if (d.isFile() || d.isSymbolicLink()) await add(path.join(d.parentPath ?? (d as any).path, d.name), d.isFile());
        }
      }
      return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    },
    async head(bucket, key) {
      const file = fsPathOf(bucket, key);
      const st = await lstatOrUndefined(file);
      if (!st || st.isDirectory()) return undefined;
      const side = await readSidecar(bucket, key);
      if (st.isSymbolicLink()) {
        return { size: 0, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', redirect: locationOfLink(bucket, file, await readlink(file)), contentType: side?.contentType, cacheControl: side?.cacheControl, metadata: {} };
      }
      // The sidecar vouches only for the very file it describes; otherwise the file is hashed (the truth).
      const fresh = side && side.size === st.size && Math.abs(side.mtimeMs - st.mtimeMs) < 1;
      const sha256 = fresh ? side!.sha256 : await hashOf(file);
      const head: ObjectHead = {
        size: st.size, sha256, contentType: side?.contentType, contentEncoding: side?.contentEncoding,
        cacheControl: side?.cacheControl, redirect: side?.redirect, metadata: { sha256 },
        sidecar: side ? { sha256: side.sha256, size: side.size } : null,
      };
      return head;
    },
    async getText(bucket, key) {
      const file = fsPathOf(bucket, key);
      try { return await readFile(file, 'utf8'); } catch (e: any) {
        if (e.code === 'ENOENT' || e.code === 'ENOTDIR' || e.code === 'EISDIR') return undefined;
        throw explain(e, bucket, key);
      }
    },
    async sha256Of(bucket, key, limit) {
      const file = fsPathOf(bucket, key);
      const st = await lstatOrUndefined(file);
      if (!st?.isFile()) return undefined;
      if (limit !== undefined) return sha256OfPrefix(file, Math.min(limit, st.size));
      return { size: st.size, sha256: await hashOf(file) };
    },
    async getStream(bucket, key) {
      const file = fsPathOf(bucket, key);
      const st = await lstatOrUndefined(file);
      return st?.isFile() ? createReadStream(file) : undefined;
    },
    async checkBucket(bucket) {
      const st = await stat(bucket).catch(() => undefined);
      if (!st?.isDirectory()) throw new ReleaseError(`directory ${bucket} (file://${bucket}) does not exist`, 'create it (mkdir -p), or fix the bucket URL in releng.json');
    },
    async put(req: PutRequest) {
      const file = fsPathOf(req.bucket, req.key);
      let linked = false;
      try {
        // A directory of the same name (e.g. left from an older layout) is not replaced silently.
        if (req.redirect && req.redirect.startsWith('/')) {
          await mkdir(path.dirname(file), { recursive: true });
          await sweep(path.dirname(file));
          const tmp = tmpName(file);
          await symlink(linkTargetFor(req.bucket, file, req.redirect), tmp);
          try { await rename(tmp, file); } catch (e) { await rm(tmp, { force: true }); throw e; }
          linked = true;
          await syncDir(path.dirname(file));
          await writeAtomic(sidecarPath(req.bucket, req.key), JSON.stringify({ sha256: req.sha256, size: 0, mtimeMs: 0, contentType: req.contentType, cacheControl: req.cacheControl, redirect: req.redirect } satisfies Sidecar) + '\n', sweep);
          return;
        }
        const what = 'file' in req.body ? req.body.file : 'stream' in req.body ? 'the streamed copy' : 'the text';
        const source = 'text' in req.body ? Buffer.from(req.body.text) : 'stream' in req.body ? req.body.stream : createReadStream(req.body.file);
        // The sidecar says what the file is (the size it holds, checked; the sha256 its bytes hashed
        // to) and goes in place first: a file under its final name always has its sidecar, and a
        // sidecar ahead of its file (a run stopped between the renames) names what releng was writing.
        await writeVerified(file, source, { size: req.size, sha256: req.sha256 }, what, {
          onProgress: req.onProgress, sweep,
          beforeRename: (w) => sidecarAhead(sidecarPath(req.bucket, req.key), {
            sha256: w.sha256, size: w.size, mtimeMs: w.mtimeMs, contentType: req.contentType,
            contentEncoding: req.contentEncoding, cacheControl: req.cacheControl, redirect: req.redirect,
          }, sweep),
        });
      } catch (e) {
        // Failed before the rename (after writeVerified's rename nothing throws): the final name is as it was.
        const err = explain(e, req.bucket, req.key);
        throw linked ? err : nothingWritten(err);
      }
    },
    async delete(bucket, key) {
      const file = fsPathOf(bucket, key);
      try {
        await rm(file, { force: true });
        await rm(sidecarPath(bucket, key), { force: true });
        // Empty directories left behind go too (up to the bucket root), as an S3 listing would show.
        let dir = path.dirname(file);
        while (dir.startsWith(bucket + path.sep)) {
          try { await rmdir(dir); } catch { break; }
          dir = path.dirname(dir);
        }
      } catch (e) { throw explain(e, bucket, key); }
    },
    async copy(from, to, opts) {
      const src = fsPathOf(from.bucket, from.key);
      const dst = fsPathOf(to.bucket, to.key);
      try {
        // The source's bytes as they are now, checked against what the plan (or, without one, the
        // source's own fresh sidecar) says they are: a damaged source is refused, not spread.
        const st = await stat(src);
        const side = await readSidecar(from.bucket, from.key);
        const fresh = side && side.size === st.size && Math.abs(side.mtimeMs - st.mtimeMs) < 1 ? side : undefined;
        const planned = { size: opts?.size, sha256: opts?.sha256 ?? fresh?.sha256 };
        await writeVerified(dst, createReadStream(src), planned, `${src} (the copy's source)`, {
          sweep, beforeRename: (w) => sidecarAhead(sidecarPath(to.bucket, to.key), { ...(side ?? {}), sha256: w.sha256, size: w.size, mtimeMs: w.mtimeMs }, sweep),
        });
      } catch (e) { throw nothingWritten(explain(e, to.bucket, to.key)); }
    },
  };
}
