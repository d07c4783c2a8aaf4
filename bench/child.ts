// Two arms of the bench that are not the CLI, run in their own process (bundled by bench/run.ts so
// start-up is plain node): `hash` is releng's streaming sha256 (against openssl), `putloop` is a
// bare signed PUT loop over a directory (the ceiling of an upload: what a Node client with no
// planning, hashing or checks can drive the server to). Each prints one JSON line with its
// in-process time and the process's peak RSS. The secret comes from BENCH_S3_SECRET.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createHash, createHmac } from 'node:crypto';
import pLimit from 'p-limit';
import { SignatureV4 } from '@smithy/signature-v4';
import { sha256File } from '../lib/hashing/checksums.ts';
import { localTree } from '../lib/upload/local-tree.ts';

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
    dir: { type: 'string' }, key: { type: 'string' },
  },
});
const [mode, ...rest] = positionals;

function done(extra: Record<string, unknown>) {
  process.stdout.write(JSON.stringify({ ...extra, maxRssKiB: process.resourceUsage().maxRSS }) + '\n');
}

if (mode === 'hash') {
  const t0 = performance.now();
  // All at once, as upload hashes its artifacts: files from 8 MiB go to the hash workers, one per core.
  const sums = await Promise.all(rest.map((f) => sha256File(f)));
  done({ ms: performance.now() - t0, sums });
} else if (mode === 'putloop') {
  // Hashes every file first (not timed), then PUTs them signed, 16 in flight, keep-alive: no SDK.
  // Each body is read (from tmpfs) inside its slot: 16 files open at once and 16 bodies in memory,
  // whatever the count (reading all of them first hit EMFILE and gigabytes at --scale 10 and 50).
  const files = (await localTree(o.dir!, 4)).map((f) => ({ key: o.prefix! + f.rel, file: (f.source as { file: string }).file, sha256: f.sha256 }));
  const url = new URL(o.endpoint!);
  const signer = new SignatureV4({ service: 's3', region: 'us-east-1', credentials: { accessKeyId: o.key!, secretAccessKey: process.env.BENCH_S3_SECRET ?? '' }, sha256: NodeHash, uriEscapePath: false, applyChecksum: false });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const limit = pLimit(16);
  const t0 = performance.now();
  await Promise.all(files.map((f) => limit(async () => {
    const path = `/${o.bucket}/${f.key}`;
    const body = await readFile(f.file);
    const signed = await signer.sign({
      method: 'PUT', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path, query: {},
      headers: { host: url.host, 'content-length': String(body.length), 'x-amz-content-sha256': f.sha256 },
    } as any) as unknown as { headers: Record<string, string> };
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ agent, method: 'PUT', host: url.hostname, port: url.port, path, headers: signed.headers }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${path}: ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  })));
  done({ ms: performance.now() - t0, puts: files.length });
  agent.destroy();
} else {
  throw new Error(`usage: child.ts hash FILE...|putloop --endpoint URL --key ID --bucket B --prefix P --dir DIR ...`);
}

