// skopeo through argument arrays. Debian's skopeo 1.9.3 has neither @@unknown-digest@@ nor gzip
// support for docker-archive sources, so an image tarball becomes a dir: image first (archiveToDir),
// which lib/oci/push.ts pushes over the registry API; promote copies registry → registry with skopeo.
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { ReleaseError } from '../core/errors.ts';
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

/**
 * skopeo stderr that means the registry or the network hiccuped, not that the request is wrong:
 * 5xx and 429 answers (skopeo's --retry-times retries neither when the body is not a registry
 * error document, as a proxy's or load balancer's is), resets, EOFs and timeouts (issue 25).
 */
export const transientSkopeo = /unexpected HTTP status: (5\d\d|429)|status(?: code)?:? (5\d\d|429)\b|\b(500 Internal Server Error|502 Bad Gateway|503 Service Unavailable|504 Gateway Timeout|429 Too Many Requests)|toomanyrequests|UNAVAILABLE|connection reset by peer|broken pipe|unexpected EOF|: EOF\b|i\/o timeout|TLS handshake timeout|connection refused|server misbehaving|GOAWAY/i;

/** Runs skopeo for a registry operation: a transient failure is marked retryable (apply tries again), every failure names the references. */
async function skopeoRegistry(args: string[], what: string): Promise<void> {
  try {
    await run('skopeo', args);
  } catch (e) {
    const msg = (e as Error).message;
    throw Object.assign(new ReleaseError(`${what}: ${msg}`, (e as ReleaseError).hint, { cause: e }), { retryable: transientSkopeo.test(msg) });
  }
}

/** The registry API URL of a reference HOST/REPO@DIGEST (for messages). */
export function referenceUrl(ref: string, o: SkopeoRegistryOptions): string {
  const slash = ref.indexOf('/');
  const host = ref.slice(0, slash);
  const [repo, digest] = ref.slice(slash + 1).split('@');
  return `${o.tlsVerify ? 'https' : 'http(s)'}://${host}/v2/${repo}/manifests/${digest}`;
}

/** Copies one image registry → registry by digest, byte for byte (--preserve-digests: no conversion, same digest). */
export async function copyByDigest(from: string, src: SkopeoRegistryOptions, to: string, dst: SkopeoRegistryOptions): Promise<void> {
  await skopeoRegistry(['copy', '--quiet', '--retry-times', '3', '--preserve-digests', ...sourceArgs(src).map((a) => a.replace(/^--(tls-verify|cert-dir|authfile)/, '--src-$1')), ...destArgs(dst), `docker://${from}`, `docker://${to}`],
    `copying ${from} (${referenceUrl(from, src)}) to ${to} (${referenceUrl(to, dst)})`);
}
