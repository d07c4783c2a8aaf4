// The operator's confirmation before publishing to a shared environment (what Lix's scripts ask).
import { createInterface } from 'node:readline/promises';
import type { Environment } from '../config/config.ts';
import { ReleaseError } from '../core/errors.ts';

export function confirmationPhrase(envName: string): string {
  return `I want to release this to ${envName}`;
}

/** Whether an environment asks for the phrase: its `confirm`, by default every environment but local. */
export function confirmationRequired(envName: string, env: Environment): boolean {
  return env.confirm ?? envName !== 'local';
}

/** No one to ask: no terminal on stdin, or running under CI or Hydra (issue 4: they must pass --noconfirm explicitly). */
export function isUnattended(vars: NodeJS.ProcessEnv = process.env, stdinIsTTY = !!process.stdin.isTTY): boolean {
  return !stdinIsTTY || !!vars.CI || !!vars.HYDRA_JSON;
}

/** The refusal of an unattended run that would need the phrase. */
export function unattendedError(envName: string): ReleaseError {
  return new ReleaseError(`publishing to "${envName}" needs confirmation, and this run is unattended (no terminal, or CI / HYDRA_JSON set)`,
    'pass --noconfirm to release unattended (CI, Hydra); nothing was changed');
}

/** Asks for the phrase on a terminal; refuses when unattended unless --noconfirm was given. */
export async function confirmRelease(envName: string, opts: { noconfirm: boolean; required: boolean }): Promise<void> {
  if (!opts.required || opts.noconfirm) return;
  const phrase = confirmationPhrase(envName);
  if (isUnattended()) throw unattendedError(envName);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`Type "${phrase}" to continue: `);
    if (answer.trim() !== phrase) throw new ReleaseError('confirmation did not match; nothing was published');
  } finally {
    rl.close();
  }
}
