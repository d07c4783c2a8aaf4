// Lix released as it is today (issue 17): the Lix-shaped fixture flake (test/fixtures/lix-flake)
// goes through prepare → tag → build → upload with examples/lix/releng.json (release-jobs mapping,
// buckets, regions, cache options, docker tags), its staging environment pointed at s3rver (behind
// a proxy that records each request's signing region), a docker-registry and a bare git remote.
// What is published is read back with real clients and compared with what Lix's scripts produce.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedCredentials } from '../../lib/local/s3-server.ts';
import { startLocalRegistry, type LocalRegistry } from '../../lib/local/registry-server.ts';
import { releng } from '../helpers/cli.ts';
import { lixProject, recordingProxy, type LixProject } from '../helpers/lix-project.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { requireTool } from '../helpers/tools.ts';

const V = '2.96.0';
const buckets = { releases: 'releases.staging.lix.systems', cache: 'cache.staging.lix.systems', docs: 'docs.staging.lix.systems' };
const fresh = ['--option', 'narinfo-cache-positive-ttl', '0', '--option', 'narinfo-cache-negative-ttl', '0'];
const nixFlags = ['--extra-experimental-features', 'nix-command flakes'];
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
// Lix's real cache has settings Nix's staged nix-cache-info does not carry (issue 17).
const lixCacheInfo = 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 50\n';

