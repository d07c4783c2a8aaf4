// What command-not-found and the debug-info index need from one store path, read from the binary
// cache's NAR listing (`HASH.ls`, written by `nix copy --to ...?write-nar-listing=true`: JSON
// `{"version":1,"root":{"type":"directory","entries":{...}}}`) or, when the cache has none, from the
// local store. Only the facts are kept (program names, debug files), never the listing itself.
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { ReleaseError } from '../core/errors.ts';
import { withRetries } from '../core/retry.ts';

/** The facts of one store path: programs under bin/ and debug files under lib/debug/.build-id/. */
export interface PathFacts {
  /** Names X of bin/X that are programs (sorted). */
  programs: string[];
  /** Build ids (40 hex digits) and their file, e.g. lib/debug/.build-id/ab/cdef….debug (sorted by id). */
  debug: Array<{ buildId: string; member: string }>;
}

type Node =
  | { type: 'directory'; entries?: Record<string, Node> }
  | { type: 'regular'; executable?: boolean; size?: number }
  | { type: 'symlink'; target?: string };

const STORE = '/nix/store/';
/** The debug files the NixOS mirror indexes (index-debuginfo; dwarffs asks for 38 hex digits after the directory). */
const DEBUG_FILE = /^lib\/debug\/\.build-id\/([0-9a-f]{2})\/([0-9a-f]{38})\.debug$/;

function lookup(root: Node, rel: string): Node | undefined {
  let n: Node | undefined = root;
  for (const part of rel.split('/').filter(Boolean)) {
    if (n?.type !== 'directory') return undefined;
    n = n.entries?.[part];
  }
  return n;
}

/** `a/b/../c` → `a/c`; undefined when it climbs above the store path. */
function normalise(rel: string): string | undefined {
  const out: string[] = [];
  for (const p of rel.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') { if (!out.length) return undefined; out.pop(); } else out.push(p);
  }
  return out.join('/');
}

/**
 * Is bin/NAME a program? As nixos-channel-scripts' generate-programs-index decided: a regular
 * executable file; a symlink is followed within the store path (at most 40 links), and one leaving
 * it for another store path is taken to be a program; directories, plain files, dangling links and
 * links out of the store are not. Hidden names (".foo-wrapped") are never indexed.
 */
function isProgram(root: Node, storePath: string, name: string): boolean {
  let rel = `bin/${name}`;
  let node = lookup(root, rel);
  for (let hops = 0; node?.type === 'symlink' && hops < 40; hops++) {
    const target = node.target ?? '';
    const abs = target.startsWith('/') ? target : path.posix.join(storePath, path.posix.dirname(rel), target);
    const canon = path.posix.normalize(abs);
    if (!canon.startsWith(STORE)) return false;
    if (canon !== storePath && !canon.startsWith(`${storePath}/`)) return true;
    const sub = normalise(canon.slice(storePath.length));
    if (sub === undefined) return false;
    rel = sub;
    node = lookup(root, rel);
  }
  return node?.type === 'regular' && node.executable === true;
}

/** The facts of a parsed listing (`HASH.ls`), checked: a listing of another version or shape is refused, naming `where`. */
export function factsOfListing(ls: unknown, storePath: string, where: string): PathFacts {
  const doc = ls as { version?: unknown; root?: Node };
  if (!doc || typeof doc !== 'object' || doc.version !== 1 || !doc.root || typeof doc.root !== 'object' || typeof (doc.root as any).type !== 'string') {
    throw new ReleaseError(`${where} is not a NAR listing of version 1 (expected {"version":1,"root":{...}})`, 'is binaryCacheUrl a Nix binary cache written with write-nar-listing=true? nothing was published');
  }
  return factsOfTree(doc.root, storePath);
}

/** The facts of a listing tree (from a .ls file or the local store). */
export function factsOfTree(root: Node, storePath: string): PathFacts {
  const programs: string[] = [];
  const bin = lookup(root, 'bin');
  if (bin?.type === 'directory') {
    for (const name of Object.keys(bin.entries ?? {})) {
      if (!name || name.startsWith('.') || /[/\n]/.test(name)) continue;
      if (isProgram(root, storePath, name)) programs.push(name);
    }
  }
  const debug: PathFacts['debug'] = [];
  const ids = lookup(root, 'lib/debug/.build-id');
  if (ids?.type === 'directory') {
    for (const [dir, sub] of Object.entries(ids.entries ?? {})) {
      if (sub.type !== 'directory') continue;
      for (const [file, n] of Object.entries(sub.entries ?? {})) {
        const member = `lib/debug/.build-id/${dir}/${file}`;
        const m = DEBUG_FILE.exec(member);
        if (m && n.type === 'regular') debug.push({ buildId: m[1]! + m[2]!, member });
      }
    }
  }
  programs.sort();
  debug.sort((a, b) => (a.buildId < b.buildId ? -1 : a.buildId > b.buildId ? 1 : 0));
  return { programs, debug };
}

