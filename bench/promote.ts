// `npm run bench:promote`: promote of a cache-like release (N NARs + N narinfos, a manifest whose
// closure is all of them) against a fresh upload of the same bytes, on ONE s3rver (issue 11):
//   upload       s3.put of every file from local disk (what `releng upload` does), through apply
//   server-side  promote between buckets of the same endpoint (CopyObject)
//   streamed     promote with serverSideCopy: never (GET, sha256 checked, PUT)
//   to-tree      promote S3 → a file:// tree
//   rclone       `rclone copy` bucket to bucket on the same s3rver (server-side copy; Debian's rclone),
//                the yardstick: promote server-side should take at most half of it (--fast-list:
//                a flat listing; without it rclone 1.60 left bench/bench-1.0.0/manifest.nix out on s3rver)
// Runs alternate (A B C D, repeated), each into fresh buckets; prints medians and min–max.
// Never part of the test suite: the machine is shared, so compare ratios within one run.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { apply } from '../lib/actions/index.ts';
import type { Step } from '../lib/actions/index.ts';
import { sha256Text } from '../lib/hashing/checksums.ts';
import { fsStore } from '../lib/fs/store.ts';
import { routedStore } from '../lib/fs/routed.ts';
import { embeddedCredentials, startLocalS3 } from '../lib/local/s3-server.ts';
import { createLogger } from '../lib/cli/log.ts';
import { planPromote, retryingReader, type PromoteSide } from '../lib/promote/plan.ts';
import type { S3Put } from '../lib/s3/actions.ts';
import { createS3Client, s3Store } from '../lib/s3/store.ts';

const { values: flags } = parseArgs({ options: { 'rclone-transfers': { type: 'string', default: '16' }, paths: { type: 'string', default: '1000' }, rounds: { type: 'string', default: '3' }, 'nar-size': { type: 'string', default: '16384' }, help: { type: 'boolean', default: false } } });
if (flags.help) { console.log('usage: npm run bench:promote -- [--paths 1000] [--rounds 3] [--nar-size 16384]'); process.exit(0); }
const N = Number(flags.paths);
const rounds = Number(flags.rounds);
const narSize = Number(flags['nar-size']);
const base = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const ws = mkdtempSync(path.join(base, 'releng-bench-promote-'));
const log = (m: string) => process.stderr.write(`${m}\n`);

