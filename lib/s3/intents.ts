// A write-ahead journal of what releng is about to write (issue 23): before each put or copy of
// upload and promote, one line naming the store, bucket, key and the planned sha256 and size is
// appended and made durable (the file is opened O_SYNC); when the store acknowledges the write, an `end` line follows.
// The upload record is saved only at the end of a run, so after a kill (SIGKILL, power loss, a full
// disk) it cannot say what the run was writing; this journal can. The next run's planners read it:
// an object at a key releng had begun writing with the planned content, that does not hold it now,
// is releng's own interrupted write, replaced as a `repair` instead of refused as other content
// (lib/s3/sync.ts relengWasWriting). A memo of this machine's own writes, never of what anyone
// else claims; it never makes a run skip anything.
//
// Layout: `.releng/upload-state/intents/PID-TIME-RANDOM.jsonl`, one file per run, append-only JSON
// lines, so concurrent runs never write the same file. A run that ends removes its file when every
// write it began was acknowledged; the file of a run that died stays, and is compacted (its
// intents that a later write or a matching destination settled dropped) by the next run that
// closes after it. A file belongs to a live run while its pid is a live process on this host.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError } from '../core/errors.ts';
import type { CopyResult, PutResult, S3Writer } from './store.ts';

/** One write releng is about to make. `sha256`/`size` are unknown for some copies. */
export interface Intent {
  bucket: string;
  key: string;
  sha256?: string;
  size?: number;
}

/** What planners read: writes begun by runs that never saw them acknowledged. */
export interface WriteIntents {
  /** The open intent at bucket/key (of this store), if a run began writing it and never saw it acknowledged. */
  pending(bucket: string, key: string): Intent | undefined;
  /**
   * The destination holds the planned bytes at bucket/key (a planner found it 'same'): an open
   * intent there is fulfilled and is dropped when this run closes (a local memo write, as the
   * upload record's).
   */
  settled(bucket: string, key: string): void;
}

export interface IntentJournal extends WriteIntents {
  /** Appends the intent and resolves once it is on disk (lines of concurrent writes share one synchronous write). */
  begin(i: Intent): Promise<void>;
  /** The store acknowledged the write: the intent is closed (written with the next flush or at close). */
  end(bucket: string, key: string): void;
  /** Flushes, removes this run's file when nothing it began is open, compacts files of dead runs. */
  close(): Promise<void>;
  /** This run's journal file (named in errors). */
  readonly file: string;
}

type Line =
  | { op: 'begin'; store: string; bucket: string; key: string; sha256?: string; size?: number; t: number }
  | { op: 'end'; store: string; bucket: string; key: string; t: number };

/** Where the journals of a project live (beside the upload record). */
export function intentsDir(stateDir: string): string {
  return path.join(stateDir, 'intents');
}

const id = (store: string, bucket: string, key: string) => `${store}\u0000${bucket}\u0000${key}`;

/** Journal files this process closed: no run appends to them any more (in-process runs, tests). */
const closedHere = new Set<string>();

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e: any) { return e?.code === 'EPERM'; }
}

function parseLines(text: string): Line[] {
  const out: Line[] = [];
  for (const l of text.split('\n')) {
    if (!l) continue;
    // A line cut short by a kill is not an intent (its write had not started: begin waits for the line to be on disk).
    try {
      const v = JSON.parse(l);
      if ((v?.op === 'begin' || v?.op === 'end') && typeof v.store === 'string' && typeof v.bucket === 'string' && typeof v.key === 'string' && typeof v.t === 'number') out.push(v as Line);
    } catch { /* ignored */ }
  }
  return out;
}

/** Reads every journal file in `dir` (but `except`): name → lines. */
async function readAll(dir: string, except?: string): Promise<Map<string, Line[]>> {
  const out = new Map<string, Line[]>();
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.endsWith('.jsonl') && n !== except).map(async (n) => {
    const text = await readFile(path.join(dir, n), 'utf8').catch(() => undefined);
    if (text !== undefined) out.set(n, parseLines(text));
  }));
  return out;
}

/** The lines of one journal file (missing: none) that name a key `wanted` has (the others are not parsed). */
async function readLinesFor(file: string, wanted: Map<string, unknown>): Promise<Line[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const out: Line[] = [];
  for (let at = 0; at < text.length;) {
    const end = text.indexOf('\n', at);
    const l = text.slice(at, end < 0 ? text.length : end);
    at = end < 0 ? text.length : end + 1;
    for (const v of parseLines(l)) if (wanted.has(id(v.store, v.bucket, v.key))) out.push(v);
  }
  return out;
}

