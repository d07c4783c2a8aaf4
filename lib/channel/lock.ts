// One run per channel at a time: a lock file holding the owner's pid, created exclusively.
// A lock whose process is gone (crash, SIGKILL) is stale and taken over; different channels
// have different files, so they run concurrently.
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ReleaseError } from '../errors.ts';

export interface ChannelLock {
  file: string;
  release(): Promise<void>;
}

interface LockInfo { pid: number; host: string; channel: string; since: string }

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e: any) { return e?.code === 'EPERM'; }
}

/** Takes the lock of `channel` under `dir`, or throws naming the run that holds it. */
export async function lockChannel(dir: string, channel: string, log?: { warn(m: string): void }): Promise<ChannelLock> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `channel-${channel}.lock`);
  const me: LockInfo = { pid: process.pid, host: os.hostname(), channel, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(file, 'wx');
      await fh.writeFile(JSON.stringify(me) + '\n');
      await fh.close();
      return { file, async release() { await rm(file, { force: true }); } };
    } catch (e: any) {
      if (e?.code !== 'EEXIST') throw new ReleaseError(`cannot create the lock file ${file}: ${e.message}`);
    }
    let holder: LockInfo | undefined;
    try { holder = JSON.parse(await readFile(file, 'utf8')); } catch { holder = undefined; }
    if (holder && holder.host !== os.hostname()) {
      throw new ReleaseError(`channel ${channel} is locked by pid ${holder.pid} on host ${holder.host} since ${holder.since} (${file})`,
        'runs of one channel must not overlap; if that host crashed, delete the lock file');
    }
    if (holder && alive(holder.pid)) {
      throw new ReleaseError(`channel ${channel} is being published by another run (pid ${holder.pid}, since ${holder.since})`,
        `wait for it to finish; the lock is ${file}`);
    }
    // Stale (owner gone) or half-written: remove and try again.
    log?.warn(`removing stale lock ${file}${holder ? ` of pid ${holder.pid} (no longer running)` : ' (unreadable)'}`);
    await rm(file, { force: true });
  }
  throw new ReleaseError(`cannot take the lock ${file}: it keeps reappearing`, 'another run of this channel is starting; retry');
}
