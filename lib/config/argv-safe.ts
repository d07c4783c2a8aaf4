// Config values that reach a program's command line (issue 25): a remote, a host, a ref, a path, a
// key id. A value starting with "-" would be read as an option by git, nix, skopeo, gpg or dpkg
// (`--upload-pack=touch PWNED` as a git remote runs `touch`), so releng.json refuses it where the
// config loads; the call sites also pass such values after `--end-of-options` / `--` where the
// program has one (lib/core/exec.ts `endOfOptions`), so a value from elsewhere cannot either.
import { z } from 'zod';

/** Why `v` cannot go on a command line as a value, or undefined. */
export function optionLikeProblem(v: string): string | undefined {
  if (v.startsWith('-')) return `starts with "-", so a program would read it as an option (${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)})`;
  if (v.includes('\0')) return 'contains a NUL byte';
  return undefined;
}

/** A non-empty string that is safe as a command-line value (no leading "-"); `what` says what it is, for the message. */
export function argvSafe(what: string) {
  return z.string().min(1, 'must not be empty').superRefine((v, ctx) => {
    const p = optionLikeProblem(v);
    if (p) ctx.addIssue({ code: 'custom', message: `${p}: give ${what}` });
  });
}
