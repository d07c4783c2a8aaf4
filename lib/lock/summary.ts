// What a lock update changed, input by input, as data (--json) and as the commit message (issues 13, 29).
// Pure: the phase gathers the lock files, failures and histories; this decides what they say.
// Inputs of inputs are named by input path (`alpha/gamma`), as Nix prints them ("Updated input
// 'alpha/gamma'"), never by lock node key (`gamma_2`), which means nothing to a reviewer.
import { createHash } from 'node:crypto';
import { allInputs, flakeRefOf, revisionOf, rootInputs, sameLock, type FlakeLock, type InputEntry, type LockAttrs } from './flake-lock.ts';
import type { History } from './mirror.ts';
import { redact } from '../core/secrets.ts';

export type InputStatus = 'updated' | 'unchanged' | 'failed' | 'added' | 'removed' | 'follows' | 'not-requested';

export interface Pin { rev?: string; lastModified?: number; date?: string }

export interface InputChange {
  /** Input path: `nixpkgs`, or `alpha/gamma` for input `gamma` of input `alpha`. */
  name: string;
  status: InputStatus;
  /** The input as a flake reference (its `original`), credentials redacted on output. */
  url: string;
  old?: Pin;
  new?: Pin;
  /** The ref moved to a newer one (lock.refBumps): flake.nix changed with it. */
  ref?: { old: string; new: string };
  /** Git inputs: the commits OLD..NEW from the mirror. */
  commits?: History;
  /** Why there is no commit list (mirror unreachable, history rewritten). */
  historyUnavailable?: string;
  /** `failed`: Nix's message. */
  error?: string;
  /** `follows` (and an input of an input that follows another): the input path it follows. */
  follows?: string;
}

export interface Failure { input: string; message: string }

function pin(locked: LockAttrs | undefined): Pin | undefined {
  if (!locked) return undefined;
  const lm = typeof locked.lastModified === 'number' ? locked.lastModified : undefined;
  return { rev: revisionOf(locked), lastModified: lm, date: lm === undefined ? undefined : new Date(lm * 1000).toISOString().replace(/\.000Z$/, 'Z') };
}

/** Input paths in order: segment by segment, so `alpha/gamma` comes right after `alpha`. */
export function comparePaths(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const c = x[i]!.localeCompare(y[i]!);
    if (c) return c;
  }
  return x.length - y.length;
}

/** An input of an input that changed, as Nix's LockFile::diff sees it (added, removed, updated). */
function nestedChange(path: string, o: InputEntry | undefined, n: InputEntry | undefined): InputChange | undefined {
  const e = (n ?? o)!;
  const url = e.follows ? '' : redact(flakeRefOf(e.original ?? e.locked));
  const follows = e.follows?.join('/');
  const base = { name: path, url, ...(follows !== undefined ? { follows } : {}), old: pin(o?.locked), new: pin(n?.locked) };
  if (!o) return { ...base, status: 'added' };
  if (!n) return { ...base, status: 'removed' };
  if (o.follows || n.follows) return o.follows?.join('/') === n.follows?.join('/') ? undefined : { ...base, status: 'updated' };
  return sameLock(o.locked, n.locked) ? undefined : { ...base, status: 'updated' };
}

/** Input by input: what `requested` did between `before` and `after` (failures from the phase). The
 *  flake's own inputs are all listed; an input of an input only when it changed. */
