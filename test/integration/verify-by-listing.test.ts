// Issue 16: upload's closing verification and `releng verify` quick prove the objects of the
// release prefix and the manual by LISTING — a listed single-part ETag equal to the MD5 of the local
// file proves the bytes — instead of a HEAD per object. Requests are counted where releng cannot
// hide them: at test/faults/proxy.ts, between the real CLI and s3rver / Ceph RGW (RGW: real S3
// ETag semantics). And the proof still catches what it must: a server that acknowledges a PUT with
// the right ETag and stores nothing, one that stores flipped bytes and answers the ETag of the
// bytes sent, and an object rewritten behind releng's back with other bytes of the same size
// claiming the right sha256 metadata.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { embeddedCredentials } from '../../lib/local/s3-server.ts';
import { createS3Client, type S3Store } from '../../lib/s3/store.ts';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { allowAnonymousRead } from '../helpers/public-read.ts';
import { startTestRgw, type TestRgw } from '../helpers/rgw.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tagLikeReleng } from '../helpers/tagged.ts';
import { requireTool } from '../helpers/tools.ts';
import { FaultController, startFaultProxy, type FaultProxy, type RequestInfo } from '../faults/proxy.ts';
import '../helpers/setup.ts';

type Flavour = 'srv' | 'rgw';
const prefix = 'hello/hello-1.0.0/';
const ctl = new FaultController();
let p: ScratchProject;
let s3: TestS3;
let rgw: TestRgw;
let proxies: Record<Flavour, FaultProxy>;
let keys: string;
let result: any;
const cliEnv = () => ({ RGW_KEY: rgw.users.admin.accessKeyId, RGW_SECRET: rgw.users.admin.secretAccessKey });
/** Environments: one per server for the main flow, and one per fault (own bucket prefixes). */
const envs: Record<string, Flavour> = { srv: 'srv', rgw: 'rgw', 'srv-lie': 'srv', 'rgw-ack': 'rgw', 'srv-ack': 'srv' };
const dirOf = (env: string) => (env === 'srv' || env === 'rgw' ? '' : `/${env}`);

beforeAll(async () => {
  requireTool('nix-build', 'nix-bin');
  requireTool('zstd', 'zstd');
  [s3, rgw] = await Promise.all([startTestS3(['rel', 'cache', 'docs']), startTestRgw({ buckets: ['rel', 'cache', 'docs'] })]);
  await allowAnonymousRead(rgw, 'cache');
  proxies = { srv: await startFaultProxy('s3rver', s3.endpoint, ctl), rgw: await startFaultProxy('rgw', rgw.endpoint, ctl) };
  p = await scratchProject();
  keys = await mkdtemp(path.join(os.tmpdir(), 'releng-listproof-keys-'));
  const nix = (args: string[]) => execFileSync('nix', ['--extra-experimental-features', 'nix-command', ...args], { encoding: 'utf8' }).trim();
  await writeFile(path.join(keys, 'k'), nix(['key', 'generate-secret', '--key-name', 'hello-listproof-1']));
  await p.editConfig((c) => {
    for (const [env, flavour] of Object.entries(envs)) {
      c.environments[env] = {
        ...c.environments.local, confirm: false,
        releasesBucket: `s3://rel${dirOf(env)}`, cacheBucket: `s3://cache${dirOf(env)}`, docsBucket: `s3://docs${dirOf(env)}`,
        s3: { ...c.environments.local.s3, endpoint: proxies[flavour].url, region: flavour === 'rgw' ? rgw.region : 'us-east-1' },
        credentials: flavour === 'srv' ? { source: 'embedded' } : { source: 'env', accessKeyIdVar: 'RGW_KEY', secretAccessKeyVar: 'RGW_SECRET' },
        cache: { ...c.environments.local.cache, signingKeyFile: path.join(keys, 'k') },
        docker: [],
      };
    }
  });
  p.git('commit', '-q', '-am', 'test environments');
  p.git('push', '-q', 'origin', 'main');
  await tagLikeReleng(p);
  const r = await releng(['build', '--json'], { cwd: p.dir });
  expect(r.code, r.stderr).toBe(0);
  result = JSON.parse(r.stdout).result;
}, 300_000);

afterAll(async () => {
  await Promise.all(Object.values(proxies ?? {}).map((x) => x.stop()));
  await Promise.all([s3?.stop(), rgw?.stop()]);
  await p?.cleanup();
  if (keys) await rm(keys, { recursive: true, force: true });
});

/** Runs the CLI against `env` and returns, besides its result, the requests the proxy forwarded meanwhile. */
async function run(env: string, args: string[]) {
  ctl.requests.length = 0;
  const r = await releng([...args, '--environment', env], { cwd: p.dir, env: cliEnv() });
  return { ...r, requests: [...ctl.requests] };
}

