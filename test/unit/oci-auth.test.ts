// Registry auth: WWW-Authenticate parsing, auth file lookup, secrets never printed, index PUT retried on 404 only.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { apply } from '../../lib/actions/index.ts';
import { createLogger } from '../../lib/cli/log.ts';
import type { OciIndex, OciWriter } from '../../lib/oci/actions.ts';
import { authFileCandidates, findCredentials } from '../../lib/oci/auth.ts';
import { parseWwwAuthenticate, RegistryError, tokenGrants } from '../../lib/oci/registry.ts';
import { redact } from '../../lib/core/secrets.ts';

describe('parseWwwAuthenticate', () => {
  it('reads a Bearer challenge (Docker Hub / ghcr shape)', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nix:pull,push"')).toEqual({
      scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/nix:pull,push' },
    });
  });
  it('reads Basic, unquoted values, spaces and escapes', () => {
    expect(parseWwwAuthenticate('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', params: { realm: 'Registry Realm' } });
    expect(parseWwwAuthenticate('Bearer realm=https://a/t, service = reg , error="invalid_token"')).toEqual({ scheme: 'bearer', params: { realm: 'https://a/t', service: 'reg', error: 'invalid_token' } });
    expect(parseWwwAuthenticate('Bearer realm="a\\"b"')?.params.realm).toBe('a"b');
  });
});

describe('findCredentials', () => {
  it('looks in $XDG_RUNTIME_DIR, then ~/.config/containers, then ~/.docker, most specific key first', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'releng-home-'));
    const files = authFileCandidates({ XDG_RUNTIME_DIR: path.join(home, 'run') }, home);
    expect(files).toEqual([path.join(home, 'run/containers/auth.json'), path.join(home, '.config/containers/auth.json'), path.join(home, '.docker/config.json')]);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await mkdir(path.join(home, '.docker'), { recursive: true });
    await writeFile(files[2]!, JSON.stringify({ auths: { 'https://ghcr.io': { auth: b64('docker-user:docker-Pass1') } } }));
    expect(await findCredentials('ghcr.io', 'lix-project/lix', files)).toEqual({ username: 'docker-user', password: 'docker-Pass1', authFile: files[2] });
    await mkdir(path.join(home, 'run/containers'), { recursive: true });
    await writeFile(files[0]!, JSON.stringify({ auths: { 'ghcr.io': { auth: b64('host-user:host-Pass2') }, 'ghcr.io/lix-project': { auth: b64('ns-user:ns-Pass3') } } }));
    expect((await findCredentials('ghcr.io', 'lix-project/lix', files))?.username).toBe('ns-user');
    expect((await findCredentials('ghcr.io', 'other/x', files))?.username).toBe('host-user');
    expect(await findCredentials('quay.io', 'x/y', files)).toBeUndefined();
    // Passwords and the base64 auth strings are registered as secrets.
    expect(redact(`a ns-Pass3 b ${b64('ns-user:ns-Pass3')}`)).toBe('a *** b ***');
  });
});

describe('oci.index apply', () => {
  const action: OciIndex = { kind: 'oci.index', registry: 'r.example', repository: 'x/y', tag: '1.0', digest: 'sha256:abc', mediaType: 'application/vnd.oci.image.index.v1+json', body: '{}', entries: 1, reason: 'new' };
  const writerFailing = (status: number, times: number): OciWriter & { calls: number } => {
    const w = {
      calls: 0,
      async push() {},
      async putIndex() { w.calls++; if (w.calls <= times) throw new RegistryError(`HTTP ${status}`, status); return 'sha256:abc'; },
    };
    return w;
  };
  const log = createLogger({ quiet: true });

  it('retries the index PUT on 404 (eventually consistent registries)', async () => {
    const oci = writerFailing(404, 2);
    const r = await apply({ steps: [{ title: 'index', actions: [action] }], skipped: [] }, { log, dryRun: false, writers: { oci }, backoffMs: 1 });
    expect(oci.calls).toBe(3);
    expect(r.byKind).toEqual({ 'oci.index': 1 });
  });

  it('never retries other failures (400, 500)', async () => {
    for (const status of [400, 500]) {
      const oci = writerFailing(status, 1);
      await expect(apply({ steps: [{ title: 'index', actions: [action] }], skipped: [] }, { log, dryRun: false, writers: { oci }, backoffMs: 1 })).rejects.toThrow(/index failed at: oci index r.example\/x\/y:1.0/);
      expect(oci.calls).toBe(1);
    }
  });
});

describe('tokenGrants', () => {
  const jwt = (access: unknown) => `e30.${Buffer.from(JSON.stringify({ access })).toString('base64url')}.sig`;
  it('reads the access claim of a JWT; opaque tokens are trusted', () => {
    expect(tokenGrants(jwt([{ type: 'repository', name: 'lix/lix', actions: ['pull', 'push'] }]), 'lix/lix', 'push')).toBe(true);
    expect(tokenGrants(jwt([{ type: 'repository', name: 'lix/lix', actions: ['pull'] }]), 'lix/lix', 'push')).toBe(false);
    expect(tokenGrants(jwt([]), 'lix/lix', 'push')).toBe(false);
    expect(tokenGrants('opaque-token', 'lix/lix', 'push')).toBe(true);
  });
});
