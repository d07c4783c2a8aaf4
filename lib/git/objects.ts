// A commit that changes files of a parent commit, computed as git objects in memory: the planner
// knows the exact commit id before anything is written (so --dry-run can print the exact push and a
// re-run can see the remote already has it), and apply writes the same bytes with
// `git hash-object -w`, checking each id. The working tree and index are never touched.
import { createHash } from 'node:crypto';
import { ReleaseError } from '../core/errors.ts';

/** Reads git needs (ls-tree of the parent's trees, the object format). */
export interface ObjectReader {
  /** `git ls-tree -z TREEISH` raw output. */
  lsTree(treeish: string): Promise<string>;
  /** `sha1` or `sha256`. */
  objectFormat(): Promise<'sha1' | 'sha256'>;
}

/** One object to write. `data` is base64 (tree objects hold raw ids). */
export interface GitObject { type: 'blob' | 'tree' | 'commit'; id: string; data: string }

export interface Identity { name: string; email: string }

export interface FileCommitSpec {
  parent: string;
  /** Path from the repository root, `/`-separated. */
  path: string;
  content: string;
  /** Other files the commit changes (a ref bump: flake.nix with flake.lock). */
  also?: Array<{ path: string; content: string }>;
  /** Signs the unsigned commit object (an armored signature: SSH or OpenPGP, lib/git/sign.ts). */
  sign?: (payload: string) => Promise<string>;
  message: string;
  author: Identity;
  /** Seconds since the epoch (author and committer date, UTC): fixed, so the same input gives the same id. */
  date: number;
}

function hashObject(format: 'sha1' | 'sha256', type: string, body: Buffer): string {
  return createHash(format).update(Buffer.concat([Buffer.from(`${type} ${body.length}\0`), body])).digest('hex');
}

interface TreeEntry { mode: string; type: string; id: string; name: string }

function parseLsTree(out: string): TreeEntry[] {
  return out.split('\0').filter(Boolean).map((line) => {
    const tab = line.indexOf('\t');
    const [mode, type, id] = line.slice(0, tab).split(' ') as [string, string, string];
    return { mode, type, id, name: line.slice(tab + 1) };
  });
}

/** Git's tree order: byte order of names, with directories compared as if they ended in '/'. */
function treeOrder(a: TreeEntry, b: TreeEntry): number {
  const key = (e: TreeEntry) => Buffer.from(e.type === 'tree' ? `${e.name}/` : e.name);
  return Buffer.compare(key(a), key(b));
}

function treeBody(entries: TreeEntry[]): Buffer {
  return Buffer.concat([...entries].sort(treeOrder).map((e) => Buffer.concat([
    Buffer.from(`${e.mode.replace(/^0+/, '')} ${e.name}\0`),
    Buffer.from(e.id, 'hex'),
  ])));
}

