// Bad input gives one clear error naming what and where, and changes nothing.
import { mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';

describe('bad input', () => {
  let p: ScratchProject;
  let s3: TestS3;
  const secret = 'sup3r-s3cret-value-never-shown';

  beforeAll(async () => {
    p = await scratchProject();
    s3 = await startTestS3(['stg-releases', 'stg-docs', 'stg-cache']);
    const r = await releng(['build', '--no-check-git'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    await p.editConfig((c) => {
      const base = { colour: 'green', releasesBucket: 's3://stg-releases', cacheBucket: 's3://stg-cache', docsBucket: 's3://stg-docs', confirm: false };
      c.environments.staging = { ...base, s3: { endpoint: s3.endpoint }, credentials: { source: 'env', accessKeyIdVar: 'STG_KEY', secretAccessKeyVar: 'STG_SECRET' } };
      c.environments.nobucket = { ...base, releasesBucket: 's3://missing-bucket', s3: { endpoint: s3.endpoint }, credentials: { source: 'env', accessKeyIdVar: 'STG_KEY', secretAccessKeyVar: 'STG_SECRET' } };
      c.environments.confirmme = { ...base, confirm: undefined, s3: { endpoint: s3.endpoint }, credentials: { source: 'env', accessKeyIdVar: 'STG_KEY', secretAccessKeyVar: 'STG_SECRET' } };
      c.environments.down = { ...base, s3: { endpoint: 'http://127.0.0.1:9' }, credentials: { source: 'env', accessKeyIdVar: 'STG_KEY', secretAccessKeyVar: 'STG_SECRET' } };
    });
  });
  afterAll(async () => { await s3?.stop(); await p?.cleanup(); });

  it('a malformed version.json names the file and the field', async () => {
    const file = path.join(p.dir, 'version.json');
    const before = await readFile(file, 'utf8');
    await writeFile(file, JSON.stringify({ version: 'one', official_release: 'yes', release_name: 'x' }));
    try {
      const r = await releng(['build', '--no-check-git'], { cwd: p.dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${file} is invalid`);
      expect(r.stderr).toContain('version: expected a version like 2.93.0');
      expect(r.stderr).toContain('official_release:');
    } finally {
      await writeFile(file, before);
    }
  });

  it('a malformed releng.json names the file and the field', async () => {
    const file = path.join(p.dir, 'releng.json');
    const before = await readFile(file, 'utf8');
    const c = JSON.parse(before);
    c.environments.local.releasesBucket = 'http://nope';
    await writeFile(file, JSON.stringify(c));
    try {
      const r = await releng(['upload', '--no-check-git'], { cwd: p.dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(file);
      expect(r.stderr).toContain('environments.local.releasesBucket: expected s3:// URL');
    } finally {
      await writeFile(file, before);
    }
  });

  it('missing credentials name the variables', async () => {
    const r = await releng(['upload', '--no-check-git', '--environment', 'staging'], { cwd: p.dir, env: { STG_KEY: undefined, STG_SECRET: undefined } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('takes S3 credentials from STG_KEY and STG_SECRET, which are not set');
  });

  it('wrong credentials are refused before any write, and the secret is never shown', async () => {
    await s3.resetLog();
    const r = await releng(['upload', '--no-check-git', '--environment', 'staging', '--json', '--verbose'], { cwd: p.dir, env: { STG_KEY: 'NOT-A-KEY', STG_SECRET: secret } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('S3 refused the credentials');
    expect(r.stderr + r.stdout).not.toContain(secret);
    expect(await s3.writes()).toBe(0);
  });

  it('a missing bucket is named, with its endpoint', async () => {
    await s3.resetLog();
    const r = await releng(['upload', '--no-check-git', '--environment', 'nobucket'], { cwd: p.dir, env: { STG_KEY: 'S3RVER', STG_SECRET: 'S3RVER' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`bucket missing-bucket does not exist at ${s3.endpoint}`);
    expect(await s3.writes()).toBe(0);
  });

  it('a shared environment needs the confirmation phrase, and without a terminal --noconfirm', async () => {
    await s3.resetLog();
    const r = await releng(['upload', '--no-check-git', '--environment', 'confirmme'], { cwd: p.dir, env: { STG_KEY: 'S3RVER', STG_SECRET: 'S3RVER' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('publishing to "confirmme" needs confirmation, and this run is unattended');
    expect(r.stderr).toContain('--noconfirm');
    expect(await s3.writes()).toBe(0);
  });

  it('an unreachable endpoint is named', async () => {
    const r = await releng(['upload', '--no-check-git', '--environment', 'down'], { cwd: p.dir, env: { STG_KEY: 'S3RVER', STG_SECRET: 'S3RVER' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot reach S3 endpoint http://127.0.0.1:9');
  });

  it('an unknown environment lists the known ones', async () => {
    const r = await releng(['upload', '--no-check-git', '--environment', 'prod'], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no environment "prod".*\n.*local, staging/);
  });

  it('a missing program names its Debian package', async () => {
    // A PATH with node, git and coreutils, but no Nix.
    const bin = await mkdtemp(path.join(os.tmpdir(), 'releng-path-'));
    for (const prog of ['node', 'git', 'sh', 'dirname', 'readlink', 'tar', 'gzip', 'chmod', 'flock', 'cat']) { // flock, cat: the checkout lock
      await symlink(execFileSync('sh', ['-c', `command -v ${prog}`], { encoding: 'utf8' }).trim(), path.join(bin, prog));
    }
    const r = await releng(['build', '--no-check-git'], { cwd: p.dir, env: { PATH: bin } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("required program 'nix-instantiate' is not on PATH");
    expect(r.stderr).toContain('apt-get install -y nix-bin');
  });

  it('build refuses an untagged tree of an official version.json without --no-check-git, and says what to do', async () => {
    // (An unofficial version.json on an untagged tree is a rehearsal build: docs/adopting.md.)
    const file = path.join(p.dir, 'version.json');
    const before = await readFile(file, 'utf8');
    await writeFile(file, before.replace('"official_release": false', '"official_release": true'));
    p.git('commit', '-q', '-am', 'official, untagged');
    try {
      const r = await releng(['build'], { cwd: p.dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('tag 1.0.0 does not exist');
      expect(r.stderr).toContain('releng tag');
    } finally {
      p.git('reset', '-q', '--hard', 'HEAD~1');
    }
  });

  it('a rehearsal needs a clean tree, and bad --cores / --workers are usage errors', async () => {
    const file = path.join(p.dir, 'version.json');
    const before = await readFile(file, 'utf8');
    await writeFile(file, before.replace('"release_name"', '"release_name" ').replace(/\n$/, '\n\n'));
    try {
      const r = await releng(['build'], { cwd: p.dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('the working tree has uncommitted changes');
      expect(r.stderr).toContain('before a rehearsal build');
    } finally {
      await writeFile(file, before);
    }
    for (const [flag, value, said] of [['--cores', 'many', '--cores many: expected the number of cores'], ['--workers', '0', '--workers 0: expected a number of nix-eval-jobs workers']]) {
      const r = await releng(['build', '--no-check-git', '--dry-run', flag!, value!], { cwd: p.dir });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(said);
    }
  });

  it('usage errors exit 2', async () => {
    expect((await releng(['upload', '--frobnicate'], { cwd: p.dir })).code).toBe(2);
    expect((await releng(['nonsense'], { cwd: p.dir })).code).toBe(2);
    const help = await releng(['upload', '--help'], { cwd: p.dir });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Changes:');
  });
});
