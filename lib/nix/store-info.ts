// What the local Nix store says of its paths (issue 25): NarHash, NarSize, references and CA
// (`nix path-info --json --derivation`, one call for a whole closure), and the NAR listing of a path
// computed from its file tree (what Nix writes as PATH.ls with write-nar-listing), with the NAR's
// size. Upload checks the staged narinfo and .ls files against these before any write. Reads only.
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ReleaseError } from '../core/errors.ts';
import { argvBatches, run } from '../core/exec.ts';
import { nixFeatureArgs } from './eval.ts';
import { parseSha256Hash } from './nix32.ts';

export interface StorePathInfo {
  path: string;
  /** sha256 of the NAR, 32 bytes. */
  narHash: Uint8Array;
  narSize: number;
  /** Full store paths. */
  references: string[];
  ca?: string;
}

const pathInfoSchema = z.array(z.object({
  path: z.string(),
  narHash: z.string(),
  narSize: z.number(),
  references: z.array(z.string()).default([]),
  ca: z.string().nullable().optional(),
  valid: z.boolean().optional(),
}).passthrough());

/** `nix path-info --json PATHS...` by path: .drv files with --derivation (the derivation itself, as staged), the rest without (Nix refuses --derivation for a path with no deriver). */
export async function localPathInfos(paths: string[]): Promise<Map<string, StorePathInfo>> {
  const out = new Map<string, StorePathInfo>();
  const drvs = paths.filter((p) => p.endsWith('.drv'));
  const others = paths.filter((p) => !p.endsWith('.drv'));
  await Promise.all([pathInfosInto(out, drvs, ['--derivation']), pathInfosInto(out, others, [])]);
  return out;
}

async function pathInfosInto(out: Map<string, StorePathInfo>, paths: string[], flags: string[]): Promise<void> {
  // A few thousand paths per `nix path-info` (lib/core/exec.ts argvBatches): 50,000 of them in
  // one argument list were more than the kernel takes (issue 31).
  for (const batch of argvBatches(paths)) await pathInfosOf(out, batch, flags);
}

async function pathInfosOf(out: Map<string, StorePathInfo>, paths: string[], flags: string[]): Promise<void> {
  if (!paths.length) return;
  let stdout: string;
  try {
    ({ stdout } = await run('nix', [...nixFeatureArgs, 'path-info', '--json', ...flags, '--', ...paths]));
  } catch (e) {
    throw new ReleaseError(`cannot read the local store's records of the staged paths: ${(e as Error).message}`,
      'upload checks the staged cache against the Nix store it was staged from: run it where `releng build` ran (release/gcroots keeps the paths), or run `releng build` again', { cause: e });
  }
  let parsed;
  try { parsed = pathInfoSchema.parse(JSON.parse(stdout)); } catch (e) {
    throw new ReleaseError(`nix path-info --json printed something releng cannot read: ${(e as Error).message.slice(0, 300)}`);
  }
  for (const p of parsed) {
    const narHash = parseSha256Hash(p.narHash);
    if (!narHash || p.valid === false) continue;
    out.set(p.path, { path: p.path, narHash, narSize: p.narSize, references: p.references, ...(p.ca ? { ca: p.ca } : {}) });
  }
}

/** A node of a NAR listing (Nix's `.ls`, version 1). */
export type ListingNode =
  | { type: 'regular'; size: number; executable?: boolean; narOffset: number }
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, ListingNode> };

/** Length of a NAR string: an 8-byte length, the bytes, zero padding to a multiple of 8. */
const strLen = (s: string | Buffer | number) => {
  const n = typeof s === 'number' ? s : Buffer.byteLength(s);
  return 8 + Math.ceil(n / 8) * 8;
};

/**
 * The NAR listing of `storePath` and the size of its NAR, from its file tree (lstat and readlink,
 * no file read): the NAR format as Nix writes it (`nix-archive-1`, `(`, `type`, ...; entries in
 * byte order of their names), so each regular file's narOffset is where its contents start.
 */
export async function narListing(storePath: string): Promise<{ root: ListingNode; narSize: number }> {
  let offset = strLen('nix-archive-1');
  const walk = async (p: string): Promise<ListingNode> => {
    const st = await lstat(p);
    offset += strLen('(') + strLen('type');
    let node: ListingNode;
    if (st.isSymbolicLink()) {
      const target = await readlink(p, { encoding: 'buffer' });
      offset += strLen('symlink') + strLen('target') + strLen(target);
      node = { type: 'symlink', target: target.toString('utf8') };
    } else if (st.isFile()) {
      const executable = (st.mode & 0o100) !== 0;
      offset += strLen('regular') + (executable ? strLen('executable') + strLen('') : 0) + strLen('contents') + 8;
      node = { type: 'regular', size: st.size, ...(executable ? { executable: true } : {}), narOffset: offset };
      offset += Math.ceil(st.size / 8) * 8;
    } else if (st.isDirectory()) {
      offset += strLen('directory');
      const names = (await readdir(p, { encoding: 'buffer' })).sort(Buffer.compare);
      const entries: Record<string, ListingNode> = {};
      for (const n of names) {
        offset += strLen('entry') + strLen('(') + strLen('name') + strLen(n) + strLen('node');
        entries[n.toString('utf8')] = await walk(path.join(p, n.toString('utf8')));
        offset += strLen(')');
      }
      node = { type: 'directory', entries };
    } else {
      throw new ReleaseError(`${p} is neither a file, a directory nor a symlink: not a store path Nix made`);
    }
    offset += strLen(')');
    return node;
  };
  const root = await walk(storePath);
  return { root, narSize: offset };
}

/** The first difference between two listings (undefined when equal; a missing `executable` is false). */
export function listingDifference(got: unknown, want: ListingNode, at = '/'): string | undefined {
  const g = got as any;
  if (!g || typeof g !== 'object' || g.type !== want.type) return `${at}: ${g?.type ?? 'nothing'} where the store has a ${want.type}`;
  switch (want.type) {
    case 'regular':
      if (g.size !== want.size) return `${at}: size ${g.size}, the store's file has ${want.size}`;
      if (!!g.executable !== !!want.executable) return `${at}: executable ${!!g.executable}, in the store ${!!want.executable}`;
      if (g.narOffset !== want.narOffset) return `${at}: narOffset ${g.narOffset}, the NAR has it at ${want.narOffset}`;
      return undefined;
    case 'symlink':
      return g.target === want.target ? undefined : `${at}: symlink to ${JSON.stringify(g.target)}, in the store to ${JSON.stringify(want.target)}`;
    case 'directory': {
      const ge = g.entries && typeof g.entries === 'object' ? g.entries : {};
      for (const n of Object.keys(want.entries)) if (!(n in ge)) return `${at}${n}: missing`;
      for (const n of Object.keys(ge)) if (!(n in want.entries)) return `${at}${n}: not in the store path`;
      for (const [n, w] of Object.entries(want.entries)) {
        const d = listingDifference(ge[n], w, `${at}${n}${w.type === 'directory' ? '/' : ''}`);
        if (d) return d;
      }
      return undefined;
    }
  }
}
