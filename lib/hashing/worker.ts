// A hash worker (lib/hashing/pool.ts starts one per core): hashes files by path (it reads them
// itself: nothing crosses the thread boundary but the path and the digest) and objects whose
// chunks the main thread transfers to it as they arrive (ownership moves, nothing is copied).
// Built as its own bundle entry (dist/lib/hash-worker.mjs, scripts/build.mjs).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort } from 'node:worker_threads';
import { digestFileSync, ObjectDigester } from './digester.ts';
import type { Reply, Request } from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('lib/hashing/worker.ts runs only as a worker thread (lib/hashing/pool.ts starts it)');
const buf = Buffer.allocUnsafeSlow(1024 * 1024);
const jobs = new Map<number, ObjectDigester>();

// Transferred chunks are freed when this thread's GC collects their views, and a thread that
// allocates almost nothing but receives buffers is collected only when external memory alone
// crosses V8's limit (~64 MiB per thread): verify --deep of 4 × 64 MiB peaked at 260 MiB RSS
// instead of 110. A young-generation collection after every GC_EVERY bytes (~1 ms on this tiny
// heap) frees them at once. (--expose-gc only exposes gc() to contexts made after it is set.)
const GC_EVERY = 16 * 1024 * 1024;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (o?: { type: 'minor' | 'major'; execution?: 'sync' }) => void;
let sinceGc = 0;
function collect(bytes: number): void {
  sinceGc += bytes;
  if (sinceGc < GC_EVERY) return;
  sinceGc = 0;
  gc({ type: 'minor' });
}
const send = (r: Reply, transfer: ArrayBuffer[] = []) => port.postMessage(r, transfer);
const message = (e: unknown) => {
  const err = e as NodeJS.ErrnoException;
  return { message: err?.message ?? String(e), ...(err?.code ? { code: err.code } : {}) };
};

port.on('message', (m: Request) => {
  switch (m.t) {
    case 'file':
      try { send({ t: 'done', id: m.id, file: digestFileSync(m.file, { md5: m.md5 }, buf) }); } catch (e) { send({ t: 'error', id: m.id, error: message(e) }); }
      return;
    case 'open':
      jobs.set(m.id, new ObjectDigester(m.decode));
      return;
    case 'chunks': {
      const job = jobs.get(m.id);
      let bytes = 0;
      for (const c of m.chunks) { job?.update(c); bytes += c.length; }
      send({ t: 'ack', id: m.id, bytes });
      collect(bytes);
      return;
    }
    case 'end': {
      const job = jobs.get(m.id);
      jobs.delete(m.id);
      if (!job) { send({ t: 'error', id: m.id, error: { message: 'internal: no such hash job' } }); return; }
      try {
        const d = job.finish();
        send({ t: 'digest', id: m.id, raw: { digest: d.raw.digest, size: d.raw.size }, ...(d.decoded ? { decoded: d.decoded } : {}), ...(d.decodeError ? { decodeError: d.decodeError } : {}) });
      } catch (e) { send({ t: 'error', id: m.id, error: message(e) }); }
      return;
    }
    case 'abort':
      jobs.delete(m.id);
      return;
    case 'crash':
      // Tests only: a worker that dies mid-task (the pool must fail the task, not hang).
      if (m.how === 'exit') process.exit(3);
      throw new Error('hash worker crashed (test)');
      return;
  }
});
