// Container images end to end, against real docker-registry on 127.0.0.1 and read back with skopeo:
// the local environment's embedded registry (plain HTTP), htpasswd basic auth over TLS with a test
// certificate, and token auth through an in-test token server.
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { startLocalRegistry } from '../../lib/local/registry-server.ts';
import { nodeTransport, ociIndexMediaType, registryClient } from '../../lib/oci/registry.ts';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { startTlsRegistry, startTokenRegistry, writeAuthJson } from '../helpers/registry.ts';
import { requireTool } from '../helpers/tools.ts';

// Async: the token server runs in this process, so a blocking execFileSync would deadlock skopeo.
const skopeo = async (args: string[]) => String((await execa('skopeo', args, { stdin: 'ignore' })).stdout);

/** The index under TAG, and the arm64 image `skopeo copy --override-arch arm64` picks from it. */
async function readBack(ref: string, access: string[]) {
  const index = JSON.parse(await skopeo(['inspect', '--raw', ...access, `docker://${ref}`]));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-pull-'));
  try {
    const srcAccess = access.map((a) => a.replace(/^--(tls-verify|cert-dir|authfile)/, '--src-$1'));
    await skopeo(['copy', '--quiet', '--override-arch', 'arm64', ...srcAccess, `docker://${ref}`, `dir:${dir}/img`]);
    const manifestBytes = await readFile(path.join(dir, 'img/manifest.json'));
    const manifest = JSON.parse(manifestBytes.toString('utf8'));
    const armConfig = JSON.parse(await readFile(path.join(dir, 'img', manifest.config.digest.replace('sha256:', '')), 'utf8'));
    return { index, armDigest: `sha256:${sha256Text(manifestBytes)}`, armConfig };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function expectMultiArch(r: Awaited<ReturnType<typeof readBack>>) {
  expect(r.index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  expect(r.index.manifests.map((m: any) => `${m.platform.os}/${m.platform.architecture}`).sort()).toEqual(['linux/amd64', 'linux/arm64']);
  for (const m of r.index.manifests) expect(m.annotations['org.opencontainers.image.version']).toBe('1.0.0');
  const arm = r.index.manifests.find((m: any) => m.platform.architecture === 'arm64');
  expect(r.armDigest).toBe(arm.digest);
  expect(r.armConfig.architecture).toBe('arm64');
}

describe('container images of examples/hello', () => {
  let p: ScratchProject;
  const json = (stdout: string) => JSON.parse(stdout).result;

  beforeAll(async () => {
    for (const [t, pkg] of [['nix-build', 'nix-bin'], ['skopeo', 'skopeo'], ['docker-registry', 'docker-registry'], ['htpasswd', 'apache2-utils'], ['openssl', 'openssl']]) requireTool(t!, pkg!);
    p = await scratchProject();
    const r = await releng(['build', '--no-check-git'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => { await p?.cleanup(); });

  describe('local environment: the embedded registry (plain HTTP)', () => {
    it('--dry-run prints the pushes and index PUTs with their digests and writes nothing to the registry', async () => {
      const r = await releng(['upload', '--no-check-git', '--dry-run'], { cwd: p.dir });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/\[dry-run\] oci push 127\.0\.0\.1:\d+\/hello@sha256:[0-9a-f]{64} \(aarch64-linux, linux\/arm64, untagged\)/);
      expect(r.stderr).toMatch(/\[dry-run\] oci index 127\.0\.0\.1:\d+\/hello:latest -> sha256:[0-9a-f]{64} \(2 images, new\)/);
      const reg = await startLocalRegistry({ dir: path.join(p.dir, '.releng/local/registry') });
      try {
        const res = await fetch(`${reg.url}/v2/_catalog`);
        expect((await res.json() as any).repositories).toEqual([]);
      } finally {
        await reg.stop();
      }
    });

    it('upload pushes both images by digest, then the index under 1.0.0, 1.0 and latest', async () => {
      const r = await releng(['upload', '--no-check-git', '--json'], { cwd: p.dir });
      expect(r.code, r.stderr).toBe(0);
      expect(json(r.stdout).applied).toMatchObject({ 'oci.push': 2, 'oci.index': 3 });
      // Child manifests strictly before the index: the push step finished before the index step began.
      expect(r.stderr.indexOf('ok  images to 127.0.0.1:')).toBeLessThan(r.stderr.indexOf('==> image index tags on'));
      expect(r.stderr).toContain('local registry data:');
      // The embedded registry stopped with releng.
      const left = await execa('pgrep', ['-f', path.join(p.dir, '.releng/local/registry/config.yml')], { reject: false });
      expect(left.stdout).toBe('');
    });

    it('skopeo sees the index with amd64 and arm64, and --override-arch arm64 picks the arm64 image', async () => {
      const reg = await startLocalRegistry({ dir: path.join(p.dir, '.releng/local/registry') });
      try {
        for (const tag of ['1.0.0', '1.0', 'latest']) expectMultiArch(await readBack(`${reg.host}/hello:${tag}`, ['--tls-verify=false']));
      } finally {
        await reg.stop();
      }
    });

    it('a re-run pushes nothing and says why', async () => {
      const r = await releng(['upload', '--no-check-git', '--json'], { cwd: p.dir });
      expect(r.code, r.stderr).toBe(0);
      expect(json(r.stdout).applied['oci.push']).toBeUndefined();
      expect(json(r.stdout).applied['oci.index']).toBeUndefined();
      expect(r.stderr).toMatch(/skip image 127\.0\.0\.1:\d+\/hello@sha256:[0-9a-f]{64} \(aarch64-linux\): already in the registry/);
      expect(r.stderr).toMatch(/skip tag 127\.0\.0\.1:\d+\/hello:1\.0\.0: already points at this index/);
    });
  });

  describe('htpasswd basic auth over TLS (test certificate), credentials from $XDG_RUNTIME_DIR/containers/auth.json', () => {
    const user = 'releng-user';
    const password = 'Tls-S3cret-pa55word';
    let reg: Awaited<ReturnType<typeof startTlsRegistry>>;
    let runtimeDir: string;
    let requestLog: string;
    beforeAll(async () => {
      reg = await startTlsRegistry(user, password);
      runtimeDir = await mkdtemp(path.join(os.tmpdir(), 'releng-xdg-'));
      requestLog = path.join(runtimeDir, 's3-requests.log');
      await p.editConfig((c) => { c.environments.local.docker = [{ registry: reg.host, repository: 'team/hello', tags: ['{version}', '{major}'], latest: true, certDir: reg.certDir }]; });
      // Fresh local S3, so "nothing uploaded" is visible in its request log.
      await rm(path.join(p.dir, '.releng/local/s3'), { recursive: true, force: true });
    });
    afterAll(async () => { await reg?.stop(); await rm(runtimeDir, { recursive: true, force: true }); });
    const env = () => ({ XDG_RUNTIME_DIR: runtimeDir, RELENG_S3_REQUEST_LOG: requestLog });

    it('a wrong password fails before anything is uploaded, with a clear error that never shows a password', async () => {
      await writeAuthJson(runtimeDir, reg.host, user, 'wrong-Passw0rd');
      const r = await releng(['upload', '--no-check-git', '--verbose'], { cwd: p.dir, env: env() });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`registry ${reg.host} refused the credentials of "${user}" (from ${path.join(runtimeDir, 'containers/auth.json')})`);
      expect(r.stderr).toContain(`skopeo login ${reg.host}`);
      expect(r.stderr + r.stdout).not.toContain('wrong-Passw0rd');
      expect(r.stderr).not.toContain('planning upload');
      const s3 = await readFile(requestLog, 'utf8').catch(() => '');
      expect(s3).not.toMatch(/^(PUT|POST|DELETE) /m);
      expect(await reg.catalog()).toEqual([]);
    });

    it('with the right login it pushes, and skopeo reads the multi-arch index back over TLS', async () => {
      const authFile = await writeAuthJson(runtimeDir, reg.host, user, password);
      const r = await releng(['upload', '--no-check-git', '--verbose', '--json'], { cwd: p.dir, env: env() });
      expect(r.code, r.stderr).toBe(0);
      expect(json(r.stdout).applied).toMatchObject({ 'oci.push': 2, 'oci.index': 3 });
      expect(r.stderr).toContain(`registry ${reg.host}/team/hello: login accepted (basic, credentials from ${authFile})`);
      expect(r.stderr + r.stdout).not.toContain(password);
      expect(r.stderr + r.stdout).not.toContain(Buffer.from(`${user}:${password}`).toString('base64'));
      expect(await reg.catalog()).toEqual(['team/hello']);
      expectMultiArch(await readBack(`${reg.host}/team/hello:1.0.0`, [`--cert-dir=${reg.certDir}`, `--authfile=${authFile}`]));
    });

    it('a version tag pointing at another index is an error unless --force-push-images', async () => {
      // Someone pointed 1.0.0 at a one-image index: releng must not silently move it back.
      const client = registryClient({ host: reg.host, scheme: 'https', credentials: { username: user, password, authFile: '' }, transport: nodeTransport({ ca: [reg.pem] }) });
      const published = await client.getManifest('team/hello', '1.0.0');
      const other = Buffer.from(JSON.stringify({ ...JSON.parse(published!.body.toString()), manifests: JSON.parse(published!.body.toString()).manifests.slice(0, 1) }));
      const otherDigest = await client.putManifest('team/hello', '1.0.0', other, ociIndexMediaType);
      const refused = await releng(['upload', '--no-check-git'], { cwd: p.dir, env: env() });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`team/hello:1.0.0 already points at ${otherDigest}, not at this release's image index ${published!.head.digest}`);
      expect(refused.stderr).toContain('--force-push-images');
      const forced = await releng(['upload', '--no-check-git', '--force-push-images', '--verbose', '--json'], { cwd: p.dir, env: env() });
      expect(forced.code, forced.stderr).toBe(0);
      expect(JSON.parse(forced.stdout).result.applied).toEqual({ 'oci.index': 1 });
      expect(forced.stderr).toContain(`team/hello:1.0.0 -> ${published!.head.digest} (2 images, moves from ${otherDigest.slice(0, 19)})`);
      expect((await client.headManifest('team/hello', '1.0.0'))?.digest).toBe(published!.head.digest);
    });
  });

  describe('token auth (Bearer exchange) through an in-test token server', () => {
    const user = 'token-user';
    const password = 'T0ken-secret-pw';
    let reg: Awaited<ReturnType<typeof startTokenRegistry>>;
    let runtimeDir: string;
    beforeAll(async () => {
      reg = await startTokenRegistry(user, password);
      runtimeDir = await mkdtemp(path.join(os.tmpdir(), 'releng-xdg-'));
      await p.editConfig((c) => { c.environments.local.docker = [{ registry: reg.host, repository: 'hello', tags: ['{version}'], latest: false, tlsVerify: false }]; });
    });
    afterAll(async () => { await reg?.stop(); await rm(runtimeDir, { recursive: true, force: true }); });

    it('a wrong password is refused by the token service before anything is pushed', async () => {
      await writeAuthJson(runtimeDir, reg.host, user, 'not-the-pw');
      const r = await releng(['upload', '--no-check-git'], { cwd: p.dir, env: { XDG_RUNTIME_DIR: runtimeDir } });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/the token service http:\/\/127\.0\.0\.1:\d+\/token refused the credentials of "token-user"/);
      expect(r.stderr).not.toContain('not-the-pw');
      expect(await reg.catalog()).toEqual([]);
    });

    it('pushes with a token for repository:hello:pull,push, never prints it, and resumes after a crash', async () => {
      const authFile = await writeAuthJson(runtimeDir, reg.host, user, password);
      // A run that died after pushing the x86_64 image: its dir: copy is in the registry, untagged.
      const result = JSON.parse(await readFile(path.join(p.dir, 'release/build-result.json'), 'utf8'));
      const tarball = result.artifacts.find((a: any) => a.path.endsWith('docker-image-x86_64-linux.tar.gz'));
      const dir = path.join(p.dir, 'release/oci', tarball.sha256);
      const digest = `sha256:${sha256Text(await readFile(path.join(dir, 'manifest.json')))}`;
      await skopeo(['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `--dest-authfile=${authFile}`, `dir:${dir}`, `docker://${reg.host}/hello@${digest}`]);
      const r = await releng(['upload', '--no-check-git', '--verbose', '--json'], { cwd: p.dir, env: { XDG_RUNTIME_DIR: runtimeDir } });
      expect(r.code, r.stderr).toBe(0);
      expect(json(r.stdout).applied).toMatchObject({ 'oci.push': 1, 'oci.index': 1 });
      expect(r.stderr).toContain(`skip image ${reg.host}/hello@${digest} (x86_64-linux): already in the registry`);
      expect(reg.tokenRequests).toContain('repository:hello:pull,push');
      expect(r.stderr).toContain(`registry ${reg.host}/hello: login accepted (bearer, credentials from ${authFile})`);
      expect(r.stderr + r.stdout).not.toContain(password);
      expect(r.stderr + r.stdout).not.toMatch(/eyJ[\w-]{20,}/); // no JWT
      expectMultiArch(await readBack(`${reg.host}/hello:1.0.0`, ['--tls-verify=false', `--authfile=${authFile}`]));
    });
  });
});
