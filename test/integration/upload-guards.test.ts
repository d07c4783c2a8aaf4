// What upload refuses or leaves alone (review findings): a build that is not the tagged commit,
// a changed artifact under an already published release prefix, and moving what users follow
// (root manifest.nix, stable/ docs) from a partial build.
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mkdtemp } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';

describe('upload guards', () => {
  let p: ScratchProject;
  let log: string;
  const env = () => ({ RELENG_S3_REQUEST_LOG: log });
  const puts = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => /^(PUT|POST|DELETE) /.test(l));

  beforeEach(async () => {
    p = await scratchProject();
    log = path.join(await mkdtemp(path.join(os.tmpdir(), 'releng-guard-')), 'requests.log');
  });
  afterEach(async () => { await p.cleanup(); });

  it('refuses to publish a build that is not the official build of the tagged commit', async () => {
    expect((await releng(['prepare', '--date', '2026-11-21'], { cwd: p.dir })).code).toBe(0);
    const built = await releng(['build', '--no-check-git'], { cwd: p.dir }); // before tag: not official
    expect(built.code, built.stderr).toBe(0);
    expect((await releng(['tag'], { cwd: p.dir })).code).toBe(0);
    const r = await releng(['upload'], { cwd: p.dir, env: env() });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/build-result\.json was built at [0-9a-f]{12}, not at tag 1\.0\.0/);
    expect(r.stderr).toContain('run `releng build` at tag 1.0.0');
    expect(await puts()).toEqual([]);
  });

  it('a partial profile does not move the root manifest.nix', async () => {
    expect((await releng(['build', '--no-check-git', '--profile', 'x86_64-linux-only'], { cwd: p.dir })).code).toBe(0);
    const r = await releng(['upload', '--no-check-git'], { cwd: p.dir, env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('skip root manifest.nix of s3://local-releases: built with profile "x86_64-linux-only", not the default "all" (it would drop systems)');
    const written = await puts();
    expect(written.some((l) => l.startsWith('PUT /local-releases/hello/hello-1.0.0/'))).toBe(true);
    expect(written.some((l) => l.startsWith('PUT /local-releases/manifest.nix'))).toBe(false);
  });

  it('an artifact with other content under a published release prefix is an error unless --replace-artifacts', async () => {
    expect((await releng(['build', '--no-check-git'], { cwd: p.dir })).code).toBe(0);
    expect((await releng(['upload', '--no-check-git'], { cwd: p.dir, env: env() })).code).toBe(0);
    // Same version, other bytes: the program changed after 1.0.0 was published.
    const script = path.join(p.dir, 'src/hello.sh');
    await writeFile(script, (await readFile(script, 'utf8')).replace('Hello, world!', 'Hello, there!'));
    p.git('commit', '-qam', 'change the greeting');
    expect((await releng(['build', '--no-check-git'], { cwd: p.dir })).code).toBe(0);
    const before = (await puts()).length;
    // The image version tag refuses first; forcing it shows the release prefix refuses too (all while planning).
    const images = await releng(['upload', '--no-check-git'], { cwd: p.dir, env: env() });
    expect(images.code).toBe(1);
    expect(images.stderr).toContain('a version tag is never moved silently');
    const r = await releng(['upload', '--no-check-git', '--force-push-images'], { cwd: p.dir, env: env() });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the release prefix s3:\/\/local-releases\/hello\/hello-1\.0\.0\/ already holds \d+ objects with other content/);
    expect(r.stderr).toContain('hello/hello-1.0.0/hello-1.0.0-x86_64-linux.tar.xz');
    expect(r.stderr).toContain('--replace-artifacts');
    expect((await puts()).length).toBe(before);
  });
});