/** Path-style URL → bucket, key and query. */
const parse = (r: RequestInfo) => {
  const u = new URL(r.url, 'http://x');
  const [, bucket = '', ...rest] = u.pathname.split('/');
  return { bucket, key: decodeURIComponent(rest.join('/')), query: u.searchParams };
};
/** HEADs of objects in the release prefix and the manual (not bucket HEADs, not the cache: lib/verify/cache.ts). */
const objectHeads = (reqs: RequestInfo[], env: string) => reqs.filter((r) => {
  const { bucket, key } = parse(r);
  return r.method === 'HEAD' && key !== '' && ((bucket === 'rel' && key.startsWith(`${dirOf(env).slice(1)}${dirOf(env) ? '/' : ''}${prefix}`)) || bucket === 'docs');
});
const puts = (reqs: RequestInfo[]) => reqs.filter((r) => r.method === 'PUT' && r.bodyLength > 0);
/** Prefixes listed (first pages only), with how often. */
const listings = (reqs: RequestInfo[]) => {
  const n = new Map<string, number>();
  for (const r of reqs) {
    const { bucket, key, query } = parse(r);
    if (r.method !== 'GET' || key !== '' || query.get('list-type') !== '2' || query.has('continuation-token')) continue;
    const at = `${bucket}/${query.get('prefix') ?? ''}`;
    n.set(at, (n.get(at) ?? 0) + 1);
  }
  return n;
};
/** Problem lines as logged (plain mode prefixes a timestamp). */
const lines = (stderr: string) => stderr.split('\n').map((l) => /^(?:\[[^\]]+\] )?(warning: .*)$/.exec(l)?.[1]).filter((l): l is string => !!l);

async function putRaw(flavour: Flavour, bucket: string, key: string, bytes: Buffer, claims: string, contentType: string) {
  const client = flavour === 'srv'
    ? createS3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, { ...embeddedCredentials })
    : createS3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, rgw.users.admin);
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes, ContentType: contentType, Metadata: { sha256: claims } }));
}
async function getBytes(store: S3Store, bucket: string, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of (await store.getStream(bucket, key))!) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}
/** The same bytes with one changed in the middle (same size). */
const flipped = (b: Buffer) => { const x = Buffer.from(b); x[x.length >> 1]! ^= 0x20; return x; };

for (const flavour of ['srv', 'rgw'] as const) {
  describe(`proof by listing on ${flavour === 'srv' ? 's3rver' : 'Ceph RGW'}`, () => {
    const env = flavour;
    const store = () => (flavour === 'srv' ? s3.store : rgw.store);
    const files = () => result.artifacts.filter((a: any) => a.path.startsWith(prefix));
    const manualPages = () => files().filter((a: any) => a.path.startsWith(`${prefix}manual/`)).length;

    it('a fresh upload proves every single-part object it put by listing: 0 HEADs of release or manual objects', async () => {
      const up = await run(env, ['upload', '--noconfirm', '--json']);
      expect(up.code, up.stderr).toBe(0);
      expect(objectHeads(up.requests, env).map((r) => r.url)).toEqual([]);
      expect(puts(up.requests).length).toBeGreaterThan(files().length);
      const checked = JSON.parse(up.stdout).result.verified;
      // SHA256SUMS and manifest.nix are always downloaded (one GET each), never vouched for.
      expect(checked['release prefix']).toMatchObject({ objects: files().length, 'objects proven by listing': files().length - 2 });
      expect(checked.docs).toMatchObject({ objects: 2 * manualPages(), 'objects proven by listing': 2 * manualPages() });
    }, 300_000);

    it('a no-op re-run sends 0 PUTs and 0 HEADs of release or manual objects, and lists each prefix once', async () => {
      const noop = await run(env, ['upload', '--noconfirm', '--json']);
      expect(noop.code, noop.stderr).toBe(0);
      expect(puts(noop.requests)).toEqual([]);
      expect(objectHeads(noop.requests, env).map((r) => r.url)).toEqual([]);
      const listed = listings(noop.requests);
      for (const at of [`rel/${prefix}`, 'docs/manual/hello/1.0/', 'docs/manual/hello/stable/']) expect(listed.get(at), at).toBe(1);
      const checked = JSON.parse(noop.stdout).result.verified;
      expect(checked['release prefix']['objects proven by listing']).toBe(files().length - 2);
      expect(checked.docs['objects proven by listing']).toBe(checked.docs.objects);
    }, 300_000);

    it('verify quick in the project proves by listing (0 HEADs) and names an object rewritten with other bytes of the same size and our sha256 claimed', async () => {
      const clean = await run(env, ['verify', '--json']);
      expect(clean.code, clean.stderr).toBe(0);
      expect(objectHeads(clean.requests, env).map((r) => r.url)).toEqual([]);
      const report = JSON.parse(clean.stdout).result;
      expect(report.checked['release prefix']['objects proven by listing']).toBe(files().length - 2);
      // Never silent: what quick did not read is said, with what does read it.
      expect(report.notChecked.map((n: any) => n.reason).join('\n')).toContain('releng verify --deep');

      // Another writer: other bytes at the same size, claiming the sha256 of the released ones.
      const file = `${prefix}hello-1.0.0-manual.tar.gz`;
      const page = 'manual/hello/1.0/index.html';
      const fileBytes = await getBytes(store(), 'rel', file);
      const pageBytes = await getBytes(store(), 'docs', page);
      await putRaw(flavour, 'rel', file, flipped(fileBytes), sha256Text(fileBytes), 'application/gzip');
      await putRaw(flavour, 'docs', page, flipped(pageBytes), sha256Text(pageBytes), 'text/html');
      const v = await run(env, ['verify']);
      expect(v.code).toBe(1);
      const repair = `releng upload --environment ${env}`;
      expect(lines(v.stderr).sort()).toEqual([
        `warning: docs: s3://docs/${page}: content sha256 ${sha256Text(flipped(pageBytes))} (${pageBytes.length} bytes), expected ${sha256Text(pageBytes)} (${pageBytes.length} bytes) — repair: ${repair} --deep (its bytes are not what its metadata says: --deep reads them back and sends them again)`,
        `warning: release prefix: s3://rel/${file}: content sha256 ${sha256Text(flipped(fileBytes))} (${fileBytes.length} bytes), expected ${sha256Text(fileBytes)} (${fileBytes.length} bytes) — repair: ${repair} --deep (its bytes are not what its metadata says: --deep reads them back and sends them again)`,
      ]);
      // upload is not fooled either (its plan trusts the sha256 metadata and skips both): its closing verification names them.
      const up = await run(env, ['upload', '--noconfirm']);
      expect(up.code).toBe(1);
      expect(up.stderr).toContain(`s3://rel/${file}: content sha256 ${sha256Text(flipped(fileBytes))}`);
      expect(up.stderr).toContain(`s3://docs/${page}: content sha256 ${sha256Text(flipped(pageBytes))}`);
      // The repair the lines name.
      await store().delete('rel', file);
      await store().delete('docs', page);
      const again = await run(env, ['upload', '--noconfirm']);
      expect(again.code, again.stderr).toBe(0);
      const deep = await run(env, ['verify', '--deep']);
      expect(deep.code, deep.stderr).toBe(0);
    }, 300_000);
  });
}

