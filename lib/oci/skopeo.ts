// skopeo through argument arrays. Debian's skopeo 1.9.3 has neither @@unknown-digest@@ nor
// gzip support for docker-archive sources, so images are pushed in two hops: archive → dir: → registry.
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { run } from '../core/exec.ts';

/** How skopeo reaches one registry: TLS verification, extra CA directory and the auth file. */
export interface SkopeoRegistryOptions {
  tlsVerify: boolean;
  /** A directory of *.crt (CA), *.cert/*.key (client) files, as in containers-certs.d(5). */
  certDir?: string;
  /** Auth file holding the login for this registry (the one releng read its credentials from). */
  authFile?: string;
}

/** Arguments for the destination side of `skopeo copy`. */
export function destArgs(o: SkopeoRegistryOptions): string[] {
  // NAME=VALUE: a value starting with "-" stays a value (issue 25).
  return [`--dest-tls-verify=${o.tlsVerify}`, ...(o.certDir ? [`--dest-cert-dir=${o.certDir}`] : []), ...(o.authFile ? [`--dest-authfile=${o.authFile}`] : [])];
}

/** Arguments for `skopeo inspect` and the source side of reads. */
export function sourceArgs(o: SkopeoRegistryOptions): string[] {
  return [`--tls-verify=${o.tlsVerify}`, ...(o.certDir ? [`--cert-dir=${o.certDir}`] : []), ...(o.authFile ? [`--authfile=${o.authFile}`] : [])];
}

/** True when the file starts with the gzip magic bytes. */
export async function isGzip(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/** Streams a gzip file to an uncompressed one (skopeo 1.9.3 fails on gzipped docker-archives with
 *  "loading tar component manifest.json: unexpected EOF"; uncompressed ones work). */
export async function gunzipTo(src: string, dest: string): Promise<void> {
  await pipeline(createReadStream(src), createGunzip(), createWriteStream(dest));
}

/** Converts an uncompressed docker-archive into a dir: image with OCI manifests and gzip layers.
 *  --dest-compress matters: without it skopeo 1.9.3 labels the raw tar layers tar+gzip. The output is
 *  deterministic for a given input and skopeo version, so its manifest digest is known before the push. */
export async function archiveToDir(archive: string, dir: string): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--format', 'oci', '--dest-compress', `docker-archive:${archive}`, `dir:${dir}`]);
}

/** Pushes a dir: image by digest, untagged, keeping its manifest byte for byte (--preserve-digests). */
export async function pushDirByDigest(dir: string, ref: string, o: SkopeoRegistryOptions): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--retry-times', '3', '--preserve-digests', ...destArgs(o), `dir:${dir}`, `docker://${ref}`]);
}

/** Copies one image registry → registry by digest, byte for byte (--preserve-digests: no conversion, same digest). */
export async function copyByDigest(from: string, src: SkopeoRegistryOptions, to: string, dst: SkopeoRegistryOptions): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--retry-times', '3', '--preserve-digests', ...sourceArgs(src).map((a) => a.replace(/^--(tls-verify|cert-dir|authfile)/, '--src-$1')), ...destArgs(dst), `docker://${from}`, `docker://${to}`]);
}
