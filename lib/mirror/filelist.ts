// quick-fedora-mirror file lists, kept current after every publish or promote to an environment with
// `mirror.fileLists` (issues 11, 28), and by `releng mirror-lists`. At each module root releng writes
// the three files Fedora's create-filelist writes when called as Fedora's wrapper calls it
// (`create-filelist -c -s -d MODULE -f fullfilelist -t fullfiletimelist-MODULE -i imagelist-MODULE`),
// which are the three a stock quick-fedora-mirror fetches (FILELIST='fullfiletimelist-$mdir',
// EXTRAFILES=(fullfilelist imagelist-$mdir)); a missing extra file makes its rsync fail, and the
// client then deletes and checks in nothing:
//   fullfiletimelist-MODULE  [Version] 2, [Files] TIME\tTYPE\tSIZE\tPATH ..., one [Checksums ALGO]
//                            section per algorithm (create-filelist's order SHA1, MD5, SHA256,
//                            SHA512), [End]. TIME is the newer of mtime and ctime in whole seconds,
//                            TYPE f, d or l; a directory's line follows its contents (post-order).
//   fullfilelist             the same entries, one `./PATH` a line (create-filelist -f)
//   imagelist-MODULE         the entries whose name ends in `.FORMAT` for an image format of
//                            productmd (what create-filelist -i counts as an image), `./PATH` a line
// As create-filelist: the three lists are not listed (top level), nor rsync's `.~tmp~` or NFS's
// `.nfs*` anywhere, nor a symlink whose target does not exist (a client could not fetch what it
// points at); hardlinks are files like any other (`rsync -H` on the client keeps them linked when
// both names are transferred together). Not listed either: releng's `.releng/` sidecars and its
// temporary files. Unlike create-filelist, names are sorted at every level, so a tree gives the same
// bytes every time. Every list is a planned `s3.put` (applied by the phase), made only when its text
// changed: a mirror polling the list sees a change only when there is one. The extra lists go in
// one step before the time lists of every module, so a client that sees a new time list finds the
// extras it fetches with it already current, and all modules' lists change together (Fedora's
// wrapper does the same: hardlinks across modules need both lists updated at once).
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import type { Logger } from '../core/log.ts';
import type { Plan, Skip, Step } from '../core/plan.ts';
import type { MirrorSettings } from '../config/config.ts';
import { fileListChecksumAlgorithms, parseS3Url } from '../config/config.ts';
import { META_DIR } from '../fs/store.ts';
import { sha256Text, SYNC_READ_MAX_BYTES } from '../hashing/checksums.ts';
import { objectUrl, type S3Put } from '../s3/actions.ts';
import type { S3Reader, S3StreamReader } from '../s3/store.ts';

/** What scanning an S3 module reads: listings, the lists there now, checksummed objects' bytes. */
export type FileListReader = S3Reader & Pick<S3StreamReader, 'getStream'>;

/** The checksum sections create-filelist writes, in its order (its CHECKSUM_ALGORITHMS). */
export const checksumAlgorithms = fileListChecksumAlgorithms;
export type ChecksumAlgorithm = (typeof checksumAlgorithms)[number];

export interface FileListEntry {
  time: number;
  type: 'f' | 'd' | 'l';
  size: number;
  /** `/`-separated, relative to the module root. */
  path: string;
}

export interface FileListChecksum {
  path: string;
  /** Lowercase hex per algorithm. */
  digests: Partial<Record<ChecksumAlgorithm, string>>;
}

/** The name of a module's time list, at the module root (quick-fedora-mirror's FILELIST). */
export function fileListName(module: string): string {
  return `fullfiletimelist-${module}`;
}

/** The plain list (create-filelist -f), the first of quick-fedora-mirror's default EXTRAFILES. */
export const plainListName = 'fullfilelist';

/** The image list (create-filelist -i, for fedfind), the second of quick-fedora-mirror's default EXTRAFILES. */
export function imageListName(module: string): string {
  return `imagelist-${module}`;
}

/**
 * What create-filelist counts as an image: a name ending in `.FORMAT` for one of the image formats
 * productmd knows (its IMAGE_TYPE_FORMAT_MAPPING, the file suffixes of ISOs, disk, cloud, container,
 * Vagrant and WSL images). Tested against a name, not a type: a directory so named is listed too.
 */
