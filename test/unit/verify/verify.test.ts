// The verifiers over an in-memory S3 (the S3Reader interface, injected; no servers): what each
// destination reports, and that nothing wrong passes. Real servers: test/integration/verify.test.ts.
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../lib/cli/log.ts';
import { narInfoFingerprint } from '../../../lib/nix/narinfo.ts';
import { nix32Encode, nixSha256 } from '../../../lib/nix/nix32.ts';
import type { ObjectHead, RemoteObject } from '../../../lib/s3/store.ts';
import { cacheVerifier } from '../../../lib/verify/cache.ts';
import { releasePrefixVerifier } from '../../../lib/verify/release-prefix.ts';
import { renderProblem, verifyRelease, type ReleaseSpec, type VerifyTarget } from '../../../lib/verify/index.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** An in-memory bucket store: key → bytes and the sha256 metadata it claims. */
function memoryS3() {
  const objects = new Map<string, { bytes: Buffer; sha256?: string }>();
  const id = (b: string, k: string) => `${b}/${k}`;
  return {
    objects,
    set(bucket: string, key: string, bytes: Buffer | string, claims?: string) {
      const b = Buffer.from(bytes);
      objects.set(id(bucket, key), { bytes: b, sha256: claims ?? sha(b) });
    },
    reader: {
      endpoint: 'memory',
      async list(bucket: string, prefix: string): Promise<RemoteObject[]> {
        return [...objects].filter(([k]) => k.startsWith(id(bucket, prefix))).map(([k, o]) => ({ key: k.slice(bucket.length + 1), size: o.bytes.length }));
      },
      async head(bucket: string, key: string): Promise<ObjectHead | undefined> {
        const o = objects.get(id(bucket, key));
        return o && { size: o.bytes.length, sha256: o.sha256, metadata: {} };
      },
      async getText(bucket: string, key: string) { return objects.get(id(bucket, key))?.bytes.toString('utf8'); },
      async getStream(bucket: string, key: string) { const o = objects.get(id(bucket, key)); return o && Readable.from([o.bytes]); },
      async checkBucket() {},
    },
  };
}

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const pub = `test-1:${publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64')}`;
const sp = (name: string) => `/nix/store/${nix32Encode(createHash('sha256').update(name).digest()).slice(0, 32)}-${name}`;

/** Publishes one path (uncompressed NAR) the way Nix lays it out, signed by `privateKey`. */
function publish(s3: ReturnType<typeof memoryS3>, path: string, nar: Buffer, references: string[]) {
  const narHash = createHash('sha256').update(nar).digest();
  const sig = sign(null, Buffer.from(narInfoFingerprint({ storePath: path, narHash, narSize: nar.length, references })), privateKey).toString('base64');
  const url = `nar/${nix32Encode(narHash)}.nar`;
  s3.set('cache', url, nar);
  const text = [`StorePath: ${path}`, `URL: ${url}`, 'Compression: none', `FileHash: ${nixSha256(narHash)}`, `FileSize: ${nar.length}`, `NarHash: ${nixSha256(narHash)}`,
    `NarSize: ${nar.length}`, `References: ${references.map((r) => r.slice(11)).join(' ')}`, `Sig: test-1:${sig}`, ''].join('\n');
  s3.set('cache', `${path.slice(11, 43)}.narinfo`, text);
  return { url, narinfo: `${path.slice(11, 43)}.narinfo`, text };
}

function setup() {
  const s3 = memoryS3();
  s3.set('cache', 'nix-cache-info', 'StoreDir: /nix/store\n');
  const lib = sp('lib'); const app = sp('app');
  const libObjs = publish(s3, lib, Buffer.from('lib nar bytes'), []);
  const appObjs = publish(s3, app, Buffer.from('app nar bytes'), [lib, app]);
  const files = new Map<string, { sha256: string; size: number }>();
  for (const [rel, text] of [['manifest.nix', `{ x86_64-linux = "${app}"; }\n`], ['a.tar.xz', 'tarball'], ['SHA256SUMS', 'sums']] as const) {
    s3.set('rel', `p/p-1/${rel}`, text);
    files.set(rel, { sha256: sha(text), size: Buffer.byteLength(text) });
  }
  const target: VerifyTarget = {
    name: 'test', s3: s3.reader as any, publicKey: pub, registries: [], root: '/',
    releases: { bucket: 'rel', prefix: '', url: 's3://rel' }, cache: { bucket: 'cache', prefix: '', url: 's3://cache' }, docs: { bucket: 'docs', prefix: '', url: 's3://docs' },
  };
  const release: ReleaseSpec = { source: 'build', project: 'p', version: '1', major: '1', official: true, releaseDir: 'p/p-1', files, manifest: { 'x86_64-linux': app }, cacheRoots: [] };
  return { s3, target, release, lib, app, libObjs, appObjs };
}

