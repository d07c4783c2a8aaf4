// The binary-cache verifier without a request per store path (issue 16): upload's closing
// verification proves NARs and .ls listings present with their sizes by one listing of the cache
// prefix, and narinfos and .ls byte for byte when the listed ETag is the MD5 of the staged bytes —
// no HEAD, no narinfo GET, counted at the server (s3rver's request log). What it no longer asks
// for must still be caught: a NAR deleted or cut short, a narinfo rewritten with a bad signature,
// a .ls replaced by garbage (closing verification and `releng verify`); --deep decodes zstd
// in-process and reports a NAR flipped in place and one that is not zstd.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Writers } from '../../lib/actions/index.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { makeContext } from '../../lib/config/context.ts';
import { createLogger } from '../../lib/cli/log.ts';
import { upload, type UploadSummary } from '../../lib/phases/upload.ts';
import { readBuildResult } from '../../lib/release/build-result.ts';
import { openEnvironment } from '../../lib/environment/open.ts';
import { makeCacheVerifier } from '../../lib/verify/cache.ts';
import { environmentPublicKey, releaseFromBuild, VerificationFailed, verifyRelease, verifyTarget, type VerifyReport } from '../../lib/verify/index.ts';
import { readTagRecord } from '../../lib/release/tag-record.ts';
import { loadVersion } from '../../lib/config/version.ts';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tagLikeReleng } from '../helpers/tagged.ts';
import { requireTool } from '../helpers/tools.ts';

const buckets = ['local-releases', 'local-cache', 'local-docs'];

