// The hash worker pool (lib/hashing/pool.ts): digests equal node:crypto's of the same bytes, files
// hash in parallel in the workers, streamed chunks are transferred (not copied), errors name the
// file or key, and a worker that dies fails its tasks instead of hanging the run.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { digestFile, POOL_FILE_MIN_BYTES } from '../../../lib/hashing/checksums.ts';
import { ObjectDigester } from '../../../lib/hashing/digester.ts';
import { HashPool, HashWorkerError, WINDOW } from '../../../lib/hashing/pool.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'releng-pool-'));
const pool = new HashPool(2);
afterAll(async () => { await pool.close(); rmSync(dir, { recursive: true, force: true }); });

/** Deterministic bytes (a seeded xorshift), so a failure reproduces. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; }
  return b;
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const md5 = (b: Buffer) => createHash('md5').update(b).digest('base64');
/** zstd as Nix writes it, by the zstd program (Debian: zstd). */
const zstdCompress = (b: Buffer) => execFileSync('zstd', ['-q', '-c', '-3'], { input: b, maxBuffer: 64 << 20 });

describe('HashPool.digestFile', () => {
  it('hashes several files at once in the workers, each equal to node:crypto of the same bytes', async () => {
    const files = [0, 1, 2, 3].map((i) => {
      const f = path.join(dir, `f${i}`);
      writeFileSync(f, bytes(3 * 1024 * 1024 + i * 777, i + 1));
      return f;
    });
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, '');
    const got = await Promise.all([...files, empty].map((f, i) => pool.digestFile(f, { md5: i % 2 === 0 })));
    for (const [i, f] of [...files, empty].entries()) {
      const b = readFileSync(f);
      expect(got[i]).toEqual({ sha256: sha(b), size: b.length, ...(i % 2 === 0 ? { md5: md5(b) } : {}) });
    }
    expect(pool.stats.workers).toBe(2);
  });

  it('digestFile: a large file alone hashes here; one that comes while another hashes goes to the pool; the same digests', async () => {
    const big = [0, 1].map((i) => {
      const f = path.join(dir, `big${i}`);
      writeFileSync(f, bytes(POOL_FILE_MIN_BYTES + 5 + i, 7 + i));
      return f;
    });
    const small = path.join(dir, 'small');
    writeFileSync(small, bytes(1000, 8));
    const want = (f: string, withMd5: boolean) => {
      const b = readFileSync(f);
      return { sha256: sha(b), ...(withMd5 ? { md5: md5(b) } : {}), size: b.length };
    };
    const before = pool.stats.files;
    expect(await digestFile(big[0]!, { md5: true, pool })).toEqual(want(big[0]!, true));
    expect(pool.stats.files).toBe(before);
    expect(await Promise.all(big.map((f) => digestFile(f, { pool })))).toEqual(big.map((f) => want(f, false)));
    expect(pool.stats.files).toBe(before + 1);
    expect(await digestFile(small, { pool })).toEqual(want(small, false));
    expect(await Promise.all(big.map((f) => digestFile(f, { pool: false })))).toEqual(big.map((f) => want(f, false)));
    expect(pool.stats.files).toBe(before + 1);
  });

  it('fails naming the file (missing, a directory), keeping the error code', async () => {
    const missing = path.join(dir, 'nope');
    await expect(pool.digestFile(missing)).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining(missing) });
    const sub = path.join(dir, 'sub');
    mkdirSync(sub);
    await expect(pool.digestFile(sub)).rejects.toThrow(sub);
    // and the pool still works afterwards
    writeFileSync(path.join(dir, 'after'), 'x');
    expect((await pool.digestFile(path.join(dir, 'after'))).sha256).toBe(sha(Buffer.from('x')));
  });
});