/** The last event per key, over all files (later `t` wins; an `end` at the same time wins). */
function fold(files: Iterable<Line[]>): Map<string, Line> {
  const last = new Map<string, Line>();
  for (const lines of files) {
    for (const l of lines) {
      const k = id(l.store, l.bucket, l.key);
      const had = last.get(k);
      if (!had || l.t > had.t || (l.t === had.t && l.op === 'end')) last.set(k, l);
    }
  }
  return last;
}

/**
 * Opens the journal of one store (`store`: the name the upload record keys the endpoint by) in
 * `dir`. Reads the intents other runs left open; this run's file is created on its first write.
 */
export async function openIntentJournal(dir: string, store: string): Promise<IntentJournal> {
  const name = `${process.pid}-${Date.now()}-${randomBytes(4).toString('hex')}.jsonl`;
  const file = path.join(dir, name);
  const open0 = fold((await readAll(dir)).values());
  const pendingAtOpen = new Map<string, Intent>();
  for (const [k, l] of open0) {
    if (l.op === 'begin' && l.store === store) pendingAtOpen.set(k, { bucket: l.bucket, key: l.key, ...(l.sha256 ? { sha256: l.sha256 } : {}), ...(l.size !== undefined ? { size: l.size } : {}) });
  }
  const settledKeys = new Set<string>();
  // This run's writes begun and not yet acknowledged (id → the begin's time): as many as are in
  // flight. The lines themselves are not kept (issue 31: two per object, 60 MB at 300,000 objects);
  // close reads them back from this run's file when another file names the same keys.
  const openMine = new Map<string, number>();
  let queue: string[] = [];
  let fh: FileHandle | undefined;
  let tail: Promise<void> = Promise.resolve();
  let scheduled: Promise<void> | undefined;
  let clock = 0;
  // Strictly increasing times within the run, so an end after its begin always wins the fold.
  const now = () => (clock = Math.max(clock + 1, Date.now()));

  const write = async () => {
    const lines = queue;
    queue = [];
    if (!lines.length) return;
    try {
      if (!fh) {
        await mkdir(dir, { recursive: true });
        // O_SYNC ('as'): each append is durable when the write returns, one thread-pool round trip
        // where a write and an fdatasync were two (issue 31: a flush per PUT or two, 14,000 of
        // them in a 20,000-object upload; half the journal's CPU).
        fh = await open(file, 'as');
        // The new file's name made durable with its first lines (an fsync of the directory).
        const d = await open(dir, 'r');
        try { await d.sync(); } catch { /* not supported here */ } finally { await d.close(); }
      }
      const bytes = Buffer.from(lines.join(''));
      for (let at = 0; at < bytes.length;) at += (await fh.write(bytes, at)).bytesWritten;
    } catch (e: any) {
      throw new ReleaseError(`could not record releng's intent to write in ${file}: ${e?.code ?? ''} ${e?.message ?? e}`.replace(/\s+/g, ' ').trim(),
        `free space or fix permissions in ${dir}, then re-run the same command; nothing was written for this object (releng writes nothing it has not recorded first)`, { cause: e });
    }
  };
  const flush = (): Promise<void> => {
    if (scheduled) return scheduled;
    const run = tail.catch(() => undefined).then(() => { scheduled = undefined; return write(); });
    scheduled = run;
    tail = run;
    return run;
  };
  const push = (l: Line) => {
    if (l.store === store) {
      if (l.op === 'begin') openMine.set(id(l.store, l.bucket, l.key), l.t);
      else openMine.delete(id(l.store, l.bucket, l.key));
    }
    queue.push(JSON.stringify(l) + '\n');
  };

  return {
    file,
    pending: (bucket, key) => pendingAtOpen.get(id(store, bucket, key)),
    settled(bucket, key) {
      const k = id(store, bucket, key);
      if (pendingAtOpen.has(k)) settledKeys.add(k);
    },
    begin(i) {
      push({ op: 'begin', store, bucket: i.bucket, key: i.key, ...(i.sha256 ? { sha256: i.sha256 } : {}), ...(i.size !== undefined ? { size: i.size } : {}), t: now() });
      return flush();
    },
    end(bucket, key) {
      push({ op: 'end', store, bucket, key, t: now() });
    },
    async close() {
      // Intents a planner found fulfilled are closed by this run too.
      for (const k of settledKeys) {
        const i = pendingAtOpen.get(k)!;
        push({ op: 'end', store, bucket: i.bucket, key: i.key, t: now() });
      }
      // The fold over every other file, then this run's last line for each key they name (read
      // back from this run's file: they are rarely any, as a run that ends cleanly leaves no file).
      const all = await readAll(dir, name);
      const others = fold(all.values());
      const mineLast = new Map<string, Line>();
      if (others.size) {
        await flush();
        for (const l of await readLinesFor(file, others)) {
          const k = id(l.store, l.bucket, l.key);
          const had = mineLast.get(k);
          if (!had || l.t > had.t || (l.t === had.t && l.op === 'end')) mineLast.set(k, l);
        }
      }
      // What fold() over every file with this run's lines would give for key k.
      const lastOf = (k: string): Line | undefined => {
        const o = others.get(k);
        const m = mineLast.get(k);
        if (!m || !o) return m ?? o;
        return m.t > o.t || (m.t === o.t && m.op === 'end') ? m : o;
      };
      const isMine = (l: Line | undefined) => l !== undefined && mineLast.get(id(l.store, l.bucket, l.key)) === l;
      // A begin of this run that nothing later (here or in another file) closed.
      let openInMine = false;
      for (const [k, t] of openMine) {
        const o = others.get(k);
        if (!o || t > o.t || (t === o.t && o.op !== 'end')) { openInMine = true; break; }
      }
      // Files of runs that ended (dead, or closed in this process): rewritten with only their
      // intents still open, or removed. A live run's file is left as it is.
      let needed = false;
      for (const [n, lines] of all) {
        if (n === name) continue;
        const pid = Number(n.split('-')[0]);
        const ended = closedHere.has(path.join(dir, n)) || (Number.isInteger(pid) && pid !== process.pid && !alive(pid));
        const still = lines.filter((l) => l.op === 'begin' && lastOf(id(l.store, l.bucket, l.key)) === l);
        if (!ended) {
          // This run's lines that supersede a live run's intent must stay on disk.
          if (lines.some((l) => l.op === 'begin' && lastOf(id(l.store, l.bucket, l.key)) !== l && isMine(lastOf(id(l.store, l.bucket, l.key))))) needed = true;
          continue;
        }
        if (still.length === lines.length) continue;
        const f = path.join(dir, n);
        if (!still.length) { await rm(f, { force: true }).catch(() => undefined); continue; }
        const tmp = `${f}.${process.pid}.tmp`;
        const h = await open(tmp, 'w');
        try { await h.writeFile(still.map((l) => JSON.stringify(l) + '\n').join('')); await h.sync(); } finally { await h.close(); }
        await rename(tmp, f).catch(() => rm(tmp, { force: true }));
      }
      // This run's file stays while a write it began is open, or its lines settle a live run's
      // intents (flushed with its ends); otherwise it goes, with ends that served only to settle
      // the files compacted above.
      if (openInMine || needed) {
        await flush().catch(() => undefined);
        await fh?.close();
        closedHere.add(file);
      } else {
        queue = [];
        await fh?.close();
        await rm(file, { force: true });
      }
      fh = undefined;
    },
  };
}

