// `releng channel` end to end: a fake Hydra (real JSON shapes) whose products live in a real binary
// cache (nix copy --to file://, served over HTTP), s3rver for the buckets, a bare git remote.
// Hydra data: test/helpers/channel-fixture.ts (two NixOS 26.05 evaluations). Covers publishing, dry run, the rollback guard (older/same/forced), --hydra-json, corrupt
// products, Hydra failing mid-run, bad input, crashes between any two steps, and the lock.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { brotliCompressSync } from 'node:zlib';
import { parse } from 'node-html-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Writers } from '../../lib/actions/index.ts';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { lockChannel } from '../../lib/channel/lock.ts';
import { REDIRECT_CACHE_CONTROL } from '../../lib/channel/plan.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { makeContext } from '../../lib/config/context.ts';
import { EXIT_ALREADY_PUBLISHED, EXIT_WOULD_GO_BACK } from '../../lib/core/errors.ts';
import { createLogger } from '../../lib/cli/log.ts';
import { channel, stagingDirOf, type ChannelDeps, type ChannelSummary } from '../../lib/phases/channel.ts';
import { channelScratch, nixosJobs, registerEval, type BuiltFixture, type FixtureEval } from '../helpers/channel-fixture.ts';
import { releng } from '../helpers/cli.ts';
import { startFakeHydra, type FakeHydra } from '../helpers/hydra.ts';
import { repoRoot } from '../helpers/project.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';

const V: Record<number, string> = { 1: '26.05.100.aaaaaaa', 2: '26.05.200.bbbbbbb' };
const RELEASES_URL = 'https://releases.example.org';
const ISO = (v: string) => `nixos-minimal-${v}-x86_64-linux.iso`;
const fast: ChannelDeps = { hydraRetry: { baseDelayMs: 1, maxDelayMs: 5 } };
/** Two NixOS 26.05 evaluations (test/helpers/channel-fixture.ts), products built per release. */
const EVALS: FixtureEval[] = [1, 2].map((r) => ({
  key: `r${r}`, project: 'nixos', jobset: 'release-26.05', mainJob: 'tested', nixname: `nixos-${V[r]}`, version: V[r]!, jobs: nixosJobs('26.05', V[r]!, false, { bigIso: true }),
}));

