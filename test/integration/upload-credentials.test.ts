// Credentials from a command printing JSON (Lix: Garage ephemeral keys), the signing key of a
// shared environment, and confirmation under CI: run through the real CLI against s3rver, and the
// secret never appears on stdout, stderr, --json, the plan or any error message.
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { requireTool } from '../helpers/tools.ts';

const SECRET = 'releng-test-secret-7f3a9c2e51';

describe('credentials command, signing key and confirmation of a shared environment', () => {
  let p: ScratchProject;
  let s3: TestS3;
  let scripts: string;

  /** A real credentials program: prints `json` on stdout (and, to be nasty, the secret on stderr when exiting non-zero). */
  async function credentialsScript(name: string, json: string, exit = 0): Promise<string> {
    const file = path.join(scripts, name);
    await writeFile(file, `#!/bin/sh\nprintf '%s\\n' '${json}'\n${exit ? `echo "failed for key ${'$'}1" >&2\nexit ${exit}\n` : ''}`);
    await chmod(file, 0o755);
    return file;
  }

  async function useStaging(script: string, extra: Record<string, unknown> = {}) {
    await p.editConfig((c) => {
      c.environments.staging = {
        colour: 'green',
        releasesBucket: 's3://stg-releases', cacheBucket: 's3://stg-cache', docsBucket: 's3://stg-docs',
        s3: { endpoint: s3.endpoint, region: 'garage', forcePathStyle: true, checksums: 'WHEN_REQUIRED' },
        credentials: { source: 'command', command: [script, 'releng-staging'], accessKeyIdField: 'id', secretAccessKeyField: 'secret_key' },
        cache: { signingKeyFile: 'keys/staging.key', compression: 'zstd', storeOptions: { 'write-nar-listing': 'true' } },
        ...extra,
      };
    });
  }

  const expectNoSecret = (r: { stdout: string; stderr: string }) => {
    expect(r.stdout).not.toContain(SECRET);
    expect(r.stderr).not.toContain(SECRET);
  };

  beforeAll(async () => {
    requireTool('nix-build', 'nix-bin');
    s3 = await startTestS3(['stg-releases', 'stg-cache', 'stg-docs']);
    p = await scratchProject();
    scripts = await mkdtemp(path.join(os.tmpdir(), 'releng-creds-'));
    await mkdir(path.join(p.dir, 'keys'));
    await writeFile(path.join(p.dir, 'keys/staging.key'), execFileSync('nix', ['key', 'generate-secret', '--key-name', 'hello-staging-1']));
    const r = await releng(['build', '--no-check-git'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    await s3?.stop();
    await p?.cleanup();
    if (scripts) await rm(scripts, { recursive: true, force: true });
  });

  it('under CI, upload to an environment that asks for confirmation needs --noconfirm, and writes nothing', async () => {
    await useStaging(await credentialsScript('ok.sh', `{"name":"releng-staging","id":"S3RVER","secret_key":"${SECRET}"}`));
    await s3.resetLog();
    const r = await releng(['upload', '--environment', 'staging', '--no-check-git'], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('publishing to "staging" needs confirmation, and this run is unattended');
    expect(r.stderr).toContain('pass --noconfirm');
    expect(await s3.writes()).toBe(0);
    expectNoSecret(r);
  });

  it('--dry-run --json --verbose prints the plan, never the secret', async () => {
    const r = await releng(['upload', '--environment', 'staging', '--no-check-git', '--dry-run', '--json', '--verbose'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('[dry-run] s3 put s3://stg-cache/nix-cache-info');
    expect(JSON.parse(r.stdout).result.planned['s3.put']).toBeGreaterThan(30);
    expectNoSecret(r);
  });

  it('uploads with the command\'s credentials (--noconfirm), never printing the secret', async () => {
    await s3.resetLog();
    const r = await releng(['upload', '--environment', 'staging', '--no-check-git', '--noconfirm', '--json', '--verbose'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout).result;
    expect(result.cachePublicKey).toMatch(/^hello-staging-1:/);
    expect(await s3.writes()).toBeGreaterThan(30);
    expect((await s3.requests()).some((l) => /^PUT \/stg-cache\/[0-9a-z]{32}\.narinfo/.test(l))).toBe(true);
    expectNoSecret(r);
  });

  it('credentials the server refuses: an error naming the bucket, without the secret', async () => {
    await useStaging(await credentialsScript('wrong-id.sh', `{"id":"NOT-A-KEY","secret_key":"${SECRET}"}`));
    const r = await releng(['upload', '--environment', 'staging', '--no-check-git', '--noconfirm', '--json'], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stg-');
    expect(JSON.parse(r.stdout).ok).toBe(false);
    expectNoSecret(r);
  });

  it('release under CI refuses before any phase without --noconfirm; with it, the phases start', async () => {
    await useStaging(await credentialsScript('ok.sh', `{"id":"S3RVER","secret_key":"${SECRET}"}`));
    let r = await releng(['release', '--environment', 'staging'], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('pass --noconfirm to release unattended');
    expect(r.stderr).not.toContain('── prepare ──');
    r = await releng(['release', '--environment', 'staging'], { cwd: p.dir, env: { CI: '', HYDRA_JSON: '/tmp/hydra.json' } });
    expect(r.stderr).toContain('pass --noconfirm to release unattended');
    r = await releng(['release', '--environment', 'staging', '--noconfirm'], { cwd: p.dir });
    expect(r.stderr).not.toContain('--noconfirm to release unattended');
    expect(r.stderr).toMatch(/^\[\d{4}-\d\d-\d\dT[\d:]+Z\] ── prepare ──$/m); // plain, timestamped lines
  });
});
