// A downstream mirror run the way quick-fedora-mirror runs one (its algorithm, written here from the
// client's documented behaviour; issue 28), against an rsync daemon's master module:
//  1. fetch each module's FILELIST (`MDIR/fullfiletimelist-MDIR`) with `rsync --no-dirs --relative`
//     into a temporary directory, keeping the previous one; refuse a list of a format above 3;
//  2. a module whose list has the same SHA1 as the previous run's is skipped; a list not ending in
//     [End] is skipped as corrupt;
//  3. from the list: every file/link and directory; what is newer than the last run (LASTTIME,
//     the start of the previous run less 5 s); the lines that differ from the previous list; the
//     FILELIST and EXTRAFILES (default `fullfilelist imagelist-$mdir`) always; what the local tree
//     lacks, has with another size, or fails a [Checksums] SHA1 line (`sha1sum --check`: lines of
//     another length are ignored, as sha1sum ignores them);
//  4. one `rsync -aSH -f 'R .~tmp~' --stats --delay-updates --files-from=LIST REMOTE/MASTER/ DESTD`;
//     a failure (a listed path the server lacks is rsync's code 23) ends the run before any deletion;
//  5. then delete the local directories and files the list does not have (never the lists);
//  6. save LASTTIME.
// What rsync transferred is read from its own --out-format lines and --stats.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseFileList, type FileListEntry } from '../../lib/mirror/filelist.ts';
import { requireTool } from './tools.ts';

export interface QuickMirrorConfig {
  /** rsync://HOST:PORT (REMOTE) */
  remote: string;
  /** The rsync module holding the module directories (MASTERMODULE). */
  masterModule: string;
  /** Module → its directory in the master module (MODULEMAPPING); MODULES is its keys. */
  modules: Record<string, string>;
  /** The local mirror (DESTD). */
  dest: string;
  /** Where LASTTIME is kept (TIMEFILE). */
  timeFile: string;
  /** FILELIST, `$mdir` replaced by the module's directory (default: quick-fedora-mirror's). */
  fileList?: string;
  /** EXTRAFILES (default: quick-fedora-mirror's, `fullfilelist` and `imagelist-$mdir`). */
  extraFiles?: string[];
  /** quick-fedora-mirror -a: process every module, even one whose list did not change. */
  alwaysCheck?: boolean;
}

export interface MirrorRun {
  /** Paths (relative to DESTD) of regular files rsync transferred (`>f` items). */
  transferred: string[];
  /** Symlinks rsync created or changed (`cL` items). */
  linked: string[];
  /** Hardlinks rsync made (`hf` items, `=> TARGET`). */
  hardlinked: string[];
  /** "Number of regular files transferred" from --stats. */
  filesTransferred: number;
  /** Paths asked for in --files-from. */
  requested: string[];
  /** Files of the delete list (removed with `rm -f`, some already gone with their directory). */
  deletedFiles: string[];
  /** Directories removed (`rm -rf`). */
  deletedDirs: string[];
  /** Modules skipped because their list did not change. */
  unchanged: string[];
}

export class QuickMirrorError extends Error {
  constructor(message: string, readonly code: number | null, readonly output: string) { super(message); }
}

function rsync(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('rsync', args, { cwd, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0, stdout, stderr });
    });
  });
}

const sha1 = (b: Buffer | string) => createHash('sha1').update(b).digest('hex');

/** The lines of a list's [Files] section, as quick-fedora-mirror's awk extracts them. */
function filesSection(text: string): string[] {
  const out: string[] = [];
  let s = false;
  for (const l of text.split('\n')) {
    if (l.startsWith('[Files')) { s = true; continue; }
    if (s && l === '') break;
    if (s) out.push(l);
  }
  return out;
}

/** `find MDIR/* -printf '%y\t%p\t%s\n'` relative to DESTD. */
async function localList(dest: string, mdir: string): Promise<Array<{ type: string; path: string; size: number }>> {
  const out: Array<{ type: string; path: string; size: number }> = [];
  const root = path.join(dest, mdir);
  const walk = async (dir: string, rel: string) => {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!rel && name.startsWith('.')) continue; // the shell glob MDIR/* skips dot files at the top
      const abs = path.join(dir, name);
      const p = `${rel ? `${rel}/` : ''}${name}`;
      const st = await lstat(abs);
      out.push({ type: st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f', path: `${mdir}/${p}`, size: st.size });
      if (st.isDirectory()) await walk(abs, p);
    }
  };
  await walk(root, '');
  return out;
}

