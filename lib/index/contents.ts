// Contents-ARCH.gz (Debian wiki DebianRepository/Format, "Contents indices"; what apt-file reads
// through apt's Contents-deb index target): one line per file, `PATH` then whitespace then the
// comma-separated packages that ship it. No header (apt-file's parser expects none by default).
// Files of one package come from `apt-ftparchive contents` on its .deb.
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { run } from '../core/exec.ts';
import { ReleaseError } from '../core/errors.ts';

/** path → packages that ship it. */
export type Contents = Map<string, Set<string>>;

/** Parses Contents text (gzip or plain); the last whitespace-separated column is the package list. */
export function parseContents(body: Buffer): Contents {
  const text = (body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body) : body).toString('utf8');
  const out: Contents = new Map();
  for (const line of text.split('\n')) {
    const m = /^(.*?)\s+(\S+)$/.exec(line);
    if (!m || !m[1]) continue;
    const pkgs = m[2]!.split(',').map((q) => q.slice(q.lastIndexOf('/') + 1)).filter(Boolean);
    const set = out.get(m[1]) ?? new Set<string>();
    for (const p of pkgs) set.add(p);
    out.set(m[1], set);
  }
  return out;
}

/** Contents text sorted by path, the package list at column 60 as apt-ftparchive aligns it. */
export function renderContents(c: Contents): string {
  const lines: string[] = [];
  for (const p of [...c.keys()].sort()) {
    const pkgs = [...c.get(p)!].sort();
    if (pkgs.length) lines.push(`${p.padEnd(59)} ${pkgs.join(',')}`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** Contents-ARCH.gz bytes (deterministic: gzip without a name or time). */
export function gzipContents(c: Contents): Buffer {
  return gzipSync(Buffer.from(renderContents(c), 'utf8'), { level: 9 });
}

/** The files one .deb ships (paths without a leading /), by `apt-ftparchive contents`. */
export async function filesOfDeb(debFile: string): Promise<string[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-contents-'));
  try {
    await mkdir(path.join(dir, 'pool'));
    await copyFile(debFile, path.join(dir, 'pool', 'p.deb'));
    const { stdout } = await run('apt-ftparchive', ['contents', 'pool'], { cwd: dir });
    return [...parseContents(Buffer.from(stdout)).keys()];
  } catch (e: any) {
    if (e?.name === 'MissingToolError') throw e;
    throw new ReleaseError(`cannot list the files of ${debFile} (apt-ftparchive contents): ${String(e?.message ?? e).split('\n').slice(-1)[0]}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Contents with one package's lines replaced by `files` (none: the package leaves). */
export function setPackageFiles(c: Contents, pkg: string, files: string[]): void {
  for (const [p, set] of c) {
    if (set.delete(pkg) && set.size === 0) c.delete(p);
  }
  for (const f of files) {
    const set = c.get(f) ?? new Set<string>();
    set.add(pkg);
    c.set(f, set);
  }
}

/** The paths a package has in a Contents. */
export function filesOf(c: Contents, pkg: string): string[] {
  return [...c].filter(([, s]) => s.has(pkg)).map(([p]) => p);
}
