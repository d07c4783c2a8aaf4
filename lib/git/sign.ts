// Signing commits releng computes in memory (lib/git/objects.ts), as `git commit -S` does:
// SSH (git's gpg.format=ssh: `ssh-keygen -Y sign -n git`) or OpenPGP (`gpg --detach-sign --armor`).
// The signature covers the commit object without its signature header, so `git verify-commit`
// checks it with the same key. Ed25519 and RSA SSH signatures are deterministic (the same update
// is the same signed commit on every run); OpenPGP signatures carry their creation time, so a
// re-run reuses the commit it signed before (lib/lock/push.ts) instead of signing again.
import { ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';

export type SigningKey = { format: 'ssh'; key: string } | { format: 'openpgp'; key: string; gnupgHome?: string };

/** Armored signature of `payload` with `key`; errors name the key and the config field. */
export async function signPayload(key: SigningKey, payload: string, field: string): Promise<string> {
  if (key.format === 'ssh') {
    // ssh-keygen signs a file (FILE.sig) or stdin; stdin keeps the payload off the disk.
    try {
      const { stdout } = await run('ssh-keygen', ['-Y', 'sign', '-n', 'git', '-f', key.key], { input: payload });
      if (!stdout.includes('BEGIN SSH SIGNATURE')) throw new ReleaseError(`ssh-keygen -Y sign printed no signature`);
      return stdout;
    } catch (e) {
      if ((e as Error).name === 'MissingToolError') throw e;
      throw new ReleaseError(`cannot sign the commit with the SSH key ${key.key} (${field}): ${(e as Error).message}`,
        `${field}.key is a private key file (no passphrase, or its key in ssh-agent), or a public key file whose private key ssh-agent holds`);
    }
  }
  try {
    const { stdout } = await run('gpg', [...(key.gnupgHome ? ['--homedir', key.gnupgHome] : []), '--batch', '--no-tty', '--pinentry-mode', 'loopback', '--status-fd', '2', '--local-user', key.key, '--armor', '--detach-sign', '--output', '-'], { input: payload });
    return stdout;
  } catch (e) {
    if ((e as Error).name === 'MissingToolError') throw e;
    throw new ReleaseError(`cannot sign the commit with the OpenPGP key ${key.key} (${field}): ${(e as Error).message}`,
      `import the secret key into ${key.gnupgHome ?? 'gpg\'s home ($GNUPGHOME or ~/.gnupg)'} (gpg --import), without a passphrase or with gpg-agent holding it, or fix ${field}`);
  }
}
