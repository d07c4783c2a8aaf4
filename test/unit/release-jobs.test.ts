// The release-jobs mapping (issue 17): roles by attribute and output, the aggregate's layout,
// .sha256 bytes, nix-eval-jobs arguments, and the cache's nix-cache-info rule.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configSchema, loadConfig } from '../../lib/config/config.ts';
import { nixEvalJobsArgs, type Job } from '../../lib/nix/eval.ts';
import { classifyJobs, readAggregate, resolveMapping, sha256FileText } from '../../lib/nix/release-jobs.ts';
import { describeCacheInfoDiff, planCache } from '../../lib/upload/cache.ts';
import type { S3Reader } from '../../lib/s3/store.ts';
import { repoRoot } from '../helpers/project.ts';

const h = (c: string) => createHash('sha256').update(c).digest('hex');
const sp = (n: string) => `/nix/store/${n.padEnd(32, 'a').slice(0, 32)}-${n}`;
/** nix-eval-jobs lines for Lix's `release-jobs.all` (build.SYSTEM with four outputs, and tarballs). */
const lixJobs = (systems: string[]): Job[] => [
  ...systems.map((s) => ({ attr: `build.${s}`, drvPath: sp(`lix-${s}.drv`), system: s, outputs: { out: sp(`lix-${s}`), dev: sp(`lix-${s}-dev`), doc: sp(`lix-${s}-doc`), devdoc: sp(`lix-${s}-devdoc`) } })),
  { attr: 'tarballs', drvPath: sp('tarballs.drv'), system: 'x86_64-linux', outputs: { out: sp('lix-release-tarballs') } },
];

describe('release-jobs mapping', () => {
  it('examples/lix/releng.json maps Lix\'s jobs: build.SYSTEM out, the manual from build.x86_64-linux^doc, the tarballs aggregate', async () => {
    const { config } = await loadConfig(path.join(repoRoot, 'examples/lix/releng.json'));
    const rj = config.releaseJobs;
    expect('flake' in rj && rj.forceRecurse).toBe(true);
    const mapping = resolveMapping(rj.jobs, config.project, config.manualPath);
    const systems = ['x86_64-linux', 'aarch64-linux', 'aarch64-darwin'];
    const jobs = classifyJobs(lixJobs(systems), mapping, systems, ['x86_64-linux', 'aarch64-linux'], 'all');
    expect(Object.fromEntries(Object.entries(jobs.build).map(([s, j]) => [s, j.path]))).toEqual(Object.fromEntries(systems.map((s) => [s, sp(`lix-${s}`)])));
    expect(jobs.manual).toMatchObject({ output: 'doc', path: sp('lix-x86_64-linux-doc'), manualPath: 'share/doc/nix/manual' });
    expect(jobs.aggregate?.path).toBe(sp('lix-release-tarballs'));
    expect(jobs.binaryTarball).toEqual({});
  });

  it('the default mapping is the README contract (examples/hello)', async () => {
    const { config } = await loadConfig(path.join(repoRoot, 'examples/hello/releng.json'));
    expect(resolveMapping(config.releaseJobs.jobs, 'hello', undefined)).toEqual({
      build: { attr: 'build.{system}', output: 'out' },
      manual: { attr: 'manual', output: 'out', path: 'share/doc/hello/manual' },
      files: { binaryTarball: { attr: 'binaryTarball.{system}', output: 'out' }, dockerImage: { attr: 'dockerImage.{system}', output: 'out', image: 'tarball' } },
    });
  });

  it('Lix\'s jobs with the default mapping: every missing job and output named at once', () => {
    const systems = ['x86_64-linux', 'aarch64-linux'];
    const err = (() => { try { classifyJobs(lixJobs(systems), resolveMapping(undefined, 'lix', undefined), systems, ['x86_64-linux'], 'all'); } catch (e) { return e as Error; } })();
    expect(err?.message.split('\n').slice(0, 5)).toEqual([
      'release jobs of profile "all" do not fit releaseJobs.jobs:',
      '  no job manual (manual)',
      '  no job binaryTarball.x86_64-linux (binary tarball for x86_64-linux)',
      '  no job binaryTarball.aarch64-linux (binary tarball for aarch64-linux)',
      '  no job dockerImage.x86_64-linux (docker image for x86_64-linux)',
    ]);
    const noDoc = resolveMapping({ manual: { attr: 'build.x86_64-linux', output: 'docs' }, aggregate: { attr: 'tarballs', output: 'out' } }, 'lix', undefined);
    expect(() => classifyJobs(lixJobs(systems), noDoc, systems, [], 'all')).toThrow('build.x86_64-linux has no output "docs" (outputs: out, dev, doc, devdoc)');
  });

  it('an aggregate with binaryTarball or dockerImage is a config error naming the field', () => {
    const r = configSchema.safeParse({ project: 'lix', releaseJobs: { flake: '.#release-jobs', jobs: { aggregate: { attr: 'tarballs' }, binaryTarball: { attr: 'binaryTarball.{system}' } } }, profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'all', environments: { local: { releasesBucket: 's3://a-r', cacheBucket: 's3://a-c', docsBucket: 's3://a-d', s3: { endpoint: 'embedded' } } } });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error!.issues)).toContain('with \\"aggregate\\" the binaryTarball files come from the aggregate job');
  });

  it('nix-eval-jobs gets --force-recurse unless turned off', () => {
    expect(nixEvalJobsArgs('.#release-jobs.all', true)).toEqual(['--extra-experimental-features', 'nix-command flakes', '--force-recurse', '--flake', '.#release-jobs.all']);
    expect(nixEvalJobsArgs('.#release-jobs.all', false)).not.toContain('--force-recurse');
  });

  it('.sha256 bytes as Lix writes them: a newline after tarballs (sha256sum | cut), none after the source tarball', () => {
    const hex = h('x');
    expect(sha256FileText('binary-tarball', hex)).toBe(`${hex}\n`);
    expect(sha256FileText('docker-image', hex)).toBe(`${hex}\n`);
    expect(sha256FileText('manual-tarball', hex)).toBe(`${hex}\n`);
    expect(sha256FileText('source-tarball', hex)).toBe(hex);
  });
});

