// `npm run bench:programs`: programs.sqlite at channel scale (issue 27): time and peak RSS of
// generateProgramsIndex (lib/channel/programs.ts) over 10k and 100k store paths, first with an empty
// listing memo (every NAR listing fetched over HTTP) and then for the "next release" (95 % of the
// paths known from the memo, 5 % new). Never part of the test suite; nothing asserts a time.
//
// What is real: the code releng runs (streamed packages.json.br, the HTTP listing source with its
// retries and bounded concurrency, the memo and programs.sqlite in node-sqlite3-wasm, the sorted
// rewrite). What is synthetic: the packages (packages.json.br with half as many attributes as
// paths, each with one output per system on 2 systems), the evaluation (nix-env over a real nixpkgs
// is the mirror's cost too, minutes and gigabytes in nix-env itself, and not measured here) and the
// cache: a server in another process answering HASH.ls with listings in Nix's shape, 0-6 programs
// in bin/ plus share/ entries (about 1-3 KiB each; 1 % of them 2,000 files), 2 ms of latency each.
// Each arm runs in its own process, so its peak RSS is its own (process.resourceUsage().maxRSS).
import { execFileSync, fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';

const self = fileURLToPath(import.meta.url);
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
/** A store path for package i of system s in release r (paths of packages ≥ keep are new in release 2). */
const storePath = (i: number, system: string, release: number, newFrom: number) => {
  const gen = i >= newFrom ? release : 1;
  const h = hex(`${i}/${system}/${gen}`).replace(/[^0-9a-df-np-sv-z]/g, '').padEnd(32, '0').slice(0, 32);
  return `/nix/store/${h}-pkg${i}-1.${gen}`;
};
const SYSTEMS = ['x86_64-linux', 'aarch64-linux'];

/** The cache: HASH.ls answered from the hash alone (deterministic), after `latencyMs`. */
function listingFor(hash: string): string {
  const n = parseInt(hash.slice(0, 6), 36);
  const bin: Record<string, unknown> = {};
  for (let p = 0; p < n % 7; p++) bin[`prog-${hash.slice(0, 6)}-${p}`] = { type: 'regular', size: 1000 + p, executable: true, narOffset: 400 + p * 1100 };
  const share: Record<string, unknown> = {};
  const files = n % 100 === 0 ? 2000 : 10 + (n % 20);
  for (let f = 0; f < files; f++) share[`file-${f}.txt`] = { type: 'regular', size: 100, narOffset: 9000 + f * 200 };
  return JSON.stringify({ version: 1, root: { type: 'directory', entries: { bin: { type: 'directory', entries: bin }, share: { type: 'directory', entries: { doc: { type: 'directory', entries: share } } } } } });
}

async function serveCache(latencyMs: number): Promise<void> {
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    const m = /^\/([0-9a-z]{32})\.ls$/.exec(req.url ?? '');
    setTimeout(() => {
      if (!m) { res.writeHead(404); return res.end(); }
      const body = listingFor(m[1]!);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    }, latencyMs);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  process.send!({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  process.on('message', (m: any) => { if (m === 'count') process.send!({ requests }); });
}

const packagesFileOf = (dir: string, paths: number) => path.join(dir, `packages-${paths}.json.br`);

/** packages.json.br with paths/2 attributes in nix-env's shape (made by the parent, outside the arms' figures). */
function writePackages(dir: string, paths: number): void {
  const parts: string[] = [];
  for (let i = 0; i < Math.floor(paths / SYSTEMS.length); i++) parts.push(`"pkg${i}":{"name":"pkg${i}-1","pname":"pkg${i}","version":"1","system":"x86_64-linux","outputName":"out","outputs":{"out":null},"meta":{"description":"package ${i} of the benchmark, with a description as long as a real one's tends to be","license":{"spdxId":"MIT"},"platforms":["x86_64-linux","aarch64-linux"]}}`);
  writeFileSync(packagesFileOf(dir, paths), brotliCompressSync(Buffer.from(`{"version":2,"packages":{${parts.join(',')}}}`), { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 5 } }));
}

/** One arm, in its own process: generate programs.sqlite for `paths` paths of release `release`. */
async function arm(opts: { dir: string; paths: number; release: number; newShare: number; url: string; concurrency: number }): Promise<void> {
  const { generateProgramsIndex } = await import('../lib/channel/programs.ts');
  const { httpListingSource } = await import('../lib/channel/listings.ts');
  const { openListingMemo } = await import('../lib/channel/listing-memo.ts');
  const packagesN = Math.floor(opts.paths / SYSTEMS.length);
  const newFrom = Math.floor(packagesN * (1 - opts.newShare));
  const pkgsFile = packagesFileOf(opts.dir, opts.paths);
  const memo = await openListingMemo(path.join(opts.dir, `memo-${opts.paths}.sqlite`));
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const stats = await generateProgramsIndex({
    exprDir: opts.dir, packagesFile: pkgsFile, systems: SYSTEMS, output: path.join(opts.dir, `programs-${opts.paths}-${opts.release}.sqlite`),
    source: httpListingSource(opts.url, { localStore: false }), memo, concurrency: opts.concurrency,
    evaluate: async (_e, system, each) => { for (let i = 0; i < packagesN; i++) each({ attr: `pkg${i}`, outputs: { out: storePath(i, system, opts.release, newFrom) } }); },
  });
  memo.prune();
  memo.close();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  process.send!({ seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024, cpuSeconds: (cpu.user + cpu.system) / 1e6, stats,
    dbKiB: statSync(path.join(opts.dir, `programs-${opts.paths}-${opts.release}.sqlite`)).size / 1024 });
}

const child = process.argv[2];
if (child === '--cache') await serveCache(Number(process.argv[3]));
else if (child === '--arm') await arm(JSON.parse(process.argv[3]!));
else {
  const { values } = parseArgs({ options: { sizes: { type: 'string', default: '10000,100000' }, concurrency: { type: 'string', default: '32' }, latency: { type: 'string', default: '2' }, out: { type: 'string' } } });
  const sizes = values.sizes!.split(',').map(Number);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'releng-bench-programs-'));
  const spawnTs = (args: string[]) => fork(self, args, { execArgv: ['--import', 'tsx', ...(process.env.BENCH_CPU_PROF && args[0] === '--arm' ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const cache = spawnTs(['--cache', values.latency!]);
  const { url } = await new Promise<{ url: string }>((r) => cache.once('message', r as any));
  const count = () => new Promise<number>((r) => { cache.once('message', (m: any) => r(m.requests)); cache.send('count'); });
  const uptime = () => execFileSync('uptime', { encoding: 'utf8' }).trim();
  const lines = [`# programs.sqlite benchmark (${new Date().toISOString()})`, '', `machine: ${os.cpus().length} cores (${os.cpus()[0]?.model}), ${Math.round(os.totalmem() / 2 ** 30)} GiB; node ${process.version}`,
    `before: ${uptime()}`, `listing concurrency ${values.concurrency}, cache latency ${values.latency} ms per request`, '',
    '| paths | run | wall | CPU | peak RSS | listings fetched | remembered | HTTP requests | rows | programs.sqlite |', '|---|---|---|---|---|---|---|---|---|---|'];
  try {
    for (const n of sizes) {
      writePackages(dir, n);
      for (const [release, label] of [[1, 'first release (empty memo)'], [2, 'next release (5 % new paths)']] as const) {
        const before = await count();
        const p = spawnTs(['--arm', JSON.stringify({ dir, paths: n, release, newShare: 0.05, url, concurrency: Number(values.concurrency) })]);
        const r: any = await new Promise((res, rej) => { p.once('message', res); p.once('exit', (c) => c && rej(new Error(`arm exited ${c}`))); });
        const requests = (await count()) - before;
        lines.push(`| ${n.toLocaleString('en')} | ${label} | ${r.seconds.toFixed(1)} s | ${r.cpuSeconds.toFixed(1)} s | ${r.maxRssMiB.toFixed(0)} MiB | ${r.stats.fetched} | ${r.stats.remembered} | ${requests} | ${r.stats.rows} | ${r.dbKiB.toFixed(0)} KiB |`);
        console.error(lines.at(-1));
      }
    }
    lines.push('', `after: ${uptime()}`);
  } finally {
    cache.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  const report = lines.join('\n') + '\n';
  process.stdout.write(report);
  if (values.out) writeFileSync(values.out, report);
}
