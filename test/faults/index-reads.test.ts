// `releng index` reads (LIST, HEAD, GET, downloads) through the S3 store's one retry mechanism
// (lib/core/retry.ts) survive injected 500s, 503 SlowDown and connection resets: the fault proxy sits
// between a real S3 server (s3rver) and the store index uses. Without retries the same faults fail,
// so the faults do reach these reads.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderSha256Sums, sha256Text } from '../../lib/hashing/checksums.ts';
import type { InstallersUploader } from '../../lib/config/grants.ts';
import { listPublished, verifyInstallers } from '../../lib/index/verify.ts';
import { embeddedCredentials } from '../../lib/local/s3-server.ts';
import { createS3Client, s3Store, type S3Store } from '../../lib/s3/store.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { FaultController, startFaultProxy, type Fault, type FaultProxy } from './proxy.ts';

const ctl = new FaultController();
let s3: TestS3;
let proxy: FaultProxy;
let work: string;
const VERSIONS = ['1.0', '1.1', '2.0'];
const FILES = ['hello-installer-x86_64', 'hello-installer-aarch64'];
const uploader = {
  kind: 'installers', bucket: 's3://rel', prefix: 'incoming/{name}/{version}/', files: ['^hello-installer-[a-z0-9_-]+$'],
  publish: 'installers/hello-{version}/', latest: 'installers/', sumsFile: 'SHA256SUMS', indexPage: 'installers/index.html',
} as InstallersUploader;
const body = (v: string, f: string) => `${f} ${v}\n`.repeat(2000);

/** The store index would get, reached through the fault proxy. */
const storeVia = (attempts: number): S3Store => s3Store(
  createS3Client({ endpoint: proxy.url, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, { ...embeddedCredentials }),
  proxy.url, { readRetry: { attempts, backoffMs: 1 } });

/** Every read index makes of installers: the listing, SHA256SUMS and heads (verify), and each file's bytes (download). */
async function indexReads(store: S3Store): Promise<{ listed: number; problems: string[]; downloads: string[] }> {
  const listed = (await listPublished(store, { bucket: 'rel', prefix: '' }, uploader, 'installers')).length;
  const problems = (await verifyInstallers(store, 'installers', uploader)).map((p) => `${p.where}: ${p.problem}`);
  const downloads: string[] = [];
  for (const v of VERSIONS) for (const f of FILES) {
    const file = path.join(work, `${v}-${f}`);
    const d = await store.download!('rel', `installers/hello-${v}/${f}`, file);
    expect(sha256Text(await readFile(file))).toBe(d.sha256); // the file on disk is the whole body, not a retried append
    downloads.push(`${d.size} ${d.sha256}`);
  }
  return { listed, problems, downloads };
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'releng-index-faults-'));
  s3 = await startTestS3(['rel']);
  proxy = await startFaultProxy('s3', s3.endpoint, ctl);
  const put = (key: string, text: string) => s3.store.put({ bucket: 'rel', key, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/plain' });
  for (const v of VERSIONS) {
    for (const f of FILES) await put(`installers/hello-${v}/${f}`, body(v, f));
    await put(`installers/hello-${v}/SHA256SUMS`, renderSha256Sums(FILES.map((f) => ({ name: f, sha256: sha256Text(body(v, f)) }))));
  }
  for (const f of FILES) await put(`installers/${f}`, body('2.0', f));
});

afterAll(async () => {
  await proxy?.stop();
  await s3?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('index reads under injected faults', () => {
  let clean: Awaited<ReturnType<typeof indexReads>>;
  beforeAll(async () => {
    ctl.set({ kind: 'none' });
    clean = await indexReads(storeVia(1));
    expect(clean.listed).toBe(VERSIONS.length * (FILES.length + 1));
    expect(clean.problems).toEqual([]);
  });

  const faults: [string, Fault][] = [
    ['500 InternalError', { kind: 'status', status: 500, rate: 0.3, seed: 11 }],
    ['503 SlowDown', { kind: 'status', status: 503, rate: 0.3, seed: 12 }],
    ['connection reset', { kind: 'reset', rate: 0.3, seed: 13 }],
  ];
  for (const [name, fault] of faults) {
    it(`${name} on 30% of requests: the store's retries give the same listing, verdict and bytes`, async () => {
      ctl.set(fault);
      const got = await indexReads(storeVia(8));
      expect(ctl.injected).toBeGreaterThan(0);
      expect(got).toEqual(clean);
    });

    it(`${name}: without retries the same faults fail a read (they reach index's reads)`, async () => {
      ctl.set(fault);
      await expect(indexReads(storeVia(1))).rejects.toThrow(/s3:\/\/rel|socket hang up|ECONNRESET|InternalError|SlowDown/);
      expect(ctl.injected).toBeGreaterThan(0);
    });
  }
});
