// Opt-in ref bumps (issue 29): an input pinned to a release branch (`nixos-25.05`) moves to the
// newest ref of the same pattern on its remote (`nixos-25.11`) once it exists. Only inputs named
// in releng.json's lock.refBumps; the ref is in flake.nix (the lock's `original` must match it, or
// Nix re-locks), so the bump edits flake.nix and Nix then locks the input at the new ref.
// Pure apart from nothing: the refs come from the input's remote through the Mirror.
import { ReleaseError } from '../core/errors.ts';
import type { LockAttrs } from './flake-lock.ts';

/** The pattern of lock.refBumps.INPUT, matched against the whole ref name. */
export function refPattern(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

type Version = Array<number | string>;

/** The version a ref carries (the pattern's capture groups; numbers where they are digits), or undefined. */
export function refVersion(pattern: RegExp, ref: string): Version | undefined {
  const m = pattern.exec(ref);
  if (!m) return undefined;
  return m.slice(1).map((g) => (g !== undefined && /^\d+$/.test(g) ? Number(g) : g ?? ''));
}

export function compareVersions(a: Version, b: Version): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? '';
    const y = b[i] ?? '';
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return 0;
}

/** The newest of `refs` matching `pattern` when it is newer than `current`, else undefined. */
export function newerRef(pattern: RegExp, current: string, refs: string[]): string | undefined {
  const have = refVersion(pattern, current);
  if (!have) return undefined;
  let best: { ref: string; v: Version } | undefined;
  for (const ref of new Set(refs)) {
    const v = refVersion(pattern, ref);
    if (v && (!best || compareVersions(v, best.v) > 0)) best = { ref, v };
  }
  return best && compareVersions(best.v, have) > 0 ? best.ref : undefined;
}

/** Branch and tag names of `git ls-remote --heads --tags` output (peeled `^{}` lines dropped). */
export function refNames(lsRemote: string): string[] {
  return lsRemote.split('\n').map((l) => l.split('\t')[1] ?? '').filter((r) => r && !r.endsWith('^{}'))
    .map((r) => r.replace(/^refs\/(heads|tags)\//, ''));
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The attribute path assigned just before `at` (`inputs.channel.url = `, `url = `), or undefined. */
function assignedPath(text: string): string[] | undefined {
  const m = /((?:[A-Za-z_][\w'-]*|"[^"]*")(?:\s*\.\s*(?:[A-Za-z_][\w'-]*|"[^"]*"))*)\s*=\s*$/.exec(text);
  return m ? m[1]!.split(/\s*\.\s*/).map((x) => x.replace(/^"|"$/g, '')) : undefined;
}

/**
 * The input a string literal at `at` belongs to, read from the attribute paths around it:
 * `inputs.channel.url = "…"`, `stable.url = "…"` inside `inputs = { … }`, or `url`/`ref` inside
 * `channel = { … }` / `inputs.channel = { … }`. Undefined when the text does not say.
 */
export function inputOwning(text: string, at: number): string | undefined {
  const isInput = (p: string[]) => p.filter((x) => x !== 'inputs' && x !== 'url' && x !== 'ref').at(-1);
  const stmtStart = Math.max(text.lastIndexOf(';', at - 1), text.lastIndexOf('{', at - 1), text.lastIndexOf('}', at - 1)) + 1;
  const own = assignedPath(text.slice(stmtStart, at));
  if (own && isInput(own)) return isInput(own);
  // The attribute set holding the literal: the innermost `{` not closed before it.
  let depth = 0;
  for (let i = at - 1; i >= 0; i--) {
    const ch = text[i];
    if (ch === '}') depth++;
    else if (ch === '{') {
      if (depth === 0) {
        const before = text.slice(0, i);
        const start = Math.max(before.lastIndexOf(';'), before.lastIndexOf('{'), before.lastIndexOf('}')) + 1;
        const p = assignedPath(before.slice(start));
        return p ? isInput(p) : undefined;
      }
      depth--;
    }
  }
  return undefined;
}

/**
 * flake.nix with input `input`'s ref `oldRef` replaced by `newRef`: in the string literal that is the
 * input's URL (`"github:NixOS/nixpkgs/nixos-25.05"`, `"git+https://…?ref=nixos-25.05"`), or else its
 * `ref = "nixos-25.05";` attribute. Where several literals could be it (two inputs of the same
 * repository and ref), the one the input's attribute holds; anything still unclear is an error
 * naming the file: releng does not guess which of two places is the input.
 */
export function bumpRefInFlakeNix(text: string, file: string, input: string, original: LockAttrs, oldRef: string, newRef: string): string {
  const literals = [...text.matchAll(/"((?:[^"\\$]|\\.|\$(?!\{))*)"/g)].map((m) => ({ at: m.index!, value: m[1]! }));
  const token = new RegExp(`(^|[/=])${escape(oldRef)}(?=$|[&#/?])`);
  const identity = typeof original.url === 'string' ? original.url
    : original.owner && original.repo ? `${original.owner}/${original.repo}` : undefined;
  let candidates = literals.filter((l) => identity && l.value.includes(identity) && token.test(l.value));
  if (candidates.length === 0) {
    candidates = literals.filter((l) => l.value === oldRef && /\bref\s*=\s*$/.test(text.slice(Math.max(0, l.at - 40), l.at)));
  }
  const owned = candidates.filter((l) => inputOwning(text, l.at) === input);
  const target = owned.length ? owned : candidates.filter((l) => inputOwning(text, l.at) === undefined);
  if (target.length !== 1) {
    throw new ReleaseError(`${file}: cannot tell where input ${input} sets its ref ${oldRef} (${target.length === 0 ? 'no' : target.length} string${target.length === 1 ? '' : 's'} naming ${identity ?? 'it'} with that ref)`,
      `set the ref in the input's URL ("…/${oldRef}" or "?ref=${oldRef}") or in its \`ref = "${oldRef}";\`, or remove lock.refBumps.${input} and move it by hand`);
  }
  const t = target[0]!;
  const value = t.value === oldRef ? newRef : t.value.replace(token, `$1${newRef}`);
  return `${text.slice(0, t.at)}"${value}"${text.slice(t.at + t.value.length + 2)}`;
}
