// Turns a per-system image tarball into a dir: image ready to push, and reads what the index
// needs from it (manifest digest and size, platform, labels) before anything is written remotely.
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

/** Prepares (or reuses, keyed by the tarball's sha256) the dir: image of one tarball under workDir. */
export async function prepareImage(tarball: string, tarballSha256: string, workDir: string): Promise<PreparedImage> {
  const dir = path.join(workDir, tarballSha256);
  if (!(await exists(path.join(dir, 'manifest.json')))) {
    const tmp = `${dir}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const staging = `${dir}.tar`;
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
    await rename(tmp, dir);
  }
  return readDirImage(dir, tarball);
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