describe('Lix as it is today: the Lix-shaped flake released with examples/lix/releng.json (staging)', () => {
  let s3: TestS3;
  let proxy: Awaited<ReturnType<typeof recordingProxy>>;
  let registry: LocalRegistry;
  let p: LixProject;
  let run: Awaited<ReturnType<typeof releng>>;
  let regDir: string;
  const env = { AWS_ACCESS_KEY_ID: embeddedCredentials.accessKeyId, AWS_SECRET_ACCESS_KEY: embeddedCredentials.secretAccessKey };
  const get = async (bucket: string, key: string) => {
    // A kept-alive socket the server closed while a slow Nix call blocked this process fails the
    // next fetch ("fetch failed"); one bounded retry on a fresh connection, never on an HTTP answer.
    let res: Response | undefined;
    for (let attempt = 1; !res; attempt++) {
      try { res = await fetch(`${s3.endpoint}/${bucket}/${key}`); } catch (e) { if (attempt >= 3) throw e; }
    }
    expect(res.status, `${bucket}/${key}`).toBe(200);
    return { body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
  };
  const keys = async (bucket: string) => (await s3.store.list(bucket, '')).map((o) => o.key).sort();
  const nixEval = (attr: string) => execFileSync('nix', [...nixFlags, 'eval', '--raw', '--impure', `.#${attr}`], { cwd: p.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

  beforeAll(async () => {
    for (const [t, pkg] of [['nix-build', 'nix-bin'], ['git', 'git'], ['skopeo', 'skopeo'], ['docker-registry', 'docker-registry'], ['zstd', 'zstd']]) requireTool(t!, pkg!);
    s3 = await startTestS3(Object.values(buckets));
    proxy = await recordingProxy(s3.endpoint);
    regDir = await mkdtemp(path.join(os.tmpdir(), 'releng-lix-registry-'));
    registry = await startLocalRegistry({ dir: regDir });
    p = await lixProject('staging', { s3Endpoint: proxy.url, registryHost: registry.host });
    await s3.store.put({ bucket: buckets.cache, key: 'nix-cache-info', body: { text: lixCacheInfo }, size: lixCacheInfo.length, sha256: sha256(Buffer.from(lixCacheInfo)), contentType: 'text/x-nix-cache-info' });
    run = await releng(['release', '--environment', 'staging', '--noconfirm', '--date', '2026-11-27', '--json'], { cwd: p.dir, env });
  }, 600_000);
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
    await s3?.stop();
    await p?.cleanup();
    if (regDir) await rm(regDir, { recursive: true, force: true });
  });

  it('releases through prepare → tag → build → upload, verified, with the example\'s mapping', () => {
    expect(run.code, run.stderr).toBe(0);
    expect([...run.stderr.matchAll(/── (\w+) ──/g)].map((m) => m[1])).toEqual(['prepare', 'tag', 'build', 'upload']);
    // upload ends with releng verify over every destination (images and the pushed tag included)
    expect(run.stderr).toMatch(/verified release prefix: \d+ .*images: \d+ tags.*git: 1 refs/);
    expect(JSON.parse(run.stdout).result.tag).toMatchObject({ version: V, branch: 'main' });
  });

  it('publishes the names Lix\'s scripts publish: the aggregate\'s files as they are, the source tarball, manifests, the manual', async () => {
    const prefix = `lix/lix-${V}/`;
    const release = (await keys(buckets.releases)).filter((k) => !k.startsWith(`${prefix}manual/`));
    const tarballs = [
      ...['aarch64-darwin', 'aarch64-linux', 'x86_64-linux'].map((s) => `lix-${V}-${s}.tar.xz`),
      ...['aarch64-linux', 'x86_64-linux'].map((s) => `lix-${V}-docker-image-${s}.tar.gz`),
      `lix-${V}-manual.tar.gz`, `lix-${V}.tar.gz`,
    ];
    expect(release).toEqual(['manifest.nix', ...[...tarballs.flatMap((t) => [t, `${t}.sha256`]), 'SHA256SUMS', 'manifest.nix'].map((n) => prefix + n).sort()].sort());
    expect((await keys(buckets.releases)).filter((k) => k.startsWith(`${prefix}manual/`))).toEqual([`${prefix}manual/index.html`, `${prefix}manual/style.css`]);
    // Docs bucket: MAJOR/ and stable/, from build.x86_64-linux's doc output.
    expect(await keys(buckets.docs)).toEqual(['manual/lix/2.96/index.html', 'manual/lix/2.96/style.css', 'manual/lix/stable/index.html', 'manual/lix/stable/style.css']);
    const doc = nixEval('release-jobs.all.build.x86_64-linux.doc.outPath');
    expect((await get(buckets.docs, 'manual/lix/stable/index.html')).body).toEqual(await readFile(path.join(doc, 'share/doc/nix/manual/index.html')));
  });

  it('.sha256 bytes are Lix\'s: hex and a newline for the tarballs (sha256sum | cut), hex alone for the source tarball', async () => {
    for (const name of [`lix-${V}-x86_64-linux.tar.xz`, `lix-${V}-docker-image-aarch64-linux.tar.gz`, `lix-${V}-manual.tar.gz`]) {
      const file = (await get(buckets.releases, `lix/lix-${V}/${name}`)).body;
      expect((await get(buckets.releases, `lix/lix-${V}/${name}.sha256`)).body.toString(), name).toBe(`${sha256(file)}\n`);
    }
    const src = (await get(buckets.releases, `lix/lix-${V}/lix-${V}.tar.gz`)).body;
    expect((await get(buckets.releases, `lix/lix-${V}/lix-${V}.tar.gz.sha256`)).body.toString()).toBe(sha256(src));
  });

  it('manifest.nix maps each system to that system\'s build output (read by nix-instantiate), at the root and in the release', async () => {
    const expected = Object.fromEntries(['aarch64-darwin', 'aarch64-linux', 'x86_64-linux'].map((s) => [s, nixEval(`release-jobs.all.build.${s}.outPath`)]));
    for (const key of ['manifest.nix', `lix/lix-${V}/manifest.nix`]) {
      const f = path.join(p.base, 'manifest.nix');
      await writeFile(f, (await get(buckets.releases, key)).body);
      expect(JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', f], { encoding: 'utf8' }))).toEqual(expected);
    }
  });

  it('the cache: nix-cache-info kept (the difference reported), narinfos and listings zstd with Content-Encoding, read back by Nix over HTTP', async () => {
    expect((await get(buckets.cache, 'nix-cache-info')).body.toString()).toBe(lixCacheInfo);
    expect(run.stderr).toContain(`skip s3://${buckets.cache}/nix-cache-info: kept as it is (WantMassQuery: bucket 1, Nix (absent); Priority: bucket 50, Nix (absent)); Nix never rewrites an existing nix-cache-info; --replace-cache-info replaces it`);
    const out = nixEval('release-jobs.all.build.x86_64-linux.outPath');
    const doc = nixEval('release-jobs.all.build.x86_64-linux.doc.outPath');
    const narinfo = await get(buckets.cache, `${path.basename(out).slice(0, 32)}.narinfo`);
    expect(narinfo.headers.get('content-encoding')).toBe('zstd');
    expect(narinfo.headers.get('content-type')).toBe('text/x-nix-narinfo');
    expect(narinfo.body.readUInt32LE(0)).toBe(0xfd2fb528); // the zstd frame magic
    const narinfoText = execFileSync('zstd', ['-dc'], { input: narinfo.body, encoding: 'utf8' });
    expect(narinfoText).toContain(`StorePath: ${out}\n`);
    // compression=zstd, as Lix's cache URL: the NAR is nar/FILEHASH.nar.zst.
    expect(narinfoText).toMatch(/^URL: nar\/[0-9a-z]{52}\.nar\.zst$/m);
    expect(narinfoText).toContain('Compression: zstd\n');
    const ls = await get(buckets.cache, `${path.basename(out).slice(0, 32)}.ls`);
    expect(ls.headers.get('content-encoding')).toBe('zstd');
    expect(JSON.parse(execFileSync('zstd', ['-dc'], { input: ls.body, encoding: 'utf8' }))).toMatchObject({ version: 1, root: { type: 'directory' } });
    const store = await mkdtemp(path.join(os.tmpdir(), 'releng-lix-store-'));
    try {
      execFileSync('nix', [...nixFlags, 'copy', '--from', `${s3.endpoint}/${buckets.cache}`, '--to', store, '--option', 'trusted-public-keys', p.publicKey, ...fresh, out, doc], { stdio: ['ignore', 'pipe', 'pipe'] });
      // With another key, Nix refuses: the signature is checked, not only fetched.
      const other = execFileSync('sh', ['-c', 'nix --extra-experimental-features nix-command key generate-secret --key-name other-1 | nix --extra-experimental-features nix-command key convert-secret-to-public'], { encoding: 'utf8' }).trim();
      const refused = await execa('nix', [...nixFlags, 'copy', '--from', `${s3.endpoint}/${buckets.cache}`, '--to', `${store}-other`, '--option', 'trusted-public-keys', other, ...fresh, out], { reject: false });
      expect(refused.exitCode).not.toBe(0);
      expect(refused.stderr).toContain('lacks a valid signature');
    } finally {
      await rm(store, { recursive: true, force: true });
      await rm(`${store}-other`, { recursive: true, force: true });
    }
    // The aggregate is not in the cache (duplicate of the release bucket, as Lix's drvs.txt filter means).
    const aggregate = nixEval('release-jobs.all.tarballs.outPath');
    expect(await keys(buckets.cache)).not.toContain(`${path.basename(aggregate).slice(0, 32)}.narinfo`);
  });

  it('cache writes are signed with the cache region (global), the other buckets with the environment\'s (garage), as Lix', () => {
    const regions = (bucket: string) => new Set(proxy.seen.filter((r) => r.method === 'PUT' && r.path.startsWith(`/${bucket}/`)).map((r) => r.region));
    expect(regions(buckets.cache)).toEqual(new Set(['global']));
    expect(regions(buckets.releases)).toEqual(new Set(['garage']));
    expect(regions(buckets.docs)).toEqual(new Set(['garage']));
  });

  it('images: the index under VERSION, MAJOR and latest, with amd64 and arm64 (skopeo)', async () => {
    for (const tag of [V, '2.96', 'latest']) {
      const { stdout } = await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/lix-project/lix-releng-staging:${tag}`]);
      const index = JSON.parse(stdout);
      expect(index.manifests.map((m: any) => m.platform.architecture).sort(), tag).toEqual(['amd64', 'arm64']);
    }
  });

  it('git: the merge commit on main and the tag at the release commit (git ls-remote)', () => {
    const remote = execFileSync('git', ['ls-remote', p.remote], { encoding: 'utf8' });
    expect(remote).toContain(`${p.git('rev-parse', `${V}^{commit}`)}\trefs/tags/${V}^{}`);
    expect(remote).toContain(`${p.git('rev-parse', 'main')}\trefs/heads/main`);
  });

  it('--replace-cache-info is the one way to replace it (dry run shows the put)', async () => {
    const r = await releng(['upload', '--environment', 'staging', '--noconfirm', '--dry-run', '--replace-cache-info'], { cwd: p.dir, env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`\\[dry-run\\] s3 put s3://${buckets.cache.replace(/\./g, '\\.')}/nix-cache-info \\(text/x-nix-cache-info, .*changed\\)`));
  });

  it('an unknown --target is a usage error (exit 2) naming the targets, and changes nothing', async () => {
    const before = proxy.seen.length;
    for (const cmd of ['build', 'upload']) {
      // build takes no --environment (it publishes nothing); upload needs one
      const r = await releng([cmd, '--target', 'docs', ...(cmd === 'upload' ? ['--environment', 'staging', '--noconfirm'] : [])], { cwd: p.dir, env });
      expect(r.code, cmd).toBe(2);
      expect(r.stderr).toContain(`--target docs is not a${cmd === 'build' ? ' build' : 'n upload'} target`);
      expect(r.stderr).toContain('use --target all (default) or --target manual');
    }
    expect(proxy.seen.length).toBe(before);
  });

  it('nightly docs: build and upload --target manual on main (unofficial, no tag) publish only manual/lix/nightly/', async () => {
    p.git('checkout', '-q', 'main');
    const vj = path.join(p.dir, 'version.json');
    await writeFile(vj, JSON.stringify({ version: '2.97.0', official_release: false, release_name: 'TBD' }, null, 4) + '\n');
    p.git('commit', '-q', '-am', 'bump version to 2.97.0');
    // A full upload of an unofficial build is still refused: the relaxation is for --target manual only.
    const full = await releng(['upload', '--environment', 'staging', '--noconfirm'], { cwd: p.dir, env });
    expect(full.code).not.toBe(0);
    // From a checkout with no release/ at all (a nightly job's).
    await rm(path.join(p.dir, 'release'), { recursive: true, force: true });
    const built = await releng(['build', '--target', 'manual', '--json'], { cwd: p.dir, env });
    expect(built.code, built.stderr).toBe(0);
    expect(JSON.parse(built.stdout).result).toMatchObject({ target: 'manual', version: '2.97.0', official: false, job: 'build.x86_64-linux^doc' });
    const releasesBefore = await keys(buckets.releases);
    const before = proxy.seen.length;
    const up = await releng(['upload', '--target', 'manual', '--environment', 'staging', '--noconfirm', '--json'], { cwd: p.dir, env });
    expect(up.code, up.stderr).toBe(0);
    expect((await get(buckets.docs, 'manual/lix/nightly/index.html')).body.toString()).toMatch(/Lix 2\.97\.0-[0-9a-f]{7} reference manual/);
    expect((await get(buckets.docs, 'manual/lix/stable/index.html')).body.toString()).toContain(`Lix ${V} reference manual`);
    const writes = proxy.seen.slice(before).filter((r) => ['PUT', 'POST', 'DELETE'].includes(r.method));
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.every((w) => w.path.startsWith(`/${buckets.docs}/manual/lix/nightly/`))).toBe(true);
    expect(await keys(buckets.releases)).toEqual(releasesBefore);
  });
});
