// What nix/package.nix does, done here with npm (the flake itself cannot build without nixpkgs):
// install from package-lock.json, build the bundle, prune to production dependencies, copy what
// installPhase copies, and run it. Proves the bundle needs no dev dependency at run time (tsx,
// esbuild, vitest gone) and that the terminal renderer's ora and cli-progress are production
// dependencies that load.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { POOL_FILE_MIN_BYTES } from '../../lib/hashing/checksums.ts';
import { repoRoot } from '../helpers/project.ts';

// Long steps run async: a blocked worker misses vitest's RPC deadline.
const exec = promisify(execFile);
const work = mkdtempSync(path.join(os.tmpdir(), 'releng-prod-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('production install (as nix/package.nix: npm ci, build, prune --omit=dev)', () => {
  it('runs from production dependencies only, and loads the terminal renderer', async () => {
    const build = path.join(work, 'build');
    mkdirSync(build);
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'bin', 'lib', 'scripts']) cpSync(path.join(repoRoot, f), path.join(build, f), { recursive: true });
    const npm = (args: string[]) => exec('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], { cwd: build, timeout: 240_000, maxBuffer: 16 << 20 });
    await npm(['ci', '--ignore-scripts']);
    await exec('node', ['scripts/build.mjs'], { cwd: build, timeout: 120_000 });
    await npm(['prune', '--omit=dev']);
    // installPhase: package.json bin dist nix node_modules, the zx scripts, no TypeScript sources
    const out = path.join(work, 'out');
    mkdirSync(path.join(out, 'scripts'), { recursive: true });
    for (const f of ['package.json', 'bin', 'dist', 'node_modules']) cpSync(path.join(build, f), path.join(out, f), { recursive: true });
    cpSync(path.join(repoRoot, 'nix'), path.join(out, 'nix'), { recursive: true });
    for (const f of readdirSync(path.join(repoRoot, 'scripts')).filter((n) => n.endsWith('.mjs'))) cpSync(path.join(repoRoot, 'scripts', f), path.join(out, 'scripts', f));

    for (const dev of ['tsx', 'esbuild', 'vitest', 'typescript', '@types/node']) expect(existsSync(path.join(out, 'node_modules', dev)), dev).toBe(false);
    for (const dep of ['ora', 'cli-progress', 'zx', 'commander', 'execa']) expect(existsSync(path.join(out, 'node_modules', dep)), dep).toBe(true);

    const releng = (args: string[]) => execFileSync(path.join(out, 'bin', 'releng'), args, { encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    expect(releng(['--version']).trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(releng(['upload', '--help'])).toContain('Usage: releng upload');
    // S3 requests from the bundle, the SDK's lazily loaded ones (a delete) included: `check` writes
    // and removes a probe in each bucket of the example's local environment (embedded S3). The
    // bundle turned the SDK's CommonJS build into a default-only chunk once, and every delete failed
    // with "DeleteObjectCommand is not a constructor" while the tests (from source) passed.
    const project = path.join(work, 'hello');
    cpSync(path.join(repoRoot, 'examples', 'hello'), project, { recursive: true });
    const checked = await exec(path.join(out, 'bin', 'releng'), ['check'], { cwd: project, env: { ...process.env, CI: 'true' }, timeout: 120_000 })
      .then((r) => r.stdout + r.stderr, (e: any) => String(e.stdout) + String(e.stderr)); // the example's git remote is not there: exit 1
    for (const b of ['local-releases', 'local-cache', 'local-docs']) expect(checked).toContain(`bucket s3://${b}: reachable, writable (probe written and removed)`);
    expect(checked).not.toContain('is not a constructor');
    // The hash workers (lib/hashing/pool.ts) run from their own bundle entry, dist/lib/hash-worker.mjs,
    // found beside the chunk that starts them: two files above the pool's threshold are hashed by
    // workers of the installed bundle, with node:crypto's digests (the tests run the pool from source).
    expect(existsSync(path.join(out, 'dist', 'lib', 'hash-worker.mjs'))).toBe(true);
    const big = [0, 1].map((i) => {
      const f = path.join(work, `big-${i}.bin`);
      writeFileSync(f, Buffer.alloc(POOL_FILE_MIN_BYTES + 1000 * (i + 1), i + 1));
      return f;
    });
    const hashed = JSON.parse((await exec(path.join(out, 'bin', 'releng'), ['sha256', '--json', '--md5', ...big], { env: { ...process.env, CI: 'true' }, timeout: 120_000 })).stdout);
    expect(hashed.result.workers).toBeGreaterThanOrEqual(1);
    expect(hashed.result.files).toEqual(big.map((f) => {
      const b = readFileSync(f);
      return { file: f, sha256: createHash('sha256').update(b).digest('hex'), md5: createHash('md5').update(b).digest('base64'), size: b.length };
    }));
    // the renderer's libraries resolve from the bundle's directory, as its dynamic imports do
    const loaded = execFileSync('node', ['--input-type=module', '-e',
      "const o = await import('ora'); const c = await import('cli-progress'); console.log(typeof o.default, typeof (c.default ?? c).MultiBar)"],
    { cwd: path.join(out, 'dist', 'lib'), encoding: 'utf8' });
    expect(loaded.trim()).toBe('function function');
    // a missing production dependency is caught by the same check
    rmSync(path.join(out, 'node_modules', 'ora'), { recursive: true });
    expect(() => execFileSync('node', ['--input-type=module', '-e', "await import('ora')"], { cwd: path.join(out, 'dist', 'lib'), stdio: 'ignore' })).toThrow();
  }, 600_000);
});