describe('cache verification by listing (examples/hello, local environment, s3rver)', () => {
  let p: ScratchProject;
  let s3: TestS3;
  let initialCommit: string;

  /** Requests to the cache bucket since the last reset, as `METHOD key`. */
  const cacheRequests = async () => (await s3.requests())
    .map((l) => l.replace(/\?.*$/, ''))
    .filter((l) => / \/local-cache\/./.test(l)) // objects only (not the bucket checks or listings)
    .map((l) => l.replace(' /local-cache/', ' '));
  const counts = async () => {
    const r = await cacheRequests();
    return {
      head: r.filter((l) => l.startsWith('HEAD ')),
      narinfoGet: r.filter((l) => l.startsWith('GET ') && l.endsWith('.narinfo')),
      lsGet: r.filter((l) => l.startsWith('GET ') && l.endsWith('.ls')),
    };
  };

  async function uploadInProcess(wrapWriters?: (w: Writers) => Writers): Promise<UploadSummary> {
    const loaded = await loadConfig(path.join(p.dir, 'releng.json'));
    const version = await loadVersion(loaded.root, loaded.config.versionFile);
    const ctx = makeContext(loaded, version, { dryRun: false, json: false, noconfirm: false, verbose: false, noCheckGit: false, extra: {} }, createLogger({ quiet: true }));
    return upload(ctx, wrapWriters ? { wrapWriters } : {});
  }

  /** `releng verify` of the cache alone, in process, with a listing bounded to listKeys objects. */
  async function verifyCacheInProcess(listKeys: number): Promise<VerifyReport> {
    const loaded = await loadConfig(path.join(p.dir, 'releng.json'));
    const version = await loadVersion(loaded.root, loaded.config.versionFile);
    const ctx = makeContext(loaded, version, { dryRun: false, json: false, noconfirm: false, verbose: false, noCheckGit: false, extra: {} }, createLogger({ quiet: true }));
    const target = await openEnvironment(ctx);
    try {
      const release = await releaseFromBuild(ctx, await readBuildResult(ctx.releaseDir), await readTagRecord(ctx.root));
      return await verifyRelease(ctx, verifyTarget(ctx, target, await environmentPublicKey(ctx, target)), { release, verifiers: [makeCacheVerifier({ listKeys })] });
    } finally {
      await target.close();
    }
  }

  /** Empties the buckets, the bare remote and upload's local memos (a first upload); keeps the build and the staged cache. */
  async function resetPublished() {
    for (const b of buckets) for (const o of await s3.store.list(b, '')) await s3.store.delete(b, o.key);
    await rm(path.join(p.dir, '.releng', 'upload-state'), { recursive: true, force: true });
    await rm(p.remote, { recursive: true, force: true });
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', p.remote]);
    p.git('push', '-q', 'origin', `${initialCommit}:refs/heads/main`);
    await s3.resetLog();
  }

  const cacheKeys = async () => (await s3.store.list('local-cache', '')).map((o) => o.key).sort();
  const narinfoText = async (key: string) => (await s3.store.getText('local-cache', key))!;
  /** A NAR key and the narinfo and .ls of the same path (a path with a listing). */
  async function pathWithListing(skip = 0) {
    const ls = (await cacheKeys()).filter((k) => k.endsWith('.ls'))[skip]!;
    const narinfo = ls.replace(/\.ls$/, '.narinfo');
    const nar = /^URL: (.*)$/m.exec(await narinfoText(narinfo))![1]!;
    return { ls, narinfo, nar };
  }
  /** Rewrites an object behind releng's back (another writer; its sha256 metadata is not ours). */
  let n = 0;
  const put = async (key: string, body: Buffer | string, contentType: string) => {
    const file = path.join(p.dir, '..', `damage-${n++}`);
    await writeFile(file, body);
    await s3.store.put({ bucket: 'local-cache', key, body: { file }, size: Buffer.byteLength(body), sha256: createHash('sha256').update(body).digest('hex'), contentType });
  };

  beforeAll(async () => {
    requireTool('nix-build', 'nix-bin');
    requireTool('git', 'git');
    requireTool('zstd', 'zstd');
    s3 = await startTestS3(buckets);
    p = await scratchProject();
    await p.editConfig((c) => { c.environments.local.s3.endpoint = s3.endpoint; });
    p.git('commit', '-q', '-am', 'local environment: the test S3 server');
    initialCommit = p.git('rev-parse', 'HEAD');
    p.git('push', '-q', 'origin', 'main');
    await tagLikeReleng(p);
    const r = await releng(['build', '--json'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    await s3?.stop();
    await p?.cleanup();
  });

  it('a first upload: the closing verification sends no HEAD and no narinfo or .ls GET to the cache, and proves every narinfo and .ls by the listing', async () => {
    await resetPublished();
    const summary = await uploadInProcess();
    const c = await counts();
    expect(c.head).toEqual([]);
    expect(c.narinfoGet).toEqual([]);
    expect(c.lsGet).toEqual([]);
    const checked = summary.verified!['binary cache']!;
    expect(checked['narinfos']).toBeGreaterThan(5);
    expect(checked['narinfos proven by listing']).toBe(checked['narinfos']);
    expect(checked['listings proven by listing']).toBe(checked['listings']);
    expect(checked['listings']).toBe((await cacheKeys()).filter((k) => k.endsWith('.ls')).length);
    // Nix reads the cache back (the proof is no weaker than what Nix needs).
    const r = await releng(['verify', '--json'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
  });

  it('a no-op re-run: no PUT, no HEAD, no narinfo or .ls GET to the cache, and no narinfo signature checked twice', async () => {
    // Past the staged check's racy window (2 s): the staged files are then settled, so the check
    // vouches for their signatures and the closing verification does not check them again.
    await new Promise((r) => setTimeout(r, 2100));
    await s3.resetLog();
    const summary = await uploadInProcess();
    expect(summary.applied).toEqual({});
    const c = await counts();
    expect(c.head).toEqual([]);
    expect(c.narinfoGet).toEqual([]);
    expect(c.lsGet).toEqual([]);
    const checked = summary.verified!['binary cache']!;
    expect(checked['narinfos']).toBeGreaterThan(5);
    expect(checked['signatures checked before upload']).toBe(checked['narinfos']);
    expect((await cacheRequests()).filter((l) => l.startsWith('PUT '))).toEqual([]);
  });

  it('damage done after the cache was put is reported by the closing verification (upload exits non-zero) and by `releng verify`', async () => {
    await resetPublished();
    let a!: Awaited<ReturnType<typeof pathWithListing>>;
    let b!: typeof a;
    let c!: typeof a;
    let d!: typeof a;
    // Damage the cache while the upload pushes git (its last write, after every cache object).
    const damage = async () => {
      [a, b, c, d] = [await pathWithListing(0), await pathWithListing(1), await pathWithListing(2), await pathWithListing(3)];
      await s3.store.delete('local-cache', a.nar);
      const bNar = await readObject(b.nar);
      await put(b.nar, bNar.subarray(0, bNar.length - 7), 'application/x-nix-nar');
      const text = await narinfoText(c.narinfo);
      await put(c.narinfo, text.replace(/^Sig: ([^:]+):(.*)$/m, (_m, name: string, sig: string) => `Sig: ${name}:${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`), 'text/x-nix-narinfo');
      await put(d.ls, 'this is not a listing', 'application/json');
    };
    let failed: unknown;
    try {
      await uploadInProcess((w) => ({ ...w, git: { push: async (...args) => { await damage(); return w.git!.push(...args); } } }));
    } catch (e) { failed = e; }
    expect(failed).toBeInstanceOf(VerificationFailed);
    const problems = (failed as VerificationFailed).report.problems.filter((x) => x.destination === 'binary cache');
    const expectFound = (ps: { where: string; what: string }[]) => {
      const at = (key: string) => ps.filter((x) => x.where === `s3://local-cache/${key}`).map((x) => x.what).join(' | ');
      expect(at(a.nar)).toMatch(/^missing: the NAR of/);
      expect(at(b.nar)).toMatch(/^size \d+, but .* says FileSize \d+/);
      expect(at(c.narinfo)).toMatch(/signature/i);
      expect(at(d.ls)).toMatch(/is not JSON/);
    };
    expectFound(problems);
    // The same four from `releng verify` (no listing handed in: it lists the small cache whole, no
    // HEAD). The staged cache (release/cache/local) proves the narinfos and .ls the listing shows
    // unchanged: only the rewritten narinfo and .ls are read.
    await s3.resetLog();
    const r = await releng(['verify', '--json'], { cwd: p.dir });
    expect(r.code).not.toBe(0);
    const report = JSON.parse(r.stdout).result;
    expectFound(report.problems);
    const v = await counts();
    expect(v.head).toEqual([]);
    expect(v.narinfoGet).toEqual([`GET ${c.narinfo}`]);
    expect(v.lsGet).toEqual([`GET ${d.ls}`]);
    expect(report.checked['binary cache']['narinfos proven by listing']).toBe(report.checked['binary cache']['narinfos'] - 1);
    // A listing bounded below the cache's size covers the keys up to its last one; the rest is asked
    // object by object (HEADs), and the four are found all the same.
    await s3.resetLog();
    const bounded = await verifyCacheInProcess(10);
    expectFound(bounded.problems);
    expect(bounded.checked['binary cache']!['objects listed']).toBe(10);
    const b2 = await counts();
    // The 10 keys listed are narinfos and .ls (hashes sort before "nar/"): every NAR is beyond them.
    expect(b2.head.length).toBeGreaterThan(0);
    expect(b2.head.every((l) => l.startsWith('HEAD nar/'))).toBe(true);
    expect(bounded.problems.filter((x) => x.destination === 'binary cache').length).toBe(problems.length);
  });

  it('--deep decodes zstd in-process: a NAR flipped in place and a NAR that is not zstd are reported; the intact ones are hashed', async () => {
    await resetPublished();
    await uploadInProcess();
    const ok = await releng(['verify', '--deep', '--json'], { cwd: p.dir });
    expect(ok.code, ok.stderr).toBe(0);
    const okReport = JSON.parse(ok.stdout).result;
    expect(okReport.checked['binary cache']['NARs hashed']).toBe(okReport.checked['binary cache']['narinfos']);
    const a = await pathWithListing(0);
    const b = await pathWithListing(1);
    const aNar = await readObject(a.nar);
    const flipped = Buffer.from(aNar);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x55;
    await put(a.nar, flipped, 'application/x-nix-nar');
    const bNar = await readObject(b.nar);
    await put(b.nar, Buffer.alloc(bNar.length, 0x41), 'application/x-nix-nar');
    // The quick check sees sizes only: both pass it (same sizes).
    const quick = await releng(['verify', '--json'], { cwd: p.dir });
    expect(quick.code, quick.stderr).toBe(0);
    const deep = await releng(['verify', '--deep', '--json'], { cwd: p.dir });
    expect(deep.code).not.toBe(0);
    const ps: { where: string; what: string }[] = JSON.parse(deep.stdout).result.problems;
    const at = (key: string) => ps.filter((x) => x.where === `s3://local-cache/${key}`).map((x) => x.what).join(' | ');
    expect(at(a.nar)).toMatch(/FileHash .* but .* says/);
    expect(at(b.nar)).toMatch(/not zstd|decompress/);
    expect(ps.filter((x) => x.where.startsWith('s3://local-cache/')).length).toBe(2);
  });

  async function readObject(key: string): Promise<Buffer> {
    const s = await s3.store.getStream('local-cache', key);
    const chunks: Buffer[] = [];
    for await (const c of s!) chunks.push(Buffer.from(c));
    return Buffer.concat(chunks);
  }
});
