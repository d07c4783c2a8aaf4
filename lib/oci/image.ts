// Turns a per-system image tarball into a dir: image ready to push, and reads what the index
// needs from it (manifest digest and size, platform, labels) before anything is written remotely.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError } from '../core/errors.ts';
import { sha256Text } from '../hashing/checksums.ts';
import { archiveToDir, gunzipTo, isGzip } from './skopeo.ts';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** A pushable image: its dir: copy and what the registry will report for it. */
export interface PreparedImage {
  dir: string;
  /** sha256:HEX of dir/manifest.json; skopeo --preserve-digests keeps it on push. */
  digest: string;
  size: number;
  mediaType: string;
  platform: Platform;
  labels: Record<string, string>;
}

/**
 * Prepares (or reuses, keyed by the tarball's sha256) the dir: image of one tarball under workDir.
 * Each run converts into temporary paths of its own and renames the result into place, so two runs
 * at once never share a half-written directory (issue 25); when another run put the same image in
 * place first, its copy is used. A directory that is not a whole image (a blob missing or of the
 * wrong size, a manifest that does not parse: a run killed mid-way, a hand deletion) is rebuilt.
 */
export async function prepareImage(tarball: string, tarballSha256: string, workDir: string): Promise<PreparedImage> {
  const dir = path.join(workDir, tarballSha256);
  const problem = await dirImageProblem(dir);
  if (problem !== undefined) {
    if (problem !== 'absent') await rm(dir, { recursive: true, force: true });
    const unique = `${process.pid}-${randomBytes(4).toString('hex')}`;
    const tmp = `${dir}.tmp-${unique}`;
    const staging = `${dir}.tar-${unique}`;
    await mkdir(tmp, { recursive: true });
    try {
      // skopeo 1.9.3 cannot read gzipped docker-archives: decompress (streaming) to a temporary .tar first.
      let archive = tarball;
      if (await isGzip(tarball)) { await gunzipTo(tarball, staging); archive = staging; }
      await archiveToDir(archive, tmp);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw new ReleaseError(`cannot read the image tarball ${tarball}: ${(e as Error).message}`, 'it must be a docker-archive (docker save / nix dockerTools format), optionally gzipped; rebuild with `releng build`', { cause: e });
    } finally {
      await rm(staging, { force: true });
    }
    try {
      await rename(tmp, dir);
    } catch (e: any) {
      // Another run renamed its copy into place first (the same bytes: skopeo's output is deterministic).
      await rm(tmp, { recursive: true, force: true });
      if (!['ENOTEMPTY', 'EEXIST'].includes(e?.code) || (await dirImageProblem(dir)) !== undefined) throw e;
    }
  }
  return readDirImage(dir, tarball);
}

/** Why `dir` is not a whole dir: image ('absent' when there is none), or undefined: its manifest parses and the config and every layer are there with the manifest's sizes. */
export async function dirImageProblem(dir: string): Promise<string | undefined> {
  let manifest: any;
  try { manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')); } catch (e: any) {
    if (e?.code === 'ENOENT') return (await exists(dir)) ? 'no manifest.json' : 'absent';
    return `manifest.json does not parse: ${e?.message ?? e}`;
  }
  const blobs = [manifest?.config, ...(Array.isArray(manifest?.layers) ? manifest.layers : [])];
  for (const b of blobs) {
    const digest = typeof b?.digest === 'string' ? b.digest : '';
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) return `manifest.json names a blob without a sha256 digest`;
    const st = await stat(path.join(dir, digest.slice('sha256:'.length))).catch(() => undefined);
    if (!st?.isFile()) return `blob ${digest} is missing`;
    if (typeof b.size === 'number' && st.size !== b.size) return `blob ${digest} has ${st.size} bytes, the manifest says ${b.size}`;
  }
  return undefined;
}

/** Reads manifest and config of a dir: image. */
export async function readDirImage(dir: string, what = dir): Promise<PreparedImage> {
  const manifestBytes = await readFile(path.join(dir, 'manifest.json'));
  const manifest = JSON.parse(manifestBytes.toString('utf8'));
  const configDigest: string = manifest?.config?.digest ?? '';
  const config = JSON.parse(await readFile(path.join(dir, configDigest.replace(/^sha256:/, '')), 'utf8'));
  if (typeof config?.os !== 'string' || typeof config?.architecture !== 'string') {
    throw new ReleaseError(`the image ${what} has no os/architecture in its config`, 'the image config must say which platform it is for (os, architecture)');
  }
  return {
    dir,
    digest: `sha256:${sha256Text(manifestBytes)}`,
    size: manifestBytes.length,
    mediaType: manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json',
    platform: { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) },
    labels: { ...(config.config?.Labels ?? {}) },
  };
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

/** Prepares every docker image of a build (release/oci/ caches the dir: copies by tarball sha256). */
export async function prepareBuildImages(result: { dockerImages: { system: string; path: string }[]; artifacts: { path: string; sha256: string }[] }, releaseDir: string): Promise<{ system: string; image: PreparedImage }[]> {
  const out: { system: string; image: PreparedImage }[] = [];
  for (const d of result.dockerImages) {
    const artifact = result.artifacts.find((a) => a.path === d.path);
    if (!artifact) throw new ReleaseError(`build-result.json lists the image ${d.path} but not as an artifact`, 'rebuild with `releng build`');
    out.push({ system: d.system, image: await prepareImage(path.join(releaseDir, 'artifacts', d.path), artifact.sha256, path.join(releaseDir, 'oci')) });
  }
  return out;
}
