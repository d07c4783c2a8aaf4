// `releng check` (issue 14) against a real S3 server (s3rver), a bare git remote and Nix's own
// key tools: a right configuration passes with one line per check and leaves no probe behind;
// a wrong access key, a signing key that does not match cache.publicKey and an unreachable git
// remote each give a ✖ line, and the run exits 1.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../lib/phases/check.ts';
import { startingConfig } from '../../lib/phases/init.ts';
import { releng } from '../helpers/cli.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { requireTool } from '../helpers/tools.ts';

const nix = (args: string[], input?: string) => execFileSync('nix', ['--extra-experimental-features', 'nix-command', ...args], { encoding: 'utf8', input }).trim();

describe('releng check', () => {
  let s3: TestS3;
  let dir: string;
  let secret: string;
  let publicKey: string;
  const env = { STAGING_KEY_ID: 'S3RVER', STAGING_SECRET: 'S3RVER' };

  async function writeConfig(over: { publicKey?: string; remote?: string } = {}) {
    const config: any = startingConfig({ project: 'hello', system: 'x86_64-linux', flake: false, branch: 'main' });
    config.environments.staging = {
      releasesBucket: 's3://rel', cacheBucket: 's3://cache/hello', docsBucket: 's3://docs',
      s3: { endpoint: s3.endpoint },
      credentials: { source: 'env', accessKeyIdVar: 'STAGING_KEY_ID', secretAccessKeyVar: 'STAGING_SECRET' },
      cache: { signingKeyFile: 'keys/staging.sec', publicKey: over.publicKey ?? publicKey },
      git: { remote: over.remote ?? path.join(dir, 'remote.git') },
    };
    await writeFile(path.join(dir, 'project', 'releng.json'), JSON.stringify(config, null, 2));
  }

  beforeAll(async () => {
    requireTool('nix', 'nix-bin');
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-check-'));
    s3 = await startTestS3(['rel', 'cache', 'docs']);
    execFileSync('git', ['init', '-q', '--bare', path.join(dir, 'remote.git')]);
    execFileSync('git', ['init', '-q', path.join(dir, 'project')]);
    execFileSync('mkdir', ['-p', path.join(dir, 'project', 'keys')]);
    secret = nix(['key', 'generate-secret', '--key-name', 'hello-staging-1']);
    publicKey = nix(['key', 'convert-secret-to-public'], secret);
    await writeFile(path.join(dir, 'project', 'keys', 'staging.sec'), secret, { mode: 0o600 });
  });
  afterAll(async () => {
    await s3?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('derives the public key of a Nix secret key as Nix does', () => {
    expect(publicKeyOf(secret)).toBe(publicKey);
    expect(publicKeyOf('name:bm90IGEga2V5')).toBeUndefined();
  });

  it('a right configuration: every line ✔, exit 0, and the probes are gone', async () => {
    await writeConfig();
    await s3.resetLog();
    const r = await releng(['check', '--environment', 'staging', '--json'], { cwd: path.join(dir, 'project'), env });
    expect(r.code, r.stderr).toBe(0);
    for (const line of [
      '✔ config: releng.json is valid',
      '✔ staging: credentials: from $STAGING_KEY_ID and $STAGING_SECRET',
      '✔ staging: bucket s3://rel: reachable, writable (probe written and removed)',
      '✔ staging: bucket s3://cache/hello: reachable, writable (probe written and removed)',
      `✔ staging: signing key: keys/staging.sec: ${publicKey} (matches cache.publicKey)`,
      '✔ staging: git remote:',
      '✔ tool git: git version',
      '✔ nix builds: local store, builds as 10 users of group nixbld',
      'all checks passed',
    ]) expect(r.stderr).toContain(line);
    expect(r.stderr).not.toContain('S3RVER');
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(true);
    expect(out.runId).toMatch(/^[A-Za-z0-9_-]{12}$/);
    expect(out.result.problems).toBe(0);
    // The probe was written under the bucket's prefix with the run id, then deleted: none is left.
    const writes = (await s3.requests()).filter((l) => /^(PUT|DELETE) /.test(l)).map((l) => l.replace(/\?.*$/, ''));
    expect(writes).toContainEqual(`PUT /cache/hello/.releng-check/${out.runId}`);
    expect(writes).toContainEqual(`DELETE /cache/hello/.releng-check/${out.runId}`);
    for (const b of ['rel', 'cache', 'docs']) expect(await s3.store.list(b, '')).toEqual([]);
  });

  it('a wrong access key, a key that does not match cache.publicKey and no git remote: ✖ lines, exit 1', async () => {
    const other = nix(['key', 'convert-secret-to-public'], nix(['key', 'generate-secret', '--key-name', 'hello-staging-2']));
    await writeConfig({ publicKey: other, remote: path.join(dir, 'missing.git') });
    const r = await releng(['check', '--environment', 'staging', '--json'], { cwd: path.join(dir, 'project'), env: { ...env, STAGING_KEY_ID: 'WRONGKEY' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/✖ staging: bucket s3:\/\/rel: .*(credentials|access key|InvalidAccessKeyId)/i);
    expect(r.stderr).toContain(`✖ staging: signing key: ${path.join(dir, 'project', 'keys', 'staging.sec')} signs as ${publicKey}, but environments.staging.cache.publicKey is ${other}`);
    expect(r.stderr).toMatch(/✖ staging: git remote: cannot read git remote .*missing\.git/);
    expect(r.stderr).toContain('error: check found 5 problems');
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(false);
    expect(out.result.lines.filter((l: any) => l.status === 'problem').map((l: any) => l.what)).toEqual([
      'bucket s3://rel', 'bucket s3://cache/hello', 'bucket s3://docs', 'signing key', 'git remote',
    ]);
    for (const b of ['rel', 'cache', 'docs']) expect(await s3.store.list(b, '')).toEqual([]);
  });

  it('file:// buckets: the directory present and writable (a probe written and removed); missing or not a directory is a ✖ line', async () => {
    const trees = path.join(dir, 'trees');
    await mkdir(path.join(trees, 'releases'), { recursive: true });
    await mkdir(path.join(trees, 'cache'), { recursive: true });
    await writeFile(path.join(trees, 'docs'), 'a file, not a directory');
    const config: any = startingConfig({ project: 'hello', system: 'x86_64-linux', flake: false, branch: 'main' });
    config.environments.mirror = {
      releasesBucket: `file://${trees}/releases`, cacheBucket: `file://${trees}/cache`, docsBucket: `file://${trees}/docs`,
      channelsBucket: `file://${trees}/channels`,
      mirror: { fileLists: { trees: { root: `file://${trees}` }, lix: { root: `file://${trees}/releases` } } },
    };
    await writeFile(path.join(dir, 'project', 'releng.json'), JSON.stringify(config, null, 2));
    const r = await releng(['check', '--environment', 'mirror', '--json'], { cwd: path.join(dir, 'project'), env });
    expect(r.code).toBe(1);
    for (const line of [
      '✔ mirror: credentials: not needed (every bucket is a file:// directory)',
      `✔ mirror: bucket file://${trees}/releases: directory present, writable (probe written and removed)`,
      `✔ mirror: bucket file://${trees}/cache: directory present, writable (probe written and removed)`,
      `✖ mirror: bucket file://${trees}/docs: ${trees}/docs is not a directory`,
      `✖ mirror: bucket file://${trees}/channels: the directory ${trees}/channels does not exist: create it (mkdir -p ${trees}/channels) or fix the URL`,
      // issue 28: quick-fedora-mirror's default FILELIST is MDIR/fullfiletimelist-MDIR
      `✔ mirror: mirror module trees: file://${trees}: a stock quick-fedora-mirror finds trees/fullfiletimelist-trees, fullfilelist and imagelist-trees`,
      `! mirror: mirror module lix: file://${trees}/releases is a directory named releases, but the lists are named for lix: a stock quick-fedora-mirror looks for releases/fullfiletimelist-releases; rename the module to releases (environments.mirror.mirror.fileLists) or set FILELIST on the mirrors`,
    ]) expect(r.stderr).toContain(line);
    const out = JSON.parse(r.stdout);
    expect(out.result.lines.filter((l: any) => l.status === 'problem').map((l: any) => l.what)).toEqual([`bucket file://${trees}/docs`, `bucket file://${trees}/channels`]);
    // the probes are gone, and nothing was created where the directory was missing
    expect(await readdir(path.join(trees, 'releases'))).toEqual([]);
    expect(await readdir(path.join(trees, 'cache'))).toEqual([]);
    expect(await readdir(trees)).toEqual(['cache', 'docs', 'releases']);
  });

  it('a Nix that cannot build (its build-users-group does not exist) is a ✖ line with the fix (issue 23)', async () => {
    await writeConfig();
    // What Debian's nix-bin alone gives root: Nix's default build-users-group, and no such group.
    const r = await releng(['check', '--environment', 'staging', '--json'], {
      cwd: path.join(dir, 'project'), env: { ...env, NIX_CONFIG: `${process.env.NIX_CONFIG ?? ''}\nbuild-users-group = releng-test-no-such-group` },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('✖ nix builds: builds run as the members of group releng-test-no-such-group (build-users-group), and there is no such group: create group releng-test-no-such-group with build users');
    expect(r.stderr).toContain('or set `build-users-group =` in /etc/nix/nix.conf to build as root');
    const out = JSON.parse(r.stdout);
    expect(out.result.lines.filter((l: any) => l.status === 'problem').map((l: any) => l.what)).toEqual(['nix builds']);
  });

  it('an invalid releng.json is one ✖ line naming the field', async () => {
    await writeFile(path.join(dir, 'project', 'releng.json'), JSON.stringify({ project: 'Hello' }));
    const r = await releng(['check'], { cwd: path.join(dir, 'project') });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/✖ config: .*releng\.json.*project: expected a lowercase name/s);
  });

  it('--all and --environment together is a usage error', async () => {
    await writeConfig();
    const r = await releng(['check', '--all', '--environment', 'staging'], { cwd: path.join(dir, 'project'), env });
    expect(r.code).toBe(2);
  });
});
