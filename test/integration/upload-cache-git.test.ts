// upload, complete (issue 4): the signed binary cache, fetched back by Nix over HTTP with the
// environment's key as the only trusted key; the tag on the bare remote (git ls-remote); and
// interrupting upload at every step, then re-running, completes it with no object PUT twice.
// The local environment points at one s3rver for the whole file (counted by its request log).
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../lib/actions/index.ts';
import type { Writers } from '../../lib/actions/index.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { makeContext } from '../../lib/config/context.ts';
import { describeError } from '../../lib/core/errors.ts';
import { createLogger } from '../../lib/cli/log.ts';
import { upload, type UploadSummary } from '../../lib/phases/upload.ts';
import { planCache } from '../../lib/upload/cache.ts';
import type { TagRecord } from '../../lib/release/tag-record.ts';
import { loadVersion } from '../../lib/config/version.ts';
import { render } from '../../lib/actions/index.ts';
import { releng } from '../helpers/cli.ts';
import { expectGolden } from '../helpers/golden.ts';
import { repoRoot, scratchProject, type ScratchProject } from '../helpers/project.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tagLikeReleng } from '../helpers/tagged.ts';
import { requireTool } from '../helpers/tools.ts';

const buckets = ['local-releases', 'local-cache', 'local-docs', 'compressed-cache'];
/** Nix remembers narinfos per cache URL (~/.cache/nix): make every fetch ask the server, as a new user's would. */
const fresh = ['--option', 'narinfo-cache-positive-ttl', '0', '--option', 'narinfo-cache-negative-ttl', '0'];

/** Which write an injected failure hits: the Nth write matching `match`. */
interface FailAt { step: string; n: number; match: (w: { op: 'put' | 'push'; bucket?: string; key?: string }) => boolean }

/** Wraps the real writers; throws (before writing) at the Nth matching write. */
function failingAt(f: FailAt) {
  let seen = 0;
  const hit = (w: Parameters<FailAt['match']>[0]) => f.match(w) && ++seen === f.n;
  return (real: Writers): Writers => ({
    s3: {
      put: async (req) => { if (hit({ op: 'put', bucket: req.bucket, key: req.key })) throw new Error(`injected failure at ${req.key}`); return real.s3!.put(req); },
      delete: (b, k) => real.s3!.delete(b, k),
      copy: (a, b) => real.s3!.copy(a, b),
    },
    git: {
      push: async (cwd, remote, refspecs, opts) => { if (hit({ op: 'push' })) throw new Error('injected failure at git push'); return real.git!.push(cwd, remote, refspecs, opts); },
    },
  });
}

