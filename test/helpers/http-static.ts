// A web server over a directory tree, as a mirror master's nginx serves one: GET and HEAD of files,
// `Range: bytes=A-B` (what BitTorrent web seeds ask for, BEP 19) answered 206, 404 for what is not
// a file, nothing outside the root. 127.0.0.1 on a free port; stopped by close(). Every request is
// recorded (method, path, range) so a test can say what a client fetched. `tamper` lets a test serve
// other bytes for one path (a web seed that lies).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface StaticServer {
  url: string;
  port: number;
  requests: Array<{ method: string; path: string; range?: string; status: number }>;
  /** Serve `bytes` instead of the file at `urlPath` (e.g. `/hello/releases/x.tar.xz`). */
  tamper(urlPath: string, bytes: Buffer | undefined): void;
  close(): Promise<void>;
}

export async function startStaticServer(root: string): Promise<StaticServer> {
  const requests: StaticServer['requests'] = [];
  const tampered = new Map<string, Buffer>();
  const server = http.createServer(async (req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const range = req.headers.range;
    const done = (status: number) => requests.push({ method: req.method ?? '', path: urlPath, ...(range ? { range } : {}), status });
    const file = path.join(root, urlPath);
    const st = file.startsWith(root + path.sep) ? await stat(file).catch(() => undefined) : undefined;
    const fake = tampered.get(urlPath);
    if (!st?.isFile() || (req.method !== 'GET' && req.method !== 'HEAD')) { res.writeHead(404).end(); done(404); return; }
    const size = fake ? fake.length : st.size;
    let start = 0;
    let end = size - 1;
    let status = 200;
    const m = range ? /^bytes=(\d*)-(\d*)$/.exec(range) : null;
    if (range && !m) { res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end(); done(416); return; }
    if (m) {
      if (m[1] === '') { start = Math.max(0, size - Number(m[2])); } else { start = Number(m[1]); if (m[2] !== '') end = Math.min(end, Number(m[2])); }
      if (start > end || start >= size) { res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end(); done(416); return; }
      status = 206;
    }
    res.writeHead(status, {
      'Content-Length': String(end - start + 1), 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream',
      'Last-Modified': st.mtime.toUTCString(), ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
    });
    done(status);
    if (req.method === 'HEAD') { res.end(); return; }
    if (fake) { res.end(fake.subarray(start, end + 1)); return; }
    createReadStream(file, { start, end }).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, port, requests,
    tamper: (p, bytes) => { if (bytes) tampered.set(p, bytes); else tampered.delete(p); },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
