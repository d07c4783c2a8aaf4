// The pure parts of grants and index: names and globs, config checks, what contribute refuses before
// sending, the session policy, APT text formats, the installers page (golden).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../lib/config/config.ts';
import { parseDuration, parseSize } from '../../lib/config/grants.ts';
import { readGrantFile, type GrantFile } from '../../lib/grants/grant-file.ts';
import { sessionPolicy } from '../../lib/grants/mint.ts';
import { allowedName, globHead, globMatches, incomingKeyRegex, regexToGlob, resolvePrefix } from '../../lib/grants/names.ts';
import { clearSignedText, fileVersion, parsePackages, poolPath, releaseSha256, renderPackages } from '../../lib/index/apt.ts';
import { renderInstallersPage } from '../../lib/index/page.ts';
import { planContribution } from '../../lib/phases/contribute.ts';
import { expectGolden } from '../helpers/golden.ts';

describe('names and globs', () => {
  it('turns anchored regexes into globs that cover them (what the server can enforce)', () => {
    const cases: [string, string][] = [
      ['^lix-installer-(x86_64|aarch64)-(linux|darwin)$', 'lix-installer-*-*'],
      ['^hello_[0-9][^_]*_(amd64|arm64|all)\\.deb$', 'hello_*_*.deb'],
      ['^SHA256SUMS$', 'SHA256SUMS'],
      ['^a|b$', '*'],
      ['^foo\\d+\\.tar\\.xz$', 'foo*.tar.xz'],
      ['^colou?r$', 'colo*r'],
      ['^x+y$', 'x*y'],
    ];
    for (const [re, glob] of cases) expect(regexToGlob(re), re).toBe(glob);
    // Every name the regex allows, the glob allows too.
    for (const name of ['lix-installer-x86_64-linux', 'lix-installer-aarch64-darwin']) expect(globMatches('lix-installer-*-*', name)).toBe(true);
    expect(globMatches('hello_*_*.deb', 'hello_1.0_amd64.deb')).toBe(true);
    expect(globMatches('hello_*_*.deb', 'evil.sh')).toBe(false);
    expect(globHead('hello_*_*.deb')).toBe('hello_');
    expect(allowedName(['^hello_[0-9][^_]*_(amd64|all)\\.deb$'], 'hello_1.0_all.deb')).toBe(true);
    expect(allowedName(['^hello_[0-9][^_]*_(amd64|all)\\.deb$'], 'hello_1.0_all.deb.rejected')).toBe(false);
  });

  it('fills prefixes and parses keys back', () => {
    expect(resolvePrefix('incoming/{name}/{version}/', 'installers', '2.91.0', 'f')).toBe('incoming/installers/2.91.0/');
    expect(() => resolvePrefix('incoming/{name}/{version}/', 'installers', undefined, 'uploaders.x.prefix')).toThrow(/uploaders.x.prefix .* contains \{version\}, and no version was given/);
    expect(() => resolvePrefix('incoming/{version}/', 'x', '../../etc', 'f')).toThrow(/cannot be part of a key/);
    const re = incomingKeyRegex('base/', 'incoming/{name}/{version}/', 'installers');
    expect(re.exec('base/incoming/installers/2.91.0/lix-installer-x86_64-linux')?.slice(1)).toEqual(['2.91.0', 'lix-installer-x86_64-linux']);
    expect(re.exec('base/incoming/installers/2.91.0/nested/x')).toBeNull();
    expect(incomingKeyRegex('', 'incoming/{name}/', 'deb').exec('incoming/deb/hello_1_all.deb')?.slice(1)).toEqual(['', 'hello_1_all.deb']);
  });

  it('parses durations and sizes', () => {
    expect(parseDuration('15m')).toBe(900);
    expect(parseDuration('2d')).toBe(172800);
    expect(() => parseDuration('1 hour')).toThrow(/not a duration/);
    expect(parseSize('64MiB')).toBe(64 * 1024 * 1024);
    expect(parseSize(512)).toBe(512);
  });

  it('a session policy allows only PutObject (and multipart bookkeeping) on the granted names', () => {
    const p = JSON.parse(sessionPolicy('releases', 'incoming/installers/2.91.0/', ['lix-installer-*-*']));
    expect(p.Statement).toEqual([{ Effect: 'Allow', Action: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], Resource: ['arn:aws:s3:::releases/incoming/installers/2.91.0/lix-installer-*-*'] }]);
  });
});