/**
 * Runs a write; an error that says the key was left as it was (lib/s3/store.ts nothingWritten: a
 * conditional create someone else won, a file tree's write failed before its rename) closes the
 * intent, so someone else's object there is never taken for releng's damaged write. Any other
 * failure (a dropped connection, a kill) keeps it: bytes may have landed.
 */
async function closing<T>(journal: IntentJournal, bucket: string, key: string, write: () => Promise<T>): Promise<T> {
  try { return await write(); } catch (e) {
    if ((e as { nothingWritten?: boolean } | undefined)?.nothingWritten) journal.end(bucket, key);
    throw e;
  }
}

/**
 * The writer whose puts and copies are journaled: the intent is durable before the write starts,
 * and closed when the store acknowledged it. Deletes are not journaled (nothing to repair).
 */
export function journalingWriter(inner: S3Writer, journal: IntentJournal): S3Writer {
  return {
    async put(req): Promise<PutResult | void> {
      await journal.begin({ bucket: req.bucket, key: req.key, sha256: req.sha256, size: req.size });
      const r = await closing(journal, req.bucket, req.key, () => inner.put(req));
      journal.end(req.bucket, req.key);
      return r;
    },
    delete: (bucket, key) => inner.delete(bucket, key),
    async copy(from, to, opts): Promise<CopyResult | void> {
      await journal.begin({ bucket: to.bucket, key: to.key, ...(opts?.sha256 ? { sha256: opts.sha256 } : {}), ...(opts?.size !== undefined ? { size: opts.size } : {}) });
      const r = await closing(journal, to.bucket, to.key, () => inner.copy(from, to, opts));
      journal.end(to.bucket, to.key);
      return r;
    },
  };
}