/** One run of the mirror. Throws QuickMirrorError when rsync fails (nothing is deleted then). */
export async function quickMirror(cfg: QuickMirrorConfig): Promise<MirrorRun> {
  requireTool('rsync', 'rsync');
  const fileListOf = (mdir: string) => (cfg.fileList ?? 'fullfiletimelist-$mdir').replace('$mdir', mdir);
  const extras = (mdir: string) => (cfg.extraFiles ?? ['fullfilelist', 'imagelist-$mdir']).map((e) => e.replace('$mdir', mdir));
  const starttime = Math.floor(Date.now() / 1000) - 5; // quick-fedora-mirror's paranoia: 5 s earlier
  const lastTime = Number(/LASTTIME=(\d+)/.exec(await readFile(cfg.timeFile, 'utf8').catch(() => ''))?.[1] ?? 0);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'quick-mirror-'));
  await mkdir(cfg.dest, { recursive: true });
  const base = ['--timeout=600', '-aSH', '-f', 'R .~tmp~', '--stats', '--delay-updates', '--out-format=@ %i %10l  %n%L', '--no-motd'];
  try {
    // 1. The file lists.
    const previous = new Map<string, string>();
    const lists: string[] = [];
    for (const [module, mdir] of Object.entries(cfg.modules)) {
      const fl = fileListOf(mdir);
      await mkdir(path.join(tmp, mdir), { recursive: true });
      const local = path.join(cfg.dest, mdir, fl);
      const old = await readFile(local).catch(() => undefined);
      if (old) { previous.set(module, old.toString('utf8')); await writeFile(path.join(tmp, `${fl}.old`), old); }
      lists.push(`${mdir}/${fl}`);
    }
    await writeFile(path.join(tmp, 'filelist-transferlist'), lists.join('\n') + '\n');
    const got = await rsync([...base, '--files-from=filelist-transferlist', '--no-dirs', '--relative', '--compress', `${cfg.remote}/${cfg.masterModule}/`, '.'], tmp);
    if (got.code !== 0) throw new QuickMirrorError(`Could not retrieve file lists (rsync exited ${got.code})`, got.code, got.stderr);

    // 2-3. Each module.
    const transfer = new Set<string>();
    const deleteFiles: string[] = [];
    const deleteDirs: string[] = [];
    const unchanged: string[] = [];
    for (const [module, mdir] of Object.entries(cfg.modules)) {
      const fl = fileListOf(mdir);
      const text = await readFile(path.join(tmp, mdir, fl), 'utf8');
      const version = Number(/^\[Version\]\n(\d+)/m.exec(text)?.[1]);
      if (!(version <= 3)) throw new QuickMirrorError(`File list ${mdir}/${fl} cannot be processed by this client (version ${version})`, null, '');
      const old = previous.get(module);
      if (!cfg.alwaysCheck && old !== undefined && sha1(old) === sha1(text)) { unchanged.push(module); continue; }
      if (!/\n\[End\]\n?$/.test(text)) throw new QuickMirrorError(`Invalid file list ${mdir}/${fl}: no end marker`, null, '');
      const entries: FileListEntry[] = parseFileList(text);
      const files = entries.filter((e) => e.type === 'f' || e.type === 'l');
      const dirs = entries.filter((e) => e.type === 'd');
      for (const e of [...files, ...dirs]) if (e.time >= lastTime) transfer.add(`${mdir}/${e.path}`);
      transfer.add(`${mdir}/${fl}`);
      for (const x of extras(mdir)) transfer.add(`${mdir}/${x}`);
      const hasLocal = await lstat(path.join(cfg.dest, mdir)).then(() => true, () => false);
      if (!hasLocal) continue;
      // The lines that changed since the previous list.
      const before = new Set(old ? filesSection(old) : []);
      for (const line of filesSection(text)) if (!before.has(line)) { const [, type, , p] = line.split('\t'); if (type === 'd' || type === 'f' || type === 'l') transfer.add(`${mdir}/${p}`); }
      const local = await localList(cfg.dest, mdir);
      const serverFiles = new Map(files.map((e) => [`${mdir}/${e.path}`, e.size]));
      const serverDirs = new Set(dirs.map((e) => `${mdir}/${e.path}`));
      const keep = new Set([fl, ...extras(mdir)].map((n) => `${mdir}/${n}`));
      for (const l of local) {
        if ((l.type === 'f' || l.type === 'l') && !serverFiles.has(l.path) && !keep.has(l.path)) deleteFiles.push(l.path);
        if (l.type === 'd' && !serverDirs.has(l.path)) deleteDirs.push(l.path);
      }
      const localFiles = new Map(local.filter((l) => l.type !== 'd').map((l) => [l.path, l.size]));
      const localDirs = new Set(local.filter((l) => l.type === 'd').map((l) => l.path));
      for (const [p, size] of serverFiles) if (!localFiles.has(p) || localFiles.get(p) !== size) transfer.add(p);
      for (const d of serverDirs) if (!localDirs.has(d)) transfer.add(d);
      // [Checksums ...] lines checked with sha1sum --check: only SHA1-long digests are its lines.
      let section = false;
      for (const line of text.split('\n')) {
        if (line.startsWith('[Checksums')) { section = true; continue; }
        if (line === '') { section = false; continue; }
        if (!section) continue;
        const [hex, p] = [line.slice(0, line.indexOf('\t')), line.slice(line.indexOf('\t') + 1)];
        if (!/^[0-9a-f]{40}$/.test(hex)) continue;
        const bytes = await readFile(path.join(cfg.dest, mdir, p)).catch(() => undefined);
        if (!bytes || sha1(bytes) !== hex) transfer.add(`${mdir}/${p}`);
      }
    }
    const requested = [...transfer].sort();
    const run: MirrorRun = { transferred: [], linked: [], hardlinked: [], filesTransferred: 0, requested, deletedFiles: [], deletedDirs: [], unchanged };
    if (!requested.length) return run;

    // 4. The transfer.
    await writeFile(path.join(tmp, 'master-transferlist.sorted'), requested.join('\n') + '\n');
    const r = await rsync([...base, `--files-from=${path.join(tmp, 'master-transferlist.sorted')}`, `${cfg.remote}/${cfg.masterModule}/`, cfg.dest]);
    if (r.code !== 0) {
      const outdated = r.code === 23 && /^rsync: .*link_stat .* failed: No such file or directory \(2\)$/m.test(r.stderr);
      throw new QuickMirrorError(outdated ? 'Looks like the file list is outdated: rsync failed; aborting run. Will not check in or delete anything.' : `rsync returned ${r.code}; aborting run. Will not check in or delete anything.`, r.code, r.stderr);
    }
    for (const l of r.stdout.split('\n')) {
      const m = /^@ (\S+)\s+\d+\s{2}(.*)$/.exec(l);
      if (!m) continue;
      const [item, rest] = [m[1]!, m[2]!];
      if (item.startsWith('>f')) run.transferred.push(rest);
      else if (item.startsWith('cL')) run.linked.push(rest.replace(/ -> .*$/, ''));
      else if (item.startsWith('hf')) run.hardlinked.push(rest.replace(/ => .*$/, ''));
    }
    run.filesTransferred = Number(/Number of regular files transferred: ([\d,]+)/.exec(r.stdout)?.[1]?.replace(/,/g, '') ?? NaN);

    // 5. Deletions, after the transfer.
    for (const d of deleteDirs) {
      if (await lstat(path.join(cfg.dest, d)).then((s) => s.isDirectory(), () => false)) { await rm(path.join(cfg.dest, d), { recursive: true, force: true }); run.deletedDirs.push(d); }
    }
    // Files as its `xargs rm -f`: every path of the list, some already gone with their directory.
    for (const f of deleteFiles) { await rm(path.join(cfg.dest, f), { force: true }); run.deletedFiles.push(f); }
    run.transferred.sort(); run.linked.sort(); run.hardlinked.sort(); run.deletedFiles.sort(); run.deletedDirs.sort();
    // 6. The time of this run.
    await writeFile(cfg.timeFile, `LASTTIME=${starttime}\n`);
    return run;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Copies DESTD's previous list aside (a test may compare lists across runs). */
export async function keepCopy(from: string, to: string): Promise<void> {
  await mkdir(path.dirname(to), { recursive: true });
  await copyFile(from, to);
}