export function diffLocks(before: FlakeLock, after: FlakeLock, requested: string[], failures: Failure[]): InputChange[] {
  const old = new Map(rootInputs(before).map((i) => [i.name, i]));
  const neu = new Map(rootInputs(after).map((i) => [i.name, i]));
  const names = [...new Set([...old.keys(), ...neu.keys()])];
  const failed = new Map(failures.map((f) => [f.input.split('/')[0]!, f.message]));
  const asked = new Set(requested.map((r) => r.split('/')[0]!));
  const changes = names.map((name): InputChange => {
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
  const allOld = allInputs(before);
  const allNew = allInputs(after);
  for (const path of new Set([...allOld.keys(), ...allNew.keys()])) {
    if (!path.includes('/')) continue;
    const c = nestedChange(path, allOld.get(path), allNew.get(path));
    if (c) changes.push(c);
  }
  return changes.sort((a, b) => comparePaths(a.name, b.name));
}

/** Whether the lock files differ in anything Nix locks (whitespace aside). */
export function locksDiffer(before: FlakeLock, after: FlakeLock): boolean {
  return JSON.stringify(before) !== JSON.stringify(after);
}

/**
 * Gerrit's Change-Id of an update stream: a hash of the stream (its branch name), the target branch
 * and what the target branch's lock pins for the stream's inputs (flake-lock.ts pinsOf), never of
 * the new lock. Each new update while the review is open (an input moved again, main moved) is a
 * new patch set of the same change; once the change is merged, main pins something else and the
 * next update opens a new change (issue 29).
 */
export function changeIdOf(stream: string, target: string, pinsOnTarget: string): string {
  return `I${createHash('sha1').update(`releng lock\nstream ${stream}\ntarget ${target}\n${pinsOnTarget}\n`).digest('hex')}`;
}

const short = (rev: string | undefined) => (rev ? (/^[0-9a-f]{40,64}$/.test(rev) ? rev.slice(0, 12) : rev) : '-');
const day = (p: Pin | undefined) => p?.date?.slice(0, 10) ?? '?';
const changedStatuses = new Set<InputStatus>(['updated', 'added', 'removed']);

/** The commit message: subject, input by input (inputs of inputs by path), then the trailers
 *  (review metadata for branches, the Change-Id for Gerrit). */
export function commitMessage(changes: InputChange[], opts: { changeId?: string; trailers?: Array<[string, string]> } = {}): string {
  const changed = changes.filter((c) => changedStatuses.has(c.status));
  // The subject names the topmost changed inputs: `alpha`, not also `alpha/gamma` that came with it.
  const top = changed.filter((c) => !changed.some((p) => c.name.startsWith(`${p.name}/`))).map((c) => c.name);
  const bumps = changes.filter((c) => c.ref).map((c) => `${c.name} → ${c.ref!.new}`);
  const what = top.length === 0 ? 'update inputs of inputs' : top.length <= 3 ? `update ${top.join(', ')}` : `update ${top.length} inputs`;
  const subject = `flake.lock: ${what}${bumps.length ? ` (${bumps.join(', ')})` : ''}`;
  const body: string[] = [];
  if (changed.length) {
    body.push('Updated inputs:');
    for (const c of changed) {
      if (c.follows !== undefined && c.status !== 'removed') { body.push(`• ${c.name}: ${c.status === 'added' ? 'added, ' : ''}follows '${c.follows}'`); continue; }
      if (c.status === 'added') { body.push(`• ${c.name}: added at ${short(c.new?.rev)} (${day(c.new)})`, `    ${c.url}`); continue; }
      if (c.status === 'removed') { body.push(`• ${c.name}: removed (was ${c.follows !== undefined ? `following '${c.follows}'` : short(c.old?.rev)})`); continue; }
      body.push(`• ${c.name}: ${short(c.old?.rev)} → ${short(c.new?.rev)} (${day(c.old)} → ${day(c.new)})`, `    ${c.url}`);
      if (c.ref) body.push(`    ref ${c.ref.old} → ${c.ref.new} (the newest of lock.refBumps.${c.name}; flake.nix changed with it)`);
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
  const unchanged = changes.filter((c) => c.status === 'unchanged').map((c) => c.name);
  if (unchanged.length) body.push(`Unchanged: ${unchanged.join(', ')}`);
  const failed = changes.filter((c) => c.status === 'failed');
  if (failed.length) {
    body.push('Not updated (could not be fetched):');
    for (const f of failed) body.push(`• ${f.name} (${f.url}): ${(f.error ?? '').split('\n')[0]}`);
  }
  const trailers = [...(opts.trailers ?? []), ...(opts.changeId ? [['Change-Id', opts.changeId] as [string, string]] : [])];
  return `${subject}\n\n${body.join('\n')}${trailers.length ? `\n\n${trailers.map(([k, v]) => `${k}: ${v}`).join('\n')}` : ''}\n`;
}
