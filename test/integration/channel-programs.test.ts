// programs.sqlite and the debug-info index (issue 27), end to end with the real CLI: a NixOS channel
// whose packages.json.br is the real `nix-env -qa --json --meta` of a tiny nixpkgs, whose packages
// were built by the Nix here for two systems and copied into a binary cache with real NAR listings
// (.ls), in an S3 bucket (s3rver) served over plain HTTP like cache.nixos.org. The oracles are the
// clients: command-not-found's own query run by the real sqlite3, and a debuginfo entry fetched the
// way dwarffs fetches it (debuginfo/ID → JSON → ../nar/X.nar.xz → xz → the NAR's member, read with
// `nix nar cat`, whose ELF build id readelf shows).
import { execFileSync, spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { releng, relengCommand } from '../helpers/cli.ts';
import { startFakeHydra, type FakeHydra } from '../helpers/hydra.ts';
import { buildProgramsRelease, publishToCache, registerProgramsEval, sourceRepo, type ProgramsRelease } from '../helpers/programs-fixture.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { requireTool } from '../helpers/tools.ts';

const V1 = '26.05.100.aaaaaaa';
const V2 = '26.05.200.bbbbbbb';
const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

/** The binary cache as releng sees it: a pass-through to the S3 bucket with faults on NAR listings. */
interface CacheProxy { url: string; flakyLs: number; failLs: boolean; stallLs: boolean; stalled: number; release(): void; stop(): Promise<void> }
async function cacheProxy(target: string): Promise<CacheProxy> {
  const held: Array<() => void> = [];
  const p: CacheProxy = {
    url: '', flakyLs: 0, failLs: false, stallLs: false, stalled: 0,
    release() { p.stallLs = false; for (const h of held.splice(0)) h(); },
    async stop() { p.release(); server.closeAllConnections(); await new Promise<void>((r) => server.close(() => r())); },
  };
  const server = http.createServer(async (req, res) => {
    const isLs = /\.ls$/.test(req.url ?? '');
    if (isLs && p.stallLs) { p.stalled++; await new Promise<void>((r) => held.push(r)); }
    if (isLs && (p.failLs || (p.flakyLs > 0 && p.flakyLs--))) { res.writeHead(500); return res.end('Internal Error'); }
    const up = await fetch(`${target}${req.url}`, { method: req.method });
    res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/octet-stream' });
    res.end(Buffer.from(await up.arrayBuffer()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  p.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return p;
}

describe('releng channel: programs.sqlite and debuginfo (issue 27)', () => {
  let base: string;
  let project: string;
  let remote: string;
  let hydra: FakeHydra;
  let s3: TestS3;
  let r1: ProgramsRelease;
  let r2: ProgramsRelease;
  let url1: string;
  let url2: string;
  let revs: Map<string, string>;
  let repo: string;
  let proxy: CacheProxy;
  const cacheDir = () => path.join(base, 'cache');

  const run = (args: string[]) => releng(['channel', 'nixos-26.05', ...args, '--environment', 'test'], { cwd: project, env });
  const get = async (key: string) => { const res = await fetch(`${s3.endpoint}/${key}`); return { status: res.status, body: Buffer.from(await res.arrayBuffer()) }; };
  const prefix = (v: string) => `nixos/26.05/nixos-${v}`;

  /** Unpacks programs.sqlite of a published tarball. */
  async function publishedDb(key: string): Promise<string> {
    const dir = await mkdtemp(path.join(base, 'db-'));
    const file = path.join(dir, path.basename(key));
    await writeFile(file, (await get(`rel/${key}`)).body);
    execFileSync('tar', ['-x', key.endsWith('.zst') ? '--zstd' : '--xz', '-f', file, '-C', dir, '--wildcards', '*/programs.sqlite']);
    const top = execFileSync('sh', ['-c', 'ls -d */', ''], { cwd: dir, encoding: 'utf8' }).trim().split('\n')[0]!;
    return path.join(dir, top, 'programs.sqlite');
  }

  /** command-not-found's query (nixos/modules/programs/command-not-found), run by the real sqlite3, and what it tells the user. */
  function commandNotFound(db: string, system: string, program: string): string {
    const sql = `select package from Programs where system = '${system}' and name = '${program}'`;
    const rows = execFileSync('sqlite3', [db, sql], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    if (!rows.length) return `${program}: command not found`;
    if (rows.length === 1) return `nix-shell -p ${rows[0]}`;
    return `provided by several packages: ${rows.map((r) => `nix-shell -p ${r}`).join(', ')}`;
  }

  beforeAll(async () => {
    for (const [tool, pkg] of [['nix-build', 'nix-bin'], ['xz', 'xz-utils'], ['zstd', 'zstd'], ['git', 'git'], ['flock', 'util-linux'], ['sqlite3', 'sqlite3'], ['gcc', 'gcc'], ['readelf', 'binutils'], ['objcopy', 'binutils']] as const) requireTool(tool, pkg);
    Object.assign(process.env, env);
    base = await mkdtemp(path.join(os.tmpdir(), 'releng-programs-'));
    project = path.join(base, 'project');
    remote = path.join(base, 'nixpkgs-channels.git');
    repo = path.join(base, 'nixpkgs');
    await mkdir(project, { recursive: true });
    execFileSync('git', ['init', '-q', '--bare', remote]);
    revs = sourceRepo(repo, ['r1', 'r2']);
    r1 = await buildProgramsRelease(base, V1);
    // The next release adds one package: only its paths are new.
    r2 = await buildProgramsRelease(base, V2, '{ tool }: { wget = tool "wget" [ "wget" ]; }\n');
    [hydra, s3] = await Promise.all([startFakeHydra(), startTestS3(['rel', 'chan', 'cache'])]);
    proxy = await cacheProxy(`${s3.endpoint}/cache`);
    await publishToCache([...r1.built, ...r2.built], cacheDir(), s3, 'cache');
    url1 = await registerProgramsEval(hydra, r1, 1, revs.get('r1')!, repo);
    url2 = await registerProgramsEval(hydra, r2, 2, revs.get('r2')!, repo);
    const redirect = (name: string, query?: string) => ({ name, ...(query ? { query } : {}) });
    const config = {
      project: 'nixpkgs', releaseJobs: { flake: '.#hydraJobs' }, profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'all',
      channels: {
        hydraUrl: hydra.url, downloadConcurrency: 2,
        kinds: [{
          match: 'nixos-(?<series>[0-9]{2}\\.[0-9]{2})(?<small>-small)?', prefix: 'nixos/{series}{small}', gitInput: 'nixpkgs', git: { remote, branch: '{channel}' },
          binaryCacheUrl: proxy.url, commitUrl: 'https://git.example/nixpkgs/commit/{rev}',
          products: [
            { job: 'nixos.channel', file: 'nixexprs.tar.xz', subtype: 'source-dist', fileMatches: '\\.tar\\.xz$', redirects: [redirect('nixexprs.tar.xz', '?rev={rev}&lastModified={lastModified}')] },
            { job: 'nixos.channel', file: 'nixexprs.tar.zst', subtype: 'source-dist', fileMatches: '\\.tar\\.zst$', redirects: [redirect('nixexprs.tar.zst', '?rev={rev}&lastModified={lastModified}')] },
            { job: 'nixpkgs.tarball', file: 'packages.json.br', subtype: 'json-br', redirects: [redirect('packages.json.br')] },
          ],
          redirects: [{ name: 'git-revision', file: 'git-revision' }, { name: 'store-paths.xz', file: 'store-paths.xz' }],
          programs: { systems: ['x86_64-linux', 'aarch64-linux'], listingConcurrency: 4 },
        }],
      },
      environments: {
        test: {
          releasesBucket: 's3://rel', cacheBucket: 's3://cache', docsBucket: 's3://rel', channelsBucket: 's3://chan', releasesUrl: 'https://releases.example.org',
          s3: { endpoint: s3.endpoint }, credentials: { source: 'env' },
        },
      },
    };
    await writeFile(path.join(project, 'releng.json'), JSON.stringify(config, null, 2));
  }, 900_000);

  afterAll(async () => {
    await Promise.all([hydra?.stop(), proxy?.stop(), s3?.stop()]);
    if (base) await rm(base, { recursive: true, force: true });
  });

  const hello = () => r1.packages['x86_64-linux']!.hello!;
  const buildIdOfHello = () => execFileSync('sh', ['-c', `readelf -n ${hello().out}/bin/hello 2>/dev/null | sed -n 's/.*Build ID: \\([0-9a-f]*\\).*/\\1/p'`], { encoding: 'utf8' }).trim();

  it('--dry-run shows the repacked tarballs and the debuginfo entries, and writes nothing', async () => {
    const before = await s3.writes();
    proxy.flakyLs = 3; // the cache fails three listing requests: retried, with a warning each
    const r = await run(['--build', url1, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/binary cache: GET http:\/\/127\.0\.0\.1:\d+\/[0-9a-z]{32}\.ls: HTTP 500; retrying/);
    expect(proxy.flakyLs).toBe(0);
    const id = buildIdOfHello();
    expect(id).toMatch(/^[0-9a-f]{40}$/);
    // Both systems' hello have a debug output (aarch64's is built from the same source here: the same build id, kept once).
    expect(r.stderr).toContain(`[dry-run] s3 put s3://cache/debuginfo/${id} (application/json`);
    expect(r.stderr).toMatch(new RegExp(`\\[dry-run\\] s3 put s3://rel/${prefix(V1)}/nixexprs\\.tar\\.xz `));
    expect(r.stderr).toMatch(/programs\.sqlite: \d+ programs of \d+ packages on x86_64-linux, aarch64-linux/);
    expect(await s3.writes()).toBe(before);
  });

  it('publishes programs.sqlite in both tarballs: command-not-found answers from it', async () => {
    const r = await run(['--build', url1, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout).result;
    expect(result.programs.repacked.map((t: any) => t.name).sort()).toEqual(['nixexprs.tar.xz', 'nixexprs.tar.zst']);
    // The dry run's index was reused (same inputs), not made again.
    expect(result.programs.reused).toBe(true);
    const hydraTarball = await readFile(`${r1.channel}/tarballs/nixos-${V1}.tar.xz`);
    for (const name of ['nixexprs.tar.xz', 'nixexprs.tar.zst']) {
      const key = `${prefix(V1)}/${name}`;
      const body = (await get(`rel/${key}`)).body;
      // Hydra's tarball is not what is published; the .sha256 names the published bytes.
      expect(sha256Text(body)).not.toBe(sha256Text(name.endsWith('.xz') ? hydraTarball : await readFile(`${r1.channel}/tarballs/nixos-${V1}.tar.zst`)));
      expect((await get(`rel/${key}.sha256`)).body.toString()).toBe(`${sha256Text(body)}  ${name}`);
      const db = await publishedDb(key);
      expect(commandNotFound(db, 'x86_64-linux', 'hello'), name).toBe('nix-shell -p hello');
      expect(commandNotFound(db, 'aarch64-linux', 'hello')).toBe('nix-shell -p hello');
      expect(commandNotFound(db, 'x86_64-linux', 'hi')).toBe('nix-shell -p hello'); // a link to bin/hello
      expect(commandNotFound(db, 'x86_64-linux', 'cc')).toBe('provided by several packages: nix-shell -p clang, nix-shell -p gcc');
      expect(commandNotFound(db, 'x86_64-linux', 'ls')).toBe('nix-shell -p coreutils'); // from the `bin` output
      expect(commandNotFound(db, 'x86_64-linux', 'only-on-x86')).toBe('nix-shell -p x86only');
      expect(commandNotFound(db, 'aarch64-linux', 'only-on-x86')).toBe('only-on-x86: command not found');
      for (const no of ['.hello-wrapped', 'README', 'dir', 'nowhere', 'wget']) expect(commandNotFound(db, 'x86_64-linux', no), no).toBe(`${no}: command not found`);
      // The table command-not-found reads, with its primary key.
      expect(execFileSync('sqlite3', [db, '.schema Programs'], { encoding: 'utf8' })).toMatch(/create table Programs \(\s*name\s+text not null,\s*system\s+text not null,\s*package\s+text not null,\s*primary key \(name, system, package\)\s*\)/i);
    }
    // Hydra's own tarball is kept out of the release.
    const keys = (await s3.store.list('rel', `${prefix(V1)}/`)).map((o) => o.key.slice(prefix(V1).length + 1));
    expect(keys.filter((k) => k.startsWith('nixexprs') || k.startsWith('hydra'))).toEqual(['nixexprs.tar.xz', 'nixexprs.tar.xz.sha256', 'nixexprs.tar.zst', 'nixexprs.tar.zst.sha256']);
  });

  it('a debuginfo entry leads dwarffs to the debug file of its build id', async () => {
    const id = buildIdOfHello();
    const entryUrl = `${s3.endpoint}/cache/debuginfo/${id}`;
    const entry = await fetch(entryUrl);
    expect(entry.status).toBe(200);
    expect(entry.headers.get('content-type')).toBe('application/json');
    const doc = JSON.parse(await entry.text());
    expect(doc).toEqual({ archive: expect.stringMatching(/^\.\.\/nar\/[0-9a-z]+\.nar\.xz$/), member: `lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug` });
    // dwarffs: dirOf(uri) + "/" + archive, canonicalised; xz data is decompressed; a NAR is unpacked.
    const narUrl = new URL(doc.archive, entryUrl).toString();
    const nar = Buffer.from(await (await fetch(narUrl)).arrayBuffer());
    expect(nar.subarray(0, 6).toString('latin1')).toBe('\xfd7zXZ\0');
    const narFile = path.join(base, 'hello-debug.nar');
    await writeFile(narFile, execFileSync('xz', ['-dc'], { input: nar, maxBuffer: 1 << 26 }));
    const debugFile = path.join(base, 'hello.debug');
    await writeFile(debugFile, execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'nar', 'cat', narFile, `/${doc.member}`], { maxBuffer: 1 << 26 }));
    expect(execFileSync('readelf', ['-n', debugFile], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })).toContain(`Build ID: ${id}`);
  });

  it('a re-run is a no-op, and verify opens programs.sqlite and follows every debuginfo entry', async () => {
    const before = await s3.writes();
    const again = await run(['--build', url1]);
    expect(again.code, again.stderr).toBe(3);
    expect(await s3.writes()).toBe(before);
    const v = await run(['--verify']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/2 programs\.sqlite opened, [1-9]\d* debuginfo entries checked/);
  });

  let lsGetsOfRelease2: string[] = [];

  it('verify fails naming a missing debuginfo entry; the next publish puts it back', async () => {
    const id = buildIdOfHello();
    await s3.store.delete('cache', `debuginfo/${id}`);
    const v = await run(['--verify']);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain(`s3://cache/debuginfo/${id} does not exist`);
    // Release 2 indexes the same debug output again: the entry is written back.
    await s3.resetLog();
    const r = await run(['--build', url2, '--json']);
    expect(r.code, r.stderr).toBe(0);
    lsGetsOfRelease2 = (await s3.requests()).filter((l) => /^GET \/cache\/[0-9a-z]{32}\.ls/.test(l));
    expect((await get(`cache/debuginfo/${id}`)).status).toBe(200);
    expect((await run(['--verify'])).code).toBe(0);
  });

  it('a new release fetches only the listings of new paths (the memo), and finds the new package', async () => {
    // Release 1's paths were fetched once (by the dry run) and remembered; release 2 asked for wget's
    // new paths and for notInCache's, which the cache never had (a path missing is not remembered).
    const hashOf = (p: string) => path.basename(p).slice(0, 32);
    const expected = ['wget', 'notInCache'].flatMap((a) => ['x86_64-linux', 'aarch64-linux'].map((s) => `GET /cache/${hashOf(r2.packages[s]![a]!.out!)}.ls`)).sort();
    expect(lsGetsOfRelease2.map((l) => l.split(' ').slice(0, 2).join(' ').replace(/\?.*$/, '')).sort()).toEqual(expected);
    const db = await publishedDb(`${prefix(V2)}/nixexprs.tar.xz`);
    expect(commandNotFound(db, 'x86_64-linux', 'wget')).toBe('nix-shell -p wget');
  });

  it('a binary cache that keeps failing stops the run before any write, naming the listing', async () => {
    const url3 = await registerProgramsEval(hydra, { ...r2, version: '26.05.300.ccccccc' }, 3, revs.get('r2')!, repo);
    const before = await s3.writes();
    proxy.failLs = true;
    try {
      const r = await run(['--build', url3]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/error: GET http:\/\/127\.0\.0\.1:\d+\/[0-9a-z]{32}\.ls: HTTP 500 \(4 attempts\)/);
      expect(await s3.writes()).toBe(before);
    } finally {
      proxy.failLs = false;
    }
  });

  it('killed while reading listings, a re-run finishes and the channel verifies', async () => {
    // A fresh memo: every listing is asked for again, and the run is killed while one is in flight.
    await rm(path.join(project, '.releng', 'listings'), { recursive: true, force: true });
    await rm(path.join(project, '.releng', 'channel'), { recursive: true, force: true });
    proxy.stallLs = true;
    proxy.stalled = 0;
    const cmd = relengCommand();
    const child = spawn(cmd.file, [...cmd.args, 'channel', 'nixos-26.05', '--build', `${hydra.url}/build/301`, '--environment', 'test'], { cwd: project, env: { ...process.env, ...cmd.env, ...env }, stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    for (let i = 0; i < 600 && proxy.stalled < 2; i++) await new Promise((r) => setTimeout(r, 100));
    expect(proxy.stalled).toBeGreaterThanOrEqual(2);
    child.kill('SIGKILL');
    await exited;
    proxy.release();
    const r = await run(['--build', `${hydra.url}/build/301`]);
    expect(r.code, r.stderr).toBe(0);
    const v = await run(['--verify']);
    expect(v.code, v.stderr).toBe(0);
  });

  it('never replaces another build\'s debuginfo entry', async () => {
    const id = buildIdOfHello();
    const foreign = JSON.stringify({ archive: '../nar/0000000000000000000000000000000000000000000000000000.nar.xz', member: `lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug` });
    await s3.store.put({ bucket: 'cache', key: `debuginfo/${id}`, body: { text: foreign }, size: foreign.length, sha256: sha256Text(foreign), contentType: 'application/json' });
    const url4 = await registerProgramsEval(hydra, { ...r2, version: '26.05.400.ddddddd' }, 4, revs.get('r2')!, repo);
    const r = await run(['--build', url4, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`s3://cache/debuginfo/${id} belongs to another build`);
    expect(r.stderr).not.toContain(`s3 put s3://cache/debuginfo/${id}`);
    expect((await get(`cache/debuginfo/${id}`)).body.toString()).toBe(foreign);
    // …and verify says the archive it names does not exist.
    const v = await run(['--verify']);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain(`s3://cache/debuginfo/${id} points at s3://cache/nar/0000000000000000000000000000000000000000000000000000.nar.xz, which does not exist`);
  });
});
