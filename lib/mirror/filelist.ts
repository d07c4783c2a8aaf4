// quick-fedora-mirror file lists (`fullfiletimelist-MODULE`), kept current after every publish or
// promote to an environment with `mirror.fileLists` (issue 11). The format is the one Fedora's
// create-filelist writes and quick-fedora-mirror reads (format version 2):
//   [Version]\n2\n\n[Files]\nTIME\tTYPE\tSIZE\tPATH ...\n\n[Checksums SHA1]\nHEX\tPATH ...\n\n[Checksums SHA256]\n...\n\n[End]\n
// TIME is the newer of mtime and ctime in whole seconds, TYPE f (file), d (directory), l (symlink);
// a directory's line follows its contents (create-filelist's post-order walk); the list itself and
// releng's .releng/ sidecars are not listed. Here names are sorted at every level, so the same tree
// gives the same bytes, and a list is rewritten (temp file, rename) only when its content changed:
// mirrors that poll the list's mtime see a change only when there is one.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Skip } from '../core/plan.ts';
import type { MirrorSettings } from '../config/config.ts';
import { parseS3Url } from '../config/config.ts';
import { META_DIR } from '../fs/store.ts';
import type { Logger } from '../core/log.ts';
import { sha256Text } from '../hashing/checksums.ts';
import type { S3Store } from '../s3/store.ts';

export interface FileListEntry {
  time: number;
  type: 'f' | 'd' | 'l';
  size: number;
  /** `/`-separated, relative to the module root. */
  path: string;
}

export interface FileListChecksum {
  path: string;
  sha1: string;
  sha256: string;
}

/** The name of a module's list, at the module root. */
export function fileListName(module: string): string {
  return `fullfiletimelist-${module}`;
}

/** Renders the list (format version 2). Entries are written in the order given. */
export function renderFileList(entries: FileListEntry[], checksums: FileListChecksum[]): string {
  const sums = [...checksums].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return [
    '[Version]', '2', '',
    '[Files]', ...entries.map((e) => `${e.time}\t${e.type}\t${e.size}\t${e.path}`), '',
    '[Checksums SHA1]', ...sums.map((c) => `${c.sha1}\t${c.path}`), '',
    '[Checksums SHA256]', ...sums.map((c) => `${c.sha256}\t${c.path}`), '',
    '[End]', '',
  ].join('\n');
}

/** Parses the [Files] section back (the test mirror and the promote tests read it as a mirror does). */
export function parseFileList(text: string): FileListEntry[] {
  const out: FileListEntry[] = [];
  let section = '';
  for (const line of text.split('\n')) {
    if (/^\[.*\]$/.test(line)) { section = line; continue; }
    if (section !== '[Files]' || !line) continue;
    const [time, type, size, ...rest] = line.split('\t');
    out.push({ time: Number(time), type: type as FileListEntry['type'], size: Number(size), path: rest.join('\t') });
  }
  return out;
}

/** Shell-style glob on the file name (`*` and `?`), or an exact name. */
function matches(name: string, globs: string[]): boolean {
  return globs.some((g) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(name));
}

async function hashesOfFile(file: string): Promise<{ sha1: string; sha256: string }> {
  const s1 = createHash('sha1');
  const s256 = createHash('sha256');
  const src = createReadStream(file);
  src.on('data', (c) => { s1.update(c); s256.update(c); });
  await pipeline(src, async function* (source) { for await (const _ of source) { /* consumed by the hashes */ } });
  return { sha1: s1.digest('hex'), sha256: s256.digest('hex') };
}

/** Walks a directory tree as create-filelist does (post-order), skipping the lists and .releng/ at the top. */
export async function scanTree(root: string, checksumGlobs: string[]): Promise<{ entries: FileListEntry[]; checksums: FileListChecksum[] }> {
  const entries: FileListEntry[] = [];
  const checksums: FileListChecksum[] = [];
  const walk = async (dir: string, rel: string) => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      // The lists themselves (top level, as create-filelist --skip) and releng's sidecar directories
      // (at each bucket root, which may sit anywhere below the module root) are not mirrored.
      if (!rel && name.startsWith('fullfiletimelist-')) continue;
      if (name === META_DIR || name.startsWith('.releng-tmp-')) continue;
      const abs = path.join(dir, name);
      const p = rel ? `${rel}/${name}` : name;
      const st = await lstat(abs);
      const time = Math.floor(Math.max(st.mtimeMs, st.ctimeMs) / 1000);
      if (st.isDirectory()) {
        await walk(abs, p);
        entries.push({ time, type: 'd', size: st.size, path: p });
      } else if (st.isSymbolicLink()) {
        entries.push({ time, type: 'l', size: st.size, path: p });
      } else if (st.isFile()) {
        entries.push({ time, type: 'f', size: st.size, path: p });
        if (matches(name, checksumGlobs)) checksums.push({ path: p, ...(await hashesOfFile(abs)) });
      }
    }
  };
  await walk(root, '');
  return { entries, checksums };
}

