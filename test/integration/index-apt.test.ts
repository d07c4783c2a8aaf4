// grant → contribute → index into a real S3 (s3rver), read back with the clients users have:
// apt-get (update + install from the signed repository, with the key in signed-by), curl (the
// latest installer), gpgv; and refused: a Packages file altered after signing, another signing key.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File, sha256Text, parseSha256Sums } from '../../lib/hashing/checksums.ts';
import { signRelease, resolveSigner } from '../../lib/index/apt.ts';
import { aptRoot, exportKey, makeDeb, makeGpgHome } from '../helpers/apt.ts';
import { releng, relengInProcess } from '../helpers/cli.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { indexVerifier } from '../../lib/verify/published.ts';
import pLimit from 'p-limit';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';

const runIn = (args: string[], cwd = project, env: Record<string, string | undefined> = creds) => relengInProcess(args, { cwd, env });

const ARCH = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();

let s3: TestS3;
let base: string;
let project: string;
let elsewhere: string;
let keyA: string;
let keyB: string;
// s3rver checks only the key id: the secret stands for the maintainer's, which no grant may carry.
const MAINTAINER_SECRET = 'maintainer-secret-never-in-a-grant';
const creds = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: MAINTAINER_SECRET, NODE_OPTIONS: '--openssl-legacy-provider' };
const noCreds = { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined };

function config(endpoint: string) {
  return {
    project: 'hello', versionFile: 'version.json', releaseJobs: { file: 'release.nix' },
    profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'all',
    environments: {
      test: {
        releasesBucket: 's3://repo', cacheBucket: 's3://repo', docsBucket: 's3://repo',
        s3: { endpoint, region: 'us-east-1' },
        credentials: { source: 'env' },
        grants: { method: 'presigned-post' },
        uploaders: {
          installers: {
            kind: 'installers', bucket: 's3://repo', prefix: 'incoming/{name}/{version}/',
            files: ['^hello-installer-(x86_64|aarch64)-(linux|darwin)$'], maxSize: '1MiB', ttl: '1h',
            publish: 'hello/hello-{version}/', latest: 'hello/', indexPage: 'hello/installers.html',
          },
          deb: { kind: 'apt', bucket: 's3://repo', prefix: 'incoming/{name}/', files: ['^hello_[0-9][^_]*_(amd64|arm64|all)\\.deb$'], maxSize: '1MiB', component: 'main' },
        },
        apt: { root: 's3://repo/apt', suite: 'stable', components: ['main'], architectures: ['amd64', 'arm64'], origin: 'hello', label: 'hello', signingKey: { gnupgHome: 'gnupg' } },
      },
    },
  };
}

/** In-process (fast); the first test also runs the real CLI (bin/releng) for grant and contribute. */
async function run(args: string[], cwd = project, env: Record<string, string | undefined> = creds) {
  return relengInProcess(args, { cwd, env });
}

async function grantAndContribute(uploader: string, version: string | undefined, files: string[], cli = false) {
  const out = path.join(base, `grant-${uploader}-${version ?? 'x'}-${Math.random().toString(36).slice(2)}.json`);
  const run = cli ? (args: string[], cwd = project, env: Record<string, string | undefined> = creds) => releng(args, { cwd, env }) : runIn;
  const g = await run(['grant', uploader, '--environment', 'test', ...(version ? ['--version', version] : []), '--output', out, '--json']);
  expect(g.code, g.stderr).toBe(0);
  // The uploader's machine: no releng.json, no S3 credentials of the environment.
  const c = await run(['contribute', '--grant', out, ...files, '--json'], elsewhere, { ...noCreds });
  expect(c.code, c.stderr).toBe(0);
  return { grant: JSON.parse(g.stdout).result, contribution: JSON.parse(c.stdout).result, file: out };
}

beforeAll(async () => {
  s3 = await startTestS3(['repo']);
  base = await mkdtemp(path.join(os.tmpdir(), 'releng-index-apt-'));
  project = path.join(base, 'project');
  elsewhere = path.join(base, 'builder');
  await mkdir(project, { recursive: true });
  await mkdir(elsewhere, { recursive: true });
  await writeFile(path.join(project, 'releng.json'), JSON.stringify(config(s3.endpoint), null, 2));
  keyA = makeGpgHome(path.join(project, 'gnupg'), 'hello repository <repo@example.invalid>');
  keyB = makeGpgHome(path.join(base, 'gnupg-other'), 'someone else <other@example.invalid>');
});

