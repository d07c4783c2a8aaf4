// Test servers for the channel tests.
//
// A fake Hydra serving JSON in the shapes of Hydra's own code (the one part of the stack that cannot
// run here): GET /build/ID as Builds.pm `as_json` (buildoutputs keyed by output name with `path`,
// buildproducts keyed by productnr with BuildProducts' json_hint columns type, subtype, name,
// filesize, sha256hash, path, defaultpath), GET /eval/ID as JobsetEvals' json_hint (builds as ids,
// jobsetevalinputs keyed by name with revision/value/type/uri/dependency), /eval/ID/job/NAME as a
// redirect to the build of that job in the evaluation (JobsetEval.pm `job`), /eval/ID/store-paths as
// the sorted, de-duplicated outputs (every output: Hydra joins buildoutputs) of the evaluation's
// successful builds that have a nix-build product (JobsetEval.pm `store_paths`), /eval/ID/builds as every build of the evaluation, each as
// /build/ID answers (JobsetEval.pm `all_builds`), /jobset/P/J/latest-eval as a redirect to the newest
// evaluation of that jobset with hasnewbuilds and no unfinished build (Jobset.pm `latest_eval`,
// CatalystUtils getLatestFinishedEval; 404 when there is none), and HTML to clients that do not ask for JSON.
//
// Build products are read from the outputs' nix-support/hydra-build-products the way Hydra's queue
// runner does: "TYPE SUBTYPE PATH [DEFAULTPATH]" per line; name = the file name of PATH ('' for the
// output itself); filesize and sha256hash only for regular files; an output without that file gets
// one "nix-build" product (subtype '' for `out`), named after the store path without its hash.
//
// Faults, per request path: `failing` (HTTP 500 always), `flaky` (HTTP 500 the next N times),
// `truncated` (the next N answers announce the full Content-Length, send half, then drop the
// connection), `resets` (drop the connection without an answer N times), `html`, `raw` bodies.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface FakeHydraBuildInput {
  id: number;
  job: string;
  nixname: string;
  project?: string;
  jobset?: string;
  system?: string;
  /** Output path of `out` (a real store path, whose nix-support/hydra-build-products is read). */
  out: string;
  evals: number[];
  /** Hydra's buildstatus: 0 success, 1 failed, ... (finished builds only). */
  buildstatus?: number;
  finished?: boolean;
  /** The derivation (default: a placeholder store path). */
  drvPath?: string;
  /** Outputs besides `out` (name → path), e.g. Lix's build.SYSTEM: dev, doc, devdoc, debug; Hydra's buildoutputs has every output, `out` included. */
  outputs?: Record<string, string>;
}

export interface FakeHydra {
  url: string;
  builds: Map<number, any>;
  evals: Map<number, any>;
  failing: Set<string>;
  flaky: Map<string, number>;
  truncated: Map<string, number>;
  resets: Map<string, number>;
  html: Set<string>;
  raw: Map<string, string>;
  requests: string[];
  /** Adds a build, its products read from its output as Hydra's queue runner reads them. */
  addBuild(b: FakeHydraBuildInput): Promise<any>;
  /** Adds an evaluation of the given builds, with one git input. */
  addEval(e: { id: number; builds: number[]; inputs: Record<string, { type: string; uri: string; revision: string }>; timestamp?: number; project?: string; jobset?: string }): any;
  stop(): Promise<void>;
}

/** Hydra's product line: type, subtype, path (optionally quoted), optional default path. */
const PRODUCT_LINE = /^([a-zA-Z0-9_-]+)\s+([a-zA-Z0-9_-]+)\s+("[^"]*"|\S+)(\s+(\S+))?\s*$/;