describe('readAggregate', () => {
  let dir: string;
  const o = { project: 'lix', version: '2.96.0', systems: ['x86_64-linux'], dockerSystems: ['x86_64-linux'], attr: 'tarballs' };
  const put = async (name: string, content: string) => { await mkdir(path.dirname(path.join(dir, name)), { recursive: true }); await writeFile(path.join(dir, name), content); };
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-aggregate-'));
    for (const n of ['lix-2.96.0-x86_64-linux.tar.xz', 'lix-2.96.0-docker-image-x86_64-linux.tar.gz', 'lix-2.96.0-manual.tar.gz']) {
      await put(n, `content of ${n}`);
      await put(`${n}.sha256`, `${h(`content of ${n}`)}\n`);
    }
    await put('manual/index.html', '<h1>manual</h1>');
  });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('names every file of Lix\'s layout (kind, system)', async () => {
    const files = await readAggregate(dir, o);
    expect(files.map((f) => [f.rel, f.kind, f.system ?? ''])).toEqual([
      ['lix-2.96.0-docker-image-x86_64-linux.tar.gz', 'docker-image', 'x86_64-linux'], ['lix-2.96.0-docker-image-x86_64-linux.tar.gz.sha256', 'checksum', ''],
      ['lix-2.96.0-manual.tar.gz', 'manual-tarball', ''], ['lix-2.96.0-manual.tar.gz.sha256', 'checksum', ''],
      ['lix-2.96.0-x86_64-linux.tar.xz', 'binary-tarball', 'x86_64-linux'], ['lix-2.96.0-x86_64-linux.tar.xz.sha256', 'checksum', ''],
      ['manual/index.html', 'manual', ''],
    ]);
  });

  it('refuses a wrong checksum, a missing system, a file it cannot name: all at once', async () => {
    await put('lix-2.96.0-manual.tar.gz.sha256', `${h('other')}\n`);
    await put('lix-2.96.0-riscv64-linux.tar.xz', 'x');
    const err = await readAggregate(dir, { ...o, systems: ['x86_64-linux', 'aarch64-linux'] }).catch((e) => e);
    expect(err.message).toContain(`lix-2.96.0-manual.tar.gz.sha256 says ${h('other')}, but lix-2.96.0-manual.tar.gz hashes to ${h('content of lix-2.96.0-manual.tar.gz')}`);
    expect(err.message).toContain('missing lix-2.96.0-aarch64-linux.tar.xz');
    expect(err.message).toContain('files releng cannot name: lix-2.96.0-riscv64-linux.tar.xz');
    expect(err.hint).toContain('as Lix\'s releng/release-jobs.nix makes them');
  });
});

