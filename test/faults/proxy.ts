// A fault-injecting HTTP proxy of our own, between releng and the S3 server / the registry. It
// forwards requests unchanged (Host header included, so SigV4 signatures stay valid) unless the
// current fault says otherwise: SIGKILL the releng process at the Nth request or in the middle of a
// body; answer 500, 503 SlowDown or reset the connection for a fraction of requests (seeded RNG);
// acknowledge a PUT without storing it; forward only half of a PUT body and acknowledge it; flip a
// byte of a PUT body in transit. Every injection is counted and bounded (maxInjections).
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RequestInfo {
  method: string;
  url: string;
  /** Which proxy saw it (s3, rgw, registry ...). */
  upstream: string;
  /** Content-Length of the request body (0 when none). */
  bodyLength: number;
  /** x-amz-copy-source of a CopyObject (BUCKET/KEY, URL-encoded), when it is one. */
  copySource?: string;
}

export type Fault =
  | { kind: 'none' }
  /** SIGKILL releng at the Nth matching request (that request is not forwarded); midBody: forward half its body first. */
  | { kind: 'kill'; at: number; midBody?: boolean; match?: (r: RequestInfo) => boolean }
  /** Answer this status (500 InternalError, 503 SlowDown) for a fraction of matching requests. */
  | { kind: 'status'; status: 500 | 503; rate: number; seed: number; match?: (r: RequestInfo) => boolean }
  /** Destroy the client connection without an answer for a fraction of matching requests. */
  | { kind: 'reset'; rate: number; seed: number; match?: (r: RequestInfo) => boolean }
  /**
   * Answer 200 with a made-up ETag and do not forward, for the Nth matching PUT (or a fraction).
   * etag 'body-md5': the MD5 of the body, as a server that stored it would. `answer` gives the
   * ETag (and body) to lie with instead: e.g. a CopyObjectResult with the copy source's real ETag,
   * as a server that acknowledges a copy it never stored would.
   */
  | { kind: 'ack-without-store'; at?: number; rate?: number; seed?: number; etag?: 'body-md5'; match?: (r: RequestInfo) => boolean; answer?: (r: RequestInfo) => { etag: string; body?: string } }
  /** Forward only the first half of the Nth matching PUT body, abort it upstream, and answer the client 200. */
  | { kind: 'truncate'; at: number; match?: (r: RequestInfo) => boolean }
  /** Flip one byte of the Nth matching PUT body on its way to the server (the answer is passed back; etag 'sent-md5': its ETag replaced by the MD5 of the body as sent, a server that lies). */
  | { kind: 'flip'; at: number; etag?: 'sent-md5'; match?: (r: RequestInfo) => boolean };

/** Shared by the proxies of one test: the current fault, counters, and how to kill releng. */
export class FaultController {
  fault: Fault = { kind: 'none' };
  /** Requests seen per fault (matching ones), injections made. */
  seen = 0;
  injected = 0;
  maxInjections = 40;
  /** Set by the runner to SIGKILL the releng process group. */
  kill?: () => void;
  killed = false;
  readonly log: string[] = [];
  /** Every request the proxies saw (faulted or not), to count requests by method and path. */
  readonly requests: RequestInfo[] = [];
  private rng = mulberry32(1);

  set(fault: Fault): void {
    this.fault = fault;
    this.seen = 0;
    this.injected = 0;
    this.killed = false;
    this.log.length = 0;
    this.rng = mulberry32('seed' in fault && fault.seed !== undefined ? fault.seed : 1);
  }

  /** Decides what to do with one request. */
  decide(r: RequestInfo): 'forward' | 'kill' | 'kill-mid-body' | 'status' | 'reset' | 'ack' | 'truncate' | 'flip' {
    const f = this.fault;
    if (f.kind === 'none' || this.killed) return 'forward';
    const isPut = r.method === 'PUT' && r.bodyLength > 0;
    const defaultMatch = f.kind === 'status' || f.kind === 'reset' || f.kind === 'kill' ? () => true : () => isPut;
    if (!(f.match ?? defaultMatch)(r)) return 'forward';
    if ((f.kind === 'truncate' || f.kind === 'flip' || (f.kind === 'kill' && f.midBody)) && !isPut) return 'forward';
    this.seen++;
    if (this.injected >= this.maxInjections) return 'forward';
    const pick = (): boolean => {
      switch (f.kind) {
        case 'kill': case 'truncate': case 'flip': return this.seen === f.at;
        case 'ack-without-store': return f.at !== undefined ? this.seen === f.at : this.rng() < (f.rate ?? 0);
        case 'status': case 'reset': return this.rng() < f.rate;
      }
    };
    if (!pick()) return 'forward';
    this.injected++;
    this.log.push(`${f.kind} ${r.method} ${r.upstream} ${r.url}`);
    switch (f.kind) {
      case 'kill': return f.midBody ? 'kill-mid-body' : 'kill';
      case 'status': return 'status';
      case 'reset': return 'reset';
      case 'ack-without-store': return 'ack';
      case 'truncate': return 'truncate';
      case 'flip': return 'flip';
    }
  }

