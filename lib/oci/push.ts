// Pushes a dir: image (release/oci/TARBALL-SHA256: manifest.json and blobs named by their sha256, as
// skopeo wrote it) to a registry by digest, untagged, over the registry API (issue 25): each blob
// the repository lacks is uploaded (POST, then a monolithic PUT with its digest), then the manifest
// bytes are PUT unchanged under their digest. Every request is retried on 5xx, 429, resets and
// timeouts (lib/oci/registry.ts), which skopeo's --retry-times does not do for 5xx; the final error
// names the reference and the URL.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError } from '../core/errors.ts';
import { sha256Text } from '../hashing/checksums.ts';
import type { RegistryClient } from './registry.ts';

/** Pushes `dir` as REPOSITORY@DIGEST; `digest` must be the sha256 of its manifest.json. */
export async function pushDirImage(client: RegistryClient, repository: string, dir: string, digest: string): Promise<void> {
  const ref = `${client.host}/${repository}@${digest}`;
  const manifestBytes = await readFile(path.join(dir, 'manifest.json'));
  if (`sha256:${sha256Text(manifestBytes)}` !== digest) {
    throw new ReleaseError(`${dir}/manifest.json is not the manifest planned for ${ref}`, 'release/oci changed since planning: re-run upload (it prepares the image again)');
  }
  const manifest = JSON.parse(manifestBytes.toString('utf8'));
  const blobs: { digest: string; size: number }[] = [manifest.config, ...(manifest.layers ?? [])];
  for (const b of blobs) {
    const file = path.join(dir, String(b.digest).replace(/^sha256:/, ''));
    const size = (await stat(file)).size;
    if (size !== b.size) throw new ReleaseError(`${file} has ${size} bytes, the manifest of ${ref} says ${b.size}`, 'release/oci is damaged: re-run upload (it prepares the image again)');
    if ((await client.headBlob(repository, b.digest)) === b.size) continue;
    try {
      await client.uploadBlob(repository, b.digest, file, size);
    } catch (e) {
      throw Object.assign(new ReleaseError(`pushing ${ref}: blob ${b.digest}: ${(e as Error).message}`, (e as ReleaseError).hint, { cause: e }), { retryable: false });
    }
  }
  const mediaType = manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
  let got: string;
  try {
    got = await client.putManifest(repository, digest, manifestBytes, mediaType);
  } catch (e) {
    throw Object.assign(new ReleaseError(`pushing ${ref}: the manifest: ${(e as Error).message}`, (e as ReleaseError).hint, { cause: e }), { retryable: false });
  }
  if (got && got !== digest) throw new ReleaseError(`registry ${client.host} stored ${ref} as ${got}`, 'the registry rewrote the manifest; report this, it breaks the skip-if-published check');
}
