// The APT repository over time (issue 30), read with the clients a Debian admin has: apt-get and
// apt-file in an isolated configuration, gpgv, curl. Two suites (testing → stable), Valid-Until of a
// few seconds so expiry is real, a grace period of some more; every command runs through the CLI.
// Proves: per-architecture Release, binary-all and Contents as apt and apt-file read them, the
// page's deb822 snippet with the armored key; an expired Release refused and a refreshed one
// accepted; --copy installable from stable with the same bytes and no upload; --remove gone from the
// index at once, from the pool only after the grace period, while a client holding the previous
// index still downloads; keepVersions.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File, sha256Text } from '../../lib/hashing/checksums.ts';
import { aptRoot, makeDeb, makeGpgHome } from '../helpers/apt.ts';
import { releng, relengInProcess } from '../helpers/cli.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';

const ARCH = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
const OTHER = ARCH === 'amd64' ? 'arm64' : 'amd64';
const VALID_FOR = 20; // seconds: apt.validFor
const GRACE = 45; // seconds: apt.retention.grace (longer than validFor, as the config requires)

let s3: TestS3;
let base: string;
let project: string;
let builder: string;
const creds = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'maintainer-secret', NODE_OPTIONS: '--openssl-legacy-provider' };
const noCreds = { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined };
const run = (args: string[], cwd = project, env: Record<string, string | undefined> = creds) => relengInProcess(args, { cwd, env });
const repoUrl = () => `${s3.endpoint}/repo/apt`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function config(endpoint: string) {
  return {
    project: 'hello', versionFile: 'version.json', releaseJobs: { file: 'release.nix' },
    profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'all',
    environments: {
      test: {
        releasesBucket: 's3://repo', cacheBucket: 's3://repo', docsBucket: 's3://repo',
        s3: { endpoint, region: 'us-east-1' }, credentials: { source: 'env' },
        grants: { method: 'presigned-post' },
        uploaders: {
          deb: { kind: 'apt', bucket: 's3://repo', prefix: 'incoming/{name}/', files: ['^hello(-doc|-tool)?_[0-9][^_]*_(amd64|arm64|all)\\.deb$'], maxSize: '1MiB', component: 'main', suite: 'testing' },
        },
        apt: {
          root: 's3://repo/apt', suite: 'stable', suites: ['testing', 'stable'], components: ['main'], architectures: [ARCH, OTHER],
          origin: 'Hello', label: 'Hello', signingKey: { gnupgHome: 'gnupg' },
          validFor: `${VALID_FOR}s`, retention: { keepVersions: 2, grace: `${GRACE}s` },
        },
      },
    },
  };
}

async function contribute(files: string[]) {
  const out = path.join(base, `grant-${Math.random().toString(36).slice(2)}.json`);
  const g = await run(['grant', 'deb', '--environment', 'test', '--output', out]);
  expect(g.code, g.stderr).toBe(0);
  const c = await run(['contribute', '--grant', out, ...files], builder, noCreds);
  expect(c.code, c.stderr).toBe(0);
}

