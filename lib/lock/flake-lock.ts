// flake.lock as data (issue 13): the schema where it enters (zod), the project's own inputs, and
// how an input is named for people (a flake reference, credentials redacted by lib/core/secrets.ts).
// Format: Nix's lock file version 7 (src/libexpr/flake/lockfile.cc): `nodes`, `root`, each node
// with `locked`/`original` attributes and `inputs` mapping a name to a node key or a follows path.
import { z } from 'zod';
import { registerUrlCredentials } from '../core/secrets.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';

const attrs = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

const node = z.object({
  inputs: z.record(z.string(), z.union([z.string(), z.array(z.string())])).optional(),
  locked: attrs.optional(),
  original: attrs.optional(),
  flake: z.boolean().optional(),
}).passthrough();

export const flakeLockSchema = z.object({
  nodes: z.record(z.string(), node),
  root: z.string(),
  version: z.number().int().min(5, 'releng reads lock files of version 5 and later (Nix 2.4+)'),
}).passthrough().superRefine((l, ctx) => {
  if (!(l.root in l.nodes)) ctx.addIssue({ code: 'custom', path: ['root'], message: `node "${l.root}" is not in nodes` });
});

export type FlakeLock = z.infer<typeof flakeLockSchema>;
export type LockAttrs = z.infer<typeof attrs>;

/** Parses flake.lock text; errors name `source` and the field. */
export function parseFlakeLock(text: string, source: string): FlakeLock {
  return parseWith(flakeLockSchema, parseJsonText(text, source), source, 'the lock file is written by Nix: restore it from git or run `nix flake lock`');
}

/** One input of the flake itself (root node), resolved to its lock node. */
export interface RootInput {
  name: string;
  /** `follows` inputs have no node of their own: they track another input. */
  follows?: string[];
  locked?: LockAttrs;
  original?: LockAttrs;
}

/** The root node's inputs, in name order. */
export function rootInputs(lock: FlakeLock): RootInput[] {
  const root = lock.nodes[lock.root]!;
  return Object.entries(root.inputs ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([name, target]) => {
    if (Array.isArray(target)) return { name, follows: target };
    const n = lock.nodes[target];
    return { name, locked: n?.locked, original: n?.original };
  });
}

/** Revision of a locked input: the git commit where there is one, else its narHash (tarballs, paths). */
export function revisionOf(locked: LockAttrs | undefined): string | undefined {
  if (!locked) return undefined;
  return typeof locked.rev === 'string' ? locked.rev : typeof locked.narHash === 'string' ? locked.narHash : undefined;
}

/** Whether two locks pin the same thing (the attributes Nix locks; `lastModified` follows from them). */
export function sameLock(a: LockAttrs | undefined, b: LockAttrs | undefined): boolean {
  return JSON.stringify(sortKeys(a ?? {})) === JSON.stringify(sortKeys(b ?? {}));
}

