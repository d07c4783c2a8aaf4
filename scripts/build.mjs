// `npm run build`: bundles the CLI with esbuild into dist/lib/ (bin/releng runs it when present).
// Our code and the production npm dependencies (AWS SDK, smithy, zod, commander, p-limit, execa,
// yaml, ...) are bundled: Node 20 has no compile cache, and resolving/reading/parsing the SDK's
// hundreds of small files was about half of every S3 command's start-up (issue 16). Code
// splitting keeps each phase (and the SDK) in chunks that load only when their command runs.
// External (stays in node_modules), and why:
//   - s3rver: runs only in lib/local/s3rver-child.mjs, a separate process started by path, not
//     bundled at all (that child also runs with --openssl-legacy-provider, out of releng's process);
//   - zx: only the scripts/*.mjs entry scripts import it, and they are not part of the bundle.
// CommonJS dependencies call require() for Node built-ins; an ESM bundle has no require, so each
// chunk gets one from createRequire (the banner).
// Output sits at dist/lib/ so the paths our modules resolve from import.meta.url
// (../../nix/eval-jobs.nix, ./s3rver-child.mjs) point at the same files as from lib/*/.
// The build is swapped in file by file (rename), chunks before the entry, and never empties dist/
// first: a releng already running from dist/ loads its chunks lazily, and must still find them
// while another build runs (the test suite builds while other tests run the bundle).
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const finalDir = `${root}dist/lib`;
const staging = `${root}dist/.build-${process.pid}`;
const outdir = `${staging}/lib`;
await rm(staging, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
await mkdir(finalDir, { recursive: true });
await build({
  // hash-worker: lib/hashing/pool.ts starts it as a worker thread, by path beside its own chunk.
  entryPoints: { releng: `${root}scripts/releng.ts`, 'hash-worker': `${root}lib/hashing/worker.ts` },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // node-sqlite3-wasm loads its .wasm from beside its own file (a production dependency, shipped in node_modules).
  external: ['s3rver', 'zx', 'node-sqlite3-wasm'],
  banner: { js: "import { createRequire as __relengCreateRequire } from 'node:module'; const require = __relengCreateRequire(import.meta.url);" },
  outExtension: { '.js': '.mjs' },
  sourcemap: 'linked',
  logLevel: 'warning',
});
// Files our modules open by path rather than import (the hash worker is an entry point above).
await copyFile(`${root}lib/local/s3rver-child.mjs`, `${outdir}/s3rver-child.mjs`);
const built = await readdir(outdir);
const entry = (f) => f.startsWith('releng.mjs') || f.startsWith('hash-worker.mjs');
for (const f of [...built.filter((f) => !entry(f)), ...built.filter(entry)]) await rename(`${outdir}/${f}`, `${finalDir}/${f}`);
await rm(staging, { recursive: true, force: true });
// Chunks of earlier builds (other content hashes): removed once no run can still be loading them.
const keep = new Set(built);
for (const f of await readdir(finalDir)) {
  if (keep.has(f)) continue;
  const st = await stat(`${finalDir}/${f}`).catch(() => undefined);
  if (st?.isFile() && Date.now() - st.mtimeMs > 15 * 60_000) await unlink(`${finalDir}/${f}`).catch(() => {});
}
console.log(`built ${finalDir}/releng.mjs`);
