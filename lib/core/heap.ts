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

/** No slot at this place of the index. */
const EMPTY = -1;
/** A slot dropped from this place (probing goes on past it). */
const DROPPED = -2;
/** bucketOf for a slot filed under a whole `BUCKET/KEY` id (KeyedSlots.takeId). */
const WHOLE_ID = 0xffff;
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over `s`'s UTF-16 code units, continuing from `h`. */
function fnv(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h;
}

/**
 * Numbered slots for (bucket, key) pairs, held in chunks of SLOT_CHUNK that the caller's `newChunk`
 * makes (typed arrays of that many entries): a table of 100,000s of objects with no JS object or
 * string of its own per entry (issue 31). Growing adds a chunk and never copies the table; freed
 * slots are reused.
 *
 * Keys are found through an open-addressing index of slot numbers (an Int32Array, linear probing,
 * at most half full) by the hash of `BUCKET/KEY`: 14–22 bytes a key with the key's own hash and
 * bucket, where a Map held 47 (14 MiB at 300,000 keys). The index keeps the caller's own key
 * string. A key read from a file (`takeId`) is kept as its whole id until the first lookup by
 * bucket and key, then filed under that caller's string (the plan's, the listing's, which the run
 * holds anyway) and the id let go.
 */
export class KeyedSlots<Chunk> {
  private readonly bucketIds = new Map<string, number>();
  private readonly bucketNames: string[] = [];
  /** Each bucket's hash state after `BUCKET/`. */
  private readonly bucketHashes: number[] = [];
  private readonly freeSlots: number[] = [];
  private readonly chunks: Chunk[] = [];
  /** Per slot: its key (or whole id), the hash of its id, its bucket's number (or WHOLE_ID). */
  private readonly keyChunks: (string | undefined)[][] = [];
  private readonly hashChunks: Uint32Array[] = [];
  private readonly bucketChunks: Uint16Array[] = [];
  private index = new Int32Array(1024).fill(EMPTY);
  /** Places of the index taken (keys and dropped marks). */
  private taken = 0;
  private used = 0;

  constructor(private readonly newChunk: () => Chunk) {}

  /** The bucket's number, given one if it has none (buckets are few). */
  private bucketId(bucket: string): number {
    let b = this.bucketIds.get(bucket);
    if (b === undefined) {
      b = this.bucketNames.length;
      if (b >= WHOLE_ID) throw new Error('internal: too many buckets in one table');
      this.bucketIds.set(bucket, b);
      this.bucketNames.push(bucket);
      this.bucketHashes.push(fnv(fnv(FNV_OFFSET, bucket), '/'));
    }
    return b;
  }

  /** The place in the index of bucket/key (b: the bucket's number), or of the empty place that ends its probe. */
  private place(b: number, key: string, bucket: string): { at: number; slot: number | undefined; hash: number } {
    const hash = fnv(this.bucketHashes[b]!, key) >>> 0;
    const mask = this.index.length - 1;
    for (let at = hash & mask; ; at = (at + 1) & mask) {
      const i = this.index[at]!;
      if (i === EMPTY) return { at, slot: undefined, hash };
      if (i === DROPPED) continue;
      const c = i >>> CHUNK_BITS;
      const j = this.offset(i);
      if (this.hashChunks[c]![j] !== hash) continue;
      const k = this.keyChunks[c]![j]!;
      const kb = this.bucketChunks[c]![j];
      if (kb === b && k === key) return { at, slot: i, hash };
      if (kb === WHOLE_ID && k.length === bucket.length + 1 + key.length && k.startsWith(bucket) && k.charCodeAt(bucket.length) === 47 && k.endsWith(key)) {
        // Filed under the caller's key string from now on (the plan's, which the run holds anyway),
        // and the whole id let go. Only the first lookup's: a later caller's string may be its own
        // short-lived copy (a verification builds PREFIX + name afresh).
        this.keyChunks[c]![j] = key;
        this.bucketChunks[c]![j] = b;
        return { at, slot: i, hash };
      }
    }
  }

  /** The slot of bucket/key, if it has one. */
  find(bucket: string, key: string): number | undefined {
    return this.place(this.bucketId(bucket), key, bucket).slot;
  }

  /** The slot of bucket/key, given one if it has none. */
  take(bucket: string, key: string): number {
    this.roomForOne();
    const b = this.bucketId(bucket);
    const p = this.place(b, key, bucket);
    if (p.slot !== undefined) return p.slot;
    return this.file(p.at, key, b, p.hash);
  }

