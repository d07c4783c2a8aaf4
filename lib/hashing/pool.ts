// A small pool of hash workers (node:worker_threads; by default one per core but the main
// thread's, issue 16): large files hash beside the main thread (digestFile), and, when
// RELENG_HASH_WORKERS asks for it, verify --deep's per-object work (sha256 of the downloaded
// bytes; for a NAR, zstd decoding, NarHash and FileHash) runs beside the main thread's HTTP.
// Downloaded chunks are gathered into BATCH-sized buffers that are transferred to the worker
// (transferList: ownership moves, no clone), at most WINDOW bytes per object in flight, so memory
// stays bounded whatever the object's size.
//
// Workers start lazily, one at a time as work needs them, and are unref'ed while idle, so an idle
// pool never keeps the process alive. A worker that dies (an uncaught error, exit) fails every
// task it held with an error naming its file or key, and is replaced for later tasks: a crash
// never hangs a run. Only large inputs come here (callers hold the thresholds): a message costs
// tens of microseconds, and a worker's start-up ~80 ms of CPU (Node 20 boots a new isolate).
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FileDigest, ObjectDigest, RawDigest } from './digester.ts';
import type { Reply, Request } from './protocol.ts';

/** Bytes of one object posted to a worker and not yet hashed, before the reader waits. */
export const WINDOW = 4 * 1024 * 1024;
/** Chunks are posted in batches of about this many bytes (fewer messages). */
const BATCH = 512 * 1024;

/**
 * The worker's file: lib/hashing/worker.ts from source (tsx, vitest), dist/lib/hash-worker.mjs
 * in the bundle, where this module is a chunk in dist/lib/ (scripts/build.mjs makes it an entry).
 */
export function workerFile(): URL {
  const here = import.meta.url;
  return /\.[cm]?ts$/.test(new URL(here).pathname) ? new URL('./worker.ts', here) : new URL('./hash-worker.mjs', here);
}

/**
 * How to start the worker. From source it is TypeScript, and Node 20 applies no `--import` loader
 * to a worker's entry: a bootstrap registers tsx's hooks in the thread, then imports it (tests
 * and bin/releng's source mode only; the bundle's worker is plain JavaScript).
 */
function workerArgs(file: URL): [string | URL, { eval?: boolean }] {
  if (!file.pathname.endsWith('.ts')) return [file, {}];
  const tsx = createRequire(import.meta.url).resolve('tsx/package.json').replace(/package\.json$/, 'dist/esm/api/index.mjs');
  const code = `import(${JSON.stringify(pathToFileURL(tsx).href)}).then((m) => { m.register(); return import(${JSON.stringify(file.href)}); })`
    + '.catch((e) => { setImmediate(() => { throw e; }); });';
  return [code, { eval: true }];
}

interface Task {
  /** Named in every error: the file or s3:// key. */
  what: string;
  resolve(v: any): void;
  reject(e: Error): void;
  /** Stream jobs: waiting for the worker to catch up. */
  drained?: () => void;
  inFlight?: number;
}

interface Thread {
  worker: Worker;
  tasks: Map<number, Task>;
  dead: boolean;
  online: Promise<void>;
}

export class HashWorkerError extends Error {}

/** What the pool did (tests; maxInFlight: the most bytes of one object posted and not yet hashed). */
export interface HashPoolStats { workers: number; files: number; objects: number; maxInFlight: number }

export class HashPool {
  private readonly threads: Thread[] = [];
  private nextId = 1;
  readonly stats: HashPoolStats = { workers: 0, files: 0, objects: 0, maxInFlight: 0 };

  /** size 0: no workers (callers hash on their own thread; `enabled` is false). */
  constructor(readonly size = Math.max(1, availableParallelism()), private readonly file = workerFile()) {}

  get enabled(): boolean { return this.size > 0; }

