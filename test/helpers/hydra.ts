// Test servers for the channel tests: a fake Hydra serving JSON in Hydra's real shapes (builds,
// evaluations, store-paths, /eval/ID/job/NAME redirects; HTML to clients that do not ask for JSON),
// and a static HTTP server for a file:// binary cache made by `nix copy`. Both log requests.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface FakeHydra {
  url: string;
  builds: Map<number, any>;
  evals: Map<number, any>;
  /** evalId → job name → build id. */
  jobs: Map<number, Record<string, number>>;
  storePaths: Map<number, string[]>;
  /** Paths answered with HTTP 500 (Hydra failing), and with an HTML page. */
  failing: Set<string>;
  html: Set<string>;
  /** Raw bodies served as JSON (schema mismatch tests). */
  raw: Map<string, string>;
  requests: string[];
  stop(): Promise<void>;
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

export async function startFakeHydra(): Promise<FakeHydra> {
  const h: Omit<FakeHydra, 'url' | 'stop'> = { builds: new Map(), evals: new Map(), jobs: new Map(), storePaths: new Map(), failing: new Set(), html: new Set(), raw: new Map(), requests: [] };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    h.requests.push(`${req.method} ${p}`);
    const json = (body: unknown) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(typeof body === 'string' ? body : JSON.stringify(body)); };
    const html = (status: number, text: string) => { res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }); res.end(`<!DOCTYPE html><html><body>${text}</body></html>`); };
    if (h.failing.has(p)) return html(500, 'Internal Server Error');
    // Real Hydra serves HTML unless the client asks for JSON.
    if (h.html.has(p) || !/application\/json/.test(req.headers.accept ?? '')) return html(200, 'Hydra');
    if (h.raw.has(p)) return json(h.raw.get(p));
    let m: RegExpExecArray | null;
    if ((m = /^\/build\/(\d+)$/.exec(p)) && h.builds.has(Number(m[1]))) return json(h.builds.get(Number(m[1])));
    if ((m = /^\/eval\/(\d+)$/.exec(p)) && h.evals.has(Number(m[1]))) return json(h.evals.get(Number(m[1])));
    if ((m = /^\/eval\/(\d+)\/store-paths$/.exec(p)) && h.storePaths.has(Number(m[1]))) return json(h.storePaths.get(Number(m[1])));
    if ((m = /^\/eval\/(\d+)\/job\/(.+)$/.exec(p))) {
      const id = h.jobs.get(Number(m[1]))?.[decodeURIComponent(m[2]!)];
      if (id !== undefined) { res.writeHead(302, { location: `/build/${id}` }); return res.end(); }
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'not found' }));
  });
  const url = await listen(server);
  return { ...h, url, stop: () => close(server) };
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
