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
//   rsync mirror) sees the old file or the new one, never half of one.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readFile, readlink, rename, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { sha256File } from '../checksums.ts';
import { ReleaseError } from '../errors.ts';
import type { ObjectHead, PutRequest, RemoteObject, S3Store } from '../s3/store.ts';

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
  return path.join(path.dirname(file), `${TMP_PREFIX}${randomBytes(6).toString('hex')}-${path.basename(file)}`);
}

async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = tmpName(file);
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

async function readSidecar(bucket: string, key: string): Promise<Sidecar | undefined> {
  try { return JSON.parse(await readFile(sidecarPath(bucket, key), 'utf8')) as Sidecar; } catch { return undefined; }
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
  const explain = (e: any, bucket: string, key?: string): Error => {
    if (e instanceof ReleaseError) return e;
    return new ReleaseError(`filesystem store ${bucket}${key ? `/${key}` : ''}: ${e?.code ?? ''} ${e?.message ?? e}`.trim(),
      e?.code === 'EACCES' || e?.code === 'EPERM' ? 'give this user write access to the mirror tree' : undefined);
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
    async sha256Of(bucket, key) {
      const file = fsPathOf(bucket, key);
      const st = await lstatOrUndefined(file);
      if (!st?.isFile()) return undefined;
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
      try {
        await mkdir(path.dirname(file), { recursive: true });
        // A directory of the same name (e.g. left from an older layout) is not replaced silently.
        if (req.redirect && req.redirect.startsWith('/')) {
          const tmp = tmpName(file);
          await symlink(linkTargetFor(req.bucket, file, req.redirect), tmp);
          await rename(tmp, file);
          await writeAtomic(sidecarPath(req.bucket, req.key), JSON.stringify({ sha256: req.sha256, size: 0, mtimeMs: 0, contentType: req.contentType, cacheControl: req.cacheControl, redirect: req.redirect } satisfies Sidecar) + '\n');
          return;
        }
        const tmp = tmpName(file);
        try {
          const hash = createHash('sha256');
          let size = 0;
          if ('text' in req.body) {
            const buf = Buffer.from(req.body.text);
            hash.update(buf); size = buf.length;
            await writeFile(tmp, buf);
          } else {
            // Hashed while copied: what lands under the final name is checked against the planned sha256.
            const src = 'stream' in req.body ? req.body.stream : createReadStream(req.body.file);
            src.on('data', (c: Buffer | string) => { hash.update(c); size += c.length; req.onProgress?.(c.length); });
            await pipeline(src, (await import('node:fs')).createWriteStream(tmp));
          }
          const got = hash.digest('hex');
          if (got !== req.sha256 || size !== req.size) {
            throw new ReleaseError(`${'file' in req.body ? req.body.file : 'stream' in req.body ? 'the streamed copy' : 'text'} no longer matches its plan for ${req.key} (size ${size}, sha256 ${got}; planned ${req.size}, ${req.sha256})`, 're-run the command: it plans again from what is there now');
          }
          await rename(tmp, file);
        } catch (e) {
          await rm(tmp, { force: true });
          throw e;
        }
        const st = await stat(file);
        await writeAtomic(sidecarPath(req.bucket, req.key), JSON.stringify({
          sha256: req.sha256, size: st.size, mtimeMs: st.mtimeMs, contentType: req.contentType,
          contentEncoding: req.contentEncoding, cacheControl: req.cacheControl, redirect: req.redirect,
        } satisfies Sidecar) + '\n');
      } catch (e) { throw explain(e, req.bucket, req.key); }
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
    async copy(from, to, _opts) {
      const src = fsPathOf(from.bucket, from.key);
      const dst = fsPathOf(to.bucket, to.key);
      try {
        await mkdir(path.dirname(dst), { recursive: true });
        const tmp = tmpName(dst);
        try { await copyFile(src, tmp); await rename(tmp, dst); } catch (e) { await rm(tmp, { force: true }); throw e; }
        const side = await readSidecar(from.bucket, from.key);
        const st = await stat(dst);
        const sha256 = side && side.size === st.size ? side.sha256 : await hashOf(dst);
        await writeAtomic(sidecarPath(to.bucket, to.key), JSON.stringify({ ...(side ?? {}), sha256, size: st.size, mtimeMs: st.mtimeMs } satisfies Sidecar) + '\n');
      } catch (e) { throw explain(e, to.bucket, to.key); }
    },
  };
}
