// Keeps credentials out of logs, errors, plans and --json: every string we print goes through redact().

const secrets = new Set<string>();

/** Registers a value that must never be printed (S3 secret keys, registry tokens). */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) secrets.add(value);
}

/** Replaces every registered secret in `text` with `***`. */
export function redact(text: string): string {
  let out = text;
  // Longest first: a secret that contains another (a session token holding a key) goes whole.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  return out;
}

/** Registers the password of a URL like `https://user:token@host/...` (git remotes), so it is never shown. */
export function registerUrlCredentials(url: string): void {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/@:]*:([^/@]+)@/i.exec(url);
  if (!m) return;
  registerSecret(m[1]);
  try { registerSecret(decodeURIComponent(m[1]!)); } catch { /* not percent-encoded */ }
}