describe('HashPool.digestStream', () => {
  it('equals node:crypto over chunks of any shape (owned, pool slices, views into one buffer, empty)', async () => {
    const data = bytes(5 * 1024 * 1024 + 3, 11);
    const chunks: Buffer[] = [];
    for (let at = 0; at < data.length;) {
      const n = Math.min(data.length - at, [65536, 100, 300000, 0, 4096][chunks.length % 5]!);
      chunks.push(chunks.length % 2 === 0 ? Buffer.from(new Uint8Array(data.subarray(at, at + n))) : data.subarray(at, at + n));
      at += n;
    }
    const d = await pool.digestStream(Readable.from(chunks), 's3://b/k', 'none');
    expect(d.raw.digest.toString('hex')).toBe(sha(data));
    expect(d.raw.size).toBe(data.length);
    expect(d.decoded?.digest.toString('hex')).toBe(sha(data));
    // the batches were moved to the worker, the caller's chunks are untouched
    expect(sha(Buffer.concat(chunks))).toBe(sha(data));
  });

  it('decodes zstd and hashes both sides (FileHash, NarHash) as the in-thread digester does', async () => {
    const nar = Buffer.concat([bytes(700_000, 3), Buffer.alloc(300_000, 1)]);
    const z = Buffer.from(zstdCompress(nar));
    const parts = [z.subarray(0, 2), z.subarray(2, 70_000), z.subarray(70_000)].map((p) => Buffer.from(p));
    const d = await pool.digestStream(Readable.from(parts), 's3://b/nar/x.nar.zst', 'zstd');
    expect(d.raw.digest.toString('hex')).toBe(sha(z));
    expect(d.decoded?.digest.toString('hex')).toBe(sha(nar));
    expect(d.decoded?.size).toBe(nar.length);
    const here = new ObjectDigester('zstd');
    here.update(z);
    expect(here.finish()).toEqual({ raw: { digest: d.raw.digest, size: z.length }, decoded: d.decoded });
  });

  it('bytes that are not zstd: a decode error, with every stored byte still hashed', async () => {
    const junk = bytes(200_000, 5);
    const d = await pool.digestStream(Readable.from([Buffer.from(junk)]), 's3://b/nar/bad.nar.zst', 'zstd');
    expect(d.decodeError).toMatch(/not zstd data/);
    expect(d.decoded).toBeUndefined();
    expect(d.raw.digest.toString('hex')).toBe(sha(junk));
    // cut short
    const z = Buffer.from(zstdCompress(bytes(300_000, 9)));
    const cut = await pool.digestStream(Readable.from([Buffer.from(z.subarray(0, z.length - 1000))]), 's3://b/nar/cut.nar.zst', 'zstd');
    expect(cut.decodeError).toBeDefined();
    expect(cut.raw.size).toBe(z.length - 1000);
  });

  it('a stream that fails rejects with its own error, and the pool goes on', async () => {
    async function* failing() { yield Buffer.alloc(1000, 1); throw new Error('socket hang up'); }
    await expect(pool.digestStream(failing(), 's3://b/k')).rejects.toThrow('socket hang up');
    expect((await pool.digestStream(Readable.from([Buffer.from('abc')]), 's3://b/k2')).raw.digest.toString('hex')).toBe(sha(Buffer.from('abc')));
  });

  it('keeps at most a window of bytes in flight to a slow worker (a large object never piles up in memory)', async () => {
    // 64 MiB produced as fast as the reader takes it: the reader waits for the worker's acks.
    let produced = 0;
    const one = Buffer.alloc(1024 * 1024, 2);
    async function* source() { for (let i = 0; i < 64; i++) { produced += one.length; yield Buffer.from(one); } }
    const d = await pool.digestStream(source(), 's3://b/big');
    // at most the window (and the batch that crossed it) was ever posted and not yet hashed
    expect(pool.stats.maxInFlight).toBeLessThanOrEqual(WINDOW + 1024 * 1024);
    expect(pool.stats.maxInFlight).toBeGreaterThan(0);
    expect(d.raw.size).toBe(64 * 1024 * 1024);
    expect(produced).toBe(64 * 1024 * 1024);
    expect(d.raw.digest.toString('hex')).toBe(createHash('sha256').update(Buffer.alloc(64 * 1024 * 1024, 2)).digest('hex'));
  });
});

describe('a worker that dies', () => {
  it('fails the file it was hashing, naming it, and later tasks run on a new worker', async () => {
    const p = new HashPool(1);
    try {
      const f = path.join(dir, 'crash');
      writeFileSync(f, bytes(64 * 1024 * 1024, 13));
      const tiny = path.join(dir, 'tiny');
      writeFileSync(tiny, 't');
      for (const how of ['exit', 'throw'] as const) {
        await p.digestFile(tiny); // a (new) worker is up
        // the crash is queued first, the file behind it on the same worker: it dies with the task held
        expect(p.crashOne(how)).toBe(true);
        const task = p.digestFile(f);
        const e = await task.then(() => undefined, (x) => x);
        expect(e).toBeInstanceOf(HashWorkerError);
        expect(e.message).toContain(`${f}: the hash worker ${how === 'exit' ? 'exited (code 3)' : 'failed (hash worker crashed (test))'}`);
      }
      // an open stream job whose worker dies: rejected (never hangs), naming the key
      async function* slow() { for (let i = 0; i < 100; i++) { yield Buffer.alloc(64 * 1024, i); await new Promise((r) => setTimeout(r, 5)); } }
      const job = p.digestStream(slow(), 's3://bucket/nar/abc.nar.zst', 'zstd');
      await new Promise((r) => setTimeout(r, 50));
      expect(p.crashOne('exit')).toBe(true);
      await expect(job).rejects.toThrow(/s3:\/\/bucket\/nar\/abc\.nar\.zst: the hash worker exited \(code 3\)/);
      const job2 = p.digestStream(slow(), 's3://bucket/nar/def.nar.zst');
      await new Promise((r) => setTimeout(r, 50));
      expect(p.crashOne('throw')).toBe(true);
      await expect(job2).rejects.toThrow(/s3:\/\/bucket\/nar\/def\.nar\.zst: the hash worker failed \(hash worker crashed \(test\)\)/);
      // the pool replaces dead workers
      writeFileSync(path.join(dir, 'later'), 'later');
      expect((await p.digestFile(path.join(dir, 'later'))).sha256).toBe(sha(Buffer.from('later')));
    } finally { await p.close(); }
  });

  it('close() fails what is still running, naming it', async () => {
    const p = new HashPool(1);
    async function* endless() { for (let i = 0; i < 1000; i++) { yield Buffer.alloc(64 * 1024, 1); await new Promise((r) => setTimeout(r, 2)); } }
    const job = p.digestStream(endless(), 's3://b/forever');
    await new Promise((r) => setTimeout(r, 30));
    await p.close();
    await expect(job).rejects.toThrow(/s3:\/\/b\/forever: the hash worker exited/);
  });
});