const text = (key: string) => s3.store.getText('repo', key);
const keyOf = (url: string) => url.replace(/^\S+ \/repo\//, '').replace(/\?.*$/, '');
/** Keys written (PUT, DELETE) since the log was reset. */
async function writtenKeys(): Promise<string[]> {
  return (await s3.requests()).filter((l) => /^(PUT|POST|DELETE) /.test(l)).map((l) => `${l.split(' ')[0]} ${keyOf(l)}`);
}

const poolHello = `apt/pool/main/h/hello/hello_1.0.0_${ARCH}.deb`;
const ledgerKey = (key: string) => key.replace(/^apt\//, ''); // the ledger's keys are relative to the repository root
let keyFile: string;

beforeAll(async () => {
  s3 = await startTestS3(['repo']);
  base = await mkdtemp(path.join(os.tmpdir(), 'releng-apt-lifecycle-'));
  project = path.join(base, 'project');
  builder = path.join(base, 'builder');
  await mkdir(project, { recursive: true });
  await mkdir(builder, { recursive: true });
  await writeFile(path.join(project, 'releng.json'), JSON.stringify(config(s3.endpoint), null, 2));
  makeGpgHome(path.join(project, 'gnupg'), 'Hello archive <repo@example.invalid>');
});

afterAll(async () => {
  await s3?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('an APT repository as a Debian admin expects it', () => {
  it('per-architecture Release, binary-all, Contents: apt-get uses by-hash, apt-file finds the files; the page\'s .sources works with the armored key', async () => {
    await contribute([
      makeDeb(builder, { pkg: 'hello', version: '1.0.0', arch: ARCH, files: { 'usr/share/hello/greeting.txt': 'hi\n' } }),
      makeDeb(builder, { pkg: 'hello-doc', version: '1.0.0', arch: 'all', files: { 'usr/share/doc/hello-doc/manual.txt': 'read me\n' } }),
    ]);
    // The shipped program, once.
    const idx = await releng(['index', '--environment', 'test', '--json'], { cwd: project, env: creds });
    expect(idx.code, idx.stderr).toBe(0);
    const result = JSON.parse(idx.stdout).result;
    expect(result.aptChanges.map((c: any) => `${c.suite} ${c.package} ${c.change}`).sort()).toEqual(['testing hello added', 'testing hello-doc added']);
    // Nothing new: nothing written (the Release has more than half its validity left).
    await s3.resetLog();
    const again = await run(['index', '--environment', 'test']);
    expect(again.code, again.stderr).toBe(0);
    expect(await writtenKeys()).toEqual([]);

    const release = (await text('apt/dists/testing/Release'))!;
    expect(release).toMatch(/^Valid-Until: /m);
    expect(release).toMatch(/^No-Support-for-Architecture-all: Packages$/m);
    expect(release).toContain(`Architectures: ${ARCH} ${OTHER} all`);
    expect(release).not.toMatch(/^SHA512:/m);
    for (const f of [`main/binary-${ARCH}/Release`, 'main/binary-all/Release', 'main/binary-all/Packages', `main/Contents-${ARCH}.gz`, 'main/Contents-all.gz']) expect(release).toContain(` ${f}\n`);
    // The architecture without packages of its own has the arch:all ones (and no Contents of its own).
    expect(await text(`apt/dists/testing/main/binary-${OTHER}/Packages`)).toBe(await text('apt/dists/testing/main/binary-all/Packages'));
    expect(release).not.toContain(`Contents-${OTHER}`);
    expect(await text(`apt/dists/testing/main/binary-${ARCH}/Release`)).toBe(`Archive: testing\nOrigin: Hello\nLabel: Hello\nAcquire-By-Hash: yes\nComponent: main\nArchitecture: ${ARCH}\n`);
    // arch:all in binary-all and, with No-Support-for-Architecture-all, in each architecture's Packages too.
    expect(await text('apt/dists/testing/main/binary-all/Packages')).toMatch(/^Package: hello-doc$/m);
    expect(await text('apt/dists/testing/main/binary-all/Packages')).not.toMatch(/^Package: hello$/m);
    expect(await text(`apt/dists/testing/main/binary-${ARCH}/Packages`)).toMatch(/^Package: hello-doc$/m);
    // stable has nothing yet: a Release with no index at all (apt accepts it).
    expect(await text('apt/dists/stable/Release')).toMatch(/^Suite: stable$/m);

    // The page, its deb822 snippet, and the key in both forms.
    const page = execFileSync('curl', ['-fsS', `${repoUrl()}/index.html`], { encoding: 'utf8' });
    const snippet = /<pre id="sources-testing">([\s\S]*?)<\/pre>/.exec(page)![1]!.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'");
    expect(snippet).toBe(`Types: deb\nURIs: ${repoUrl()}\nSuites: testing\nComponents: main\nSigned-By: /usr/share/keyrings/hello-archive-keyring.gpg\n`);
    keyFile = path.join(base, 'hello-archive-keyring.asc');
    execFileSync('curl', ['-fsS', '-o', keyFile, `${repoUrl()}/hello-archive-keyring.asc`]);
    expect(await readFile(keyFile, 'utf8')).toContain('-----BEGIN PGP PUBLIC KEY BLOCK-----');
    execFileSync('curl', ['-fsS', '-o', path.join(base, 'hello-archive-keyring.gpg'), `${repoUrl()}/hello-archive-keyring.gpg`]);
    // The key where the snippet says it goes is the one downloaded: apt reads an armored .asc as it is.
    const apt = aptRoot(path.join(base, 'apt-page'), '', ARCH, { contents: true, sourcesFile: snippet.replace('/usr/share/keyrings/hello-archive-keyring.gpg', keyFile) });
    await s3.resetLog();
    const up = apt.aptGet(['update']);
    expect(up.code, up.out).toBe(0);
    expect(up.out).not.toMatch(/^[WE]:/m);
    // apt asks for each index by its hash first (Acquire-By-Hash with SHA256, the strongest hash the Release lists).
    const gets = (await s3.requests()).filter((l) => l.startsWith('GET '));
    expect(gets.some((l) => l.includes(`/binary-${ARCH}/by-hash/SHA256/`)), gets.join('\n')).toBe(true);
    expect(gets.some((l) => /\/main\/by-hash\/SHA256\//.test(l)), gets.join('\n')).toBe(true);
    const found = apt.aptFile(['search', 'usr/share/hello/greeting.txt']);
    expect(found.code, found.out).toBe(0);
    expect(found.out).toContain('hello: /usr/share/hello/greeting.txt');
    const doc = apt.aptFile(['search', 'hello-doc/manual.txt']);
    expect(doc.out).toContain('hello-doc: /usr/share/doc/hello-doc/manual.txt');
    expect(apt.aptFile(['list', 'hello-doc']).out).not.toContain('greeting');
    const inst = apt.aptGet(['install', 'hello', 'hello-doc']);
    expect(inst.code, inst.out).toBe(0);
    expect(execFileSync(path.join(apt.installRoot, 'usr/bin/hello'), { encoding: 'utf8' })).toBe('hello 1.0.0\n');

  });

  it('--copy makes a package installable from stable with the same bytes, and uploads nothing', async () => {
    await s3.resetLog();
    const dry = await run(['index', '--environment', 'test', '--copy', 'hello', '--from', 'testing', '--to', 'stable', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(await s3.writes()).toBe(0);
    expect(dry.stderr).toContain(`stable/main: hello 1.0.0 (${ARCH}) copied: --copy from testing`);
    expect(dry.stderr).toMatch(/\[dry-run\] s3 put s3:\/\/repo\/apt\/dists\/stable\/InRelease/);
    expect(dry.stderr).not.toMatch(/\[dry-run\] s3 (put|copy) s3:\/\/repo\/apt\/pool\//);

    const cp = await run(['index', '--environment', 'test', '--copy', 'hello', '--from', 'testing', '--to', 'stable', '--json']);
    expect(cp.code, cp.stderr).toBe(0);
    const keys = await writtenKeys();
    expect(keys.filter((k) => k.includes('/pool/'))).toEqual([]);
    expect(keys).toContain('PUT apt/dists/stable/InRelease');
    // testing's indexes stay as they are (its Release may be re-signed, when half its validity is gone).
    expect(keys.filter((k) => k.includes('dists/testing/') && !/\/(In)?Release(\.gpg)?$/.test(k))).toEqual([]);

    // No empty index for the architecture without packages: apt skips an architecture the Release names without files.
    const stable = (await text('apt/dists/stable/Release'))!;
    expect(stable).toContain(`Architectures: ${ARCH} ${OTHER} all`);
    expect(stable).not.toContain(`binary-${OTHER}`);
    const apt = aptRoot(path.join(base, 'apt-stable'), `deb [signed-by=${keyFile}] ${repoUrl()} stable main`, ARCH);
    expect(apt.aptGet(['update']).code).toBe(0);
    const inst = apt.aptGet(['install', 'hello']);
    expect(inst.code, inst.out).toBe(0);
    // The very bytes testing serves: apt's downloaded .deb is the pool file testing's index names.
    const cached = (await readdir(path.join(apt.dir, 'var/cache/apt/archives'))).filter((f) => f.endsWith('.deb'));
    expect(cached).toEqual([`hello_1.0.0_${ARCH}.deb`]);
    const testingSha = /^SHA256: (\S+)$/m.exec((await text(`apt/dists/testing/main/binary-${ARCH}/Packages`))!.split('\n\n').find((s) => s.startsWith('Package: hello\n'))!)![1];
    expect(await sha256File(path.join(apt.dir, 'var/cache/apt/archives', cached[0]!))).toBe(testingSha);
    expect(apt.aptGet(['install', 'hello-doc']).code).not.toBe(0); // only hello was copied
  });

  it('--copy refuses a pool file whose bytes are not what the index says, and changes nothing', async () => {
    const docPool = 'apt/pool/main/h/hello-doc/hello-doc_1.0.0_all.deb';
    const original = path.join(base, 'hello-doc-original.deb');
    execFileSync('curl', ['-fsS', '-o', original, `${s3.endpoint}/repo/${docPool}`]);
    const bad = Buffer.from('not the package');
    const tmp = path.join(base, 'bad.deb');
    await writeFile(tmp, bad);
    // As a careless operator would: the same key, other bytes, sha256 metadata made to match them.
    await s3.store.put({ bucket: 'repo', key: docPool, body: { file: tmp }, size: bad.length, sha256: sha256Text(bad), contentType: 'application/octet-stream' });
    await s3.resetLog();
    const r = await run(['index', '--environment', 'test', '--copy', 'hello-doc', '--from', 'testing', '--to', 'stable']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the pool file s3://repo/${docPool} is ${bad.length} bytes`);
    expect(await s3.writes()).toBe(0);
    await s3.store.put({ bucket: 'repo', key: docPool, body: { file: original }, size: (await readFile(original)).length, sha256: await sha256File(original), contentType: 'application/vnd.debian.binary-package' });
    expect((await run(['index', '--environment', 'test', '--verify-only'])).code).toBe(0);
  });

  it('an expired Release is refused by apt and by verify; --refresh re-signs only the Release files and apt accepts it again', async () => {
    const before = (await text('apt/dists/testing/Release'))!;
    const until = Date.parse(/^Valid-Until: (.*)$/m.exec(before)![1]!.replace('UTC', 'GMT'));
    expect(until - Date.parse(/^Date: (.*)$/m.exec(before)![1]!.replace('UTC', 'GMT'))).toBe(VALID_FOR * 1000);
    const wait = until - Date.now() + 1500;
    expect(wait).toBeLessThan((VALID_FOR + 2) * 1000);
    if (wait > 0) await sleep(wait);
    const apt = aptRoot(path.join(base, 'apt-expired'), `deb [signed-by=${keyFile}] ${repoUrl()} testing main`, ARCH);
    const up = apt.aptGet(['update']);
    expect(up.code, up.out).not.toBe(0);
    expect(up.out).toMatch(/is expired/);
    const v = await run(['index', '--environment', 'test', '--verify-only']);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain('s3://repo/apt/dists/testing/Release: expired at');
    expect(v.stderr).toContain('releng index --refresh');

    await s3.resetLog();
    const dry = await run(['index', '--environment', 'test', '--refresh', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(await s3.writes()).toBe(0);
    await s3.resetLog();
    const refresh = await releng(['index', '--environment', 'test', '--refresh'], { cwd: project, env: creds });
    expect(refresh.code, refresh.stderr).toBe(0);
    expect((await writtenKeys()).sort()).toEqual(['stable', 'testing'].flatMap((s) => ['InRelease', 'Release', 'Release.gpg'].map((f) => `PUT apt/dists/${s}/${f}`)).sort());
    const after = (await text('apt/dists/testing/Release'))!;
    const undated = (t: string) => t.replace(/^(Date|Valid-Until):.*\n/gm, '');
    expect(undated(after)).toBe(undated(before));
    expect(after).not.toBe(before);
    const again = apt.aptGet(['update']);
    expect(again.code, again.out).toBe(0);
    expect(again.out).not.toMatch(/^[WE]:/m);
    expect(apt.aptGet(['install', 'hello']).code).toBe(0);
  });

  it('--remove: out of the index at once, out of the pool only after the grace period; a client holding the previous index still downloads meanwhile', async () => {
    // Out of testing only: stable still names the pool file, so it is no candidate for deletion at all.
    const one = await run(['index', '--environment', 'test', '--remove', 'hello', '--from', 'testing']);
    expect(one.code, one.stderr).toBe(0);
    expect(await text(`apt/dists/testing/main/binary-${ARCH}/Packages`)).not.toMatch(/^Package: hello$/m);
    expect(await text('apt/releng-retention.json') ?? '').not.toContain(ledgerKey(poolHello));

    // A client with the index as it is now (hello in stable).
    const holder = aptRoot(path.join(base, 'apt-holder'), `deb [signed-by=${keyFile}] ${repoUrl()} stable main`, ARCH);
    expect(holder.aptGet(['update']).code).toBe(0);

    const gone = await run(['index', '--environment', 'test', '--remove', 'hello', '--json']);
    expect(gone.code, gone.stderr).toBe(0);
    expect(JSON.parse(gone.stdout).result.aptChanges.map((c: any) => `${c.suite} ${c.package} ${c.version} ${c.change}`)).toEqual(['stable hello 1.0.0 removed']);
    expect(await text(`apt/dists/stable/main/binary-${ARCH}/Packages`) ?? '').not.toMatch(/^Package: hello$/m);
    const fresh = aptRoot(path.join(base, 'apt-fresh'), `deb [signed-by=${keyFile}] ${repoUrl()} stable main`, ARCH);
    expect(fresh.aptGet(['update']).code).toBe(0);
    expect(fresh.aptGet(['install', 'hello']).out).toMatch(/Unable to locate package hello/);
    // Recorded as unreferenced, and still there.
    const ledger = JSON.parse((await text('apt/releng-retention.json'))!);
    const since = Date.parse(ledger.unreferenced[ledgerKey(poolHello)]);
    expect(since).toBeGreaterThan(Date.now() - 60_000);
    expect(await s3.store.head('repo', poolHello)).toBeDefined();
    // Within the grace period: the holder of the previous index downloads the package.
    const dl = holder.aptGet(['install', '--download-only', 'hello']);
    expect(Date.now(), 'this step must run within the grace period: the machine is too slow for this test').toBeLessThan(since + GRACE * 1000);
    expect(dl.code, dl.out).toBe(0);
    expect(holder.aptGet(['clean']).code).toBe(0);
    const early = await run(['index', '--environment', 'test', '--dry-run']);
    expect(early.code, early.stderr).toBe(0);
    expect(early.stderr).not.toContain(`s3 delete s3://repo/${poolHello}`);
    expect(early.stderr).toMatch(/skip deleting \d+ file\(s\) no index references/);

    // After the grace period (bounded wait): the plan deletes it, dry-run first.
    const waitMs = since + GRACE * 1000 - Date.now() + 1000;
    expect(waitMs).toBeLessThan((GRACE + 2) * 1000);
    if (waitMs > 0) await sleep(waitMs);
    await s3.resetLog();
    const dry = await run(['index', '--environment', 'test', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(await s3.writes()).toBe(0);
    expect(dry.stderr).toContain(`[dry-run] s3 delete s3://repo/${poolHello}`);
    const del = await run(['index', '--environment', 'test']);
    expect(del.code, del.stderr).toBe(0);
    expect(await s3.store.head('repo', poolHello)).toBeUndefined();
    expect(await writtenKeys()).toContain(`DELETE ${poolHello}`);
    // Only files no index names went: what the indexes list is all there (verify reads every pool file).
    expect((await run(['index', '--environment', 'test', '--verify-only'])).code).toBe(0);
    expect(await s3.store.head('repo', 'apt/pool/main/h/hello-doc/hello-doc_1.0.0_all.deb')).toBeDefined();
    expect(JSON.parse((await text('apt/releng-retention.json'))!).unreferenced[ledgerKey(poolHello)]).toBeUndefined();
    // And now the holder's old index points at nothing.
    const late = holder.aptGet(['install', '--download-only', 'hello']);
    expect(late.code).not.toBe(0);
    expect(late.out).toMatch(/404/);
  });

  it('keepVersions: the newest two versions of a package stay in the index, the older one leaves it', async () => {
    // Debian's order, not the strings': 11 > 10 > 9.
    for (const v of ['9.0.0', '10.0.0']) await contribute([makeDeb(builder, { pkg: 'hello-tool', version: v, arch: ARCH })]);
    expect((await run(['index', '--environment', 'test'])).code).toBe(0);
    await contribute([makeDeb(builder, { pkg: 'hello-tool', version: '11.0.0', arch: ARCH })]);
    const r = await run(['index', '--environment', 'test', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const changes = JSON.parse(r.stdout).result.aptChanges.map((c: any) => `${c.package} ${c.version} ${c.change}`);
    expect(changes).toEqual(['hello-tool 11.0.0 added', 'hello-tool 9.0.0 dropped']);
    const packages = (await text(`apt/dists/testing/main/binary-${ARCH}/Packages`))!;
    const versions = packages.split('\n\n').filter((s) => /^Package: hello-tool$/m.test(s)).map((s) => /^Version: (\S+)$/m.exec(s)![1]);
    expect(versions.sort()).toEqual(['10.0.0', '11.0.0']);
    expect(JSON.parse((await text('apt/releng-retention.json'))!).unreferenced).toHaveProperty([`pool/main/h/hello-tool/hello-tool_9.0.0_${ARCH}.deb`]);
  });

  it('refuses what it cannot do, naming it, and writes nothing', async () => {
    await s3.resetLog();
    const none = await run(['index', '--environment', 'test', '--remove', 'no-such-package']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('--remove no-such-package: no such package in the suites testing, stable');
    const badSuite = await run(['index', '--environment', 'test', '--copy', 'hello-doc', '--from', 'testing', '--to', 'unstable']);
    expect(badSuite.code).toBe(1);
    expect(badSuite.stderr).toContain('--to unstable: the repository has no suite "unstable" (its suites: testing, stable)');
    const usage = await run(['index', '--environment', 'test', '--copy', 'hello-doc', '--from', 'testing']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--copy PACKAGE needs --from SUITE and --to SUITE');
    const both = await run(['index', '--environment', 'test', '--refresh', '--remove', 'hello-doc']);
    expect(both.code).toBe(2);
    expect(await s3.writes()).toBe(0);
  });
});
