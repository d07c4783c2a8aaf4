// One run per channel at a time: an exclusive flock(2) on STATE/locks/channel-NAME.lock, held by a
// `flock` child process for as long as this process lives. The kernel drops the lock when the
// holder goes away — normal exit, crash or SIGKILL (its stdin pipe closes, so the child exits) —
// so there is no stale lock to detect and no pid to trust. Different channels lock different files.
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { MissingToolError, ReleaseError } from '../core/errors.ts';

export interface ChannelLock {
  file: string;
  release(): Promise<void>;
}

/** Exit status `flock --nonblock` uses when another process holds the lock. */
const CONFLICT = 75;

/** Takes the lock of `channel` under `dir`, or throws naming the run that holds it. */
export async function lockChannel(dir: string, channel: string): Promise<ChannelLock> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `channel-${channel}.lock`);
  // `sh -c 'echo locked; exec cat'` runs only once the lock is held: the line tells us so, and
  // cat keeps the holder alive until our end of its stdin closes (release, exit or crash).
  const holder = spawn('flock', ['--nonblock', '--exclusive', '--conflict-exit-code', String(CONFLICT), file, 'sh', '-c', 'echo locked; exec cat'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  holder.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => holder.once('close', (code) => resolve(code)));
  const outcome = await new Promise<'locked' | { code: number | null } | { error: NodeJS.ErrnoException }>((resolve) => {
    createInterface({ input: holder.stdout }).once('line', (l) => resolve(l === 'locked' ? 'locked' : { code: -1 }));
    holder.once('error', (error) => resolve({ error }));
    void exited.then((code) => resolve({ code }));
  });
  if (outcome !== 'locked') {
    if ('error' in outcome) {
      if (outcome.error.code === 'ENOENT') throw new MissingToolError('flock', 'util-linux');
      throw new ReleaseError(`cannot lock ${file}: ${outcome.error.message}`);
    }
    if (outcome.code === CONFLICT) {
      const info = await readFile(file, 'utf8').then((t) => JSON.parse(t), () => undefined);
      const who = info ? ` (pid ${info.pid} on ${info.host}, since ${info.since})` : '';
      throw new ReleaseError(`channel ${channel} is being published by another run${who}`, `wait for it to finish; runs of one channel never overlap (lock: ${file})`);
    }
    throw new ReleaseError(`cannot lock ${file}: flock exited with ${outcome.code}${stderr ? `: ${stderr.trim()}` : ''}`);
  }
  // For the message another run prints; the lock itself is the flock, not this content.
  await writeFile(file, JSON.stringify({ pid: process.pid, host: os.hostname(), channel, since: new Date().toISOString() }) + '\n');
  return {
    file,
    async release() {
      holder.stdin.end();
      await exited;
    },
  };
}
