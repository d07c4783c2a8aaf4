// A downstream mirror as quick-fedora-mirror runs one: fetch the module's fullfiletimelist, compare
// it with the list of the previous run, rsync only the changed files and links (--files-from), remove
// what the list no longer has, keep the new list. Counts come from rsync's own --itemize-changes/--stats.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseFileList, type FileListEntry } from '../../lib/mirror/filelist.ts';

const run = promisify(execFile);

export interface MirrorRun {
  /** Paths rsync transferred (itemized `>f` or `cL` lines). */
  transferred: string[];
  /** "Number of regular files transferred" from --stats. */
  filesTransferred: number;
  deleted: string[];
  requested: string[];
}

export async function syncMirror(url: string, module: string, dest: string, stateDir: string): Promise<MirrorRun> {
  await mkdir(dest, { recursive: true });
  await mkdir(stateDir, { recursive: true });
  const name = `fullfiletimelist-${module}`;
  const fresh = path.join(stateDir, `${name}.new`);
  await run('rsync', ['--no-motd', '-t', `${url}/${name}`, fresh]);
  const old = new Map((await readFile(path.join(stateDir, name), 'utf8').then(parseFileList, () => [] as FileListEntry[])).map((e) => [e.path, e]));
  const now = parseFileList(await readFile(fresh, 'utf8'));
  const requested = now.filter((e) => e.type !== 'd').filter((e) => { const o = old.get(e.path); return !o || o.time !== e.time || o.size !== e.size || o.type !== e.type; }).map((e) => e.path);
  const nowPaths = new Set(now.map((e) => e.path));
  const deleted = [...old.keys()].filter((p) => !nowPaths.has(p)).sort().reverse();
  let transferred: string[] = [];
  let filesTransferred = 0;
  if (requested.length) {
    const list = path.join(stateDir, 'files-from');
    await writeFile(list, requested.join('\n') + '\n');
    const r = await run('rsync', ['--no-motd', '-a', `--files-from=${list}`, '--itemize-changes', '--stats', `${url}/`, `${dest}/`], { maxBuffer: 64 * 1024 * 1024 });
    transferred = r.stdout.split('\n').filter((l) => /^(>f|cL)/.test(l)).map((l) => l.slice(l.indexOf(' ') + 1));
    filesTransferred = Number(/Number of regular files transferred: ([\d,]+)/.exec(r.stdout)?.[1]?.replace(/,/g, '') ?? NaN);
  }
  for (const p of deleted) await rm(path.join(dest, p), { recursive: true, force: true });
  await copyFile(fresh, path.join(dest, name));
  await rename(fresh, path.join(stateDir, name));
  return { transferred: transferred.sort(), filesTransferred, deleted, requested: requested.sort() };
}
