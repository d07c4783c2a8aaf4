// What a lock update changed, input by input, as data (--json) and as the commit message (issue 13).
// Pure: the phase gathers the lock files, failures and histories; this decides what they say.
import { createHash } from 'node:crypto';
import { flakeRefOf, revisionOf, rootInputs, sameLock, type FlakeLock, type LockAttrs } from './flake-lock.ts';
import type { History } from './mirror.ts';
import { redact } from '../core/secrets.ts';

export type InputStatus = 'updated' | 'unchanged' | 'failed' | 'added' | 'removed' | 'follows' | 'not-requested';

export interface Pin { rev?: string; lastModified?: number; date?: string }

export interface InputChange {
  name: string;
  status: InputStatus;
  /** The input as a flake reference (its `original`), credentials redacted on output. */
  url: string;
  old?: Pin;
  new?: Pin;
  /** Git inputs: the commits OLD..NEW from the mirror. */
  commits?: History;
  /** Why there is no commit list (mirror unreachable, history rewritten). */
  historyUnavailable?: string;
  /** `failed`: Nix's message. */
  error?: string;
  /** `follows`: the input it follows. */
  follows?: string;
}

export interface Failure { input: string; message: string }

function pin(locked: LockAttrs | undefined): Pin | undefined {
  if (!locked) return undefined;
  const lm = typeof locked.lastModified === 'number' ? locked.lastModified : undefined;
  return { rev: revisionOf(locked), lastModified: lm, date: lm === undefined ? undefined : new Date(lm * 1000).toISOString().replace(/\.000Z$/, 'Z') };
}

/** Input by input: what `requested` did between `before` and `after` (failures from the phase). */
export function diffLocks(before: FlakeLock, after: FlakeLock, requested: string[], failures: Failure[]): InputChange[] {
  const old = new Map(rootInputs(before).map((i) => [i.name, i]));
  const neu = new Map(rootInputs(after).map((i) => [i.name, i]));
  const names = [...new Set([...old.keys(), ...neu.keys()])].sort((a, b) => a.localeCompare(b));
  const failed = new Map(failures.map((f) => [f.input.split('/')[0]!, f.message]));
  const asked = new Set(requested.map((r) => r.split('/')[0]!));
  return names.map((name): InputChange => {
    const o = old.get(name);
    const n = neu.get(name);
    // Redacted here: the summary goes into a commit message that is pushed.
    const url = redact(flakeRefOf((n ?? o)!.original ?? (n ?? o)!.locked));
    if ((n ?? o)!.follows) return { name, status: 'follows', url: '', follows: (n ?? o)!.follows!.join('/') };
    const base = { name, url, old: pin(o?.locked), new: pin(n?.locked) };
    if (!o) return { ...base, status: 'added' };
    if (!n) return { ...base, status: 'removed' };
    if (failed.has(name)) return { ...base, status: 'failed', error: failed.get(name) };
    if (!sameLock(o.locked, n.locked)) return { ...base, status: 'updated' };
    return { ...base, status: asked.has(name) ? 'unchanged' : 'not-requested' };
  });
}

/** Whether the lock files differ in anything Nix locks (whitespace aside). */
export function locksDiffer(before: FlakeLock, after: FlakeLock): boolean {
  return JSON.stringify(before) !== JSON.stringify(after);
}

/** Gerrit's Change-Id for this update: a hash of the lock before and after, so re-running the same
 *  update (on a newer main, or another day) uploads a new patch set of the same change. */
export function changeIdOf(before: FlakeLock, after: FlakeLock): string {
  return `I${createHash('sha1').update(`releng lock\n${JSON.stringify(before)}\n${JSON.stringify(after)}`).digest('hex')}`;
}

const short = (rev: string | undefined) => (rev ? (/^[0-9a-f]{40,64}$/.test(rev) ? rev.slice(0, 12) : rev) : '-');
const day = (p: Pin | undefined) => p?.date?.slice(0, 10) ?? '?';

/** The commit message: subject, input by input, then the trailers (Change-Id for Gerrit). */
export function commitMessage(changes: InputChange[], opts: { changeId?: string; otherNodesChanged?: string[] } = {}): string {
  const changed = changes.filter((c) => c.status === 'updated' || c.status === 'added' || c.status === 'removed');
  const names = changed.map((c) => c.name);
  const subject = names.length === 0 ? 'flake.lock: update inputs of inputs'
    : names.length <= 3 ? `flake.lock: update ${names.join(', ')}` : `flake.lock: update ${names.length} inputs`;
  const body: string[] = [];
  if (changed.length) {
    body.push('Updated inputs:');
    for (const c of changed) {
      if (c.status === 'added') { body.push(`• ${c.name}: added at ${short(c.new?.rev)} (${day(c.new)})`, `    ${c.url}`); continue; }
      if (c.status === 'removed') { body.push(`• ${c.name}: removed (was ${short(c.old?.rev)})`); continue; }
      body.push(`• ${c.name}: ${short(c.old?.rev)} → ${short(c.new?.rev)} (${day(c.old)} → ${day(c.new)})`, `    ${c.url}`);
      if (c.commits) {
        const { count, log, fastForward } = c.commits;
        body.push(`    ${count} commit${count === 1 ? '' : 's'}${fastForward ? '' : ` (not a fast-forward: ${short(c.old?.rev)} is not in the new history)`}${count ? ':' : ''}`);
        for (const l of log) body.push(`      ${l}`);
        if (count > log.length) body.push(`      … and ${count - log.length} more`);
      } else if (c.historyUnavailable) {
        body.push(`    (no commit list: ${c.historyUnavailable})`);
      }
    }
  }
  if (opts.otherNodesChanged?.length) body.push(`Also changed (inputs of inputs): ${opts.otherNodesChanged.join(', ')}`);
  const unchanged = changes.filter((c) => c.status === 'unchanged').map((c) => c.name);
  if (unchanged.length) body.push(`Unchanged: ${unchanged.join(', ')}`);
  const failed = changes.filter((c) => c.status === 'failed');
  if (failed.length) {
    body.push('Not updated (could not be fetched):');
    for (const f of failed) body.push(`• ${f.name} (${f.url}): ${(f.error ?? '').split('\n')[0]}`);
  }
  const trailers = opts.changeId ? `\n\nChange-Id: ${opts.changeId}` : '';
  return `${subject}\n\n${body.join('\n')}${trailers}\n`;
}

/** Lock nodes that changed but are not the flake's own inputs (an input's inputs), by node key. */
export function otherChangedNodes(before: FlakeLock, after: FlakeLock): string[] {
  const direct = new Set([before, after].flatMap((l) => Object.values(l.nodes[l.root]?.inputs ?? {}).filter((v): v is string => typeof v === 'string')));
  const keys = new Set([...Object.keys(before.nodes), ...Object.keys(after.nodes)]);
  return [...keys].filter((k) => k !== before.root && k !== after.root && !direct.has(k)
    && JSON.stringify(before.nodes[k]?.locked) !== JSON.stringify(after.nodes[k]?.locked)).sort();
}
