// The zx entry scripts the flake's apps run (issue 14): release.mjs runs `releng check` for the
// environment first and releases nothing when it finds a problem.
import { execa } from 'execa';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, scratchProject, type ScratchProject } from '../helpers/project.ts';

const zx = path.join(repoRoot, 'node_modules', 'zx', 'build', 'cli.js');
const releaseScript = path.join(repoRoot, 'scripts', 'release.mjs');

describe('scripts/release.mjs (nix run .#release)', () => {
  let p: ScratchProject;
  beforeAll(async () => {
    p = await scratchProject();
    await p.editConfig((c) => {
      c.environments.staging = { ...c.environments.local, s3: { endpoint: 'http://127.0.0.1:9' }, credentials: { source: 'env', accessKeyIdVar: 'NO_SUCH_KEY_VAR', secretAccessKeyVar: 'NO_SUCH_SECRET_VAR' }, docker: [], confirm: false };
    });
    p.git('commit', '-q', '-am', 'a staging environment');
  });
  afterAll(async () => { await p?.cleanup(); });

  it('--help says what it runs', async () => {
    const r = await execa('node', [zx, releaseScript, '--help'], { cwd: p.dir, reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Runs `releng check` for the environment, then `releng release` with the same flags.');
  });

  it('a failing check stops it before prepare: exit 1, no commit, no tag', async () => {
    const head = p.git('rev-parse', 'HEAD');
    const r = await execa('node', [zx, releaseScript, '--environment', 'staging', '--noconfirm'], {
      cwd: p.dir, reject: false, env: { CI: 'true' },
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('✖ staging: credentials: environment "staging" takes S3 credentials from NO_SUCH_KEY_VAR and NO_SUCH_SECRET_VAR');
    expect(r.stdout + r.stderr).toContain('nothing was released');
    expect(r.stderr).not.toContain('── prepare ──');
    expect(p.git('rev-parse', 'HEAD')).toBe(head);
    expect(p.git('tag', '-l')).toBe('');
  });
});