describe('releng channel', () => {
  let base: string;
  let project: string;
  let remote: string;
  const revs: Record<number, string> = {};
  let hydra: FakeHydra;
  let fx: BuiltFixture;
  let s3: TestS3;
  /** Files of the built products, per release slot. */
  const files: Record<number, { channel: string; packages: string; iso: string }> = {};
  const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

  const run = (args: string[]) => releng(['channel', ...args, '--environment', 'test'], { cwd: project, env });
  const narGets = () => fx.narGets();
  const branchOn = (b: string) => execFileSync('git', ['ls-remote', remote, `refs/heads/${b}`], { encoding: 'utf8' }).split('\t')[0] || undefined;

  /**
   * Registers release `id` as evaluation `id` (builds id*100+N; the channel's build is id*100+1)
   * with the products of slot `slot`; `tweak` may change the builds Hydra then serves.
   */
  async function addRelease(id: number, nixname: string, slot: number, tweak?: (builds: Record<string, any>) => void) {
    const e = EVALS[slot - 1]!;
    const { buildUrl, buildOf } = await registerEval(hydra, fx, { ...e, key: `r${slot}`, nixname }, id);
    const builds = Object.fromEntries(Object.entries(buildOf).map(([job, b]) => [job, hydra.builds.get(b as number)]));
    // A job whose product path leaves its output (a hostile or broken Hydra).
    const evil = { ...builds['nixos.channel'], id: id * 100 + 99, job: 'evil', buildproducts: { 1: { ...builds['nixos.channel'].buildproducts[1], path: `${builds['nixos.channel'].buildoutputs.out.path}/../../../etc/passwd` } } };
    hydra.builds.set(evil.id, evil);
    hydra.evals.get(id).builds.push(evil.id);
    tweak?.(builds);
    return buildUrl;
  }

  async function writeConfig() {
    const git = { remote, branch: '{channel}' };
    const kind = (match: string, prefix: string, products: unknown[], redirects: unknown[] = []) => ({
      match, prefix, gitInput: 'nixpkgs', git, binaryCacheUrl: fx.cache.url, commitUrl: 'https://git.example/nixpkgs/commit/{rev}', products, redirects,
    });
    const config = {
      project: 'nixpkgs', releaseJobs: { flake: '.#hydraJobs' }, profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'all',
      channels: {
        hydraUrl: hydra.url, downloadConcurrency: 2,
        kinds: [
          kind('nixos-(?<series>[0-9]{2}\\.[0-9]{2})(?<variant>-[a-z0-9]+)?', 'nixos/{series}{variant}', [
            { job: 'nixos.channel', file: 'nixexprs.tar.xz', subtype: 'source-dist', fileMatches: '\\.tar\\.xz$', redirects: [{ name: 'nixexprs.tar.xz', query: '?rev={rev}&lastModified={lastModified}' }] },
            { job: 'nixpkgs.tarball', file: 'packages.json.br', subtype: 'json-br', redirects: [{ name: 'packages.json.br' }] },
            { job: 'nixos.iso_minimal.x86_64-linux', fileMatches: '\\.iso$', redirects: [{ name: 'latest-nixos-minimal-x86_64-linux.iso', sha256: true }] },
            { job: 'nixos.iso_minimal.riscv64-linux', optional: true },
          ], [{ name: 'git-revision', file: 'git-revision' }, { name: 'store-paths.xz', file: 'store-paths.xz' }]),
          kind('ambiguous', 'amb', [{ job: 'nixpkgs.tarball' }]),
          kind('escaping', 'esc', [{ job: 'nixos.channel', subtype: 'source-dist', fileMatches: 'xz$', file: '../../evil' }]),
          kind('evilpath', 'evil', [{ job: 'evil' }]),
        ],
      },
      environments: {
        test: {
          releasesBucket: 's3://rel', cacheBucket: 's3://rel', docsBucket: 's3://rel', channelsBucket: 's3://chan', releasesUrl: RELEASES_URL,
          s3: { endpoint: s3.endpoint }, credentials: { source: 'env' },
        },
      },
    };
    await writeFile(path.join(project, 'releng.json'), JSON.stringify(config, null, 2));
  }

  /** Runs the command in-process (for injected crashes and concurrency). */
  async function inProcess(name: string, extra: Record<string, string | boolean | undefined>, deps: ChannelDeps = {}, dryRun = false): Promise<ChannelSummary> {
    const loaded = await loadConfig(path.join(project, 'releng.json'));
    const ctx = makeContext(loaded, { version: '', major: '', official: false, releaseName: '', file: '' },
      { dryRun, json: false, noconfirm: true, verbose: false, noCheckGit: false, environment: 'test', extra }, createLogger({ quiet: true }));
    return channel(ctx, [name], { ...fast, ...deps }) as Promise<ChannelSummary>;
  }

  /** GET without content decoding (so .json.br comes back as stored). */
  function rawGet(bucketKey: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      http.get(`${s3.endpoint}/${bucketKey}`, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      }).on('error', reject);
    });
  }

  beforeAll(async () => {
    Object.assign(process.env, env);
    ({ base, project, remote, fx } = await channelScratch('releng-channel-', EVALS));
    for (const r of [1, 2]) {
      revs[r] = fx.revs.get(`r${r}`)!;
      const out = (job: string) => fx.outs.get(`r${r}`)!.get(job)!;
      files[r] = { channel: `${out('nixos.channel')}/tarballs/nixos-${V[r]}.tar.xz`, packages: `${out('nixpkgs.tarball')}/packages.json.br`, iso: `${out('nixos.iso_minimal.x86_64-linux')}/iso/${ISO(V[r]!)}` };
    }
    [hydra, s3] = await Promise.all([startFakeHydra(), startTestS3(['rel', 'chan'])]);
    await writeConfig();
  }, 600_000);

  afterAll(async () => {
    await Promise.all([hydra?.stop(), fx?.cache.stop(), s3?.stop()]);
    if (base) await rm(base, { recursive: true, force: true });
  });

  const releaseKey = (channelDir: string, r: number) => `nixos/${channelDir}/nixos-${V[r]}`;

  describe('publishing nixos-26.05', () => {
    it('--dry-run runs the guard and every read, prints the exact writes, writes nothing', async () => {
      const url = await addRelease(1, `nixos-${V[1]}`, 1);
      const before = await s3.writes();
      const r = await run(['nixos-26.05', '--build', url, '--dry-run']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('no channel object at s3://chan/nixos-26.05 yet');
      expect(r.stderr).toContain(`[dry-run] s3 put s3://rel/${releaseKey('26.05', 1)}/nixexprs.tar.xz (application/octet-stream`);
      expect(r.stderr).toContain(`[dry-run] git push ${remote} ${revs[1]}:refs/heads/nixos-26.05`);
      expect(r.stderr).toContain(`[dry-run] s3 redirect s3://chan/nixos-26.05 -> ${RELEASES_URL}/${releaseKey('26.05', 1)}`);
      expect(r.stderr).toContain('skip optional product of job nixos.iso_minimal.riscv64-linux: no such job');
      expect(await s3.writes()).toBe(before);
      expect(branchOn('nixos-26.05')).toBeUndefined();
    });

    it('publishes in order: files → page → git push → aliases → channel object last', async () => {
      const order: string[] = [];
      const wrap = (w: Writers): Writers => ({
        s3: { ...w.s3!, put: async (req) => { order.push(req.redirect ? `redirect ${req.key}` : `put ${req.key}`); return w.s3!.put(req); } },
        git: { push: async (cwd, rem, refspecs, opts) => { order.push(`git ${refspecs.join(" ")}`); return w.git!.push(cwd, rem, refspecs, opts); } },
      });
      const nars = narGets();
      const summary = await inProcess('nixos-26.05', { build: `${hydra.url}/build/101` }, { wrapWriters: wrap });
      expect(summary.verdict).toBe('first');
      // The dry run staged the products; the real run used them (not fetched twice).
      expect(narGets()).toBe(nars);
      const page = order.indexOf(`put ${releaseKey('26.05', 1)}`);
      const git = order.indexOf(`git ${revs[1]}:refs/heads/nixos-26.05`);
      const files = order.filter((o) => o.startsWith(`put ${releaseKey('26.05', 1)}/`));
      expect(files).toHaveLength(10);
      expect(order.slice(0, files.length).sort()).toEqual([...files].sort());
      expect(page).toBe(files.length);
      expect(git).toBe(page + 1);
      expect(order.slice(git + 1).every((o) => o.startsWith('redirect nixos-26.05/'))).toBe(false);
      expect(order.at(-1)).toBe('redirect nixos-26.05');
      expect(order.slice(git + 1, -1).every((o) => o.startsWith('redirect nixos-26.05/'))).toBe(true);
      expect(branchOn('nixos-26.05')).toBe(revs[1]);
      expect(existsSync(stagingDirOf(path.join(project, '.releng'), 'nixos-26.05', `nixos-${V[1]}`))).toBe(false);
    });

    it('publishes a newer release: every object, header, page, redirect and the branch', async () => {
      const url = await addRelease(2, `nixos-${V[2]}`, 2);
      const r = await run(['nixos-26.05', '--build', url, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout).result;
      expect(result).toMatchObject({ verdict: 'newer', previous: `nixos-${V[1]}`, release: `nixos-${V[2]}` });
      const prefix = releaseKey('26.05', 2);
      const f = files[2]!;
      const listed = (await s3.store.list('rel', `${prefix}/`)).map((o) => o.key.slice(prefix.length + 1)).sort();
      expect(listed).toEqual(['binary-cache-url', 'git-revision', ISO(V[2]!), `${ISO(V[2]!)}.sha256`, 'nixexprs.tar.xz', 'nixexprs.tar.xz.sha256',
        'packages.json.br', 'packages.json.br.sha256', 'src-url', 'store-paths.xz'].sort());
      const expectObject = async (name: string, body: Buffer | string, type: string, encoding?: string) => {
        const got = await rawGet(`rel/${prefix}/${name}`);
        expect(got.status, name).toBe(200);
        expect(got.body.equals(Buffer.from(body)), name).toBe(true);
        expect(got.headers['content-type'], name).toBe(type);
        expect(got.headers['content-encoding'], name).toBe(encoding);
        expect(got.headers['x-amz-meta-sha256'], name).toBe(sha256Text(got.body));
        return got;
      };
      const cat = (p: string) => execFileSync('cat', [p]);
      await expectObject('nixexprs.tar.xz', cat(f.channel), 'application/octet-stream');
      await expectObject('packages.json.br', cat(f.packages), 'application/json', 'br');
      await expectObject(ISO(V[2]!), cat(f.iso), 'application/octet-stream');
      await expectObject('nixexprs.tar.xz.sha256', `${sha256Text(cat(f.channel))}  nixexprs.tar.xz`, 'text/plain');
      await expectObject(`${ISO(V[2]!)}.sha256`, `${sha256Text(cat(f.iso))}  ${ISO(V[2]!)}`, 'text/plain');
      await expectObject('src-url', `${hydra.url}/eval/2`, 'text/plain');
      await expectObject('git-revision', revs[2]!, 'text/plain');
      await expectObject('binary-cache-url', fx.cache.url, 'text/plain');
      const sp = await rawGet(`rel/${prefix}/store-paths.xz`);
      const storePaths: string[] = await (await fetch(`${hydra.url}/eval/2/store-paths`, { headers: { accept: 'application/json' } })).json();
      expect(storePaths.length).toBeGreaterThan(2);
      expect(execFileSync('xz', ['-dc'], { input: sp.body, encoding: 'utf8' })).toBe(storePaths.join('\n') + '\n');

      // The page: parsed, one row per file (no .sha256 rows), sizes and hashes as stored.
      const page = await rawGet(`rel/${prefix}`);
      expect(page.headers['content-type']).toBe('text/html');
      const root = parse(page.body.toString());
      expect(root.querySelector('title')!.text).toBe(`nixos-26.05 release nixos-${V[2]}`);
      expect(root.querySelector('a.commit')!.getAttribute('href')).toBe(`https://git.example/nixpkgs/commit/${revs[2]}`);
      expect(root.querySelector('.commit-date')!.text).toBe(new Date((1780000000 + 1000) * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'));
      expect(root.querySelector('a.eval')!.getAttribute('href')).toBe(`${hydra.url}/eval/2`);
      const rows = root.querySelectorAll('tbody tr').map((tr) => tr.querySelectorAll('td').map((td) => td.text));
      expect(rows.map((row) => row[0])).toEqual(listed.filter((n) => !n.endsWith('.sha256')));
      for (const [name, size, sha] of rows as [string, string, string][]) {
        const h = await s3.store.head('rel', `${prefix}/${name}`);
        expect([h!.size, h!.sha256], name).toEqual([Number(size), sha]);
      }

      // Redirects: location, Cache-Control, and the header s3rver returns to any client.
      const lastModified = 1780000000 + 1000;
      const expected: Record<string, string> = {
        'nixos-26.05': `${RELEASES_URL}/${prefix}`,
        'nixos-26.05/nixexprs.tar.xz': `${RELEASES_URL}/${prefix}/nixexprs.tar.xz?rev=${revs[2]}&lastModified=${lastModified}`,
        'nixos-26.05/packages.json.br': `${RELEASES_URL}/${prefix}/packages.json.br`,
        'nixos-26.05/git-revision': `${RELEASES_URL}/${prefix}/git-revision`,
        'nixos-26.05/store-paths.xz': `${RELEASES_URL}/${prefix}/store-paths.xz`,
        'nixos-26.05/latest-nixos-minimal-x86_64-linux.iso': `${RELEASES_URL}/${prefix}/${ISO(V[2]!)}`,
        'nixos-26.05/latest-nixos-minimal-x86_64-linux.iso.sha256': `${RELEASES_URL}/${prefix}/${ISO(V[2]!)}.sha256`,
      };
      expect((await s3.store.list('chan', 'nixos-26.05/')).map((o) => o.key).sort()).toEqual(Object.keys(expected).filter((k) => k.includes('/')).sort());
      for (const [key, location] of Object.entries(expected)) {
        const h = await s3.store.head('chan', key);
        expect([h?.redirect, h?.cacheControl, h?.size], key).toEqual([location, REDIRECT_CACHE_CONTROL, 0]);
        const got = await rawGet(`chan/${key}`);
        expect(got.headers['x-amz-website-redirect-location'], key).toBe(location);
      }
      expect(branchOn('nixos-26.05')).toBe(revs[2]);
    });

    it(`the same release again: nothing to do, exit ${EXIT_ALREADY_PUBLISHED}, no write`, async () => {
      const before = await s3.writes();
      const r = await run(['nixos-26.05', '--build', `${hydra.url}/build/201`]);
      expect(r.code, r.stderr).toBe(EXIT_ALREADY_PUBLISHED);
      expect(r.stderr).toContain(`channel nixos-26.05 is already at nixos-${V[2]}: nothing to do`);
      expect(await s3.writes()).toBe(before);
    });

    it('going back in time is refused (also in --dry-run), nothing changes', async () => {
      const before = await s3.writes();
      const message = `channel nixos-26.05 would go back in time from nixos-${V[2]} to nixos-${V[1]}; refusing`;
      const r = await run(['nixos-26.05', '--build', `${hydra.url}/build/101`]);
      expect(r.code).toBe(EXIT_WOULD_GO_BACK);
      expect(r.stderr).toContain(message);
      await expect(inProcess('nixos-26.05', { build: `${hydra.url}/build/101` }, {}, true)).rejects.toThrow(message);
      expect(await s3.writes()).toBe(before);
      expect((await s3.store.head('chan', 'nixos-26.05'))!.redirect).toBe(`${RELEASES_URL}/${releaseKey('26.05', 2)}`);
      expect(branchOn('nixos-26.05')).toBe(revs[2]);
    });

    it('--force moves it back, loudly, without downloading the complete older prefix again', async () => {
      const nars = narGets();
      const r = await run(['nixos-26.05', '--build', `${hydra.url}/build/101`, '--force', '--verbose']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`--force: moving nixos-26.05 BACK IN TIME from nixos-${V[2]} to nixos-${V[1]}`);
      expect(r.stderr).toContain('the release page exists, so the prefix is complete');
      // Forced, but only from the commit planning saw (--force-with-lease), never over a branch that moved.
      expect(r.stderr).toMatch(new RegExp(`git push --force-with-lease=refs/heads/nixos-26\\.05:[0-9a-f]{40} \\S+ ${revs[1]}:refs/heads/nixos-26\\.05`));
      expect(narGets()).toBe(nars);
      expect((await s3.store.head('chan', 'nixos-26.05'))!.redirect).toBe(`${RELEASES_URL}/${releaseKey('26.05', 1)}`);
      expect(branchOn('nixos-26.05')).toBe(revs[1]);
    });

    it('--hydra-json (Hydra RunCommand file) publishes the build it names', async () => {
      const b = hydra.builds.get(201);
      const file = path.join(base, 'hydra.json');
      await writeFile(file, JSON.stringify({
        event: 'buildFinished', build: 201, finished: true, timestamp: b.timestamp, project: b.project, jobset: b.jobset, job: b.job,
        drvPath: b.drvpath, startTime: b.starttime, stopTime: b.stoptime, buildStatus: 0, nixName: b.nixname, system: b.system,
        homepage: null, description: null, license: null, outputs: [{ name: 'out', path: b.buildoutputs.out.path }], products: [], metrics: [],
      }));
      const summary = await inProcess('nixos-26.05', { 'hydra-json': file });
      expect(summary).toMatchObject({ verdict: 'newer', release: `nixos-${V[2]}` });
      expect((await s3.store.head('chan', 'nixos-26.05'))!.redirect).toBe(`${RELEASES_URL}/${releaseKey('26.05', 2)}`);
      expect(branchOn('nixos-26.05')).toBe(revs[2]);
    });
  });

  describe('failures publish nothing', () => {
    it('a corrupt product aborts before any write and its download is deleted', async () => {
      const url = await addRelease(3, 'nixos-26.05.300.ccccccc', 2, (b) => { b['nixos.channel'].buildproducts[1].sha256hash = 'f'.repeat(64); });
      const before = await s3.writes();
      await expect(inProcess('nixos-26.05-corrupt', { build: url })).rejects.toThrow(/nixos-26\.05\.200\.bbbbbbb\.tar\.xz from http:\/\/127\.0\.0\.1:\d+ is corrupt: sha256 [0-9a-f]{64}, but Hydra recorded f{64}/);
      expect(await s3.writes()).toBe(before);
      const staged = await readdir(stagingDirOf(path.join(project, '.releng'), 'nixos-26.05-corrupt', 'nixos-26.05.300.ccccccc')).catch(() => []);
      expect(staged.filter((n) => n.startsWith('nixexprs'))).toEqual([]);
      expect(branchOn('nixos-26.05-corrupt')).toBeUndefined();
    });

    it('Hydra failing (HTTP 500) or gone (connection refused) mid-run stops with the URL named, nothing published', async () => {
      const url = await addRelease(4, 'nixos-26.05.400.ddddddd', 2);
      hydra.failing.add('/eval/4/job/nixpkgs.tarball');
      const before = await s3.writes();
      await expect(inProcess('nixos-26.05-down', { build: url })).rejects.toThrow(`Hydra answered HTTP 500 for ${hydra.url}/eval/4/job/nixpkgs.tarball`);
      expect(hydra.requests).toContain('GET /build/401'); // it got that far: the failure was mid-run
      // Hydra gone altogether after the build and evaluation were read: connections refused
      // (the fetch seam sends later requests to a closed port; the error names the Hydra URL).
      const closed = http.createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
      const gone = `http://127.0.0.1:${(closed.address() as any).port}`;
      await new Promise<void>((r) => closed.close(() => r()));
      let calls = 0;
      const dying = ((input: any, init?: any) => fetch(++calls <= 2 ? input : String(input).replace(hydra.url, gone), init)) as typeof fetch;
      await expect(inProcess('nixos-26.05-down', { build: url }, { fetchImpl: dying })).rejects.toThrow(`cannot reach Hydra at ${hydra.url}/eval/4/job/nixos.channel (ECONNREFUSED)`);
      expect(await s3.writes()).toBe(before);
      expect(branchOn('nixos-26.05-down')).toBeUndefined();
    });

    it('bad input: HTML, 500, schema mismatch, ambiguous products, escaping names and paths', async () => {
      hydra.html.add('/build/999');
      hydra.failing.add('/build/998');
      hydra.raw.set('/build/997', JSON.stringify({ ...hydra.builds.get(201), id: 997, jobsetevals: 'eval 1' }));
      const before = await s3.writes();
      const fails = async (name: string, build: string, message: string | RegExp) => {
        await expect(inProcess(name, { build })).rejects.toThrow(message);
      };
      await fails('nixos-26.05-bad', `${hydra.url}/build/999`, `Hydra answered HTML instead of JSON for ${hydra.url}/build/999`);
      await fails('nixos-26.05-bad', `${hydra.url}/build/998`, `Hydra answered HTTP 500 for ${hydra.url}/build/998`);
      await fails('nixos-26.05-bad', `${hydra.url}/build/997`, /jobsetevals: /);
      await fails('ambiguous', `${hydra.url}/build/201`, /job nixpkgs\.tarball .* has 3 products matching the channel config \(json-br packages\.json\.br, source-dist nixpkgs-26\.05\.200\.bbbbbbb\.tar\.xz, source-dist nixpkgs-26\.05\.200\.bbbbbbb\.tar\.zst\)/);
      await fails('escaping', `${hydra.url}/build/201`, 'destination file of job nixos.channel "../../evil" would escape the release prefix: it contains a path separator');
      await fails('evilpath', `${hydra.url}/build/201`, /contains "\." or "\.\." segments/);
      await expect(inProcess('nixos-26.05-bad', {})).rejects.toThrow('pass --build URL');
      expect(await s3.writes()).toBe(before);
    });
  });

  describe('crash between any two steps, then a re-run finishes without downloading again', () => {
    const prefixOf = (ch: string) => `nixos/26.05-${ch.split('-').at(-1)}/nixos-${V[2]}`;
    const points: Array<[string, (op: { key?: string; redirect?: string; git?: boolean }, ch: string) => boolean]> = [
      ['mid-files', (op, ch) => op.key === `${prefixOf(ch)}/packages.json.br`],
      ['files-page', (op, ch) => op.key === prefixOf(ch)],
      ['page-git', (op) => !!op.git],
      ['git-aliases', (op) => !!op.redirect && op.key!.includes('/')],
      ['aliases-channel', (op, ch) => !!op.redirect && op.key === ch],
    ];
    for (const [i, [point, failsAt]] of points.entries()) {
      it(point, async () => {
        const ch = `nixos-26.05-crash${i}`;
        const crash = (w: Writers): Writers => ({
          s3: { ...w.s3!, put: async (req) => { if (failsAt({ key: req.key, redirect: req.redirect }, ch)) throw new Error('injected crash'); return w.s3!.put(req); } },
          git: { push: async (...a) => { if (failsAt({ git: true }, ch)) throw new Error('injected crash'); return w.git!.push(...a); } },
        });
        await expect(inProcess(ch, { build: `${hydra.url}/build/201` }, { wrapWriters: crash })).rejects.toThrow('injected crash');
        expect((await s3.store.head('chan', ch))?.redirect).toBeUndefined();
        const nars = narGets();
        const summary = await inProcess(ch, { build: `${hydra.url}/build/201` });
        expect(narGets()).toBe(nars);
        expect(summary.downloaded).toEqual([]);
        expect((await s3.store.head('chan', ch))!.redirect).toBe(`${RELEASES_URL}/${prefixOf(ch)}`);
        expect((await s3.store.head('rel', prefixOf(ch)))!.contentType).toBe('text/html');
        expect((await s3.store.list('rel', `${prefixOf(ch)}/`)).length).toBe(10);
        expect((await s3.store.list('chan', `${ch}/`)).length).toBe(6);
        expect(branchOn(ch)).toBe(revs[2]);
      });
    }
  });

  describe('lock', () => {
    it('refuses a second run of the same channel while the first holds the lock; different channels run concurrently', async () => {
      const lockDir = path.join(project, '.releng', 'locks');
      const held = await lockChannel(lockDir, 'nixos-26.05-locked');
      await expect(inProcess('nixos-26.05-locked', { build: `${hydra.url}/build/201` })).rejects.toThrow(/nixos-26\.05-locked is being published by another run \(pid \d+/);
      await held.release();
      const [a, b] = await Promise.all([
        inProcess('nixos-26.05-para1', { build: `${hydra.url}/build/201` }),
        inProcess('nixos-26.05-para2', { build: `${hydra.url}/build/201` }),
      ]);
      expect([a.verdict, b.verdict]).toEqual(['first', 'first']);
    });

    it('a run killed with SIGKILL does not leave the channel locked', async () => {
      const lockDir = path.join(project, '.releng', 'locks');
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'test/fixtures/channel/hold-lock.ts'), lockDir, 'nixos-26.05-killed'],
        { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (c) => reject(new Error(`lock holder exited early (${c})`)));
      });
      await expect(inProcess('nixos-26.05-killed', { build: `${hydra.url}/build/201` })).rejects.toThrow(`is being published by another run (pid ${child.pid} on`);
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
      // The kernel drops the flock once the holder's pipe closes; wait for that (not a timing assertion).
      execFileSync('flock', ['--exclusive', '--wait', '60', path.join(lockDir, 'channel-nixos-26.05-killed.lock'), 'true']);
      const s = await inProcess('nixos-26.05-killed', { build: `${hydra.url}/build/201` });
      expect(s.verdict).toBe('first');
    });
  });
});
