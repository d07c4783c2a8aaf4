// An exclusive flock(2) on a file, held by a `flock` child process for as long as this process
// lives. The kernel drops the lock when the holder goes away — normal exit, crash or SIGKILL (its
// stdin pipe closes, so the child exits) — so there is no stale lock to detect and no pid to trust.
// The file's content says who holds it (pid, host, command, since when), for the message another
// run prints; the lock itself is the flock, not that content. Used by the channel lock (one run per
// channel) and the checkout lock (lib/environment/checkout-lock.ts, issue 25).
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { MissingToolError, ReleaseError } from './errors.ts';

/** What a lock file says about the run holding it. */
export interface LockHolder {
  pid: number;
  host: string;
  since: string;
  [k: string]: unknown;
}

export interface HeldLock {
  file: string;
  release(): Promise<void>;
}

/** Exit status `flock` uses when another process holds the lock (--nonblock) or the wait ran out (--timeout). */
const CONFLICT = 75;

/** Who holds `file` now, as its content says (undefined while the holder has not written it yet). */
export async function lockHolder(file: string): Promise<LockHolder | undefined> {
  // Empty or cut short while the holder writes it (it truncates, then writes): not said yet.
  const info = await readFile(file, 'utf8').then((t) => { try { return JSON.parse(t); } catch { return undefined; } }, () => undefined);
  return info && typeof info.pid === 'number' ? info as LockHolder : undefined;
}

/** The holder, given a moment (up to 1 s) to write who it is when it has just taken the lock. */
async function holderSoon(file: string): Promise<LockHolder | undefined> {
  for (let i = 0; i < 20; i++) {
    const h = await lockHolder(file);
    if (h) return h;
    await new Promise((r) => setTimeout(r, 50));
  }
  return lockHolder(file);
}

/** "pid 123 on host, upload since 2026-…" for messages. */
export function describeHolder(h: LockHolder | undefined): string {
  if (!h) return 'a run that has not said who it is yet';
  return `pid ${h.pid} on ${h.host}${typeof h.command === 'string' ? `, \`releng ${h.command}\`` : ''}, since ${h.since}`;
}

/** One attempt: `flock --nonblock` (waitSeconds 0) or `flock --timeout S`; 'conflict' when another holds it. */
async function attempt(file: string, waitSeconds: number): Promise<{ release(): Promise<void> } | 'conflict'> {
  // `sh -c 'echo locked; exec cat'` runs only once the lock is held: the line tells us so, and
  // cat keeps the holder alive until our end of its stdin closes (release, exit or crash).
  const wait = waitSeconds > 0 ? ['--timeout', String(waitSeconds)] : ['--nonblock'];
  const holder = spawn('flock', [...wait, '--exclusive', '--conflict-exit-code', String(CONFLICT), file, 'sh', '-c', 'echo locked; exec cat'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  holder.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => holder.once('close', (code) => resolve(code)));
  const outcome = await new Promise<'locked' | { code: number | null } | { error: NodeJS.ErrnoException }>((resolve) => {
    createInterface({ input: holder.stdout }).once('line', (l) => resolve(l === 'locked' ? 'locked' : { code: -1 }));
    holder.once('error', (error) => resolve({ error }));
    void exited.then((code) => resolve({ code }));
  });
  if (outcome === 'locked') {
    return {
      async release() {
        holder.stdin.end();
        await exited;
      },
    };
  }
  if ('error' in outcome) {
    if (outcome.error.code === 'ENOENT') throw new MissingToolError('flock', 'util-linux');
    throw new ReleaseError(`cannot lock ${file}: ${outcome.error.message}`);
  }
  if (outcome.code === CONFLICT) return 'conflict';
  throw new ReleaseError(`cannot lock ${file}: flock exited with ${outcome.code}${stderr ? `: ${stderr.trim()}` : ''}`);
}

/**
 * Takes the exclusive lock on `file`. When another process holds it: with `waitSeconds` > 0,
 * `onWait(holder)` is told who, and this waits up to that long; then (or at once with 0)
 * `conflict(holder)` is the error thrown. `info` is written into the file once the lock is held.
 */
export async function takeLock(file: string, opts: { info: Record<string, unknown>; waitSeconds?: number; onWait?: (h: LockHolder | undefined) => void; conflict: (h: LockHolder | undefined) => Error }): Promise<HeldLock> {
  await mkdir(path.dirname(file), { recursive: true });
  let held = await attempt(file, 0);
  if (held === 'conflict' && (opts.waitSeconds ?? 0) > 0) {
    opts.onWait?.(await holderSoon(file));
    held = await attempt(file, opts.waitSeconds!);
  }
  if (held === 'conflict') throw opts.conflict(await holderSoon(file));
  const lock = held;
  await writeFile(file, JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString(), ...opts.info }) + '\n');
  return { file, release: () => lock.release() };
}
