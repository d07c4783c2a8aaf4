// One run per channel at a time: an exclusive flock(2) on STATE/locks/channel-NAME.lock
// (lib/core/flock.ts: held by a child process, dropped by the kernel however this process ends).
// Different channels lock different files. A second run of the same channel fails at once.
import path from 'node:path';
import { ReleaseError } from '../core/errors.ts';
import { takeLock, type HeldLock } from '../core/flock.ts';

export type ChannelLock = HeldLock;

/** Takes the lock of `channel` under `dir`, or throws naming the run that holds it. */
export async function lockChannel(dir: string, channel: string): Promise<ChannelLock> {
  const file = path.join(dir, `channel-${channel}.lock`);
  return takeLock(file, {
    info: { channel },
    conflict: (h) => new ReleaseError(`channel ${channel} is being published by another run${h ? ` (pid ${h.pid} on ${h.host}, since ${h.since})` : ''}`,
      `wait for it to finish; runs of one channel never overlap (lock: ${file})`),
  });
}