const ctx = { log: createLogger({ quiet: true }) } as any;
const run = (s: ReturnType<typeof setup>, deep = false) => verifyRelease(ctx, s.target, { release: s.release, deep, verifiers: [releasePrefixVerifier, cacheVerifier] });

describe('verifiers over an in-memory bucket', () => {
  it('pass on a correct release, walking the closure through the narinfos (quick and deep)', async () => {
    const s = setup();
    for (const deep of [false, true]) {
      const r = await run(s, deep);
      expect(r.problems.map(renderProblem)).toEqual([]);
      expect(r.checked['binary cache']).toMatchObject({ narinfos: 2, 'store paths': 2 });
      if (deep) expect(r.checked['binary cache']!['NARs hashed']).toBe(2);
    }
  });

  it('a reference without a narinfo, a short NAR, an unsigned narinfo, a stray and a missing release file: one problem each', async () => {
    const s = setup();
    s.s3.objects.delete(`cache/${s.libObjs.narinfo}`);
    s.s3.set('cache', s.appObjs.url, 'app nar byte'); // one byte short
    s.s3.set('rel', 'p/p-1/stray', 'x');
    s.s3.objects.delete('rel/p/p-1/a.tar.xz');
    const r = await run(s);
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => `${p.destination} ${p.where}: ${p.what}`).sort()).toEqual([
      `binary cache s3://cache/${s.appObjs.url}: size 12, but ${s.appObjs.narinfo} says FileSize 13`,
      `binary cache s3://cache/${s.libObjs.narinfo}: missing: ${s.lib} (referenced by ${s.app}) cannot be fetched`,
      'release prefix s3://rel/p/p-1/a.tar.xz: missing',
      'release prefix s3://rel/p/p-1/stray: not part of the release (SHA256SUMS does not list it; 1 bytes)',
    ].sort());
  });

  it('a signature by another key, or none, and a narinfo edited after signing are refused', async () => {
    const s = setup();
    s.s3.set('cache', s.appObjs.narinfo, s.appObjs.text.replace(/^Sig: .*$/m, ''));
    s.s3.set('cache', s.libObjs.narinfo, s.libObjs.text.replace(/^NarSize: (\d+)$/m, 'NarSize: 14'));
    const r = await run(s);
    const whats = r.problems.map((p) => p.what);
    expect(whats).toContain('not signed (trusted key test-1)');
    expect(whats.some((w) => w.startsWith('the signature by test-1 does not verify'))).toBe(true);
  });

  it('deep: bytes changed at the same size behind correct metadata are caught by FileHash and NarHash', async () => {
    const s = setup();
    s.s3.set('cache', s.libObjs.url, 'lib nar bytez', sha('lib nar bytes'));
    s.s3.set('rel', 'p/p-1/a.tar.xz', 'tarbalL', sha('tarball'));
    expect((await run(s)).ok).toBe(true); // HEADs cannot see it
    const r = await run(s, true);
    // One line for the NAR, naming both hashes (its stored bytes differ, and so does what they unpack to).
    expect(r.problems.map((p) => p.where).sort()).toEqual([`s3://cache/${s.libObjs.url}`, 's3://rel/p/p-1/a.tar.xz'].sort());
    expect(r.problems.find((p) => p.where === `s3://cache/${s.libObjs.url}`)!.what).toMatch(/^FileHash .*; it unpacks to a NAR with NarHash .* but .* says/);
    expect(r.problems.find((p) => p.what.startsWith('FileHash'))!.repair).toBe(`delete s3://cache/${s.libObjs.url} and s3://cache/${s.libObjs.narinfo}, then releng upload --environment test`);
  });

  it('wrong sha256 metadata is a problem even in quick mode, with the immutable-prefix repair', async () => {
    const s = setup();
    s.s3.set('rel', 'p/p-1/a.tar.xz', 'tarball', 'e'.repeat(64));
    const r = await run(s);
    expect(r.problems).toEqual([expect.objectContaining({ where: 's3://rel/p/p-1/a.tar.xz', what: `sha256 metadata ${'e'.repeat(64)}, expected ${sha('tarball')}`, repair: 'releng upload --environment test --replace-artifacts (only if this release was never announced)' })]);
  });
});
