// A commit that changes one file of a parent commit, computed as git objects in memory: the planner
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

/** The objects (blob, trees up to the root, commit) of `spec`; the last one is the commit. */
export async function fileCommitObjects(reader: ObjectReader, spec: FileCommitSpec): Promise<GitObject[]> {
  const format = await reader.objectFormat();
  const objects: GitObject[] = [];
  const add = (type: GitObject['type'], body: Buffer) => {
    const id = hashObject(format, type, body);
    objects.push({ type, id, data: body.toString('base64') });
    return id;
  };
  const segments = spec.path.split('/').filter(Boolean);
  if (segments.length === 0 || segments.some((s) => s === '.' || s === '..')) throw new ReleaseError(`internal: bad repository path ${JSON.stringify(spec.path)}`);
  let childId = add('blob', Buffer.from(spec.content));
  let childType: 'blob' | 'tree' = 'blob';
  // From the file's directory up to the root: each tree is its parent's with one entry replaced.
  for (let depth = segments.length - 1; depth >= 0; depth--) {
    const dir = segments.slice(0, depth).join('/');
    const name = segments[depth]!;
    const entries = parseLsTree(await reader.lsTree(`${spec.parent}:${dir}`).catch(() => ''));
    const at = entries.findIndex((e) => e.name === name);
    const entry: TreeEntry = { mode: childType === 'tree' ? '40000' : (at >= 0 && entries[at]!.type === 'blob' ? entries[at]!.mode : '100644'), type: childType, id: childId, name };
    if (at >= 0) entries[at] = entry; else entries.push(entry);
    childId = add('tree', treeBody(entries));
    childType = 'tree';
  }
  const who = `${spec.author.name} <${spec.author.email}> ${spec.date} +0000`;
  const message = spec.message.replace(/\s+$/, '') + '\n';
  add('commit', Buffer.from(`tree ${childId}\nparent ${spec.parent}\nauthor ${who}\ncommitter ${who}\n\n${message}`));
  return objects;
}

/** Parses `git var GIT_AUTHOR_IDENT` (`Name <email> 1700000000 +0000`). */
export function parseIdent(ident: string): Identity {
  const m = /^(.*?) <([^>]*)>/.exec(ident.trim());
  if (!m) throw new ReleaseError(`cannot read the git identity ${JSON.stringify(ident)}`, 'git config user.name "..." and git config user.email "..."');
  return { name: m[1]!, email: m[2]! };
}