describe('nix-cache-info: created when absent, never rewritten', () => {
  let dir: string;
  const reader = (remote?: string): S3Reader => ({
    endpoint: 'http://test.invalid',
    list: async () => (remote === undefined ? [] : [{ key: 'nix-cache-info', size: remote.length }]),
    head: async () => undefined,
    getText: async () => remote,
    checkBucket: async () => undefined,
  });
  const bucket = { bucket: 'cache', prefix: '', url: 's3://cache' };
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-cacheinfo-'));
    await writeFile(path.join(dir, 'nix-cache-info'), 'StoreDir: /nix/store\n');
  });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('absent: put; the same: nothing; different: kept and reported, or replaced with --replace-cache-info', async () => {
    const keys = (p: Awaited<ReturnType<typeof planCache>>) => p.steps.flatMap((s) => s.actions).map((a: any) => `${a.key} ${a.reason}`);
    expect(keys(await planCache(reader(), bucket, { stagingDir: dir, paths: [] }))).toEqual(['nix-cache-info new']);
    expect(keys(await planCache(reader('StoreDir: /nix/store\n'), bucket, { stagingDir: dir, paths: [] }))).toEqual([]);
    const lix = 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 50\n';
    const kept = await planCache(reader(lix), bucket, { stagingDir: dir, paths: [] });
    expect(keys(kept)).toEqual([]);
    expect(kept.skipped).toContainEqual({ what: 's3://cache/nix-cache-info', reason: 'kept as it is (WantMassQuery: bucket 1, Nix (absent); Priority: bucket 50, Nix (absent)); Nix never rewrites an existing nix-cache-info; --replace-cache-info replaces it' });
    expect(keys(await planCache(reader(lix), bucket, { stagingDir: dir, paths: [], replaceCacheInfo: true }))).toEqual(['nix-cache-info changed']);
  });

  it('a cache of another store directory is refused', async () => {
    await expect(planCache(reader('StoreDir: /gnu/store\n'), bucket, { stagingDir: dir, paths: [] })).rejects.toThrow('s3://cache/nix-cache-info says StoreDir: /gnu/store, but the paths to upload are in /nix/store');
    expect(describeCacheInfoDiff('StoreDir: /nix/store\nPriority: 40\n', 'StoreDir: /nix/store\nPriority: 30\n')).toBe('Priority: bucket 40, Nix 30');
    expect(await readFile(path.join(dir, 'nix-cache-info'), 'utf8')).toBe('StoreDir: /nix/store\n');
  });
});

describe('encodeCacheMetadata: narinfo/.ls compression releng does when the staging store cannot', () => {
  let dir: string;
  const p = sp('hello');
  const hash = p.slice('/nix/store/'.length, '/nix/store/'.length + 32);
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-encode-'));
    await writeFile(path.join(dir, `${hash}.narinfo`), `StorePath: ${p}\nURL: nar/x.nar.zst\n`);
    await writeFile(path.join(dir, `${hash}.ls`), '{"version":1,"root":{"type":"directory","entries":{}}}');
  });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('writes zstd (narinfo) and xz (.ls) copies beside the plain staged files, which stay plain for Nix', async () => {
    const { encodeCacheMetadata, encodedDirName, readCacheMetadata } = await import('../../lib/nix/cache.ts');
    await encodeCacheMetadata(dir, [p], { narinfo: 'zstd', ls: 'xz', field: 'environments.x.cache.storeOptions' });
    const encoded = path.join(dir, encodedDirName, `${hash}.narinfo`);
    expect((await readCacheMetadata(encoded, 'zstd')).contentEncoding).toBe('zstd');
    expect(execFileSync('zstd', ['-dc', encoded], { encoding: 'utf8' })).toBe(`StorePath: ${p}\nURL: nar/x.nar.zst\n`);
    expect((await readCacheMetadata(path.join(dir, encodedDirName, `${hash}.ls`), 'xz')).contentEncoding).toBe('xz');
    expect(await readFile(path.join(dir, `${hash}.narinfo`), 'utf8')).toBe(`StorePath: ${p}\nURL: nar/x.nar.zst\n`);
  });

  it('an algorithm it cannot apply is an error naming the setting', async () => {
    const { encodeCacheMetadata } = await import('../../lib/nix/cache.ts');
    await expect(encodeCacheMetadata(dir, [p], { narinfo: 'br', field: 'environments.x.cache.storeOptions' }))
      .rejects.toThrow('environments.x.cache.storeOptions.narinfo-compression = br: releng can compress narinfo and .ls files with zstd or xz only');
  });
});