function sortKeys(o: LockAttrs): LockAttrs {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

const queryKeys = ['ref', 'rev', 'dir', 'host', 'narHash', 'submodules', 'shallow', 'allRefs'];

/** Renders lock attributes as a flake reference (`git+https://…?ref=main`, `github:o/r/ref`), as Nix writes them. */
export function flakeRefOf(a: LockAttrs | undefined): string {
  if (!a) return '(unknown)';
  const type = String(a.type ?? '');
  const q = (keys: string[]) => {
    const parts = keys.filter((k) => a[k] !== undefined).map((k) => `${k}=${encodeURIComponent(String(a[k]))}`);
    return parts.length ? `?${parts.join('&')}` : '';
  };
  let ref: string;
  switch (type) {
    case 'github': case 'gitlab': case 'sourcehut':
      ref = `${type}:${a.owner}/${a.repo}${a.rev ? `/${a.rev}` : a.ref ? `/${a.ref}` : ''}${q(['host', 'dir'])}`;
      break;
    case 'git': case 'hg': {
      const url = String(a.url ?? '');
      ref = `${type}+${url}${q(queryKeys.filter((k) => k !== 'narHash' && k !== 'host'))}`;
      break;
    }
    case 'tarball': case 'file':
      ref = String(a.url ?? '');
      break;
    case 'path':
      ref = `path:${a.path}`;
      break;
    case 'indirect':
      ref = `flake:${a.id}${a.ref ? `/${a.ref}` : ''}`;
      break;
    default:
      ref = JSON.stringify(a);
  }
  registerUrlCredentials(ref.replace(/^[a-z]+\+/, ''));
  return ref;
}

/** The git repository an input's history lives in, when it is one (for the commit log). */
export function gitUrlOf(a: LockAttrs | undefined): string | undefined {
  if (!a) return undefined;
  switch (a.type) {
    case 'git':
      return typeof a.url === 'string' ? a.url : undefined;
    case 'github':
      return `https://${a.host ?? 'github.com'}/${a.owner}/${a.repo}.git`;
    case 'gitlab':
      return `https://${a.host ?? 'gitlab.com'}/${a.owner}/${a.repo}.git`;
    case 'sourcehut':
      return `https://${a.host ?? 'git.sr.ht'}/${String(a.owner).startsWith('~') ? '' : '~'}${a.owner}/${a.repo}`;
    default:
      return undefined;
  }
}

/** Registers the credentials of every URL in a lock file, so no log, error or JSON shows them. */
export function registerLockCredentials(lock: FlakeLock): void {
  for (const n of Object.values(lock.nodes)) {
    for (const a of [n.locked, n.original]) if (a && typeof a.url === 'string') registerUrlCredentials(a.url);
  }
}

/** One input of the lock by its input path (`alpha`, `alpha/gamma`): a node, or a `follows` path. */
export interface InputEntry {
  path: string;
  follows?: string[];
  /** The lock node key (`gamma_2`): an artefact of the file, never shown to people. */
  key?: string;
  locked?: LockAttrs;
  original?: LockAttrs;
}

const byName = ([a]: [string, unknown], [b]: [string, unknown]) => (a < b ? -1 : a > b ? 1 : 0);

/** Every input of the lock by input path, as Nix's LockFile::getAllInputs walks it (each node's
 *  inputs once, under the first path that reaches it; inputs in name order). */
export function allInputs(lock: FlakeLock): Map<string, InputEntry> {
  const out = new Map<string, InputEntry>();
  const done = new Set<string>();
  const visit = (key: string, prefix: string[]) => {
    if (done.has(key)) return;
    done.add(key);
    for (const [name, target] of Object.entries(lock.nodes[key]?.inputs ?? {}).sort(byName)) {
      const p = [...prefix, name];
      const path = p.join('/');
      if (Array.isArray(target)) { out.set(path, { path, follows: target }); continue; }
      out.set(path, { path, key: target, locked: lock.nodes[target]?.locked, original: lock.nodes[target]?.original });
      visit(target, p);
    }
  };
  visit(lock.root, []);
  return out;
}

/** What the lock pins for the root inputs `names` and everything below them, by input path (node
 *  keys left out: they are renamed when other inputs change), as stable text. */
export function pinsOf(lock: FlakeLock, names: string[]): string {
  const lines: string[] = [];
  const visit = (key: string, prefix: string[], onPath: Set<string>) => {
    for (const [name, target] of Object.entries(lock.nodes[key]?.inputs ?? {}).sort(byName)) {
      const path = [...prefix, name];
      if (prefix.length === 0 && !names.includes(name)) continue;
      if (Array.isArray(target)) { lines.push(`${path.join('/')} follows ${target.join('/')}`); continue; }
      lines.push(`${path.join('/')} ${JSON.stringify(sortKeys(lock.nodes[target]?.locked ?? {}))}`);
      if (!onPath.has(target)) visit(target, path, new Set([...onPath, target]));
    }
  };
  visit(lock.root, [], new Set([lock.root]));
  return lines.join('\n');
}
