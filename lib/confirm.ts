// The operator's confirmation before publishing to a shared environment (what Lix's scripts ask).
import { createInterface } from 'node:readline/promises';
import { ReleaseError } from './errors.ts';

export function confirmationPhrase(envName: string): string {
  return `I want to release this to ${envName}`;
}

/** Asks for the phrase on a terminal; refuses without a TTY unless --noconfirm was given. */
export async function confirmRelease(envName: string, opts: { noconfirm: boolean; required: boolean }): Promise<void> {
  if (!opts.required || opts.noconfirm) return;
  const phrase = confirmationPhrase(envName);
  if (!process.stdin.isTTY) {
    throw new ReleaseError(`publishing to "${envName}" needs confirmation, and there is no terminal to ask on`, 'pass --noconfirm to release unattended (CI, Hydra)');
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`Type "${phrase}" to continue: `);
    if (answer.trim() !== phrase) throw new ReleaseError('confirmation did not match; nothing was published');
  } finally {
    rl.close();
  }
}
