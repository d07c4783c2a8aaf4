// Credentials and signing keys at the client, in-process (s3rver cannot prove credential handling:
// it accepts any signature). Real programs print the JSON; the secret must not reach any message.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema, type Environment } from '../../lib/config/config.ts';
import { describeError } from '../../lib/core/errors.ts';
import { resolveSigningKey } from '../../lib/nix/cache.ts';
import { resolveCredentials } from '../../lib/s3/credentials.ts';
import { redact } from '../../lib/core/secrets.ts';

const SECRET = 'unit-test-secret-0b9d4e77a1';

describe('credentials from a command', () => {
  let dir: string;
  beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'releng-creds-unit-')); });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  async function env(name: string, body: string): Promise<Environment> {
    const file = path.join(dir, name);
    await writeFile(file, `#!/bin/sh\n${body}\n`);
    await chmod(file, 0o755);
    const config = configSchema.parse({
      project: 'x', releaseJobs: { file: 'r.nix' }, profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'all',
      environments: { staging: { releasesBucket: 's3://r-b', cacheBucket: 's3://c-b', docsBucket: 's3://d-b', s3: { endpoint: 'http://127.0.0.1:1' },
        credentials: { source: 'command', command: [file, '--age-secs', '3600'] } } },
    });
    return config.environments.staging!;
  }

  it('reads id and secret_key from the JSON a program prints, and registers the secret for redaction', async () => {
    const creds = await resolveCredentials('staging', await env('ok.sh', `printf '{"name":"releng-staging","id":"GK1","secret_key":"${SECRET}"}'`));
    expect(creds).toEqual({ accessKeyId: 'GK1', secretAccessKey: SECRET });
    expect(redact(`signing with ${SECRET}`)).toBe('signing with ***');
  });

  it('JSON without the configured fields: names them, not the secret', async () => {
    const msg = await failure(resolveCredentials('staging', await env('no-id.sh', `printf '{"key_id":"GK1","secret_key":"${SECRET}2"}'`)));
    expect(msg).toContain('printed JSON without string fields "id" and "secret_key"');
    expect(msg).toContain('environments.staging.credentials');
    expect(msg).not.toContain(`${SECRET}2`);
  });

  it('output that is not JSON, or a failing command: names the command, never its stdout', async () => {
    let msg = await failure(resolveCredentials('staging', await env('not-json.sh', `echo "id=GK1 secret=${SECRET}3"`)));
    expect(msg).toContain('did not print JSON');
    expect(msg).not.toContain(`${SECRET}3`);
    msg = await failure(resolveCredentials('staging', await env('fails.sh', `printf '{"id":"GK1","secret_key":"${SECRET}4"}'\necho "no such key" >&2\nexit 3`)));
    expect(msg).toContain('failed (exit 3)');
    expect(msg).toContain('no such key');
    expect(msg).not.toContain(`${SECRET}4`);
  });

  it('a failing command whose stderr echoes a secret: the secret is masked, the rest shown (issue 9)', async () => {
    // The secret it prints in stderr is not one releng knows: anything key-like is masked.
    const other = 'AKIAxEXAMPLE7Q2w9ZZtoken0123';
    const msg = await failure(resolveCredentials('staging', await env('echoes.sh', `echo "vault: token ${other} expired; secret ${SECRET}6 rejected" >&2\nexit 2`)));
    expect(msg).toContain('failed (exit 2)');
    expect(msg).toContain('vault: token *** expired');
    expect(msg).not.toContain(other);
    expect(msg).not.toContain(`${SECRET}6`);
  });

  it('reads a session token from sessionTokenField, and refuses output without it', async () => {
    const file = await env('sts.sh', `printf '{"id":"ASIA1","secret_key":"${SECRET}7","session_token":"tok-${SECRET}8"}'`);
    const creds = await resolveCredentials('staging', { ...file, credentials: { ...(file.credentials as any), sessionTokenField: 'session_token' } });
    expect(creds).toEqual({ accessKeyId: 'ASIA1', secretAccessKey: `${SECRET}7`, sessionToken: `tok-${SECRET}8` });
    expect(redact(`x tok-${SECRET}8 y`)).toBe('x *** y');
    const noToken = await env('no-sts.sh', `printf '{"id":"ASIA1","secret_key":"${SECRET}9"}'`);
    const msg = await failure(resolveCredentials('staging', { ...noToken, credentials: { ...(noToken.credentials as any), sessionTokenField: 'session_token' } }));
    expect(msg).toContain('without a string field "session_token" (sessionTokenField)');
    expect(msg).not.toContain(`${SECRET}9`);
  });
});

describe('the cache signing key', () => {
  let root: string;
  beforeAll(async () => { root = await mkdtemp(path.join(os.tmpdir(), 'releng-key-unit-')); });
  afterAll(async () => { await rm(root, { recursive: true, force: true }); });
  const cache = (file: string) => ({ signingKeyFile: file, compression: 'zstd' as const, storeOptions: {} });

  it('a shared environment without its key file: an error naming the config field', async () => {
    const msg = await failure(resolveSigningKey({ root, envName: 'production', cache: cache('prod.key'), project: 'lix', allowGenerate: false }));
    expect(msg).toContain('(environments.production.cache.signingKeyFile) does not exist');
  });

  it('local generates the pair once (secret 0600, public key beside it), then reuses it', async () => {
    const first = await resolveSigningKey({ root, envName: 'local', cache: cache('.releng/local/k.key'), project: 'hello', allowGenerate: true });
    expect(first.generated).toBe(true);
    expect(first.publicKey).toMatch(/^hello-local-1:[A-Za-z0-9+/]{43}=$/);
    expect(execFileSync('stat', ['-c', '%a', first.file], { encoding: 'utf8' }).trim()).toBe('600');
    const again = await resolveSigningKey({ root, envName: 'local', cache: cache('.releng/local/k.key'), project: 'hello', allowGenerate: true });
    expect(again).toEqual({ ...first, generated: false });
  });

  it('a file that is not a Nix secret key: says so without echoing it', async () => {
    await writeFile(path.join(root, 'bad.key'), `not-a-key:${SECRET}5`);
    const msg = await failure(resolveSigningKey({ root, envName: 'staging', cache: cache('bad.key'), project: 'x', allowGenerate: false }));
    expect(msg).toContain('(environments.staging.cache.signingKeyFile) is not a Nix secret key');
    expect(msg).not.toContain(`${SECRET}5`);
  });
});

/** The message the entry script would print for the failure of `p` (redacted, as it prints). */
async function failure(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { return redact(describeError(e)); }
  throw new Error('expected a failure');
}