/** The buildproducts of an output, as Hydra records them. */
export async function readBuildProducts(out: string, outputName = 'out'): Promise<Record<string, any>> {
  const text = await readFile(path.join(out, 'nix-support', 'hydra-build-products'), 'utf8').catch(() => undefined);
  const products: any[] = [];
  if (text === undefined) {
    products.push({ type: 'nix-build', subtype: outputName === 'out' ? '' : outputName, name: path.basename(out).slice(33), filesize: null, sha256hash: null, path: out, defaultpath: '' });
  } else {
    for (const line of text.split('\n')) {
      const m = PRODUCT_LINE.exec(line);
      if (!m) continue;
      const p = m[3]!.replace(/^"(.*)"$/, '$1');
      const st = await stat(p).catch(() => undefined);
      if (!st) continue;
      const regular = st.isFile();
      products.push({
        type: m[1], subtype: m[2], name: p === out ? '' : path.basename(p),
        filesize: regular ? st.size : null, sha256hash: regular ? createHash('sha256').update(await readFile(p)).digest('hex') : null,
        path: p, defaultpath: m[5] ?? '',
      });
    }
  }
  return Object.fromEntries(products.map((p, i) => [String(i + 1), p]));
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

/** Takes one from a fault counter: true while it lasts. */
function take(m: Map<string, number>, p: string): boolean {
  const n = m.get(p) ?? 0;
  if (n <= 0) return false;
  m.set(p, n - 1);
  return true;
}

export async function startFakeHydra(): Promise<FakeHydra> {
  const h = {
    builds: new Map<number, any>(), evals: new Map<number, any>(), failing: new Set<string>(), flaky: new Map<string, number>(),
    truncated: new Map<string, number>(), resets: new Map<string, number>(), html: new Set<string>(), raw: new Map<string, string>(), requests: [] as string[],
  };
  const jobsetOf = new Map<number, string>();
  const storePaths = (evalId: number) => {
    const outs = (h.evals.get(evalId).builds as number[]).map((id) => h.builds.get(id)).filter((b) => b && b.finished === 1 && b.buildstatus === 0
      && Object.values(b.buildproducts).some((p: any) => p.type === 'nix-build')).flatMap((b) => Object.values(b.buildoutputs).map((o: any) => o.path as string));
    return [...new Set(outs)].sort();
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    h.requests.push(`${req.method} ${p}`);
    if (take(h.resets, p)) { req.socket.destroy(); return; }
    const json = (body: unknown) => {
      const text = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': text.length });
      if (take(h.truncated, p)) { res.write(text.subarray(0, Math.floor(text.length / 2))); setTimeout(() => req.socket.destroy(), 20); return; }
      res.end(text);
    };
    const html = (status: number, text: string) => { res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }); res.end(`<!DOCTYPE html><html><body>${text}</body></html>`); };
    if (h.failing.has(p) || take(h.flaky, p)) return html(500, 'Internal Server Error');
    // Real Hydra serves HTML unless the client asks for JSON.
    if (h.html.has(p) || !/application\/json/.test(req.headers.accept ?? '')) return html(200, 'Hydra');
    if (h.raw.has(p)) return json(h.raw.get(p));
    let m: RegExpExecArray | null;
    if ((m = /^\/build\/(\d+)$/.exec(p)) && h.builds.has(Number(m[1]))) return json(h.builds.get(Number(m[1])));
    if ((m = /^\/eval\/(\d+)$/.exec(p)) && h.evals.has(Number(m[1]))) return json(h.evals.get(Number(m[1])));
    if ((m = /^\/eval\/(\d+)\/builds$/.exec(p)) && h.evals.has(Number(m[1]))) {
      return json((h.evals.get(Number(m[1])).builds as number[]).map((id) => h.builds.get(id)).filter(Boolean));
    }
    if ((m = /^\/jobset\/([^/]+)\/([^/]+)\/latest-eval$/.exec(p))) {
      const [pr, js] = [decodeURIComponent(m[1]!), decodeURIComponent(m[2]!)];
      const latest = [...h.evals.values()].filter((ev) => jobsetOf.get(ev.id) === `${pr}/${js}` && ev.hasnewbuilds === 1
        && (ev.builds as number[]).every((id) => h.builds.get(id)?.finished !== 0)).sort((a, b) => b.id - a.id)[0];
      if (latest) { res.writeHead(302, { location: `/eval/${latest.id}` }); return res.end(); }
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: 'No evaluation found.' }));
    }
    if ((m = /^\/eval\/(\d+)\/store-paths$/.exec(p)) && h.evals.has(Number(m[1]))) return json(storePaths(Number(m[1])));
    if ((m = /^\/eval\/(\d+)\/job\/([^/]+)$/.exec(p)) && h.evals.has(Number(m[1]))) {
      const job = decodeURIComponent(m[2]!);
      const id = (h.evals.get(Number(m[1])).builds as number[]).find((b) => h.builds.get(b)?.job === job);
      if (id !== undefined) { res.writeHead(302, { location: `/build/${id}` }); return res.end(); }
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: 'This evaluation has no job with the specified name.' }));
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'not found' }));
  });
  const url = await listen(server);
  return {
    ...h, url, stop: () => close(server),
    async addBuild(b) {
      const failed = (b.buildstatus ?? 0) !== 0;
      const build = {
        id: b.id, finished: b.finished === false ? 0 : 1, timestamp: 1790000000, starttime: 1790000000, stoptime: b.finished === false ? null : 1790000100,
        project: b.project ?? 'nixos', jobset: b.jobset ?? 'release', job: b.job, nixname: b.nixname, system: b.system ?? 'x86_64-linux', priority: 100,
        buildstatus: b.finished === false ? null : (b.buildstatus ?? 0), releasename: null, drvpath: b.drvPath ?? `/nix/store/${'0'.repeat(32)}-${b.nixname}.drv`,
        jobsetevals: b.evals, buildoutputs: Object.fromEntries(Object.entries({ out: b.out, ...(b.outputs ?? {}) }).map(([k, v]) => [k, { path: v }])),
        // A failed build has no products (Hydra records them only for successful outputs).
        buildproducts: failed || b.finished === false ? {} : await readBuildProducts(b.out), buildmetrics: {},
      };
      h.builds.set(b.id, build);
      return build;
    },
    addEval(e) {
      const ev = {
        id: e.id, timestamp: e.timestamp ?? 1790000000, checkouttime: 3, evaltime: 60, hasnewbuilds: 1, flake: null, builds: e.builds,
        jobsetevalinputs: Object.fromEntries(Object.entries(e.inputs).map(([k, v]) => [k, { ...v, value: null, dependency: null }])),
      };
      h.evals.set(e.id, ev);
      jobsetOf.set(e.id, `${e.project ?? 'nixos'}/${e.jobset ?? 'release'}`);
      return ev;
    },
  };
}

export interface StaticServer {
  url: string;
  requests: string[];
  stop(): Promise<void>;
}

/** Serves a directory read-only (a `nix copy --to file://DIR` binary cache). */
export async function serveDirectory(dir: string): Promise<StaticServer> {
  const requests: string[] = [];
  const server = http.createServer(async (req, res) => {
    const p = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(`${req.method} ${p}`);
    const file = path.join(dir, path.normalize(p));
    const st = file.startsWith(dir) ? await stat(file).catch(() => undefined) : undefined;
    if (!st?.isFile()) { res.writeHead(404); return res.end(); }
    res.writeHead(200, { 'content-length': st.size });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  const url = await listen(server);
  return { url, requests, stop: () => close(server) };
}