export const imageFormats: readonly string[] = [
  'iso', 'qcow', 'qcow2', 'raw', 'raw.xz', 'vdi', 'vmdk', 'vhd', 'vhd.gz', 'vhd.xz', 'vhdfixed.xz',
  'tar', 'tar.gz', 'tar.xz', 'oci', 'ociarchive', 'appx', 'wsl',
  'erofs', 'erofs.gz', 'erofs.xz', 'squashfs', 'squashfs.gz', 'squashfs.xz', 'liveimg.squashfs',
  'rhevm.ova', 'vsphere.ova',
  'vagrant-hyperv.box', 'vagrant-libvirt.box', 'vagrant-virtualbox.box', 'vagrant-vmware-fusion.box',
];

/** Is this path an image by create-filelist's rule? */
export function isImage(p: string): boolean {
  return imageFormats.some((f) => p.endsWith(`.${f}`));
}

/** The checksum sections in create-filelist's order, whatever order the configuration names them in. */
export function orderedAlgorithms(algorithms: readonly ChecksumAlgorithm[]): ChecksumAlgorithm[] {
  return checksumAlgorithms.filter((a) => algorithms.includes(a));
}

/** Renders the time list (format version 2). Entries are written in the order given. */
export function renderFileList(entries: FileListEntry[], checksums: FileListChecksum[], algorithms: readonly ChecksumAlgorithm[] = checksumAlgorithms): string {
  const sums = [...checksums].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return [
    '[Version]', '2', '',
    '[Files]', ...entries.map((e) => `${e.time}\t${e.type}\t${e.size}\t${e.path}`),
    ...orderedAlgorithms(algorithms).flatMap((a) => ['', `[Checksums ${a}]`, ...sums.filter((c) => c.digests[a]).map((c) => `${c.digests[a]}\t${c.path}`)]),
    '', '[End]', '',
  ].join('\n');
}

/** Renders fullfilelist: every entry of the time list, `./PATH` a line, in the same order. */
export function renderPlainList(entries: FileListEntry[]): string {
  return entries.map((e) => `./${e.path}\n`).join('');
}

/** Renders imagelist-MODULE: the entries that are images, `./PATH` a line. */
export function renderImageList(entries: FileListEntry[]): string {
  return entries.filter((e) => isImage(e.path)).map((e) => `./${e.path}\n`).join('');
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

/** Parses the [Checksums ALGO] sections back: algorithm → path → hex. */
export function parseFileListChecksums(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const line of text.split('\n')) {
    const m = /^\[(.*)\]$/.exec(line);
    if (m) {
      const algo = /^Checksums (\S+)$/.exec(m[1]!)?.[1];
      current = algo ? (out.get(algo) ?? out.set(algo, new Map()).get(algo)!) : undefined;
      continue;
    }
    if (!current || !line) continue;
    const tab = line.indexOf('\t');
    current.set(line.slice(tab + 1), line.slice(0, tab));
  }
  return out;
}