  /** The least busy live worker; a new one while fewer than `size` run and all are busy. */
  private pick(): Thread {
    const live = this.threads.filter((t) => !t.dead);
    for (let i = this.threads.length - 1; i >= 0; i--) if (this.threads[i]!.dead) this.threads.splice(i, 1);
    const idle = live.find((t) => t.tasks.size === 0);
    if (idle) return idle;
    if (live.length < this.size) return this.startWorker();
    return live.reduce((a, b) => (b.tasks.size < a.tasks.size ? b : a));
  }

  private startWorker(): Thread {
    const [entry, how] = workerArgs(this.file);
    const worker = new Worker(entry, { ...how, stdout: false, stderr: false });
    const t: Thread = { worker, tasks: new Map(), dead: false, online: new Promise((r) => worker.once('online', () => r())) };
    this.stats.workers++;
    const die = (why: string) => {
      if (t.dead) return;
      t.dead = true;
      for (const [, task] of t.tasks) {
        task.reject(new HashWorkerError(`${task.what}: ${why}; nothing was concluded about it`));
        task.drained?.();
      }
      t.tasks.clear();
      worker.terminate().catch(() => undefined);
    };
    worker.on('message', (r: Reply) => this.reply(t, r));
    worker.on('error', (e) => die(`the hash worker failed (${e?.message ?? e})`));
    worker.on('messageerror', (e) => die(`the hash worker sent an unreadable message (${e?.message ?? e})`));
    worker.on('exit', (code) => die(`the hash worker exited (code ${code}) before it finished`));
    worker.unref();
    this.threads.push(t);
    return t;
  }

  private reply(t: Thread, r: Reply): void {
    const task = t.tasks.get(r.id);
    if (!task) return;
    if (r.t === 'ack') {
      task.inFlight = (task.inFlight ?? 0) - r.bytes;
      if (task.drained && task.inFlight <= WINDOW / 2) { const d = task.drained; task.drained = undefined; d(); }
      return;
    }
    t.tasks.delete(r.id);
    if (t.tasks.size === 0) t.worker.unref();
    if (r.t === 'error') {
      const e = new HashWorkerError(`${task.what}: ${r.error.message}`) as HashWorkerError & { code?: string };
      if (r.error.code) e.code = r.error.code;
      task.reject(e);
    } else if (r.t === 'done') task.resolve(r.file);
    else if (r.t === 'digest') task.resolve({ raw: buf(r.raw), ...(r.decoded ? { decoded: buf(r.decoded) } : {}), ...(r.decodeError ? { decodeError: r.decodeError } : {}) });
  }

  private start<T>(what: string, first: Request | ((id: number) => Request)): { t: Thread; id: number; done: Promise<T>; task: Task } {
    const t = this.pick();
    const id = this.nextId++;
    let task!: Task;
    const done = new Promise<T>((resolve, reject) => { task = { what, resolve, reject }; });
    t.tasks.set(id, task);
    t.worker.ref();
    t.worker.postMessage(typeof first === 'function' ? first(id) : { ...first, id });
    return { t, id, done, task };
  }

  /** sha256 (and MD5) of a file, read by a worker. Errors name the file (ENOENT keeps its code). */
  digestFile(file: string, opts: { md5?: boolean } = {}): Promise<FileDigest> {
    this.stats.files++;
    return this.start<FileDigest>(file, (id) => ({ t: 'file', id, file, md5: !!opts.md5 })).done;
  }