/** The part of a store path's tree the facts need, read from the local store (bin/ and lib/debug/.build-id/ only). */
async function localTree(storePath: string): Promise<Node | undefined> {
  const st = await lstat(storePath).catch(() => undefined);
  if (!st) return undefined;
  const read = async (abs: string, depth: number): Promise<Node> => {
    const s = await lstat(abs);
    if (s.isSymbolicLink()) return { type: 'symlink', target: await readlink(abs) };
    if (s.isFile()) return { type: 'regular', executable: (s.mode & 0o111) !== 0, size: s.size };
    if (!s.isDirectory() || depth === 0) return { type: 'directory', entries: {} };
    const entries: Record<string, Node> = {};
    for (const e of await readdir(abs)) entries[e] = await read(path.join(abs, e), depth - 1);
    return { type: 'directory', entries };
  };
  if (!st.isDirectory()) return read(storePath, 0);
  const root: Node = { type: 'directory', entries: {} };
  const bin = path.join(storePath, 'bin');
  if (await lstat(bin).catch(() => undefined)) root.entries!.bin = await read(bin, 1);
  const ids = path.join(storePath, 'lib/debug/.build-id');
  if (await lstat(ids).catch(() => undefined)) {
    root.entries!.lib = { type: 'directory', entries: { debug: { type: 'directory', entries: { '.build-id': await read(ids, 2) } } } };
  }
  return root;
}

/** Where listings and narinfos come from. `undefined`: the cache does not have that path. */
export interface ListingSource {
  readonly url: string;
  facts(storePath: string): Promise<PathFacts | undefined>;
  /** The `URL:` of the path's narinfo (e.g. nar/HASH.nar.xz). */
  narUrl(storePath: string): Promise<string | undefined>;
}

export type FetchLike = typeof fetch;

export interface ListingFetchOptions {
  fetchImpl?: FetchLike;
  /** Tries per request (5xx, 429, dropped connections, timeouts); 404/403 answer "not there" at once. */
  attempts?: number;
  backoffMs?: number;
  timeoutMs?: number;
  /** Look in the local Nix store when the cache has no listing (default true). */
  localStore?: boolean;
  onRetry?: (message: string) => void;
}

class HttpRetryable extends Error {
  retryable = true;
}

/** The hash part of a store path (the cache's key for it). */
export function storeHashOf(storePath: string): string {
  const m = /^\/nix\/store\/([0-9a-z]{32})-[^/]+$/.exec(storePath);
  if (!m) throw new ReleaseError(`${JSON.stringify(storePath)} is not a store path`, 'nothing was published');
  return m[1]!;
}

/**
 * A binary cache over HTTP (https://cache.nixos.org, or an S3 bucket's URL): GET HASH.ls and
 * HASH.narinfo, retried with backoff; a listing the cache does not have falls back to the local store.
 */
export function httpListingSource(baseUrl: string, opts: ListingFetchOptions = {}): ListingSource {
  const base = baseUrl.replace(/\/+$/, '');
  const fetchImpl = opts.fetchImpl ?? fetch;
  const attempts = opts.attempts ?? 4;
  const get = (url: string) => withRetries(async () => {
    let res: Response;
    try {
      res = await fetchImpl(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000) });
    } catch (e: any) {
      throw new HttpRetryable(`GET ${url}: ${e?.cause?.code ?? e?.name ?? e?.message ?? e}`);
    }
    if (res.status === 404 || res.status === 403) { await res.body?.cancel().catch(() => undefined); return undefined; }
    if (res.status >= 500 || res.status === 429) { await res.body?.cancel().catch(() => undefined); throw new HttpRetryable(`GET ${url}: HTTP ${res.status}`); }
    if (!res.ok) { await res.body?.cancel().catch(() => undefined); throw new ReleaseError(`GET ${url}: HTTP ${res.status}`, 'check binaryCacheUrl; nothing was published'); }
    try {
      const bytes = Buffer.from(await res.arrayBuffer());
      // Nix's ls-compression=br without a Content-Encoding header (a file:// cache served as files): brotli, not JSON.
      if (url.endsWith('.ls') && bytes.length && bytes[0] !== 0x7b) {
        try { return brotliDecompressSync(bytes).toString('utf8'); } catch { /* not brotli either: JSON.parse names it below */ }
      }
      return bytes.toString('utf8');
    } catch (e: any) {
      throw new HttpRetryable(`GET ${url}: the body was cut off (${e?.cause?.code ?? e?.message ?? e})`);
    }
  }, attempts, opts.backoffMs ?? 300, (e) => opts.onRetry?.(`${(e as Error).message}; retrying`)).catch((e) => {
    if (e instanceof HttpRetryable) throw new ReleaseError(`${e.message} (${attempts} attempts)`, `the binary cache ${base} keeps failing: re-run later (listings fetched so far are remembered); nothing was published`);
    throw e;
  });
  return {
    url: base,
    async facts(storePath) {
      const url = `${base}/${storeHashOf(storePath)}.ls`;
      const text = await get(url);
      if (text === undefined) {
        if (opts.localStore === false) return undefined;
        const tree = await localTree(storePath);
        return tree ? factsOfTree(tree, storePath) : undefined;
      }
      let json: unknown;
      try { json = JSON.parse(text); } catch (e) {
        throw new ReleaseError(`${url} is not valid JSON (${(e as Error).message})`, 'the listing is damaged in the binary cache; nothing was published');
      }
      return factsOfListing(json, storePath, url);
    },
    async narUrl(storePath) {
      const url = `${base}/${storeHashOf(storePath)}.narinfo`;
      const text = await get(url);
      if (text === undefined) return undefined;
      const m = /^URL: (\S+)$/m.exec(text);
      if (!m) throw new ReleaseError(`${url} has no URL: line`, 'the narinfo is damaged in the binary cache; nothing was published');
      return m[1]!;
    },
  };
}