describe('the proof still catches a server that lies', () => {
  const inEnv = (env: string) => (r: RequestInfo) => r.upstream !== 'registry' && r.method === 'PUT' && r.bodyLength > 0
    && (r.url.startsWith(`/rel${dirOf(env)}/${prefix}`) || r.url.startsWith(`/docs${dirOf(env)}/`));
  const cases = [
    { env: 'srv-lie', fault: { kind: 'flip', at: 3, etag: 'sent-md5' }, why: 'stores a flipped byte and answers the ETag of the bytes sent (s3rver checks no payload hash)', expect: /content sha256 [0-9a-f]{64}/ },
    { env: 'srv-ack', fault: { kind: 'ack-without-store', at: 3, etag: 'body-md5' }, why: 'acknowledges a PUT with the MD5 of its body as ETag and stores nothing', expect: /: missing — repair/ },
    { env: 'rgw-ack', fault: { kind: 'ack-without-store', at: 5, etag: 'body-md5' }, why: 'acknowledges a PUT with the MD5 of its body as ETag and stores nothing', expect: /: missing — repair/ },
  ] as const;
  for (const k of cases) {
    it(`${k.env}: ${k.why}: upload exits 1 naming the key; its repair works`, async () => {
      ctl.set({ ...k.fault, match: inEnv(k.env) });
      const faulty = await run(k.env, ['upload', '--noconfirm']);
      const injected = [...ctl.log];
      ctl.set({ kind: 'none' });
      expect(injected, 'the fault was never injected').toHaveLength(1);
      expect(faulty.code, faulty.stderr).toBe(1);
      expect(faulty.stderr).toContain('verification after upload failed');
      const key = decodeURIComponent(new URL(injected[0]!.split(' ').at(-1)!, 'http://x').pathname).replace(/^\/(rel|docs)\//, 's3://$1/');
      const named = faulty.stderr.split('\n').filter((l) => l.includes(`${key}:`));
      expect(named.length, `${key} not named:\n${faulty.stderr}`).toBeGreaterThan(0);
      expect(named.join('\n')).toMatch(k.expect);
      // The repair the line names: a key holding other bytes under our sha256 metadata is deleted first
      // (a plan trusts that metadata); a missing key is simply sent again.
      if (k.env === 'srv-lie') {
        const [, bucket, objectKey] = /^s3:\/\/([^/]+)\/(.*)$/.exec(key)!;
        await s3.store.delete(bucket!, objectKey!);
      }
      const again = await run(k.env, ['upload', '--noconfirm']);
      expect(again.code, again.stderr).toBe(0);
      const deep = await run(k.env, ['verify', '--deep']);
      expect(deep.code, deep.stderr).toBe(0);
    }, 300_000);
  }
});
