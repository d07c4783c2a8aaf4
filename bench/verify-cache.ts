// Benchmark (never a test): `releng verify` over a binary cache of ~2,000 objects on Ceph RGW —
// 1,000 store paths (one narinfo, one zstd NAR each, 8–64 KiB), signed with an ed25519 key as Nix
// signs (fingerprint 1;PATH;NARHASH;NARSIZE;REFS), one root path referencing the rest. Times the
// cache verifier quick (GET narinfo + HEAD NAR) and --deep (every NAR read, FileHash and NarHash).
// Usage: npx tsx bench/verify-cache.ts [--paths N] [--concurrency N]
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import { sha256Text } from '../lib/checksums.ts';
import { createLogger } from '../lib/log.ts';
import { narInfoFingerprint } from '../lib/nix/narinfo.ts';
import { nix32Encode, nixSha256 } from '../lib/nix/nix32.ts';
import { cacheVerifier } from '../lib/verify/cache.ts';
import { verifyRelease } from '../lib/verify/index.ts';
import { startTestRgw } from '../test/helpers/rgw.ts';

const { values } = parseArgs({ options: { paths: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '16' } } });
const n = Number(values.paths);
const rgw = await startTestRgw({ buckets: ['cache'] });
const tmp = await mkdtemp(path.join(os.tmpdir(), 'releng-bench-verify-'));
try {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const rawPub = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  const keyName = 'bench-1';
  const storePath = (i: number) => `/nix/store/${nix32Encode(createHash('sha256').update(`p${i}`).digest()).slice(0, 32)}-bench-${i}`;
  const paths = Array.from({ length: n }, (_, i) => storePath(i));
  const limit = pLimit(16);
  const t0 = Date.now();
  let bytes = 0;
  await Promise.all(paths.map((p, i) => limit(async () => {
    const nar = randomBytes(8192 + ((i * 7919) % 57344));
    const zst = spawnSync('zstd', ['-1', '-c'], { input: nar }).stdout;
    const narHash = createHash('sha256').update(nar).digest();
    const references = i === 0 ? paths.slice(1) : [];
    const info = { storePath: p, narHash, narSize: nar.length, references };
    const sig = sign(null, Buffer.from(narInfoFingerprint(info)), privateKey).toString('base64');
    const url = `nar/${nix32Encode(createHash('sha256').update(zst).digest())}.nar.zst`;
    const text = [`StorePath: ${p}`, `URL: ${url}`, 'Compression: zstd', `FileHash: ${nixSha256(createHash('sha256').update(zst).digest())}`, `FileSize: ${zst.length}`,
      `NarHash: ${nixSha256(narHash)}`, `NarSize: ${nar.length}`, `References: ${references.map((r) => r.slice(11)).join(' ')}`, `Sig: ${keyName}:${sig}`, ''].join('\n');
    bytes += zst.length;
    const f = path.join(tmp, `n${i}`);
    await writeFile(f, zst);
    await rgw.store.put({ bucket: 'cache', key: url, body: { file: f }, size: zst.length, sha256: sha256Text(zst), contentType: 'application/x-nix-nar' });
    await rgw.store.put({ bucket: 'cache', key: `${p.slice(11, 43)}.narinfo`, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/x-nix-narinfo' });
  })));
  const ci = 'StoreDir: /nix/store\n';
  await rgw.store.put({ bucket: 'cache', key: 'nix-cache-info', body: { text: ci }, size: ci.length, sha256: sha256Text(ci), contentType: 'text/x-nix-cache-info' });
  console.error(`uploaded ${n} narinfos + ${n} NARs (${(bytes / 1048576).toFixed(1)} MiB) to RGW in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const log = createLogger({ quiet: true });
  const ctx = { log } as any;
  const target = {
    name: 'bench', s3: rgw.store, releases: { bucket: 'cache', prefix: '', url: '' }, cache: { bucket: 'cache', prefix: '', url: 's3://cache' }, docs: { bucket: 'cache', prefix: '', url: '' },
    publicKey: `${keyName}:${rawPub.toString('base64')}`, registries: [], root: tmp,
  };
  const release = { source: 'build' as const, project: 'bench', version: '1', major: '1', official: true, releaseDir: 'bench/bench-1', files: new Map([['manifest.nix', { sha256: '0'.repeat(64) }]]), manifest: { 'x86_64-linux': paths[0]! }, cacheRoots: [] };
  for (const deep of [false, true, false, true]) {
    const r = await verifyRelease(ctx, target, { deep, release, verifiers: [cacheVerifier], concurrency: Number(values.concurrency) });
    if (!r.ok) throw new Error(`verify found problems: ${r.problems.slice(0, 3).map((p) => p.what).join('; ')}`);
    console.log(`verify${deep ? ' --deep' : ''}: ${r.seconds} s for ${r.checked['binary cache']!.objects! + r.checked['binary cache']!.narinfos!} objects (${JSON.stringify(r.checked['binary cache'])})`);
  }
} finally {
  await rgw.stop();
  await rm(tmp, { recursive: true, force: true });
}
