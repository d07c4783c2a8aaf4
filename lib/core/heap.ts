// The V8 heap for large runs (issue 31). V8 lets the old generation grow to about twice the live
// data before a full collection, so most of a large run's peak RSS is garbage awaiting one: a
// 20,000-page no-op upload peaked at 295 MiB with 55 MiB live. A growing factor of 1.3
// (`--heap-growing-percent=30`) collects sooner: measured on the real CLI (bench/RESULTS.md),
// 100,000 pages (300,006 objects) upload 672 -> 508 MiB and no-op 667 -> 467 MiB at the same CPU,
// 20,000 pages upload 351 -> 225 MiB for ~10 % more CPU. On a small run it only costs: a 1,000-path
// cache upload took 20-45 % more client CPU for 15 MiB less. So it is set once a run knows it will
// hold many objects, and left at V8's default otherwise. A process-wide setting, read at each
// collection: it takes effect from the next one.
import { open } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';

/** Objects (files, store paths) from which a run collects its garbage sooner. */
export const LARGE_RUN_OBJECTS = 10_000;

let collectingSooner = false;

/** Sets the heap growing factor to 1.3 for the rest of the process when `objects` reaches LARGE_RUN_OBJECTS. */
export function collectSoonerIfLarge(objects: number): void {
  if (collectingSooner || objects < LARGE_RUN_OBJECTS) return;
  setFlagsFromString('--heap-growing-percent=30');
  collectingSooner = true;
}

/**
 * `s` as one flat string. A string built by `+`, a template literal or path.join is a tree of cons
 * strings (32 bytes a node, each piece held); once hashed as a Map key V8 flattens it into a copy
 * and keeps the tree's root too. For strings a run keeps per object (file paths, keys) that was
 * ~200 bytes each of 100,000s (issue 31). `[s].join('')` would hand back `s` itself.
 */
export function flatString(s: string): string {
  return s.length < 2 ? s : [s[0], s.slice(1)].join('');
}

/**
 * Writes `pieces` to `file` (created or truncated) through one reused buffer: no string of the
 * whole file and no Buffer per piece. A memo of 300,000 entries written as one string, or as a
 * string a thousand entries at a time, left ~30 MiB of garbage at a large run's end, its peak (issue 31).
 */
export async function writePieces(file: string, pieces: Iterable<string>): Promise<void> {
  const fh = await open(file, 'w');
  let buf = Buffer.allocUnsafe(1 << 20);
  let used = 0;
  const flush = async () => {
    for (let at = 0; at < used;) at += (await fh.write(buf, at, used - at)).bytesWritten;
    used = 0;
  };
  try {
    for (const s of pieces) {
      const n = Buffer.byteLength(s);
      if (used + n > buf.length) {
        await flush();
        if (n > buf.length) buf = Buffer.allocUnsafe(n);
      }
      used += buf.write(s, used);
    }
    await flush();
  } finally { await fh.close(); }
}

const CHUNK_BITS = 12;
/** Slots per chunk of a KeyedSlots table (4,096). */
export const SLOT_CHUNK = 1 << CHUNK_BITS;

/**
 * Numbered slots for (bucket, key) pairs, held in chunks of SLOT_CHUNK that the caller's `newChunk`
 * makes (typed arrays of that many entries): a table of 100,000s of objects with no JS object or
 * string of its own per entry (issue 31). Growing adds a chunk and never copies the table; freed
 * slots are reused. Keys are found per bucket by the caller's own key strings.
 */
export class KeyedSlots<Chunk> {
  private readonly byBucket = new Map<string, Map<string, number>>();
  private readonly freeSlots: number[] = [];
  private readonly chunks: Chunk[] = [];
  private used = 0;

  constructor(private readonly newChunk: () => Chunk) {}

  /** The slot of bucket/key, if it has one. */
  find(bucket: string, key: string): number | undefined {
    return this.byBucket.get(bucket)?.get(key);
  }

  /** The slot of bucket/key, given one if it has none. */
  take(bucket: string, key: string): number {
    let m = this.byBucket.get(bucket);
    let i = m?.get(key);
    if (i === undefined) {
      i = this.allot();
      if (!m) this.byBucket.set(bucket, m = new Map());
      m.set(key, i);
    }
    return i;
  }

  /** Removes bucket/key and frees its slot; the slot it had, if any. */
  drop(bucket: string, key: string): number | undefined {
    const m = this.byBucket.get(bucket);
    const i = m?.get(key);
    if (i === undefined) return undefined;
    m!.delete(key);
    this.free(i);
    return i;
  }

  /** A slot found by the caller's own means (not by bucket/key). */
  allot(): number {
    const reused = this.freeSlots.pop();
    if (reused !== undefined) return reused;
    if (this.used === this.chunks.length * SLOT_CHUNK) this.chunks.push(this.newChunk());
    return this.used++;
  }

  free(i: number): void { this.freeSlots.push(i); }

  /** The chunk holding slot `i`; its entry there is at `offset(i)`. */
  chunk(i: number): Chunk { return this.chunks[i >>> CHUNK_BITS]!; }

  offset(i: number): number { return i & (SLOT_CHUNK - 1); }

  /** Every keyed slot: [bucket, key, slot]. */
  *keyed(): Generator<[string, string, number]> {
    for (const [bucket, m] of this.byBucket) for (const [key, i] of m) yield [bucket, key, i];
  }
}