  doKill(): void {
    if (this.killed) return;
    this.killed = true;
    this.kill?.();
  }
}

/** Small deterministic PRNG (seeded runs inject the same faults each time). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FaultProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  host: string;
  stop(): Promise<void>;
}

const fakeEtag = () => `"${Math.random().toString(16).slice(2).padEnd(32, '0').slice(0, 32)}"`;

/** Starts a proxy to `upstream` (http://host:port) on a free 127.0.0.1 port. */
export async function startFaultProxy(name: string, upstream: string, ctl: FaultController): Promise<FaultProxy> {
  const target = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const bodyLength = Number(req.headers['content-length'] ?? 0);
    const copySource = req.headers['x-amz-copy-source'];
    const info: RequestInfo = { method: req.method ?? 'GET', url: req.url ?? '/', upstream: name, bodyLength, ...(typeof copySource === 'string' ? { copySource } : {}) };
    ctl.requests.push(info);
    const action = ctl.decide(info);
    const drain = () => { req.resume(); };
    if (action === 'kill') { ctl.doKill(); drain(); req.socket.destroy(); return; }
    if (action === 'reset') { drain(); req.socket.destroy(); return; }
    if (action === 'status') {
      drain();
      const code = ctl.fault.kind === 'status' ? ctl.fault.status : 500;
      const [errCode, msg] = code === 503 ? ['SlowDown', 'Please reduce your request rate.'] : ['InternalError', 'We encountered an internal error. Please try again.'];
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${errCode}</Code><Message>${msg}</Message><Resource>${req.url}</Resource><RequestId>fault</RequestId></Error>`;
      req.on('end', () => { res.writeHead(code, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) }); res.end(req.method === 'HEAD' ? undefined : body); });
      return;
    }
    const bodyMd5 = createHash('md5');
    if (action === 'ack') {
      const answer = ctl.fault.kind === 'ack-without-store' && ctl.fault.answer ? ctl.fault.answer(info) : undefined;
      req.on('data', (c: Buffer) => bodyMd5.update(c));
      req.on('end', () => {
        const etag = answer?.etag ?? (ctl.fault.kind === 'ack-without-store' && ctl.fault.etag === 'body-md5' ? `"${bodyMd5.digest('hex')}"` : fakeEtag());
        const body = answer?.body ?? '';
        res.writeHead(200, { etag, 'content-length': Buffer.byteLength(body), ...(body ? { 'content-type': 'application/xml' } : {}) });
        res.end(body);
      });
      return;
    }
    const lie = action === 'flip' && ctl.fault.kind === 'flip' && ctl.fault.etag === 'sent-md5';
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (ures) => {
      // The server answered after the whole (flipped) body: the MD5 of what the client sent is complete.
      res.writeHead(ures.statusCode ?? 502, lie && ures.headers.etag ? { ...ures.headers, etag: `"${bodyMd5.digest('hex')}"` } : ures.headers);
      ures.pipe(res);
    });
    up.on('error', () => { if (!res.headersSent) req.socket.destroy(); else res.destroy(); });
    if (action === 'forward') { req.pipe(up); return; }
    // Body faults: forward part of the body (or a changed body), byte-exactly counted.
    let sent = 0;
    const half = Math.max(1, Math.floor(bodyLength / 2));
    req.on('data', (chunk: Buffer) => {
      if (action === 'flip') {
        bodyMd5.update(chunk);
        const at = Math.floor(bodyLength / 2) - sent;
        if (at >= 0 && at < chunk.length) { chunk = Buffer.from(chunk); chunk[at]! ^= 0x01; }
        sent += chunk.length;
        up.write(chunk);
        return;
      }
      if (sent >= half) return;
      const part = chunk.subarray(0, half - sent);
      sent += part.length;
      up.write(part);
      if (sent >= half) {
        // Half the body is on its way: the server sees a connection that dies mid-body.
        setTimeout(() => {
          up.destroy();
          if (action === 'kill-mid-body') { ctl.doKill(); req.socket.destroy(); return; }
          // truncate: the client is told it all went well.
          if (!res.headersSent) { res.writeHead(200, { etag: fakeEtag(), 'content-length': 0 }); res.end(); }
        }, 50);
      }
    });
    req.on('end', () => { if (action === 'flip') up.end(); });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('clientError', (_e, socket) => socket.destroy()); // e.g. a TLS probe on this plain-HTTP port
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    async stop() {
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