// ---------- the workload: a cache of N paths (each references the previous one) and a release prefix ----------
const nix32 = '0123456789abcdfghijklmnpqrsvwxyz';
const hashPart = (i: number) => createHash('sha256').update(`path-${i}`).digest().subarray(0, 20).reduce((s, b, j) => s + nix32[(b + j) % 32], '').padEnd(32, '0').slice(0, 32);
const local = path.join(ws, 'local');
mkdirSync(path.join(local, 'cache', 'nar'), { recursive: true });
mkdirSync(path.join(local, 'releases', 'bench', 'bench-1.0.0'), { recursive: true });
const files: { bucket: 'cache' | 'releases'; key: string; file: string; size: number; sha256: string; contentType: string }[] = [];
const add = (bucket: 'cache' | 'releases', key: string, body: Buffer | string, contentType: string) => {
  const file = path.join(local, bucket, key);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, body);
  files.push({ bucket, key, file, size: Buffer.byteLength(body), sha256: sha256Text(body), contentType });
};
const paths: string[] = [];
add('cache', 'nix-cache-info', 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n', 'text/x-nix-cache-info');
for (let i = 0; i < N; i++) {
  const p = `/nix/store/${hashPart(i)}-pkg-${i}`;
  paths.push(p);
  const nar = randomBytes(narSize);
  const narKey = `nar/${createHash('sha256').update(nar).digest('hex').slice(0, 52)}.nar.zst`;
  add('cache', narKey, nar, 'application/x-nix-nar');
  // A binary tree of references (path i → 2i+1, 2i+2): a closure as wide as a real one, log2(N) deep.
  const refs = [2 * i + 1, 2 * i + 2].filter((j) => j < N).map((j) => `${hashPart(j)}-pkg-${j}`).join(' ');
  add('cache', `${hashPart(i)}.narinfo`, `StorePath: ${p}\nURL: ${narKey}\nCompression: zstd\nFileHash: sha256:x\nFileSize: ${narSize}\nNarHash: sha256:y${i}\nNarSize: ${narSize}\nReferences: ${refs}\n`, 'text/x-nix-narinfo');
}
const manifest = `{\n  x86_64-linux = "${paths[0]}";\n}\n`;
add('releases', 'bench/bench-1.0.0/manifest.nix', manifest, 'text/plain');
add('releases', 'manifest.nix', manifest, 'text/plain');
const totalBytes = files.reduce((n, f) => n + f.size, 0);
log(`workload: ${N} NARs of ${narSize} B + ${N} narinfos (${files.length} objects, ${(totalBytes / 1048576).toFixed(1)} MiB) in ${ws}`);

// ---------- one s3rver, buckets per run ----------
const kinds = ['upload', 'server-side', 'streamed', 'to-tree', 'rclone'] as const;
const bucketNames: string[] = ['src-releases', 'src-cache', 'src-docs'];
for (let r = 0; r < rounds; r++) for (const k of kinds) if (k !== 'to-tree') for (const b of ['releases', 'cache', 'docs']) bucketNames.push(`r${r}-${k}-${b}`);
const s3 = await startLocalS3({ dir: path.join(ws, 's3'), buckets: bucketNames });
const remote = s3Store(createS3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, { ...embeddedCredentials }), s3.endpoint);
const store = routedStore(remote, fsStore());
const quiet = createLogger({ quiet: true });
const ref = (bucket: string) => ({ bucket, prefix: '', url: bucket.startsWith('/') ? `file://${bucket}` : `s3://${bucket}` });
const side = (name: string, buckets: [string, string, string]): PromoteSide => ({ name, store: retryingReader(store), endpoint: buckets[0].startsWith('/') ? 'file://' : s3.endpoint, releases: ref(buckets[0]), cache: ref(buckets[1]), docs: ref(buckets[2]) });
const readManifest = async (text: string) => Object.fromEntries([...text.matchAll(/(\S+) = "([^"]+)";/g)].map((m) => [m[1]!, m[2]!]));

async function uploadTo(prefix: string): Promise<void> {
  const put = (f: (typeof files)[number]): S3Put => ({ kind: 's3.put', bucket: `${prefix}-${f.bucket}`, key: f.key, source: { file: f.file }, size: f.size, sha256: f.sha256, contentType: f.contentType, reason: 'new' });
  const steps: Step[] = [
    { title: 'NARs', actions: files.filter((f) => f.key.startsWith('nar/') || f.key === 'nix-cache-info').map(put) },
    { title: 'narinfos', actions: files.filter((f) => f.key.endsWith('.narinfo')).map(put) },
    { title: 'release', actions: files.filter((f) => f.bucket === 'releases').map(put) },
  ];
  await apply({ steps, skipped: [] }, { log: quiet, writers: { s3: store }, dryRun: false });
}

async function promoteTo(dest: PromoteSide, serverSideCopy: 'auto' | 'never'): Promise<{ planMs: number; applyMs: number; writes: number }> {
  const t0 = performance.now();
  const planned = await planPromote({ project: 'bench', version: '1.0.0', major: '1', source: side('src', ['src-releases', 'src-cache', 'src-docs']), dest, serverSideCopy, readManifest, deleteStale: false, replaceArtifacts: false, latestLink: false });
  const t1 = performance.now();
  const r = await apply({ steps: planned.steps, skipped: [] }, { log: quiet, writers: { s3: store, s3Source: store }, dryRun: false });
  return { planMs: t1 - t0, applyMs: performance.now() - t1, writes: r.applied };
}

log('seeding the source buckets');
const seed0 = performance.now();
await uploadTo('src');
log(`seed upload: ${((performance.now() - seed0) / 1000).toFixed(2)} s`);
const times: Record<(typeof kinds)[number], number[]> = { upload: [], 'server-side': [], streamed: [], 'to-tree': [], rclone: [] };

/** rclone copy of the source's cache and releases buckets into the run's, server-side on one remote. */
async function rcloneTo(prefix: string): Promise<void> {
  // The remote is defined in the environment (never on the command line); the embedded s3rver's fixed test keys.
  // AWS_CA_BUNDLE (set on some machines) makes rclone refuse its plain-HTTP transport: s3rver is http on 127.0.0.1.
  const { AWS_CA_BUNDLE: _ca, ...inherited } = process.env;
  const env = {
    ...inherited, RCLONE_CONFIG_S_TYPE: 's3', RCLONE_CONFIG_S_PROVIDER: 'Other', RCLONE_CONFIG_S_ENDPOINT: s3.endpoint,
    RCLONE_CONFIG_S_ACCESS_KEY_ID: embeddedCredentials.accessKeyId, RCLONE_CONFIG_S_SECRET_ACCESS_KEY: embeddedCredentials.secretAccessKey,
    RCLONE_CONFIG_S_FORCE_PATH_STYLE: 'true', RCLONE_CONFIG_S_NO_CHECK_BUCKET: 'true',
  };
  const t = flags['rclone-transfers']!;
  for (const b of ['cache', 'releases']) {
    await promisify(execFile)('rclone', ['copy', `s:src-${b}`, `s:${prefix}-${b}`, '--transfers', t, '--checkers', t, '--fast-list', '--config', '/dev/null'], { env });
  }
  for (const b of ['cache', 'releases']) {
    const got = new Set((await store.list(`${prefix}-${b}`, '')).map((o) => o.key));
    const missing = (await store.list(`src-${b}`, '')).map((o) => o.key).filter((k) => !got.has(k));
    if (missing.length) throw new Error(`rclone did not copy ${missing.length} object(s) of src-${b}: ${missing.slice(0, 5).join(', ')}`);
  }
}

const plans: Record<string, number[]> = { 'server-side': [], streamed: [], 'to-tree': [] };
for (let r = 0; r < rounds; r++) {
  for (const k of kinds) {
    const t0 = performance.now();
    if (k === 'upload') { await uploadTo(`r${r}-upload`); times.upload.push(performance.now() - t0); log(`round ${r + 1} upload: ${((performance.now() - t0) / 1000).toFixed(2)} s`); continue; }
    if (k === 'rclone') { await rcloneTo(`r${r}-rclone`); times.rclone.push(performance.now() - t0); log(`round ${r + 1} rclone: ${((performance.now() - t0) / 1000).toFixed(2)} s`); continue; }
    let dest: PromoteSide;
    if (k === 'to-tree') {
      const dir = path.join(ws, `tree-${r}`);
      for (const b of ['releases', 'cache', 'docs']) mkdirSync(path.join(dir, b), { recursive: true });
      dest = side('tree', [path.join(dir, 'releases'), path.join(dir, 'cache'), path.join(dir, 'docs')]);
    } else dest = side(k, [`r${r}-${k}-releases`, `r${r}-${k}-cache`, `r${r}-${k}-docs`]);
    const res = await promoteTo(dest, k === 'streamed' ? 'never' : 'auto');
    if (res.writes !== files.length) throw new Error(`${k}: ${res.writes} writes, expected ${files.length}`);
    times[k].push(performance.now() - t0);
    plans[k]!.push(res.planMs);
    log(`round ${r + 1} ${k}: ${((performance.now() - t0) / 1000).toFixed(2)} s (plan ${(res.planMs / 1000).toFixed(2)} s)`);
  }
}
await s3.stop();
rmSync(ws, { recursive: true, force: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const up = median(times.upload);
console.log(`| run (${N} NARs + ${N} narinfos, ${(totalBytes / 1048576).toFixed(1)} MiB, ${rounds} rounds) | median | min–max | plan (median) | vs upload | vs rclone |`);
console.log('|---|---|---|---|---|---|');
for (const k of kinds) {
  const xs = times[k];
  console.log(`| ${k} | ${fmt(median(xs))} | ${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))} | ${plans[k] ? fmt(median(plans[k]!)) : '—'} | ${(median(xs) / up).toFixed(2)}× | ${(median(xs) / median(times.rclone)).toFixed(2)}× |`);
}
