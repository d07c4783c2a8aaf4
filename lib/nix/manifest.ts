// manifest.nix: what `nix upgrade-nix` reads. { SYSTEM = "/nix/store/...-PROJECT-VERSION"; ... }
import { createHash } from 'node:crypto';
import { mkdir, readFile, realpath, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';

/** Renders the manifest, systems sorted, one per line (golden-tested). */
export function renderManifest(paths: Record<string, string>): string {
  const lines = Object.keys(paths).sort().map((s) => `  ${s} = "${paths[s]}";`);
  return `{\n${lines.join('\n')}\n}\n`;
}

export interface ManifestReadOptions {
  /** Directory of the evaluation memo (`.releng/upload-state`); none: no memo on disk (this process still evaluates equal bytes once). */
  memoDir?: string;
}

/** The memo file of manifest evaluations (docs/upload-performance.md, "Local state"). */
export const manifestMemoFile = 'nix-eval.json';

// Evaluations in this process: one per distinct bytes and Nix at a time, and a literal manifest's
// answer kept for the run (a release's manifest.nix and the root one are usually the same bytes,
// and verify, upload and promote read them more than once). Other files are evaluated every time.
const inProcess = new Map<string, Promise<Record<string, string>>>();

/**
 * Reads a manifest.nix back with Nix itself: the check that it says what we meant.
 * `nix-instantiate --eval --strict --json` of a file that is a literal attribute set of strings (what
 * renderManifest writes: no import, no path, nothing but the bytes) is a pure function of its bytes
 * and of Nix: with `memoDir`, the answer is memoised by the sha256 of the bytes and the identity of
 * the nix-instantiate binary (real path, size, mtime, inode). Only such literal manifests are memoised
 * (the value must render back to exactly the bytes); anything else is evaluated every time.
 */
export async function readManifestWithNix(file: string, opts: ManifestReadOptions = {}): Promise<Record<string, string>> {
  const bytes = await readFile(file);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const nix = await nixIdentity();
  const key = `${opts.memoDir ?? ''}\0${nix ?? ''}\0${sha256}`;
  let p = inProcess.get(key);
  if (!p) {
    p = evaluate(file, bytes, sha256, nix, opts.memoDir);
    inProcess.set(key, p);
    p.then((v) => { if (!isLiteral(v, bytes)) inProcess.delete(key); }, () => inProcess.delete(key));
  }
  return { ...(await p) };
}

/** The file is exactly what renderManifest writes for this value: a literal attribute set of strings. */
function isLiteral(value: unknown, bytes: Buffer): value is Record<string, string> {
  return isStringMap(value) && renderManifest(value) === bytes.toString('utf8');
}

async function evaluate(file: string, bytes: Buffer, sha256: string, nix: string | undefined, memoDir: string | undefined): Promise<Record<string, string>> {
  const memoPath = memoDir && nix ? path.join(memoDir, manifestMemoFile) : undefined;
  const memo = memoPath ? await readMemo(memoPath) : undefined;
  const hit = memo?.entries[sha256];
  if (hit && hit.nix === nix && isLiteral(hit.value, bytes)) return hit.value;
  const { stdout } = await run('nix-instantiate', ['--eval', '--strict', '--json', file]);
  const data = JSON.parse(stdout);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ReleaseError(`${file} does not evaluate to an attribute set`);
  if (memoPath && nix && isLiteral(data, bytes)) {
    // A memo only saves a subprocess: failing to write it changes nothing else.
    await writeMemo(memoPath, sha256, { nix, value: data }).catch(() => undefined);
  }
  return data as Record<string, string>;
}

interface ManifestMemo { version: 1; entries: Record<string, { nix: string; value: Record<string, string> }> }

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

async function readMemo(file: string): Promise<ManifestMemo | undefined> {
  try {
    const m = JSON.parse(await readFile(file, 'utf8'));
    return m?.version === 1 && typeof m.entries === 'object' && m.entries !== null ? m : undefined;
  } catch { return undefined; }
}

async function writeMemo(file: string, sha256: string, entry: ManifestMemo['entries'][string]): Promise<void> {
  const memo = (await readMemo(file)) ?? { version: 1, entries: {} };
  memo.entries[sha256] = entry;
  // Bounded: the newest 64 manifests (a project has one per release).
  const keys = Object.keys(memo.entries);
  for (const k of keys.slice(0, Math.max(0, keys.length - 64))) delete memo.entries[k];
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(memo));
  await rename(tmp, file);
}

/** Which Nix evaluates: the nix-instantiate found on PATH, by real path, size, mtime and inode (another Nix: another key). */
async function nixIdentity(): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      const real = await realpath(path.join(dir, 'nix-instantiate'));
      const s = await stat(real);
      if (s.isFile()) return `${real}:${s.size}:${s.mtimeMs}:${s.ino}`;
    } catch { /* not in this directory */ }
  }
  return undefined;
}