/** The same list for an S3 module: objects are files, directories are implied by keys (time: newest inside). */
export async function scanBucket(store: S3Store, bucket: string, prefix: string, checksumGlobs: string[]): Promise<{ entries: FileListEntry[]; checksums: FileListChecksum[] }> {
  const objects = (await store.list(bucket, prefix)).filter((o) => !o.key.slice(prefix.length).startsWith('fullfiletimelist-'));
  const files = new Map(objects.map((o) => [o.key.slice(prefix.length), o]));
  const dirs = new Map<string, number>();
  for (const [rel, o] of files) {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      dirs.set(d, Math.max(dirs.get(d) ?? 0, o.mtime ?? 0));
    }
  }
  // Post-order over the implied tree, names sorted at each level (as scanTree).
  const children = new Map<string, string[]>();
  for (const p of [...files.keys(), ...dirs.keys()]) {
    const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
    (children.get(parent) ?? children.set(parent, []).get(parent)!).push(p);
  }
  const entries: FileListEntry[] = [];
  const checksums: FileListChecksum[] = [];
  const walk = async (dir: string) => {
    for (const p of (children.get(dir) ?? []).sort()) {
      if (dirs.has(p)) { await walk(p); entries.push({ time: dirs.get(p)!, type: 'd', size: 0, path: p }); continue; }
      const o = files.get(p)!;
      entries.push({ time: o.mtime ?? 0, type: 'f', size: o.size, path: p });
      if (matches(p.split('/').pop()!, checksumGlobs)) {
        const text = await store.getText(bucket, o.key);
        if (text !== undefined) checksums.push({ path: p, sha1: createHash('sha1').update(text).digest('hex'), sha256: sha256Text(text) });
      }
    }
  };
  await walk('');
  return { entries, checksums };
}

export interface FileListResult { module: string; url: string; changed: boolean; entries: number }

/**
 * Regenerates every configured module's list. Writes only when the content changed: a file tree
 * gets a temp file in the module root renamed over the list; an S3 module a PUT of the object.
 */
export async function regenerateFileLists(store: S3Store, settings: MirrorSettings | undefined, opts: { log: Logger; dryRun: boolean }): Promise<{ results: FileListResult[]; skipped: Skip[] }> {
  const results: FileListResult[] = [];
  const skipped: Skip[] = [];
  for (const [module, m] of Object.entries(settings?.fileLists ?? {})) {
    const { bucket, prefix } = parseS3Url(m.root);
    const name = fileListName(module);
    const url = m.root.replace(/\/+$/, '') + '/' + name;
    const scanned = bucket.startsWith('/') ? await scanTree(path.join(bucket, ...prefix.split('/').filter(Boolean)), m.checksums) : await scanBucket(store, bucket, prefix, m.checksums);
    const text = renderFileList(scanned.entries, scanned.checksums);
    let current: string | undefined;
    if (bucket.startsWith('/')) current = await readFile(path.join(bucket, name), 'utf8').catch(() => undefined);
    else current = await store.getText(bucket, prefix + name);
    const changed = current !== text;
    results.push({ module, url, changed, entries: scanned.entries.length });
    if (!changed) { skipped.push({ what: url, reason: 'file list unchanged' }); continue; }
    if (opts.dryRun) { opts.log.info(`[dry-run] write ${url} (${scanned.entries.length} entries)`); continue; }
    if (bucket.startsWith('/')) {
      const file = path.join(bucket, name);
      const tmp = path.join(bucket, `.releng-tmp-${process.pid}-${name}`);
      try { await writeFile(tmp, text); await rename(tmp, file); } catch (e) { await rm(tmp, { force: true }); throw e; }
    } else {
      await store.put({ bucket, key: prefix + name, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/plain' });
    }
    opts.log.info(`wrote ${url} (${scanned.entries.length} entries)`);
  }
  return { results, skipped };
}