  /**
   * The digest of a stream read here and hashed (and decoded: 'zstd', or 'none' for a second
   * sha256 of the same bytes) by a worker. Each chunk that owns its memory is transferred; others
   * are copied into the batch. `what` names the object in errors. A stream error rejects.
   */
  async digestStream(stream: AsyncIterable<Buffer | Uint8Array>, what: string, decode?: 'zstd' | 'none'): Promise<ObjectDigest> {
    this.stats.objects++;
    const { t, id, done, task } = this.start<ObjectDigest>(what, (id) => ({ t: 'open', id, ...(decode ? { decode } : {}) }));
    done.catch(() => undefined); // awaited below; a worker death while we read is seen there
    task.inFlight = 0;
    // Chunks are gathered into one buffer per batch, which is transferred: moving each socket
    // chunk (64 KiB) costs ~20 µs of postMessage apiece, more than copying it (~3 µs).
    let batch = Buffer.allocUnsafeSlow(BATCH);
    let batchBytes = 0;
    const flush = () => {
      if (!batchBytes || t.dead) return;
      const chunk = new Uint8Array(batch.buffer, 0, batchBytes);
      t.worker.postMessage({ t: 'chunks', id, chunks: [chunk] } satisfies Request, [batch.buffer as ArrayBuffer]);
      task.inFlight! += batchBytes;
      if (task.inFlight! > this.stats.maxInFlight) this.stats.maxInFlight = task.inFlight!;
      batch = Buffer.allocUnsafeSlow(BATCH);
      batchBytes = 0;
    };
    try {
      for await (const c of stream) {
        if (t.dead) break;
        for (let at = 0; at < c.length;) {
          const n = Math.min(c.length - at, BATCH - batchBytes);
          batch.set(n === c.length ? c : c.subarray(at, at + n), batchBytes);
          batchBytes += n;
          at += n;
          if (batchBytes === BATCH) flush();
        }
        if (task.inFlight! > WINDOW) await new Promise<void>((r) => { task.drained = r; });
      }
    } catch (e) {
      if (!t.dead) { t.worker.postMessage({ t: 'abort', id } satisfies Request); t.tasks.delete(id); if (t.tasks.size === 0) t.worker.unref(); }
      throw e;
    }
    if (!t.dead) { flush(); t.worker.postMessage({ t: 'end', id } satisfies Request); }
    return done;
  }

  /** Test hook: makes one worker die as a crash would (exit, or an uncaught error). */
  crashOne(how: 'exit' | 'throw'): boolean {
    const t = this.threads.find((x) => !x.dead && x.tasks.size > 0) ?? this.threads.find((x) => !x.dead);
    if (!t) return false;
    t.worker.postMessage({ t: 'crash', how } satisfies Request);
    return true;
  }

  /** Stops every worker; tasks still running fail naming their file or key. */
  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.worker.terminate().catch(() => undefined)));
  }
}

const buf = (d: RawDigest): RawDigest => ({ digest: Buffer.from(d.digest.buffer, d.digest.byteOffset, d.digest.byteLength), size: d.size });

let shared: HashPool | undefined;
/**
 * The process's pool (workers start only when work comes), of RELENG_HASH_WORKERS workers when
 * set (0: hash everything on the main thread, e.g. to compare), else one per core but one.
 */
export function hashPool(): HashPool {
  if (!shared) {
    const n = workersFromEnv();
    // One per core but the main thread's, which hashes too (digestFile): a worker costs ~80 ms of
    // CPU to start (Node 20 boots a new isolate), so an idle core is what it must buy.
    shared = new HashPool(n ?? Math.max(0, availableParallelism() - 1));
  }
  return shared;
}

/** RELENG_HASH_WORKERS as a number, when set to one. */
export function workersFromEnv(): number | undefined {
  const env = process.env.RELENG_HASH_WORKERS;
  return env !== undefined && /^\d+$/.test(env) ? Number(env) : undefined;
}

/**
 * Whether verify --deep hands downloaded objects to the pool. Only when RELENG_HASH_WORKERS asks
 * for workers: against s3rver on the same two cores (the bench) the offload measured slower
 * (4 × 64 MiB: 2.8 s against 2.0-2.6 s, +0.3 s CPU, +55 MiB RSS; the cache: 3.6-3.8 s against
 * 2.5-3.3 s), since the server, not the client's main thread, holds the other core. A client whose
 * server is elsewhere (the main thread hashing at wire speed) can turn it on.
 */
export function poolForDownloads(): HashPool | undefined {
  const n = workersFromEnv();
  return n !== undefined && n > 0 ? hashPool() : undefined;
}