afterAll(async () => {
  await s3?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('grant, contribute, index: an APT repository', () => {
  it('publishes contributed .debs as a signed repository that apt-get installs from', async () => {
    const deb = makeDeb(elsewhere, { pkg: 'hello', version: '1.0.0', arch: ARCH });
    // As the quick start runs it: --version after the command is grant's, never releng's own -V (issue 23).
    const { grant, contribution, file } = await grantAndContribute('deb', '1.0.0', [deb], true);
    expect(grant.method).toBe('presigned-post');
    // The grant file holds no maintainer key.
    expect(await readFile(file, 'utf8')).not.toContain(MAINTAINER_SECRET);
    const key = `incoming/deb/hello_1.0.0_${ARCH}.deb`;
    expect(contribution.files).toEqual([{ key, size: expect.any(Number), sha256: await sha256File(deb) }]);
    const head = await s3.store.head('repo', key);
    expect(head?.metadata['releng-grant']).toBe(grant.id);
    expect(head?.sha256).toBe(await sha256File(deb));

    await s3.resetLog();
    const dry = await run(['index', '--environment', 'test', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(await s3.writes()).toBe(0);
    expect(dry.stderr).toContain(`[dry-run] s3 copy s3://repo/${key} -> s3://repo/apt/pool/main/h/hello/hello_1.0.0_${ARCH}.deb`);
    expect(dry.stderr).toMatch(/\[dry-run\] s3 put s3:\/\/repo\/apt\/dists\/stable\/InRelease/);

    const idx = await run(['index', '--environment', 'test', '--json']);
    expect(idx.code, idx.stderr).toBe(0);
    const result = JSON.parse(idx.stdout).result;
    expect(result.accepted.map((d: any) => d.target)).toEqual([`apt/pool/main/h/hello/hello_1.0.0_${ARCH}.deb`]);
    expect(result.problems).toEqual([]);
    // Order: pool before by-hash before indexes before the signed Release files.
    const puts = (await s3.requests()).filter((l) => /^(PUT|DELETE) /.test(l)).map((l) => l.split(' ')[1]!.split('?')[0]!);
    const at = (re: RegExp) => puts.findIndex((p) => re.test(p));
    expect(at(/\/pool\//)).toBeLessThan(at(/by-hash/));
    expect(at(/by-hash/)).toBeLessThan(at(/binary-[a-z0-9]+\/Packages/));
    expect(at(/binary-[a-z0-9]+\/Packages/)).toBeLessThan(at(/\/Release$/));
    expect(at(/\/Release$/)).toBeLessThan(at(/\/InRelease$/));
    // Moved: the upload is gone from incoming; the pool copy keeps the grant id.
    expect(await s3.store.head('repo', key)).toBeUndefined();
    expect((await s3.store.head('repo', `apt/pool/main/h/hello/hello_1.0.0_${ARCH}.deb`))?.metadata['releng-grant']).toBe(grant.id);

    const apt = aptRoot(path.join(base, 'apt1'), `deb [signed-by=${exportKey(path.join(project, 'gnupg'), path.join(base, 'keyA.gpg'))}] ${s3.endpoint}/repo/apt stable main`, ARCH);
    const up = apt.aptGet(['update']);
    expect(up.code, up.out).toBe(0);
    expect(up.out).not.toMatch(/^[WE]:/m);
    const inst = apt.aptGet(['install', 'hello']);
    expect(inst.code, inst.out).toBe(0);
    expect(execFileSync(path.join(apt.installRoot, 'usr/bin/hello'), { encoding: 'utf8' })).toBe('hello 1.0.0\n');
  });

  it('re-runs are idempotent: nothing new, no writes, no downloads', async () => {
    await s3.resetLog();
    const again = await run(['index', '--environment', 'test', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(await s3.writes()).toBe(0);
    expect(again.stderr).toContain('no new packages');
  });

  it('rejects an upload whose control fields do not match its name, leaves it with a reason, and does not read it twice', async () => {
    const liar = makeDeb(elsewhere, { pkg: 'hello', version: '9.9.9', arch: ARCH, fileName: `hello_1.1.0_${ARCH}.deb` });
    await grantAndContribute('deb', undefined, [liar]);
    const key = `incoming/deb/hello_1.1.0_${ARCH}.deb`;
    const idx = await run(['index', '--environment', 'test', '--json']);
    expect(idx.code, idx.stderr).toBe(0);
    const result = JSON.parse(idx.stdout).result;
    expect(result.rejected).toHaveLength(1);
    expect(result.rejected[0].reason).toContain(`control fields say hello_9.9.9_${ARCH}.deb`);
    expect(await s3.store.head('repo', key)).toBeDefined();
    expect(await s3.store.getText('repo', `${key}.rejected`)).toContain('Version 9.9.9');
    await s3.resetLog();
    const again = await run(['index', '--environment', 'test']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('processed already (rejected');
    expect((await s3.requests()).filter((l) => l.startsWith(`GET /repo/${key}`))).toEqual([]);
    expect(await s3.writes()).toBe(0);
  });

  it('a second package version: new indexes, the previous generation\'s by-hash files stay readable', async () => {
    const oldRelease = (await s3.store.getText('repo', 'apt/dists/stable/Release'))!;
    const oldHashes = [...oldRelease.matchAll(/^ ([0-9a-f]{64}) +\d+ (main\/binary-[a-z0-9]+\/Packages\S*)$/gm)];
    await grantAndContribute('deb', undefined, [makeDeb(elsewhere, { pkg: 'hello', version: '1.1.0', arch: 'all', fileName: 'hello_1.1.0_all.deb' })]);
    const idx = await run(['index', '--environment', 'test']);
    expect(idx.code, idx.stderr).toBe(0);
    const release = (await s3.store.getText('repo', 'apt/dists/stable/Release'))!;
    expect(release).not.toBe(oldRelease);
    expect(release).toMatch(/^Acquire-By-Hash: yes$/m);
    for (const [, sha, rel] of oldHashes.filter((m) => m[1] !== undefined)) {
      const byHash = `apt/dists/stable/${path.posix.dirname(rel!)}/by-hash/SHA256/${sha}`;
      expect(await s3.store.head('repo', byHash), byHash).toBeDefined();
    }
    const packages = (await s3.store.getText('repo', 'apt/dists/stable/main/binary-arm64/Packages'))!;
    expect(packages).toContain('Version: 1.1.0');
    expect(packages).not.toContain('Version: 1.0.0'); // that one is only for this machine's architecture
    const apt = aptRoot(path.join(base, 'apt2'), `deb [signed-by=${path.join(base, 'keyA.gpg')}] ${s3.endpoint}/repo/apt stable main`, ARCH);
    expect(apt.aptGet(['update']).code).toBe(0);
    const inst = apt.aptGet(['install', 'hello']);
    expect(inst.code, inst.out).toBe(0);
    expect(execFileSync(path.join(apt.installRoot, 'usr/bin/hello'), { encoding: 'utf8' })).toBe('hello 1.1.0\n');
  });

  it('apt refuses the repository when a Packages file is altered after signing; verify says which', async () => {
    const dir = `apt/dists/stable/main/binary-${ARCH}/`;
    const original = (await s3.store.getText('repo', `${dir}Packages`))!;
    const altered = original.replace(/^Description: .*$/m, 'Description: something else entirely');
    const release = (await s3.store.getText('repo', 'apt/dists/stable/Release'))!;
    // The attacker replaces the index and every name apt could fetch it by (by-hash included).
    const put = (key: string, text: string) => s3.store.put({ bucket: 'repo', key, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/plain' });
    const xzAltered = execFileSync('xz', ['-c'], { input: altered });
    const gzAltered = execFileSync('gzip', ['-c', '-n'], { input: altered });
    const files: Record<string, Buffer> = { Packages: Buffer.from(altered), 'Packages.xz': xzAltered, 'Packages.gz': gzAltered };
    for (const [name, body] of Object.entries(files)) {
      const sha = new RegExp(`^ ([0-9a-f]{64}) +\\d+ main/binary-${ARCH}/${name.replace('.', '\\.')}$`, 'm').exec(release)![1]!;
      const tmp = path.join(base, `altered-${name}`);
      await writeFile(tmp, body);
      for (const key of [`${dir}${name}`, `${dir}by-hash/SHA256/${sha}`]) {
        await s3.store.put({ bucket: 'repo', key, body: { file: tmp }, size: body.length, sha256: sha256Text(body), contentType: 'application/octet-stream' });
      }
    }
    void put;
    const apt = aptRoot(path.join(base, 'apt3'), `deb [signed-by=${path.join(base, 'keyA.gpg')}] ${s3.endpoint}/repo/apt stable main`, ARCH);
    const up = apt.aptGet(['update']);
    expect(up.code, up.out).not.toBe(0);
    expect(up.out).toMatch(/Hash Sum mismatch|File has unexpected size/);
    const v = await run(['index', '--environment', 'test', '--verify-only']);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain(`s3://repo/${dir}Packages: Release says`);
    // `releng verify`'s index destination is the same verifier: it names the key, with index as the repair.
    const env = (await loadConfig(path.join(project, 'releng.json'))).config.environments.test!;
    const ref = { bucket: 'repo', prefix: '', url: 's3://repo' };
    const scope = { deep: false, limit: pLimit(4), tmpDir: base, repair: '', progress: { tick() {}, addTotal() {}, item() {}, stop() {} } };
    const target = { name: 'test', s3: s3.store, releases: ref, cache: ref, docs: ref, registries: [], root: project, environment: env };
    const found = await indexVerifier.verify(target, {} as never, scope);
    expect(found.problems.map((p) => p.where)).toContain(`s3://repo/${dir}Packages`);
    expect(found.problems[0]).toMatchObject({ destination: 'index', repair: expect.stringContaining('releng index --environment test') });
    // index repairs it: the indexes are regenerated from the published ones... which are altered, so
    // restore the original text first, as an operator would from the pool (the db is only a memo).
    await put(`${dir}Packages`, original);
  });

  it('apt refuses the repository when Release is signed with another key', async () => {
    const fresh = await run(['index', '--environment', 'test']); // regenerates what was altered
    expect(fresh.code, fresh.stderr).toBe(0);
    expect((await run(['index', '--environment', 'test', '--verify-only'])).code).toBe(0);
    const release = (await s3.store.getText('repo', 'apt/dists/stable/Release'))!;
    const other = await resolveSigner({ gnupgHome: path.join(base, 'gnupg-other') }, 'test');
    expect(other.fingerprint).toBe(keyB);
    const signed = await signRelease(release, other);
    for (const [name, text] of [['InRelease', signed.inRelease], ['Release.gpg', signed.releaseGpg]] as const) {
      await s3.store.put({ bucket: 'repo', key: `apt/dists/stable/${name}`, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/plain' });
    }
    const apt = aptRoot(path.join(base, 'apt4'), `deb [signed-by=${path.join(base, 'keyA.gpg')}] ${s3.endpoint}/repo/apt stable main`, ARCH);
    const up = apt.aptGet(['update']);
    expect(up.code, up.out).not.toBe(0);
    expect(up.out).toMatch(/NO_PUBKEY|not signed|signatures couldn't be verified/);
    const v = await run(['index', '--environment', 'test', '--verify-only']);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain('signature not valid for the repository key');
    expect(keyA).not.toBe(keyB);
  });
});

describe('grant, contribute, index: installers', () => {
  const installer = async (name: string, body: string) => { const f = path.join(elsewhere, name); await writeFile(f, body); return f; };

  it('publishes per-version SHA256SUMS, latest copies of the newest release only, and a page; curl gets the newest', async () => {
    const dir10 = path.join(elsewhere, 'v1.0.0');
    const dir11 = path.join(elsewhere, 'v1.1.0');
    const dir101 = path.join(elsewhere, 'v1.0.1');
    for (const d of [dir10, dir11, dir101]) await mkdir(d, { recursive: true });
    await grantAndContribute('installers', '1.0.0', [await installer('v1.0.0/hello-installer-x86_64-linux', 'installer 1.0.0 x86_64\n'), await installer('v1.0.0/hello-installer-aarch64-darwin', 'installer 1.0.0 darwin\n')]);
    expect((await run(['index', '--environment', 'test'])).code).toBe(0);
    await grantAndContribute('installers', '1.1.0', [await installer('v1.1.0/hello-installer-x86_64-linux', 'installer 1.1.0 x86_64\n')]);
    expect((await run(['index', '--environment', 'test'])).code).toBe(0);
    // A maintenance release after 1.1.0: published in its prefix, never the latest.
    await grantAndContribute('installers', '1.0.1', [await installer('v1.0.1/hello-installer-x86_64-linux', 'installer 1.0.1 x86_64\n')]);
    const idx = await run(['index', '--environment', 'test']);
    expect(idx.code, idx.stderr).toBe(0);
    expect(idx.stderr).toContain('1.1.0 is newer: the top-level copies never move back');

    const latest = execFileSync('curl', ['-fsS', `${s3.endpoint}/repo/hello/hello-installer-x86_64-linux`], { encoding: 'utf8' });
    expect(latest).toBe('installer 1.1.0 x86_64\n');
    const sums = parseSha256Sums(execFileSync('curl', ['-fsS', `${s3.endpoint}/repo/hello/hello-1.1.0/SHA256SUMS`], { encoding: 'utf8' }));
    expect(sums.get('hello-installer-x86_64-linux')).toBe(sha256Text(latest));
    expect(parseSha256Sums((await s3.store.getText('repo', 'hello/hello-1.0.0/SHA256SUMS'))!).size).toBe(2);
    // 1.1.0 has no darwin installer: the darwin copy made when 1.0.0 was the newest stays (never deleted, never moved back).
    expect(await s3.store.getText('repo', 'hello/hello-installer-aarch64-darwin')).toBe('installer 1.0.0 darwin\n');
    const page = execFileSync('curl', ['-fsS', `${s3.endpoint}/repo/hello/installers.html`], { encoding: 'utf8' });
    expect(page.indexOf('<h2 id="1.1.0">')).toBeLessThan(page.indexOf('<h2 id="1.0.1">'));
    expect(page).toContain(`<code>${sha256Text('installer 1.0.1 x86_64\n')}</code>`);
  });

  it('rejects an upload that would replace a published installer', async () => {
    await grantAndContribute('installers', '1.1.0', [await installer('hello-installer-x86_64-linux', 'a different build\n')]);
    const idx = await run(['index', '--environment', 'test', '--json']);
    expect(idx.code, idx.stderr).toBe(0);
    const r = JSON.parse(idx.stdout).result;
    expect(r.rejected[0].reason).toContain('would replace the published s3://repo/hello/hello-1.1.0/hello-installer-x86_64-linux');
    expect(execFileSync('curl', ['-fsS', `${s3.endpoint}/repo/hello/hello-installer-x86_64-linux`], { encoding: 'utf8' })).toBe('installer 1.1.0 x86_64\n');
  });

  it('contribute refuses, before sending anything, a name the grant does not allow and an expired grant', async () => {
    const { file } = await grantAndContribute('installers', '1.2.0', [await installer('hello-installer-x86_64-linux', 'installer 1.2.0\n')]);
    await s3.resetLog();
    const bad = await run(['contribute', '--grant', file, await installer('evil.sh', 'x')], elsewhere, noCreds);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('does not allow the name "evil.sh"');
    const g = JSON.parse(await readFile(file, 'utf8'));
    g.expiresAt = new Date(Date.now() - 1000).toISOString();
    await writeFile(file, JSON.stringify(g));
    const expired = await run(['contribute', '--grant', file, path.join(elsewhere, 'hello-installer-x86_64-linux')], elsewhere, noCreds);
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(/grant \S+ \(uploader installers, environment test\) expired at/);
    expect(expired.stderr).toContain('releng grant installers --environment test --version 1.2.0');
    expect(await s3.writes()).toBe(0);
    expect(existsSync(file)).toBe(true);
  });
});
