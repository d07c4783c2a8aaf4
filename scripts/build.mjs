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
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/lib`;
await rm(`${root}dist`, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
await build({
  entryPoints: { releng: `${root}scripts/releng.ts` },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['s3rver', 'zx'],
  banner: { js: "import { createRequire as __relengCreateRequire } from 'node:module'; const require = __relengCreateRequire(import.meta.url);" },
  outExtension: { '.js': '.mjs' },
  sourcemap: 'linked',
  logLevel: 'warning',
});
// Files our modules open by path rather than import.
await copyFile(`${root}lib/local/s3rver-child.mjs`, `${outdir}/s3rver-child.mjs`);
console.log(`built ${outdir}/releng.mjs`);
