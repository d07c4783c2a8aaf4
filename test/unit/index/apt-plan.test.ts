// The APT planner on a file tree (the S3 reader/writer contract on a directory, lib/fs/store.ts),
// applied by the real apply(): the options the integration tests leave at their defaults
// (binary-all-only, emptyIndexes), and what it does with a published index that is not what the
// published Release lists (its by-hash copy when that one is right; a refusal when no copy is).
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../../lib/actions/index.ts';
import { createLogger } from '../../../lib/cli/log.ts';
import { aptRepositorySchema } from '../../../lib/config/grants.ts';
import { sha256Text } from '../../../lib/hashing/checksums.ts';
import { fsStore, fsPathOf } from '../../../lib/fs/store.ts';
import { exportPublicKey, poolPath, resolveSigner, stanzaOf, stopGpgAgent } from '../../../lib/index/apt.ts';
import { planApt, type AptInputs, type AptPlanOut } from '../../../lib/index/apt-plan.ts';
import { makeDeb, makeGpgHome } from '../../helpers/apt.ts';

const log = createLogger({ quiet: true });
let dir: string;
let repoDir: string;
let inputs: Omit<AptInputs, 'accepted' | 'op' | 'now' | 'workDir'>;
const fs = fsStore();
// The file tree has no download (index reads S3 only): here, a copy and its sha256.
const store = { ...fs, async download(bucket: string, key: string, to: string) { await copyFile(fsPathOf(bucket, key), to); const body = await readFile(to); return { size: body.length, sha256: sha256Text(body) }; } };
const out = (): AptPlanOut => ({ byHash: [], indexes: [], keysAndPage: [], release: [], deletions: [], ledger: [], skipped: [], changes: [] });
const steps = (o: AptPlanOut) => ({ steps: [o.byHash, o.indexes, o.keysAndPage, o.release, o.deletions, o.ledger].map((actions, i) => ({ title: `step ${i}`, actions })), skipped: o.skipped });
const file = (rel: string) => readFile(fsPathOf(repoDir, rel), 'utf8');

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'releng-apt-plan-'));
  repoDir = path.join(dir, 'repo');
  const home = path.join(dir, 'gnupg');
  makeGpgHome(home, 'test archive <t@example.invalid>');
  const signer = await resolveSigner({ gnupgHome: home }, 'apt.signingKey');
  const keyring = path.join(dir, 'key.gpg');
  await exportPublicKey(signer, keyring);
  const repo = aptRepositorySchema.parse({ root: 's3://repo', suite: 'stable', architectures: ['amd64', 'arm64'], origin: 'T', architectureAll: 'binary-all-only', emptyIndexes: true });
  inputs = { reader: store, repo: { ...repo, root: `file://${repoDir}` }, publicUrl: 'https://example.invalid/apt', signer, keyring };
});

afterAll(async () => {
  await stopGpgAgent(path.join(dir, 'gnupg'));
  await rm(dir, { recursive: true, force: true });
});

async function run(accepted: AptInputs['accepted']): Promise<AptPlanOut> {
  const work = await mkdtemp(path.join(dir, 'work-'));
  const o = out();
  await planApt({ ...inputs, accepted, op: { kind: 'index' }, now: new Date(), workDir: work }, o);
  await apply(steps(o), { log, dryRun: false, writers: { s3: store } });
  return o;
}

describe('planApt on a file tree', () => {
  it('binary-all-only: arch:all packages only in binary-all; emptyIndexes: an empty Packages and Contents for an architecture without packages', async () => {
    const accepted = [];
    for (const [pkg, arch] of [['hello', 'amd64'], ['hello-doc', 'all']] as const) {
      const deb = makeDeb(dir, { pkg, version: '1.0', arch });
      const pool = poolPath('main', { Package: pkg, Version: '1.0', Architecture: arch });
      await store.put({ bucket: repoDir, key: pool, body: { file: deb }, size: (await readFile(deb)).length, sha256: sha256Text(await readFile(deb)), contentType: 'application/vnd.debian.binary-package' });
      accepted.push({ suite: 'stable', component: 'main', stanza: await stanzaOf(deb, pool), file: deb });
    }
    await run(accepted);
    const release = await file('dists/stable/Release');
    expect(release).not.toContain('No-Support-for-Architecture-all');
    expect(release).toContain('Architectures: amd64 arm64 all');
    expect(await file('dists/stable/main/binary-amd64/Packages')).not.toContain('hello-doc');
    expect(await file('dists/stable/main/binary-all/Packages')).toContain('Package: hello-doc');
    expect(await file('dists/stable/main/binary-arm64/Packages')).toBe('');
    expect(release).toContain(' main/binary-arm64/Packages\n');
    expect(await file('dists/stable/main/Contents-arm64')).toBe('');
    expect(await file('dists/stable/main/Contents-amd64')).toMatch(/^usr\/bin\/hello\s+hello$/m);
    expect(await file('dists/stable/main/Contents-all')).toMatch(/^usr\/bin\/hello-doc\s+hello-doc$/m);
    // The key and the page beside the repository.
    expect(await file('t-archive-keyring.asc')).toContain('BEGIN PGP PUBLIC KEY BLOCK');
    expect(await file('index.html')).toContain('Suites: stable');
    // Applied once, planned again: nothing to do.
    const again = out();
    await planApt({ ...inputs, accepted: [], op: { kind: 'index' }, now: new Date(), workDir: await mkdtemp(path.join(dir, 'work-')) }, again);
    expect(steps(again).steps.flatMap((s) => s.actions)).toEqual([]);
  });

  it('reads a published index by its by-hash copy when the plain one is not what Release lists, and puts the plain one back', async () => {
    const plain = 'dists/stable/main/binary-amd64/Packages';
    const right = await file(plain);
    await writeFile(fsPathOf(repoDir, plain), right.replace('Package: hello', 'Package: evil'));
    const o = await run([]);
    expect(o.indexes.map((a) => (a as { key: string }).key)).toEqual([plain]);
    expect(await file(plain)).toBe(right);
  });

  it('refuses to rebuild a suite from an index no copy of which is what Release lists, naming it', async () => {
    const plain = 'dists/stable/main/binary-amd64/Packages';
    const right = await file(plain);
    const byHash = `dists/stable/main/binary-amd64/by-hash/SHA256/${sha256Text(right)}`;
    for (const k of [plain, byHash]) await writeFile(fsPathOf(repoDir, k), right.replace('Package: hello', 'Package: evil'));
    await expect(planApt({ ...inputs, accepted: [], op: { kind: 'index' }, now: new Date(), workDir: await mkdtemp(path.join(dir, 'work-')) }, out()))
      .rejects.toThrow(`lists main/binary-amd64/Packages as ${Buffer.byteLength(right)} bytes, sha256 ${sha256Text(right)}, and no copy of it is that`);
  });
});
