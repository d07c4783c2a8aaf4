// Issue 25, case 6: `releng release` checks the environment upload will publish to before prepare
// writes anything. Each broken environment below used to leave a notes commit, a tag and release/
// behind (prepare → tag → build ran, then upload failed); now the run stops first, naming the
// problem, and the checkout is as it was. The real CLI (the bundle), a real S3 server (s3rver),
// Debian's docker-registry, a bare git remote.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../lib/local/registry-server.ts';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { requireTool } from '../helpers/tools.ts';

let p: ScratchProject;
let s3: TestS3;
let registry: LocalRegistry;
let work: string;
let keyFile: string;

/** A working environment; each case breaks one thing in a copy of it. */
const good = () => ({
  colour: 'yellow', confirm: false,
  releasesBucket: 's3://rel/x', cacheBucket: 's3://cache/x', docsBucket: 's3://docs/x',
  s3: { endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' },
  credentials: { source: 'embedded' },
  cache: { signingKeyFile: keyFile, compression: 'zstd', storeOptions: { 'write-nar-listing': 'true' } },
  git: { remote: '../remote.git', gerrit: false },
  docker: [{ registry: registry.host, repository: 'hello', tags: ['{version}'], latest: false, tlsVerify: false }],
});

const cases: { name: string; why: string; breakIt: (e: any) => void; error: RegExp }[] = [
  { name: 'credentials', why: 'a credentials command that fails', breakIt: (e) => { e.credentials = { source: 'command', command: ['sh', '-c', 'echo "no such role" >&2; exit 3'] }; }, error: /credentials command .* failed|no such role/ },
  { name: 'key-dir', why: 'a directory given as the signing key file', breakIt: (e) => { e.cache.signingKeyFile = path.join(work, 'a-directory'); }, error: /cannot read cache signing key .*a-directory|EISDIR|is not a Nix secret key/ },
  { name: 'registry', why: 'a registry host nothing answers on', breakIt: (e) => { e.docker[0].registry = '127.0.0.1:9'; }, error: /cannot reach registry 127\.0\.0\.1:9/ },
  { name: 'endpoint', why: 'an S3 endpoint nothing answers on', breakIt: (e) => { e.s3.endpoint = 'http://127.0.0.1:9'; }, error: /127\.0\.0\.1:9/ },
  { name: 'bucket', why: 'a bucket that does not exist', breakIt: (e) => { e.cacheBucket = 's3://no-such-bucket/x'; }, error: /no-such-bucket/ },
  { name: 'git-remote', why: 'a git remote that is not a repository', breakIt: (e) => { e.git.remote = '../no-such-remote.git'; }, error: /cannot read git remote \.\.\/no-such-remote\.git/ },
];

beforeAll(async () => {
  for (const [tool, pkg] of [['nix-build', 'nix-bin'], ['git', 'git'], ['docker-registry', 'docker-registry'], ['flock', 'util-linux']]) requireTool(tool!, pkg!);
  work = await mkdtemp(path.join(os.tmpdir(), 'releng-release-checks-'));
  await mkdir(path.join(work, 'a-directory'));
  keyFile = path.join(work, 'cache.key');
  await writeFile(keyFile, execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'generate-secret', '--key-name', 'hello-release-checks-1'], { encoding: 'utf8' }));
  [s3, registry] = await Promise.all([startTestS3(['rel', 'cache', 'docs']), startLocalRegistry({ dir: path.join(work, 'registry') })]);
  p = await scratchProject();
  await p.editConfig((c) => {
    c.environments.good = good();
    for (const k of cases) { const e = good(); k.breakIt(e); c.environments[k.name] = e; }
  });
  p.git('commit', '-q', '-am', 'release-check environments');
  p.git('push', '-q', 'origin', 'main');
}, 120_000);

afterAll(async () => {
  await Promise.all([s3?.stop(), registry?.stop()]);
  await p?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('releng release checks the environment before prepare writes anything', () => {
  for (const k of cases) {
    it(`${k.name}: ${k.why} stops the release before prepare; no commit, no tag, no release/`, async () => {
      const head = p.git('rev-parse', 'HEAD');
      const r = await releng(['release', '--environment', k.name, '--noconfirm'], { cwd: p.dir });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(k.error);
      expect(r.stderr).not.toContain('── prepare ──');
      expect(p.git('rev-parse', 'HEAD')).toBe(head);
      expect(p.git('tag', '--list')).toBe('');
      expect(p.git('status', '--porcelain', '--untracked-files=no')).toBe('');
      expect(existsSync(path.join(p.dir, 'release'))).toBe(false);
      expect(await s3.writes()).toBe(0);
    });
  }

  it('with a working environment the same release runs all four phases and verifies', async () => {
    const r = await releng(['release', '--environment', 'good', '--noconfirm'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('the signing key and the git remote answer');
    expect(p.git('tag', '--list')).toBe('1.0.0');
    const v = await releng(['verify', '--environment', 'good', '--deep'], { cwd: p.dir });
    expect(v.code, v.stderr).toBe(0);
  });
});
