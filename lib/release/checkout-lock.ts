// One writer of a checkout at a time (issue 25): the commands that write release/ or .releng/
// (build, upload, promote, index, and release around its phases) hold an exclusive flock on
// .releng/checkout.lock (lib/core/flock.ts), so two runs never stage the same cache, prepare the
// same image directory or save the same memos at once. A second run waits for the first (logging
// who it is: pid, host, command, since when) up to RELENG_LOCK_WAIT seconds (default 600; 0: fail
// at once), then fails naming it. The kernel drops the lock when the holder dies, SIGKILL included.
import path from 'node:path';
import { ReleaseError } from '../core/errors.ts';
import { describeHolder, takeLock, type HeldLock } from '../core/flock.ts';

/** The lock file of a checkout (the project root, where releng.json is). */
export function checkoutLockFile(root: string): string {
  return path.join(root, '.releng', 'checkout.lock');
}

/** RELENG_LOCK_WAIT: seconds to wait for another run of this checkout (default 600). */
export function lockWaitSeconds(vars: NodeJS.ProcessEnv = process.env): number {
  const v = vars.RELENG_LOCK_WAIT;
  if (v === undefined || v === '') return 600;
  if (!/^\d+$/.test(v)) throw new ReleaseError(`RELENG_LOCK_WAIT=${v.slice(0, 40)} is not a number of seconds`, 'unset it, or give whole seconds (0: fail at once when another run holds the checkout)');
  return Number(v);
}

/** Takes the checkout's lock for `command`, waiting for another run as RELENG_LOCK_WAIT says. */
export async function lockCheckout(root: string, command: string, log: { info(m: string): void }): Promise<HeldLock> {
  const file = checkoutLockFile(root);
  const waitSeconds = lockWaitSeconds();
  return takeLock(file, {
    info: { command },
    waitSeconds,
    onWait: (h) => log.info(`another releng run is writing this checkout (${describeHolder(h)}); waiting up to ${waitSeconds} s for it to finish (RELENG_LOCK_WAIT)`),
    conflict: (h) => new ReleaseError(`another releng run is writing this checkout (${describeHolder(h)})${waitSeconds ? `, still after ${waitSeconds} s` : ''}: \`releng ${command}\` did not start`,
      `wait for it to finish (or stop it), then run again; one run at a time writes release/ and .releng/ (lock: ${file}; RELENG_LOCK_WAIT=SECONDS to wait longer)`),
  });
}
