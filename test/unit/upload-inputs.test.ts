// Local inputs against build-result.json before any write (issue 9): one byte flipped in an
// artifact or a manual page, with the size and mtime put back (utimes), refuses the upload naming
// the file, even when the hash memo remembered the file (ctime and the racy rule give it away).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BuildResult } from '../../lib/release/build-result.ts';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { openHashCache } from '../../lib/hashing/hash-cache.ts';
import { checkLocalInputs } from '../../lib/upload/inputs.ts';

let release: string;
let state: string;
const files: Record<string, string> = {
  'x/x-1.0/x-1.0.tar.xz': 'tarball bytes',
  'x/x-1.0/manual/index.html': '<h1>manual</h1>',
  'x/x-1.0/SHA256SUMS': 'sums',
  'manifest.nix': '{ }',
};

async function writeOld(file: string, content: string) {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  const t = Date.now() / 1000 - 60;
  await utimes(file, t, t);
}

/** Changes one byte keeping size and mtime, as a careless tool or a bad disk might. */
async function flipByte(file: string) {
  const before = await stat(file);
  const { readFile } = await import('node:fs/promises');
  const b = await readFile(file);
  b[0] = b[0]! ^ 0x20;
  await writeFile(file, b);
  await utimes(file, before.atime, before.mtime);
  expect((await stat(file)).size).toBe(before.size);
  expect((await stat(file)).mtimeMs).toBe(before.mtimeMs);
}

const result = (): BuildResult => ({
  schemaVersion: 1, project: 'x', version: '1.0', major: '1.0', official: true, releaseName: 'x', profile: 'all', systems: ['x86_64-linux'], dockerSystems: [],
  gitRevision: 'a'.repeat(40), tag: '1.0', createdAt: '', releaseDir: 'x/x-1.0', manifest: {}, dockerImages: [], drvs: [], outPaths: [],
  artifacts: Object.entries(files).map(([p, c]) => ({ path: p, size: Buffer.byteLength(c), sha256: sha256Text(c), kind: 'manual' as const })),
});

beforeEach(async () => {
  release = await mkdtemp(path.join(os.tmpdir(), 'releng-inputs-'));
  state = await mkdtemp(path.join(os.tmpdir(), 'releng-inputs-state-'));
  for (const [p, c] of Object.entries(files)) await writeOld(path.join(release, 'artifacts', p), c);
  await writeOld(path.join(release, 'manual', 'index.html'), files['x/x-1.0/manual/index.html']!);
});
afterEach(async () => { await rm(release, { recursive: true, force: true }); await rm(state, { recursive: true, force: true }); });

describe('checkLocalInputs', () => {
  it('passes an untouched tree and returns sha256 and MD5 of each file', async () => {
    const checked = await checkLocalInputs(release, result(), { md5: true });
    const tar = checked.artifacts.get('x/x-1.0/x-1.0.tar.xz')!;
    expect(tar.sha256).toBe(sha256Text('tarball bytes'));
    expect(tar.md5).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    expect(checked.manual.map((f) => f.rel)).toEqual(['index.html']);
    expect(checked.manual[0]!.md5).toBeDefined();
  });

  it('refuses an artifact with one byte flipped (same size, same mtime), though the memo had hashed it', async () => {
    const memo = await openHashCache(state, { racyMs: 0 });
    await checkLocalInputs(release, result(), { hashCache: memo });
    await memo.save();
    const file = path.join(release, 'artifacts/x/x-1.0/x-1.0.tar.xz');
    await flipByte(file);
    const err = await checkLocalInputs(release, result(), { hashCache: await openHashCache(state, { racyMs: 0 }) }).then(() => undefined, (e) => e);
    expect(err?.message).toContain(`${file}: 13 bytes, sha256 ${sha256Text('Tarball bytes')}; build-result.json recorded 13 bytes, sha256 ${sha256Text('tarball bytes')}`);
    expect(err?.hint).toContain('nothing was uploaded');
  });

  it('refuses a manual page that differs from the one build recorded, and one build never recorded', async () => {
    await flipByte(path.join(release, 'manual/index.html'));
    await writeOld(path.join(release, 'manual/extra.html'), 'x');
    const err = await checkLocalInputs(release, result()).then(() => undefined, (e) => e);
    expect(err?.message).toContain('release/manual does not match the manual build recorded');
    expect(err?.message).toContain(`${path.join(release, 'manual/index.html')}: 15 bytes`);
    expect(err?.message).toContain(`${path.join(release, 'manual/extra.html')}: not a file build recorded`);
  });

  it('names a missing artifact', async () => {
    await rm(path.join(release, 'artifacts/manifest.nix'));
    await expect(checkLocalInputs(release, result())).rejects.toThrow(`${path.join(release, 'artifacts/manifest.nix')}: missing`);
  });
});

describe('which files get an MD5 (the listing proof of the closing verification, issue 16)', () => {
  it("'proof' reads the MD5 of files up to MD5_PROOF_MAX_BYTES only; true (Content-MD5) of every file", async () => {
    const { MD5_PROOF_MAX_BYTES } = await import('../../lib/hashing/checksums.ts');
    const { fileDigest } = await import('../../lib/upload/inputs.ts');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-md5-'));
    try {
      const small = path.join(dir, 'small');
      const large = path.join(dir, 'large');
      await writeFile(small, 'x'.repeat(1000));
      await writeFile(large, Buffer.alloc(MD5_PROOF_MAX_BYTES + 1, 7));
      expect((await fileDigest(small, { md5: 'proof' })).md5).toBe(createHash('md5').update('x'.repeat(1000)).digest('base64'));
      expect((await fileDigest(large, { md5: 'proof' })).md5).toBeUndefined();
      expect((await fileDigest(large, { md5: true })).md5).toBe(createHash('md5').update(Buffer.alloc(MD5_PROOF_MAX_BYTES + 1, 7)).digest('base64'));
      expect((await fileDigest(small, { md5: false })).md5).toBeUndefined();
      // verify quick's local knowledge: a large file without a remembered MD5 is not read (its object is HEADed)
      const { localReleaseDigests } = await import('../../lib/upload/inputs.ts');
      const art = path.join(dir, 'release', 'artifacts', 'x', 'x-1.0');
      await mkdir(art, { recursive: true });
      await writeFile(path.join(art, 'small'), 'x'.repeat(1000));
      await writeFile(path.join(art, 'large'), Buffer.alloc(MD5_PROOF_MAX_BYTES + 1, 7));
      const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
      const got = await localReleaseDigests(path.join(dir, 'release'), 'x/x-1.0', new Map([
        ['small', { sha256: sha('x'.repeat(1000)) }], ['large', { sha256: sha(Buffer.alloc(MD5_PROOF_MAX_BYTES + 1, 7)) }],
      ]));
      expect([...got.keys()]).toEqual(['small']);
      expect(got.get('small')!.md5).toBe(createHash('md5').update('x'.repeat(1000)).digest('hex'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
