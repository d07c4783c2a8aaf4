// The bench's measured side, run in its own process (bundled by bench/run.ts so start-up is plain
// node): `upload` is what `releng upload` does for one tree (localTree → planSync → apply with the
// S3 store), `hash` is releng's streaming sha256, `putloop` is a bare signed PUT loop (the server's
// ceiling). Each prints one JSON line with its in-process time and the process's peak RSS.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createHash, createHmac } from 'node:crypto';
import pLimit from 'p-limit';
import { SignatureV4 } from '@smithy/signature-v4';
import { apply } from '../lib/apply.ts';
import { sha256File } from '../lib/checksums.ts';
import { localTree } from '../lib/files.ts';
import { embeddedCredentials } from '../lib/local/s3-server.ts';
import { createLogger } from '../lib/log.ts';
import { createS3Client, s3Store } from '../lib/s3/store.ts';
import { planSync } from '../lib/s3/sync.ts';
import { openUploadRecord, recordingWriter } from '../lib/s3/record.ts';
import { openHashCache } from '../lib/hash-cache.ts';

/** The Hash shape SignatureV4 wants (sha256, or HMAC-sha256 with a secret), on node:crypto. */
class NodeHash {
  private h;
  constructor(secret?: any) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
  update(data: any) { this.h.update(typeof data === 'string' ? Buffer.from(data) : data); }
  async digest() { return new Uint8Array(this.h.digest()); }
  reset() { throw new Error('not needed'); }
}

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    endpoint: { type: 'string' }, bucket: { type: 'string' }, prefix: { type: 'string' },
    dir: { type: 'string' }, state: { type: 'string' }, concurrency: { type: 'string' },
  },
});
const [mode, ...rest] = positionals;

function done(extra: Record<string, unknown>) {
  process.stdout.write(JSON.stringify({ ...extra, maxRssKiB: process.resourceUsage().maxRSS }) + '\n');
}

if (mode === 'upload') {
  const t0 = performance.now();
  // The transit checksum (issue 9): sha256 as releng's default; RELENG_BENCH_TRANSIT=payload-sha256-only measures without it.
  const transit = (process.env.RELENG_BENCH_TRANSIT ?? 'sha256') as 'content-md5' | 'sha256' | 'payload-sha256-only';
  const store = s3Store(createS3Client({ endpoint: o.endpoint!, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, { ...embeddedCredentials }), o.endpoint!, { transitChecksum: transit });
  let heads = 0;
  let listMs = 0;
  const reader = { ...store, head: (b: string, k: string) => { heads++; return store.head(b, k); }, list: async (b: string, p: string) => { const t = performance.now(); const l = await store.list(b, p); listMs = performance.now() - t; return l; } };
  // As planUpload does: the listing runs while the tree is walked and hashed.
  const listing = reader.list(o.bucket!, o.prefix!);
  const hashes = o.state ? await openHashCache(o.state) : undefined;
  const files = await localTree(o.dir!, 4, { hashCache: hashes, md5: transit === 'content-md5' });
  const t1 = performance.now();
  const record = o.state ? await openUploadRecord(o.state, o.endpoint!) : undefined;
  const plan = await planSync(reader, { bucket: o.bucket!, prefix: o.prefix!, files, record, listing });
  const t2 = performance.now();
  const log = createLogger({ quiet: true });
  const r = await apply({ steps: [{ title: 'upload', actions: plan.puts }], skipped: plan.skipped }, {
    log, dryRun: false, writers: { s3: record ? recordingWriter(store, record) : store },
    concurrency: o.concurrency ? Number(o.concurrency) : undefined,
  });
  await record?.save();
  await hashes?.save();
  const t3 = performance.now();
  done({ ms: t3 - t0, treeMs: t1 - t0, planMs: t2 - t1, applyMs: t3 - t2, listMs, heads, files: files.length, puts: r.applied, unchanged: plan.unchanged });
} else if (mode === 'hash') {
  const t0 = performance.now();
  const sums: string[] = [];
  for (const f of rest) sums.push(await sha256File(f));
  done({ ms: performance.now() - t0, sums });
} else if (mode === 'putloop') {
  // Reads every file first (not timed), then PUTs them signed, 16 in flight, keep-alive: no SDK.
  const files = (await localTree(o.dir!, 4)).map((f) => ({ key: o.prefix! + f.rel, file: (f.source as { file: string }).file, sha256: f.sha256 }));
  const bodies = await Promise.all(files.map((f) => readFile(f.file)));
  const url = new URL(o.endpoint!);
  const signer = new SignatureV4({ service: 's3', region: 'us-east-1', credentials: { ...embeddedCredentials }, sha256: NodeHash, uriEscapePath: false, applyChecksum: false });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const limit = pLimit(16);
  const t0 = performance.now();
  await Promise.all(files.map((f, i) => limit(async () => {
    const path = `/${o.bucket}/${f.key}`;
    const signed = await signer.sign({
      method: 'PUT', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path, query: {},
      headers: { host: url.host, 'content-length': String(bodies[i]!.length), 'x-amz-content-sha256': f.sha256 },
    } as any) as unknown as { headers: Record<string, string> };
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ agent, method: 'PUT', host: url.hostname, port: url.port, path, headers: signed.headers }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${path}: ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(bodies[i]);
    });
  })));
  done({ ms: performance.now() - t0, puts: files.length });
  agent.destroy();
} else {
  throw new Error(`usage: child.ts upload|hash|putloop ...`);
}

