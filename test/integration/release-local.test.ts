// The foundation end to end: build the example with real Nix, upload into the embedded S3 (s3rver),
// then read it back with real clients: Nix evaluates the uploaded manifest, SHA256SUMS checks every file.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSha256Sums, sha256Text } from '../../lib/hashing/checksums.ts';
import { startLocalS3, type LocalS3 } from '../../lib/local/s3-server.ts';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

describe('build + upload of examples/hello into the local environment', () => {
  let p: ScratchProject;
  let requestLog: string;
  const env = () => ({ RELENG_S3_REQUEST_LOG: requestLog });
  const puts = async () => (await readFile(requestLog, 'utf8').catch(() => '')).split('\n').filter((l) => l.startsWith('PUT ')).length;

  beforeAll(async () => {
    requireTool('nix-build', 'nix-bin');
    p = await scratchProject();
    requestLog = path.join(await mkdtemp(path.join(os.tmpdir(), 'releng-log-')), 'requests.log');
  });
  afterAll(async () => { await p?.cleanup(); });

  it('build lays out the artifacts, SHA256SUMS and build-result.json', async () => {
    const r = await releng(['build', '--no-check-git', '--json'], { cwd: p.dir });
    expect(r.stderr).toContain('laid out');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout).result;
    expect(result.version).toBe('1.0.0');
    expect(Object.keys(result.manifest).sort()).toEqual(['aarch64-linux', 'x86_64-linux']);
    for (const [system, storePath] of Object.entries(result.manifest)) {
      expect(storePath).toMatch(new RegExp(`-hello-1\\.0\\.0-${system}$`));
      // The manifest points at the program, not at a tarball (the bug Lix once shipped).
      expect(execFileSync(`${storePath}/bin/hello`, { encoding: 'utf8' })).toContain(`hello 1.0.0, ${system}`);
    }
    const names = result.artifacts.map((a: any) => a.path);
    for (const n of ['hello-1.0.0-x86_64-linux.tar.xz', 'hello-1.0.0-aarch64-linux.tar.xz', 'hello-1.0.0-docker-image-x86_64-linux.tar.gz',
      'hello-1.0.0-docker-image-aarch64-linux.tar.gz', 'hello-1.0.0-manual.tar.gz', 'hello-1.0.0.tar.gz', 'manifest.nix', 'SHA256SUMS']) {
      expect(names).toContain(`hello/hello-1.0.0/${n}`);
      if (n.includes('.tar.')) expect(names).toContain(`hello/hello-1.0.0/${n}.sha256`);
    }
    expect(names).toContain('manifest.nix');
    const versionDir = path.join(p.dir, 'release/artifacts/hello/hello-1.0.0');
    expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: versionDir, encoding: 'utf8' })).not.toContain('FAILED');
  });

  it('--dry-run prints the plan and makes no write', async () => {
    const r = await releng(['upload', '--no-check-git', '--dry-run'], { cwd: p.dir, env: env() });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('[dry-run] s3 put s3://local-releases/hello/hello-1.0.0/hello-1.0.0-x86_64-linux.tar.xz (application/x-xz');
    expect(r.stderr).toContain('[dry-run] s3 put s3://local-releases/manifest.nix (text/plain');
    expect(r.stderr).toContain('[dry-run] s3 put s3://local-docs/manual/hello/nightly/index.html (text/html');
    const log = await readFile(requestLog, 'utf8');
    expect(log).toMatch(/^(GET|HEAD) /m); // it did read
    expect(log).not.toMatch(/^(PUT|POST|DELETE) /m);
  });

  it('upload publishes every artifact, root manifest.nix last', async () => {
    const r = await releng(['upload', '--no-check-git'], { cwd: p.dir, env: env() });
    expect(r.code, r.stderr).toBe(0);
    const lines = (await readFile(requestLog, 'utf8')).split('\n').filter((l) => l.startsWith('PUT /local-releases/'));
    expect(lines.length).toBeGreaterThan(10);
    // The query string is the client's business (the SDK adds ?x-id=PutObject, the lean PUT path none).
    expect(lines.at(-1)?.replace(/\?.*$/, '')).toBe('PUT /local-releases/manifest.nix');
    expect(r.stderr).toContain('released hello 1.0.0 to local');
  });

  it('a second upload makes no PUT', async () => {
    const before = await puts();
    const lines = async () => (await readFile(requestLog, 'utf8')).split('\n').filter(Boolean);
    const seen = (await lines()).length;
    const r = await releng(['upload', '--no-check-git'], { cwd: p.dir, env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(await puts()).toBe(before);
    // The upload record (.releng/upload-state) vouches for what the listing shows, so planning makes
    // no HEAD per object (issue 6); the closing verification reads every object back (issue 9) from
    // the listings: each single-part ETag is the MD5 of the local bytes, and the metadata is what the
    // first run's acknowledged PUTs set (issue 16). So no object of the release is HEADed, and the listings
    // did read every prefix back.
    const after = (await lines()).slice(seen);
    const heads = after.filter((l) => /^HEAD \/[^/?]+\/[^?]/.test(l)).map((l) => l.replace(/\?.*$/, ''));
    // (The index verifier looks whether an APT repository is there: one HEAD of its Release, not an object of this release.)
    expect(heads.filter((h) => h !== 'HEAD /local-releases/apt/dists/stable/Release'), after.join('\n')).toEqual([]);
    expect(after.filter((l) => /^GET \/[^/?]+\/?\?.*(list-type|prefix=)/.test(l)).length).toBeGreaterThan(2);
    expect(r.stderr).toMatch(/objects proven by listing/);
    expect(r.stderr).toContain('already there with the same sha256');
  });

  describe('read back with real clients', () => {
    let s3: LocalS3;
    beforeAll(async () => { s3 = await startLocalS3({ dir: path.join(p.dir, '.releng/local/s3') }); });
    afterAll(async () => { await s3?.stop(); });
    const get = async (bucketKey: string) => {
      const res = await fetch(`${s3.endpoint}/${bucketKey}`);
      expect(res.status, bucketKey).toBe(200);
      return { res, body: Buffer.from(await res.arrayBuffer()) };
    };

    it('nix-instantiate --eval reads the uploaded root manifest.nix as the build store paths', async () => {
      const { res, body } = await get('local-releases/manifest.nix');
      expect(res.headers.get('content-type')).toBe('text/plain');
      const file = path.join(await mkdtemp(path.join(os.tmpdir(), 'releng-m-')), 'manifest.nix');
      await writeFile(file, body);
      const evaluated = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', file], { encoding: 'utf8' }));
      const built = JSON.parse(await readFile(path.join(p.dir, 'release/build-result.json'), 'utf8')).manifest;
      expect(evaluated).toEqual(built);
    });

    it('every uploaded artifact matches SHA256SUMS', async () => {
      const sums = parseSha256Sums((await get('local-releases/hello/hello-1.0.0/SHA256SUMS')).body.toString());
      expect(sums.size).toBeGreaterThan(10);
      for (const [name, hex] of sums) {
        const { body } = await get(`local-releases/hello/hello-1.0.0/${name}`);
        expect(sha256Text(body), name).toBe(hex);
      }
      // .sha256 bytes as Lix's scripts write them: `sha256sum | cut` (a newline) for tarballs, none for the source tarball.
      const sha = (await get('local-releases/hello/hello-1.0.0/hello-1.0.0-x86_64-linux.tar.xz.sha256')).body.toString();
      expect(sha).toBe(`${sums.get('hello-1.0.0-x86_64-linux.tar.xz')}\n`);
      expect((await get('local-releases/hello/hello-1.0.0/hello-1.0.0-manual.tar.gz.sha256')).body.toString()).toBe(`${sums.get('hello-1.0.0-manual.tar.gz')}\n`);
      expect((await get('local-releases/hello/hello-1.0.0/hello-1.0.0.tar.gz.sha256')).body.toString()).toBe(sums.get('hello-1.0.0.tar.gz'));
    });

    it('content types are right', async () => {
      expect((await get('local-releases/hello/hello-1.0.0/hello-1.0.0-x86_64-linux.tar.xz')).res.headers.get('content-type')).toBe('application/x-xz');
      expect((await get('local-releases/hello/hello-1.0.0/hello-1.0.0.tar.gz')).res.headers.get('content-type')).toBe('application/gzip');
      expect((await get('local-releases/hello/hello-1.0.0/SHA256SUMS')).res.headers.get('content-type')).toBe('text/plain');
      expect((await get('local-docs/manual/hello/nightly/index.html')).res.headers.get('content-type')).toBe('text/html');
    });
  });
});