  /**
   * The slot of a whole `BUCKET/KEY` id (as a memo file holds it), given one if it has none; found
   * later by find(bucket, key) like any other. A bucket may hold '/' (a file tree's directory), so the
   * id is never split: it is kept whole until a lookup by bucket and key finds it.
   */
  takeId(id: string): number {
    this.roomForOne();
    const hash = fnv(FNV_OFFSET, id) >>> 0;
    const mask = this.index.length - 1;
    let at = hash & mask;
    for (; ; at = (at + 1) & mask) {
      const i = this.index[at]!;
      if (i === EMPTY) break;
      if (i === DROPPED) continue;
      const c = i >>> CHUNK_BITS;
      const j = this.offset(i);
      if (this.hashChunks[c]![j] === hash && this.idOf(i) === id) return i;
    }
    return this.file(at, flatString(id), WHOLE_ID, hash);
  }

  private file(at: number, key: string, b: number, hash: number): number {
    const i = this.allot();
    const c = i >>> CHUNK_BITS;
    const j = this.offset(i);
    this.keyChunks[c]![j] = key;
    this.hashChunks[c]![j] = hash;
    this.bucketChunks[c]![j] = b;
    this.index[at] = i;
    this.taken++;
    return i;
  }

  /** Grows (and clears of dropped marks) the index before it would be more than half full. */
  private roomForOne(): void {
    if ((this.taken + 1) * 2 <= this.index.length) return;
    let live = 0;
    for (let i = 0; i < this.used; i++) if (this.keyChunks[i >>> CHUNK_BITS]![this.offset(i)] !== undefined) live++;
    // Doubled (or halved, after drops) to the least power of two that is at most half full.
    let size = 1024;
    while (size < (live + 1) * 2) size *= 2;
    const index = new Int32Array(size).fill(EMPTY);
    const mask = size - 1;
    for (let i = 0; i < this.used; i++) {
      const c = i >>> CHUNK_BITS;
      const j = this.offset(i);
      if (this.keyChunks[c]![j] === undefined) continue;
      let at = this.hashChunks[c]![j]! & mask;
      while (index[at] !== EMPTY) at = (at + 1) & mask;
      index[at] = i;
    }
    this.index = index;
    this.taken = live;
  }

  /** Removes bucket/key and frees its slot; the slot it had, if any. */
  drop(bucket: string, key: string): number | undefined {
    const p = this.place(this.bucketId(bucket), key, bucket);
    if (p.slot === undefined) return undefined;
    this.index[p.at] = DROPPED;
    this.keyChunks[p.slot >>> CHUNK_BITS]![this.offset(p.slot)] = undefined;
    this.freeSlots.push(p.slot);
    return p.slot;
  }

  /** A free slot (a freed one first; a new chunk when every slot is used). */
  private allot(): number {
    const reused = this.freeSlots.pop();
    if (reused !== undefined) return reused;
    if (this.used === this.chunks.length * SLOT_CHUNK) {
      this.chunks.push(this.newChunk());
      this.keyChunks.push(new Array<string | undefined>(SLOT_CHUNK).fill(undefined));
      this.hashChunks.push(new Uint32Array(SLOT_CHUNK));
      this.bucketChunks.push(new Uint16Array(SLOT_CHUNK));
    }
    return this.used++;
  }

  /** The chunk holding slot `i`; its entry there is at `offset(i)`. */
  chunk(i: number): Chunk { return this.chunks[i >>> CHUNK_BITS]!; }

  offset(i: number): number { return i & (SLOT_CHUNK - 1); }

  /** `BUCKET/KEY` of a keyed slot. */
  private idOf(i: number): string {
    const c = i >>> CHUNK_BITS;
    const j = this.offset(i);
    const b = this.bucketChunks[c]![j]!;
    const k = this.keyChunks[c]![j]!;
    return b === WHOLE_ID ? k : `${this.bucketNames[b]}/${k}`;
  }

  /** Every keyed slot: [`BUCKET/KEY`, slot], in slot order. */
  *ids(): Generator<[string, number]> {
    for (let i = 0; i < this.used; i++) if (this.keyChunks[i >>> CHUNK_BITS]![this.offset(i)] !== undefined) yield [this.idOf(i), i];
  }
}