/** The objects (blobs, trees up to the root, commit) of `spec`; the last one is the commit. */
export async function fileCommitObjects(reader: ObjectReader, spec: FileCommitSpec): Promise<GitObject[]> {
  const format = await reader.objectFormat();
  const objects: GitObject[] = [];
  const add = (type: GitObject['type'], body: Buffer) => {
    const id = hashObject(format, type, body);
    objects.push({ type, id, data: body.toString('base64') });
    return id;
  };
  const files = [{ path: spec.path, content: spec.content }, ...(spec.also ?? [])];
  // Directory → the names changed in it (a file, or a directory holding changed files).
  const changed = new Map<string, Map<string, { blob?: string }>>();
  for (const f of files) {
    const segments = f.path.split('/').filter(Boolean);
    if (segments.length === 0 || segments.some((x) => x === '.' || x === '..')) throw new ReleaseError(`internal: bad repository path ${JSON.stringify(f.path)}`);
    for (let depth = 0; depth < segments.length; depth++) {
      const dir = segments.slice(0, depth).join('/');
      if (!changed.has(dir)) changed.set(dir, new Map());
      const last = depth === segments.length - 1;
      const entry = changed.get(dir)!.get(segments[depth]!) ?? {};
      if (last) entry.blob = add('blob', Buffer.from(f.content));
      changed.get(dir)!.set(segments[depth]!, entry);
    }
  }
  // Each changed tree is its parent commit's with the changed entries replaced, from the bottom up.
  const treeOf = async (dir: string): Promise<string> => {
    const entries = parseLsTree(await reader.lsTree(`${spec.parent}:${dir}`).catch(() => ''));
    for (const [name, c] of changed.get(dir)!) {
      const at = entries.findIndex((e) => e.name === name);
      const entry: TreeEntry = c.blob
        ? { mode: at >= 0 && entries[at]!.type === 'blob' ? entries[at]!.mode : '100644', type: 'blob', id: c.blob, name }
        : { mode: '40000', type: 'tree', id: await treeOf(dir ? `${dir}/${name}` : name), name };
      if (at >= 0) entries[at] = entry; else entries.push(entry);
    }
    return add('tree', treeBody(entries));
  };
  const tree = await treeOf('');
  const who = `${spec.author.name} <${spec.author.email}> ${spec.date} +0000`;
  const message = spec.message.replace(/\s+$/, '') + '\n';
  const headers = `tree ${tree}\nparent ${spec.parent}\nauthor ${who}\ncommitter ${who}\n`;
  const unsigned = `${headers}\n${message}`;
  if (!spec.sign) { add('commit', Buffer.from(unsigned)); return objects; }
  // As `git commit -S`: the signature of the unsigned commit, in a header after the committer
  // (gpgsig on SHA-1 repositories, gpgsig-sha256 on SHA-256 ones), continuation lines indented.
  const signature = (await spec.sign(unsigned)).replace(/\n+$/, '');
  const header = `${format === 'sha256' ? 'gpgsig-sha256' : 'gpgsig'} ${signature.split('\n').join('\n ')}\n`;
  add('commit', Buffer.from(`${headers}${header}\n${message}`));
  return objects;
}

/** A commit object without its signature headers: what was signed, and what two runs that signed
 *  the same update differently have in common. */
export function unsignedCommit(raw: string): string {
  const split = raw.indexOf('\n\n');
  const head = split < 0 ? raw : raw.slice(0, split + 1);
  const kept: string[] = [];
  let inSig = false;
  for (const line of head.split('\n')) {
    if (/^gpgsig(-sha256)? /.test(line)) { inSig = true; continue; }
    if (inSig && line.startsWith(' ')) continue;
    inSig = false;
    kept.push(line);
  }
  return kept.join('\n') + (split < 0 ? '' : raw.slice(split + 1));
}

/** The parts of a raw commit object releng reads (`git cat-file commit ID`). */
export interface CommitInfo { tree: string; parents: string[]; author: string; committer: string; message: string }

export function parseCommit(raw: string): CommitInfo {
  const text = unsignedCommit(raw);
  const split = text.indexOf('\n\n');
  const head = (split < 0 ? text : text.slice(0, split)).split('\n');
  const field = (k: string) => head.filter((l) => l.startsWith(`${k} `)).map((l) => l.slice(k.length + 1));
  return { tree: field('tree')[0] ?? '', parents: field('parent'), author: field('author')[0] ?? '', committer: field('committer')[0] ?? '', message: split < 0 ? '' : text.slice(split + 2) };
}

/** Parses `git var GIT_AUTHOR_IDENT` (`Name <email> 1700000000 +0000`). */
export function parseIdent(ident: string): Identity {
  const m = /^(.*?) <([^>]*)>/.exec(ident.trim());
  if (!m) throw new ReleaseError(`cannot read the git identity ${JSON.stringify(ident)}`, 'git config user.name "..." and git config user.email "..."');
  return { name: m[1]!, email: m[2]! };
}