/** A matcher of shell-style globs on a file name (`*` and `?`), or exact names; compiled once per scan. */
function globMatcher(globs: string[]): (name: string) => boolean {
  const res = globs.map((g) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`));
  return (name) => res.some((re) => re.test(name));
}

const nodeHash: Record<ChecksumAlgorithm, string> = { SHA1: 'sha1', MD5: 'md5', SHA256: 'sha256', SHA512: 'sha512' };

/** Every asked digest of a stream (or of bytes already read) in one pass. */
async function digestsOf(source: NodeJS.ReadableStream | Buffer, algorithms: readonly ChecksumAlgorithm[]): Promise<FileListChecksum['digests']> {
  const hashes = algorithms.map((a): [ChecksumAlgorithm, Hash] => [a, createHash(nodeHash[a])]);
  if (Buffer.isBuffer(source)) for (const [, h] of hashes) h.update(source);
  else for await (const chunk of source) for (const [, h] of hashes) h.update(chunk as Buffer);
  return Object.fromEntries(hashes.map(([a, h]) => [a, h.digest('hex')]));
}

/** Files up to this size are read whole, synchronously, for their checksums (SHA256SUMS, repomd.xml); larger ones streamed. */
const SMALL_FILE = SYNC_READ_MAX_BYTES;

/** Names a module's lists: skipped at its top, as create-filelist -s skips its own outputs (and another module's lists sharing the root). */
function isListName(name: string): boolean {
  return name.startsWith('fullfiletimelist-') || name === plainListName || name.startsWith('imagelist-');
}

/** Skipped everywhere: releng's sidecars and temporary files, rsync's partial directory, NFS's silly-renamed files. */
function alwaysSkipped(name: string): boolean {
  return name === META_DIR || name.startsWith('.releng-tmp-') || name === '.~tmp~' || name.startsWith('.nfs');
}

export interface ScanOptions {
  /** File names or globs whose checksums are listed. */
  checksums: string[];
  algorithms: readonly ChecksumAlgorithm[];
}

export interface Scanned { entries: FileListEntry[]; checksums: FileListChecksum[] }

/** Walks a directory tree as create-filelist does (post-order), names sorted at every level. */
export async function scanTree(root: string, opts: ScanOptions): Promise<Scanned> {
  const entries: FileListEntry[] = [];
  const checksums: FileListChecksum[] = [];
  // A directory is read and its entries lstat'ed synchronously, then the event loop gets a turn: an
  // lstat through fs/promises costs several times a synchronous one, and a tree of 50,000 files took
  // a dozen times `find`'s walk (bench/mirror.ts); between directories the spinner still moves.
  const checksummed = globMatcher(opts.checksums);
  const walk = async (dir: string, rel: string) => {
    const names = readdirSync(dir).sort().filter((name) => !((!rel && isListName(name)) || alwaysSkipped(name)));
    // throwIfNoEntry: false: an entry gone since readdir (a concurrent rename) is skipped.
    const stats = names.map((name) => lstatSync(path.join(dir, name), { throwIfNoEntry: false }));
    await new Promise((resolve) => setImmediate(resolve));
    for (const [i, name] of names.entries()) {
      const abs = path.join(dir, name);
      const p = rel ? `${rel}/${name}` : name;
      const st = stats[i];
      if (!st) continue; // gone since readdir (a concurrent rename)
      const time = Math.floor(Math.max(st.mtimeMs, st.ctimeMs) / 1000);
      if (st.isDirectory()) {
        await walk(abs, p);
        entries.push({ time, type: 'd', size: st.size, path: p });
      } else if (st.isSymbolicLink()) {
        // A dangling symlink is left out (create-filelist stats through links and skips what fails).
        if (!(await stat(abs).catch(() => undefined))) continue;
        entries.push({ time, type: 'l', size: st.size, path: p });
      } else if (st.isFile()) {
        entries.push({ time, type: 'f', size: st.size, path: p });
        if (opts.algorithms.length && checksummed(name)) checksums.push({ path: p, digests: await digestsOf(st.size <= SMALL_FILE ? readFileSync(abs) : createReadStream(abs), opts.algorithms) });
      }
    }
  };
  await walk(root, '');
  return { entries, checksums };
}

/** The same lists for an S3 module: objects are files, directories are implied by keys (time: newest inside). */
export async function scanBucket(store: FileListReader, bucket: string, prefix: string, opts: ScanOptions): Promise<Scanned> {
  const objects = (await store.list(bucket, prefix)).filter((o) => {
    const rel = o.key.slice(prefix.length);
    return !(!rel.includes('/') && isListName(rel)) && !rel.split('/').some(alwaysSkipped);
  });
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
  const checksummed = globMatcher(opts.checksums);
  const walk = async (dir: string) => {
    for (const p of (children.get(dir) ?? []).sort()) {
      if (dirs.has(p)) { await walk(p); entries.push({ time: dirs.get(p)!, type: 'd', size: 0, path: p }); continue; }
      const o = files.get(p)!;
      entries.push({ time: o.mtime ?? 0, type: 'f', size: o.size, path: p });
      if (opts.algorithms.length && checksummed(p.split('/').pop()!)) {
        const body = await store.getStream(bucket, o.key);
        if (body) checksums.push({ path: p, digests: await digestsOf(body, opts.algorithms) });
      }
    }
  };
  await walk('');
  return { entries, checksums };
}

export interface FileListResult {
  module: string;
  /** The time list's URL (`file:///…/fullfiletimelist-MODULE` or `s3://…`). */
  url: string;
  /** Whether any of the module's three lists is (re)written. */
  changed: boolean;
  entries: number;
  /** Each list of the module: its URL and whether it is (re)written. */
  lists: Array<{ name: string; url: string; changed: boolean }>;
}

export interface PlannedFileLists { plan: Plan<S3Put>; results: FileListResult[] }

/**
 * Plans every configured module's three lists (or those named in `only`), scanning the modules at
 * once: an `s3.put` of each list whose text changed, the extra lists of every module first, then
 * the time lists (see the header). Reads only.
 */
export async function planFileLists(store: FileListReader, settings: MirrorSettings | undefined, opts: { only?: string[] } = {}): Promise<PlannedFileLists> {
  const modules = Object.entries(settings?.fileLists ?? {});
  const unknown = (opts.only ?? []).filter((m) => !modules.some(([name]) => name === m));
  if (unknown.length) throw new Error(`internal: unknown modules ${unknown.join(', ')}`);
  const selected = opts.only?.length ? modules.filter(([name]) => opts.only!.includes(name)) : modules;
  const limit = pLimit(4);
  const planned = await Promise.all(selected.map(([module, m]) => limit(async () => {
    const { bucket, prefix } = parseS3Url(m.root);
    const algorithms = orderedAlgorithms(m.checksumAlgorithms);
    const scanOpts = { checksums: m.checksums, algorithms };
    const scanned = bucket.startsWith('/') ? await scanTree(path.join(bucket, ...prefix.split('/').filter(Boolean)), scanOpts) : await scanBucket(store, bucket, prefix, scanOpts);
    const texts: Array<[string, string]> = [
      [plainListName, renderPlainList(scanned.entries)],
      [imageListName(module), renderImageList(scanned.entries)],
      [fileListName(module), renderFileList(scanned.entries, scanned.checksums, algorithms)],
    ];
    const read = await Promise.all(texts.map(async ([name, text]) => ({ name, text, key: prefix + name, current: await store.getText(bucket, prefix + name) })));
    const puts: S3Put[] = read.filter((r) => r.current !== r.text).map((r) => ({
      kind: 's3.put', bucket, key: r.key, source: { text: r.text }, size: Buffer.byteLength(r.text), sha256: sha256Text(r.text),
      contentType: 'text/plain; charset=utf-8', cacheControl: 'no-cache', reason: r.current === undefined ? 'new' : 'changed',
    }));
    const skipped: Skip[] = read.filter((r) => r.current === r.text).map((r) => ({ what: objectUrl(bucket, r.key), reason: 'file list unchanged' }));
    const lists = read.map((r) => ({ name: r.name, url: objectUrl(bucket, r.key), changed: r.current !== r.text }));
    const result: FileListResult = { module, url: lists[2]!.url, changed: lists.some((l) => l.changed), entries: scanned.entries.length, lists };
    return { result, puts, skipped };
  })));
  const isTimeList = (a: S3Put) => path.posix.basename(a.key).startsWith('fullfiletimelist-');
  const all = planned.flatMap((p) => p.puts);
  const steps: Step<S3Put>[] = [
    { title: 'mirror file lists: fullfilelist and imagelist-MODULE', actions: all.filter((a) => !isTimeList(a)) },
    { title: 'mirror file lists: fullfiletimelist-MODULE', actions: all.filter(isTimeList) },
  ];
  return { plan: { steps, skipped: planned.flatMap((p) => p.skipped) }, results: planned.map((p) => p.result) };
}

/**
 * After upload or promote has published to an environment: its mirror file lists to regenerate
 * (issues 11, 28), or undefined when there are none to write now: none configured, or
 * --no-mirror-lists (left for `releng mirror-lists` after a batch), or --dry-run (said, not read).
 */
export async function planFileListsAfterPublish(store: FileListReader, settings: MirrorSettings | undefined, o: { log: Pick<Logger, 'skip' | 'info'>; envName: string; dryRun: boolean; noMirrorLists: boolean; batch: 'published' | 'promoted' }): Promise<PlannedFileLists | undefined> {
  const modules = Object.keys(settings?.fileLists ?? {});
  if (!modules.length) return undefined;
  if (o.noMirrorLists) {
    o.log.skip(`mirror file lists of ${modules.join(', ')}`, `--no-mirror-lists: run \`releng mirror-lists --environment ${o.envName}\` when the batch is ${o.batch}`);
    return undefined;
  }
  if (o.dryRun) {
    o.log.info(`[dry-run] then regenerate the mirror file lists of ${modules.join(', ')} from the tree as it is then (each written only if it changed)`);
    return undefined;
  }
  return planFileLists(store, settings);
}