describe('config', () => {
  const base = (env: Record<string, unknown>) => ({
    project: 'lix', releaseJobs: { file: 'release.nix' }, profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'all',
    environments: { prod: { releasesBucket: 's3://releases', cacheBucket: 's3://cache', docsBucket: 's3://docs', s3: { endpoint: 'https://s3.example.invalid' }, ...env } },
  });
  const installers = { kind: 'installers', bucket: 's3://releases', prefix: 'incoming/{name}/{version}/', files: ['^lix-installer-.*$'], maxSize: '200MiB', publish: 'lix/lix-{version}/', latest: 'lix/' };
  const issues = (c: unknown) => { const r = configSchema.safeParse(c); return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`); };

  it('accepts uploaders with defaults', () => {
    const r = configSchema.parse(base({ uploaders: { installers }, grants: { method: 'presigned-post' } }));
    const u = r.environments.prod!.uploaders.installers!;
    expect(u.maxSize).toBe(200 * 1024 * 1024);
    expect(u.ttl).toBe('1h');
    expect(u.kind === 'installers' && u.sumsFile).toBe('SHA256SUMS');
  });

  it('refuses an upload area that overlaps the published one, an apt uploader without a repository, unanchored names', () => {
    expect(issues(base({ uploaders: { installers: { ...installers, prefix: 'lix/lix-{version}/' } } })))
      .toContain('environments.prod.uploaders.installers.prefix: the upload area "lix/lix-{version}/" overlaps the published area "lix/lix-{version}/": a grant could overwrite published files; use a separate prefix such as incoming/{name}/{version}/');
    expect(issues(base({ uploaders: { deb: { kind: 'apt', bucket: 's3://releases', prefix: 'incoming/{name}/', files: ['^x\\.deb$'], maxSize: 1 } } })))
      .toContain('environments.prod.uploaders.deb.kind: an "apt" uploader needs this environment\'s "apt" repository settings');
    expect(issues(base({ uploaders: { installers: { ...installers, files: ['lix-installer'] } } })).join('\n')).toMatch(/files.0: must be anchored/);
    expect(issues(base({ uploaders: { installers: { ...installers, prefix: 'incoming/../x/' } } })).join('\n')).toMatch(/prefix: must not contain/);
    expect(issues(base({ grants: { method: 'sts' } })).join('\n')).toMatch(/grants.roleArn/);
  });

  it('an APT repository: defaults, suites, and a grace period longer than a Release is valid (issue 30)', () => {
    const apt = { root: 's3://releases/apt', suite: 'stable', architectures: ['amd64'] };
    const deb = { kind: 'apt', bucket: 's3://releases', prefix: 'incoming/{name}/', files: ['^x\\.deb$'], maxSize: 1 };
    const r = configSchema.parse(base({ apt, uploaders: { deb } })).environments.prod!.apt!;
    expect(r).toMatchObject({ validFor: '7d', retention: {}, architectureAll: 'also-in-each', emptyIndexes: false, indexPage: 'index.html' });
    expect(issues(base({ apt: { ...apt, validFor: '1d', retention: { grace: '1d' } } })))
      .toContain('environments.prod.apt.retention.grace: 1d is not longer than apt.validFor 1d: a client holding the previous Release (valid that long) could miss files deleted sooner; make grace longer than validFor');
    expect(issues(base({ apt: { ...apt, suites: ['testing'] } }))).toContain('environments.prod.apt.suites: does not include apt.suite "stable": list every suite, the default one too');
    expect(issues(base({ apt: { ...apt, suites: ['testing', 'stable'] }, uploaders: { deb: { ...deb, suite: 'unstable' } } })))
      .toContain('environments.prod.uploaders.deb.suite: "unstable" is not one of the repository\'s suites (testing, stable): add it to apt.suites');
    expect(issues(base({ apt: { ...apt, retention: { keepVersions: 0 } } })).join('\n')).toMatch(/retention.keepVersions: keep at least 1 version/);
    expect(issues(base({ apt: { ...apt, validFor: 'forever' } })).join('\n')).toMatch(/apt.validFor: expected a duration/);
  });
});

describe('contribute refuses before sending anything', () => {
  let dir: string;
  const grant = (over: Partial<GrantFile> = {}): GrantFile => ({
    releng: 'grant', formatVersion: 1, id: 'abcdefgh12345678', uploader: 'installers', environment: 'prod', kind: 'installers', version: '2.91.0',
    createdAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 3600_000).toISOString(), endpoint: 'http://127.0.0.1:1', region: 'us-east-1', forcePathStyle: true,
    bucket: 'releases', prefix: 'incoming/installers/2.91.0/', files: ['^lix-installer-(x86_64|aarch64)-(linux|darwin)$'], globs: ['lix-installer-*-*'], maxSize: 10,
    access: { method: 'sts', credentials: { accessKeyId: 'A', secretAccessKey: 'S', sessionToken: 'T' } }, ...over,
  });
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-contribute-'));
    await writeFile(path.join(dir, 'lix-installer-x86_64-linux'), 'installer\n');
    await writeFile(path.join(dir, 'evil.sh'), 'x');
    await writeFile(path.join(dir, 'lix-installer-aarch64-darwin'), 'x'.repeat(11));
  });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  it('plans puts with sha256 and the grant id', async () => {
    const plan = await planContribution(grant(), [path.join(dir, 'lix-installer-x86_64-linux')]);
    expect(plan.steps[0]!.actions).toEqual([expect.objectContaining({ kind: 's3.put', bucket: 'releases', key: 'incoming/installers/2.91.0/lix-installer-x86_64-linux', size: 10, metadata: { 'releng-grant': 'abcdefgh12345678' } })]);
  });

  it('a damaged grant file is refused naming the file and the field', async () => {
    const file = path.join(dir, 'bad-grant.json');
    await writeFile(file, JSON.stringify({ ...grant(), prefix: 'no-slash' }));
    const err = await readGrantFile(file).catch((e: Error) => e);
    expect((err as Error).message).toContain(`${file} is invalid:\n  prefix:`);
    await writeFile(file, '{');
    await expect(readGrantFile(file)).rejects.toThrow(/is not valid JSON/);
  });

  it('an expired grant, another name, a too large file, a missing file', async () => {
    await expect(planContribution(grant({ expiresAt: new Date(Date.now() - 1).toISOString() }), [path.join(dir, 'lix-installer-x86_64-linux')])).rejects.toThrow(/grant abcdefgh12345678 \(uploader installers, environment prod\) expired at/);
    await expect(planContribution(grant(), [path.join(dir, 'evil.sh')])).rejects.toThrow('does not allow the name "evil.sh"');
    await expect(planContribution(grant(), [path.join(dir, 'lix-installer-aarch64-darwin')])).rejects.toThrow(/is 11 B, more than the grant allows \(10 B\)/);
    await expect(planContribution(grant(), [path.join(dir, 'lix-installer-aarch64-linux')])).rejects.toThrow(/no such file/);
  });
});

describe('APT formats', () => {
  const stanza = (pkg: string, ver: string, arch: string) => `Package: ${pkg}\nVersion: ${ver}\nArchitecture: ${arch}\nFilename: pool/main/${pkg[0]}/${pkg}/${pkg}_${ver}_${arch}.deb\nSize: 10\nSHA256: ${'a'.repeat(64)}\nDescription: x`;

  it('Packages: parse and render sorted, stable', () => {
    const text = [stanza('zed', '1', 'all'), stanza('hello', '1.1', 'amd64'), stanza('hello', '1.0', 'amd64')].join('\n\n') + '\n';
    const parsed = parsePackages(text);
    expect(parsed.map((s) => `${s.Package} ${s.Version}`)).toEqual(['zed 1', 'hello 1.1', 'hello 1.0']);
    const rendered = renderPackages(parsed);
    expect(parsePackages(rendered).map((s) => `${s.Package} ${s.Version}`)).toEqual(['hello 1.0', 'hello 1.1', 'zed 1']);
    expect(renderPackages(parsePackages(rendered))).toBe(rendered);
  });

  it('pool paths as Debian lays them out', () => {
    expect(poolPath('main', { Package: 'hello', Version: '1:2.0-1', Architecture: 'amd64' })).toBe('pool/main/h/hello/hello_2.0-1_amd64.deb');
    expect(poolPath('main', { Package: 'libfoo', Version: '1', Architecture: 'all' })).toBe('pool/main/libf/libfoo/libfoo_1_all.deb');
    expect(fileVersion('3:1.0')).toBe('1.0');
  });

  it('Release SHA256 section and the clear-signed text', () => {
    const release = `Origin: x\nSHA256:\n ${'b'.repeat(64)} 12 main/binary-amd64/Packages\n ${'c'.repeat(64)}    7 main/binary-amd64/Packages.gz\n`;
    expect([...releaseSha256(release)]).toEqual([['main/binary-amd64/Packages', { sha256: 'b'.repeat(64), size: 12 }], ['main/binary-amd64/Packages.gz', { sha256: 'c'.repeat(64), size: 7 }]]);
    const signed = `-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: x\n- -dashed\n-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n`;
    expect(clearSignedText(signed)).toBe('Origin: x\n-dashed\n');
  });
});

describe('installers page', () => {
  it('renders versions newest first with their files, checksums and the latest links (golden)', async () => {
    const html = renderInstallersPage('installers', [
      { version: '2.91.1', prefix: 'lix/lix-2.91.1/', sumsFile: 'SHA256SUMS', files: [{ name: 'lix-installer-aarch64-darwin', sha256: '1'.repeat(64) }, { name: 'lix-installer-x86_64-linux', sha256: '2'.repeat(64) }] },
      { version: '2.91.0', prefix: 'lix/lix-2.91.0/', sumsFile: 'SHA256SUMS', files: [{ name: 'lix-installer-x86_64-linux', sha256: '3'.repeat(64) }] },
    ], '..', 'lix/');
    await expectGolden(html, 'installers-page.html');
  });
});
