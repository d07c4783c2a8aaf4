// `releng release` on a clean scratch copy of examples/hello, without --no-check-git: prepare → tag
// → build → upload, then real clients read back what was published from the tag.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalS3, type LocalS3 } from '../../lib/local/s3-server.ts';
import { readTagRecord } from '../../lib/release/tag-record.ts';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

describe('releng release (the quick start flow)', () => {
  let p: ScratchProject;
  let run: Awaited<ReturnType<typeof releng>>;
  let s3: LocalS3 | undefined;

  beforeAll(async () => {
    requireTool('nix-build', 'nix-bin');
    requireTool('git', 'git');
    p = await scratchProject();
    run = await releng(['release', '--date', '2026-11-21', '--json'], { cwd: p.dir });
  });
  afterAll(async () => { await s3?.stop(); await p?.cleanup(); });

  it('runs the four phases in order and succeeds', () => {
    expect(run.code, run.stderr).toBe(0);
    const phases = [...run.stderr.matchAll(/── (\w+) ──/g)].map((m) => m[1]);
    expect(phases).toEqual(['prepare', 'tag', 'build', 'upload']);
    const result = JSON.parse(run.stdout).result;
    expect(result.tag).toMatchObject({ version: '1.0.0', branch: 'main' });
    expect(result.upload.applied['s3.put']).toBeGreaterThan(10);
  });

  it('built from the tag: build-result.json names it, and the version is official', async () => {
    const built = JSON.parse(await readFile(path.join(p.dir, 'release/build-result.json'), 'utf8'));
    expect(built.tag).toBe('1.0.0');
    expect(built.gitRevision).toBe(p.git('rev-parse', '1.0.0^{commit}'));
    expect(built.official).toBe(true);
    expect(await readTagRecord(p.dir)).toEqual({ version: '1.0.0', branch: 'main', releaseCommit: built.gitRevision, mergeCommit: p.git('rev-parse', 'main') });
  });

  it('the uploaded source tarball is the tagged tree: official version.json, notes in, fragments out', async () => {
    s3 = await startLocalS3({ dir: path.join(p.dir, '.releng/local/s3') });
    const get = async (key: string) => {
      const res = await fetch(`${s3!.endpoint}/${key}`);
      expect(res.status, key).toBe(200);
      return Buffer.from(await res.arrayBuffer());
    };
    const tarball = path.join(await mkdtemp(path.join(os.tmpdir(), 'releng-src-')), 'src.tar.gz');
    await writeFile(tarball, await get('local-releases/hello/hello-1.0.0/hello-1.0.0.tar.gz'));
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    expect(files).toContain('hello-1.0.0/doc/manual/src/release-notes/rl-1.0.md');
    expect(files.filter((f) => f.startsWith('hello-1.0.0/doc/manual/rl-next/') && f.endsWith('.md'))).toEqual([]);
    const versionJson = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'hello-1.0.0/version.json'], { encoding: 'utf8' }));
    expect(versionJson.official_release).toBe(true);
    // An official release's manual goes to stable/ as well as MAJOR/.
    expect((await get('local-docs/manual/hello/stable/index.html')).length).toBeGreaterThan(0);
    expect((await get('local-docs/manual/hello/1.0/index.html')).length).toBeGreaterThan(0);
  });

  it('run again (as after a failure in a later phase), it resumes: skips notes and tag, rebuilds, uploads nothing new', async () => {
    const log = path.join(p.dir, '..', 'requests-again.log');
    const again = await releng(['release', '--date', '2026-11-21'], { cwd: p.dir, env: { RELENG_S3_REQUEST_LOG: log } });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('skip release notes: doc/manual/src/release-notes/rl-1.0.md already has the section "# hello 1.0.0 (...)"');
    expect(again.stderr).toMatch(/skip tag 1\.0\.0: HEAD is detached at tag 1\.0\.0 \([0-9a-f]{12}\) and release\/tag\.json records it: tag has already run/);
    const writes = (await readFile(log, 'utf8')).split('\n').filter((l) => /^(PUT|POST|DELETE) /.test(l));
    expect(writes).toEqual([]);
  });
});
