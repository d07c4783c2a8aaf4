// A tiny HTTP proxy between releng and an S3 server that flips one byte in the body of the first
// `corrupt` PUT requests carrying one (transit corruption, issue 9). Everything else passes
// through unchanged. Listens on 127.0.0.1:0; stop() closes it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CorruptingProxy {
  endpoint: string;
  /** Bodies corrupted so far, as `METHOD path`. */
  corrupted: string[];
  /** Requests seen, as `METHOD path -> status`. */
  seen: string[];
  stop(): Promise<void>;
}

export async function startCorruptingProxy(target: string, opts: { corrupt: number }): Promise<CorruptingProxy> {
  const t = new URL(target);
  const corrupted: string[] = [];
  const seen: string[] = [];
  const agent = new http.Agent({ keepAlive: false });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'PUT' && body.length > 0 && corrupted.length < opts.corrupt) {
        body[Math.floor(body.length / 2)] = body[Math.floor(body.length / 2)]! ^ 0x01;
        corrupted.push(`${req.method} ${req.url}`);
      }
      const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: req.headers.host }, agent }, (ur) => {
        seen.push(`${req.method} ${req.url} -> ${ur.statusCode}`);
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`, corrupted, seen,
    stop: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
