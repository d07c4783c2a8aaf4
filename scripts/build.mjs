// `npm run build`: bundles the CLI with esbuild into dist/lib/ (bin/releng runs it when present).
// Only our own code is bundled; npm packages stay in node_modules (production dependencies only
// in the flake's package), and phases stay separate chunks that load when their command runs.
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
  packages: 'external',
  outExtension: { '.js': '.mjs' },
  sourcemap: 'linked',
  logLevel: 'warning',
});
// Files our modules open by path rather than import.
await copyFile(`${root}lib/local/s3rver-child.mjs`, `${outdir}/s3rver-child.mjs`);
console.log(`built ${outdir}/releng.mjs`);