describe('upload of the signed cache and the git push (examples/hello, local environment)', () => {
  let p: ScratchProject;
  let s3: TestS3;
  let record: TagRecord;
  let initialCommit: string;
  let publicKey: string;
  let result: any;

  const putKeys = async () => (await s3.requests()).filter((l) => l.startsWith('PUT ')).map((l) => l.slice(4).replace(/\?.*$/, ''));
  const lsRemote = () => execFileSync('git', ['ls-remote', p.remote], { encoding: 'utf8' });

  async function uploadInProcess(fail?: FailAt): Promise<UploadSummary> {
    const loaded = await loadConfig(path.join(p.dir, 'releng.json'));
    const version = await loadVersion(loaded.root, loaded.config.versionFile);
    const ctx = makeContext(loaded, version, { dryRun: false, json: false, noconfirm: false, verbose: false, noCheckGit: false, extra: {} }, createLogger({ quiet: true }));
    return upload(ctx, fail ? { wrapWriters: failingAt(fail) } : {});
  }

  /** Empties the buckets and the bare remote (keeps the build, the staged cache and the key), and the request log. */
  async function resetPublished() {
    for (const b of buckets) for (const o of await s3.store.list(b, '')) await s3.store.delete(b, o.key);
    await s3.resetLog();
    await rm(p.remote, { recursive: true, force: true });
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', p.remote]);
    p.git('push', '-q', 'origin', `${initialCommit}:refs/heads/main`);
  }

  beforeAll(async () => {
    requireTool('nix-build', 'nix-bin');
    requireTool('git', 'git');
    requireTool('zstd', 'zstd');
    // One S3 server for the file (the local environment would start one per upload run).
    s3 = await startTestS3(buckets);
    p = await scratchProject();
    await p.editConfig((c) => { c.environments.local.s3.endpoint = s3.endpoint; });
    p.git('commit', '-q', '-am', 'local environment: the test S3 server');
    initialCommit = p.git('rev-parse', 'HEAD');
    p.git('push', '-q', 'origin', 'main');
    record = await tagLikeReleng(p);
    const r = await releng(['build', '--json'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    result = JSON.parse(r.stdout).result;
  });
  afterAll(async () => {
    await s3?.stop();
    await p?.cleanup();
  });

  it('--dry-run stages the cache locally, prints the cache and git writes, and writes nothing', async () => {
    await s3.resetLog();
    const r = await releng(['upload', '--dry-run'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('generated the local cache signing key .releng/local/cache-signing.key');
    publicKey = (await readFile(path.join(p.dir, '.releng/local/cache-signing.key.pub'), 'utf8')).trim();
    expect(publicKey).toMatch(/^hello-local-1:[A-Za-z0-9+/]{43}=$/);
    expect(r.stderr).toContain(`public key (trusted-public-keys): ${publicKey}`);
    expect(r.stderr).toMatch(/\[dry-run\] s3 put s3:\/\/local-cache\/nar\/[0-9a-z]{52}\.nar\.zst \(application\/x-nix-nar/);
    expect(r.stderr).toContain('cache narinfos, level 0 of');
    expect(r.stderr).toContain(`[dry-run] git push --atomic ../remote.git ${record.mergeCommit}:refs/heads/main refs/tags/1.0.0:refs/tags/1.0.0`);
    const lines = await s3.requests();
    expect(lines.some((l) => /^(GET|HEAD) /.test(l))).toBe(true);
    expect(lines.filter((l) => /^(PUT|POST|DELETE) /.test(l))).toEqual([]);
    expect(lsRemote()).not.toContain('refs/tags/1.0.0');
  });

  it('--dry-run --json prints the whole plan, every action in order, with the run id (golden)', async () => {
    const r = await releng(['upload', '--dry-run', '--json'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ ok: true, command: 'upload', result: { dryRun: true } });
    expect(out.runId).toMatch(/^[A-Za-z0-9_-]{12}$/);
    expect(r.stderr).toContain(`releng ${JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')).version} upload: run ${out.runId}`);
    // The JSON plan is the printed plan: the same actions in the same order.
    const printed = r.stderr.split('\n').filter((l) => l.includes('[dry-run] ')).map((l) => l.replace(/^.*\[dry-run\] /, ''));
    const actions = out.plan.steps.flatMap((s: any) => s.actions);
    expect(actions.map((a: any) => render(a))).toEqual(printed);
    expect(actions.map((a: any) => a.kind)).toContain('git.push');
    // Golden, with what changes per run (hashes, sizes, paths, ports) replaced by placeholders.
    const normal = JSON.stringify(out.plan, null, 2)
      .replaceAll(p.dir, '<project>').replaceAll(path.dirname(p.dir), '<tmp>')
      .replace(/"md5": "[A-Za-z0-9+/]{22}=="/g, '"md5": "<md5>"').replace(/\b[0-9a-f]{64}\b/g, '<sha256>').replace(/\b[0-9a-f]{40}\b/g, '<commit>')
      .replace(/\b[0-9a-df-np-sv-z]{52}\b/g, '<nar-hash>').replace(/\b[0-9a-df-np-sv-z]{32}\b/g, '<store-hash>')
      .replace(/(\\?"size\\?": ?)\d+/g, '$1"<n>"').replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
      .replace(/, \d+ B,/g, ', <n> B,').replace(/"bytes": \d+/g, '"bytes": "<n>"');
    await expectGolden(normal + '\n', 'plans/upload-dry-run-hello.json');
  });

  let baseline: string[];
  it('upload puts the cache (every narinfo after its NAR), the release, the docs, then pushes branch and tag', async () => {
    await s3.resetLog();
    const summary = await uploadInProcess();
    expect(summary.cachePublicKey).toBe(publicKey);
    expect(summary.gitRemote).toBe('../remote.git');
    // The result's URLs answer after the run (this S3 server outlives it), read with a plain HTTP client.
    expect((await fetch(`${summary.urls.releases}SHA256SUMS`)).status).toBe(200);
    expect(await (await fetch(`${summary.urls.cache}/nix-cache-info`)).text()).toContain('StoreDir: /nix/store');
    expect((await fetch(summary.urls.manifest)).status).toBe(200);
    // Image tags with the digests the registry reported; the embedded registry is named by serve's fixed port.
    expect(summary.images.map((i) => i.reference).sort()).toEqual(['127.0.0.1:5000/hello:1.0', '127.0.0.1:5000/hello:1.0.0', '127.0.0.1:5000/hello:latest']);
    for (const i of summary.images) expect(i.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    baseline = await putKeys();
    expect(new Set(baseline).size).toBe(baseline.length);
    const firstOf = (re: RegExp) => baseline.findIndex((k) => re.test(k));
    const lastOf = (re: RegExp) => baseline.length - 1 - [...baseline].reverse().findIndex((k) => re.test(k));
    // cache NARs → narinfos → release files → root manifest → docs.
    expect(lastOf(/^\/local-cache\/nar\//)).toBeLessThan(firstOf(/\.narinfo$/));
    expect(lastOf(/\.narinfo$/)).toBeLessThan(firstOf(/^\/local-releases\//));
    expect(lastOf(/^\/local-releases\/hello\//)).toBeLessThan(firstOf(/^\/local-releases\/manifest\.nix$/));
    expect(lastOf(/^\/local-releases\//)).toBeLessThan(firstOf(/^\/local-docs\//));
    expect(lsRemote()).toContain(`${record.releaseCommit}\trefs/tags/1.0.0^{}`);
    expect(lsRemote()).toContain(`${record.mergeCommit}\trefs/heads/main`);
  });

  it('Nix fetches the release closure back over HTTP with only the environment key trusted; another key is refused', async () => {
    const stores = await mkdtemp(path.join(os.tmpdir(), 'releng-stores-'));
    try {
      const build = result.manifest['x86_64-linux'];
      const fetch = (store: string, key: string) => execFileSync('nix', ['copy', '--from', `${s3.endpoint}/local-cache`, '--to', path.join(stores, store),
        '--option', 'trusted-public-keys', key, ...fresh, build], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      fetch('good', publicKey);
      expect(execFileSync(path.join(stores, 'good', build, 'bin/hello'), { encoding: 'utf8' })).toContain('hello 1.0.0, x86_64-linux');
      // Every derivation too (nix copy --derivation put their closures in).
      execFileSync('nix', ['copy', '--from', `${s3.endpoint}/local-cache`, '--to', path.join(stores, 'good'), '--option', 'trusted-public-keys', publicKey, ...fresh,
        '--derivation', ...result.drvs], { stdio: ['ignore', 'pipe', 'pipe'] });
      const other = execFileSync('nix', ['key', 'convert-secret-to-public'], {
        input: execFileSync('nix', ['key', 'generate-secret', '--key-name', 'someone-else-1']), encoding: 'utf8',
      }).trim();
      let refused = '';
      try { fetch('bad', other); } catch (e: any) { refused = String(e.stderr); }
      expect(refused).toContain('lacks a valid signature');
    } finally {
      await rm(stores, { recursive: true, force: true });
    }
  });

  it('a second upload makes no PUT and no git push', async () => {
    await s3.resetLog();
    const summary = await uploadInProcess();
    expect(await putKeys()).toEqual([]);
    expect(summary.applied).toEqual({});
  });

  const inCache = (w: { bucket?: string }) => w.bucket === 'local-cache';
  const scenarios: FailAt[] = [
    { step: 'cache NARs and listings', n: 3, match: (w) => inCache(w) && !!w.key?.startsWith('nar/') },
    { step: 'cache narinfos, level 0', n: 2, match: (w) => inCache(w) && !!w.key?.endsWith('.narinfo') },
    // The 12th of 15 narinfos: in a later level (the closure of hello is three levels deep).
    { step: 'cache narinfos, level', n: 12, match: (w) => inCache(w) && !!w.key?.endsWith('.narinfo') },
    { step: 'release files', n: 5, match: (w) => w.bucket === 'local-releases' && !!w.key?.startsWith('hello/') },
    { step: 'root manifest.nix', n: 1, match: (w) => w.bucket === 'local-releases' && w.key === 'manifest.nix' },
    { step: 'manual to', n: 2, match: (w) => w.bucket === 'local-docs' },
    { step: 'git push', n: 1, match: (w) => w.op === 'push' },
  ];

  for (const s of scenarios) {
    it(`interrupted in "${s.step}", a re-run completes the release with no object PUT twice`, async () => {
      await resetPublished();
      let message = '';
      try { await uploadInProcess(s); } catch (e) { message = describeError(e); }
      expect(message).toContain(`${s.step}`);
      expect(message).toContain('failed at:');
      expect(message).toContain('injected failure');
      expect(message).toContain('re-run `releng upload`');
      const before = await putKeys();
      expect(before.length).toBeLessThanOrEqual(baseline.length);
      if (s.step !== 'cache NARs and listings') expect(message).toContain('done before it: cache NARs and listings');
      expect(lsRemote()).not.toContain('refs/tags/1.0.0');

      await uploadInProcess();
      const all = await putKeys();
      const twice = all.filter((k, i) => all.indexOf(k) !== i);
      expect(twice, 'objects PUT twice').toEqual([]);
      expect(new Set(all)).toEqual(new Set(baseline));
      expect(lsRemote()).toContain(`${record.releaseCommit}\trefs/tags/1.0.0^{}`);
    });
  }

  it('a new signing key restages the cache, and Nix accepts the paths with the new key', async () => {
    await rm(path.join(p.dir, '.releng/local/cache-signing.key'));
    await resetPublished();
    const summary = await uploadInProcess();
    expect(summary.cachePublicKey).not.toBe(publicKey);
    const store = await mkdtemp(path.join(os.tmpdir(), 'releng-store-'));
    try {
      execFileSync('nix', ['copy', '--from', `${s3.endpoint}/local-cache`, '--to', store, '--option', 'trusted-public-keys', summary.cachePublicKey!, ...fresh,
        result.manifest['x86_64-linux']], { stdio: ['ignore', 'pipe', 'pipe'] });
    } finally {
      await rm(store, { recursive: true, force: true });
    }
  });

  it('a narinfo compressed by a newer Nix (narinfo-compression=zstd) is served with Content-Encoding zstd, and Nix reads it', async () => {
    // Nix 2.8 ignores narinfo-compression, so compress the staged narinfo as newer Nix writes it.
    const staging = await mkdtemp(path.join(os.tmpdir(), 'releng-zstd-cache-'));
    const store = await mkdtemp(path.join(os.tmpdir(), 'releng-store-'));
    try {
      const build: string = result.manifest['x86_64-linux'];
      const key = path.join(p.dir, '.releng/local/cache-signing.key');
      execFileSync('nix', ['copy', '--to', `file://${staging}?compression=zstd&secret-key=${key}`, build]);
      const narinfo = path.join(staging, `${path.basename(build).slice(0, 32)}.narinfo`);
      execFileSync('zstd', ['-q', '-f', narinfo, '-o', `${narinfo}.zst`]);
      execFileSync('mv', [`${narinfo}.zst`, narinfo]);
      const plan = await planCache(s3.store, { bucket: 'compressed-cache', prefix: '', url: 's3://compressed-cache' }, { stagingDir: staging, paths: [build], narinfoCompression: 'zstd' });
      await apply(plan, { log: createLogger({ quiet: true }), dryRun: false, writers: { s3: s3.store } });
      const res = await fetch(`${s3.endpoint}/compressed-cache/${path.basename(narinfo)}`);
      expect(res.headers.get('content-encoding')).toBe('zstd');
      const pub = (await readFile(`${key}.pub`, 'utf8')).trim();
      execFileSync('nix', ['copy', '--from', `${s3.endpoint}/compressed-cache`, '--to', store, '--option', 'trusted-public-keys', pub, ...fresh, build], { stdio: ['ignore', 'pipe', 'pipe'] });
    } finally {
      await rm(staging, { recursive: true, force: true });
      await rm(store, { recursive: true, force: true });
    }
  });
});
