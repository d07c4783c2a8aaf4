// Grants against a server that enforces them (Ceph RGW): for each method (STS session policy,
// presigned POST, a credentials command returning a session token) the grant writes the allowed
// names under its prefix and the server refuses (403) another prefix, another name, an overwrite of
// a published file, and anything after expiry. Short expiries: RGW's minimum STS session is 900 s,
// lowered for this throwaway cluster through radosgw's admin socket (rgw_sts_min_session_duration).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { postWriter, type GrantPost } from '../../lib/grants/actions.ts';
import type { GrantFile } from '../../lib/grants/grant-file.ts';
import type { S3Store } from '../../lib/s3/store.ts';
import { releng, relengInProcess } from '../helpers/cli.ts';
import { startTestRgw, type TestRgw } from '../helpers/rgw.ts';

const keyCommand = fileURLToPath(new URL('../fixtures/grants/sts-key-command.mjs', import.meta.url));

let rgw: TestRgw;
let base: string;
let project: string;
let builder: string;
let roleArn: string;
let env: Record<string, string>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function uploaders() {
  return {
    installers: {
      kind: 'installers', bucket: 's3://releases', prefix: 'incoming/{name}/{version}/',
      files: ['^lix-installer-(x86_64|aarch64)-(linux|darwin)$'], maxSize: 4096, ttl: '1h',
      publish: 'lix/lix-{version}/', latest: 'lix/',
    },
  };
}

async function writeConfig() {
  const s3 = { endpoint: rgw.endpoint, region: rgw.region };
  const common = { releasesBucket: 's3://releases', cacheBucket: 's3://releases', docsBucket: 's3://releases', s3, credentials: { source: 'env' }, uploaders: uploaders() };
  await writeFile(path.join(project, 'releng.json'), JSON.stringify({
    project: 'lix', releaseJobs: { file: 'release.nix' }, profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'all',
    environments: {
      sts: { ...common, grants: { method: 'sts', roleArn } },
      post: { ...common, grants: { method: 'presigned-post' } },
      command: {
        ...common,
        grants: {
          method: 'command', command: [process.execPath, keyCommand, '{bucket}', '{prefix}', '{ttlSeconds}', '{grantId}'],
          accessKeyIdField: 'id', secretAccessKeyField: 'secret_key', sessionTokenField: 'session_token', expirationField: 'expiration',
        },
      },
    },
  }, null, 2));
}

const run = (args: string[], cwd = project, extra: Record<string, string | undefined> = {}) => relengInProcess(args, { cwd, env: { ...env, ...extra } });

async function grant(environment: string, version: string, ttl: string): Promise<GrantFile> {
  const out = path.join(base, `grant-${environment}-${version}-${ttl}-${Math.random().toString(36).slice(2)}.json`);
  const r = await run(['grant', 'installers', '--environment', environment, '--version', version, '--ttl', ttl, '--output', out]);
  expect(r.code, r.stderr).toBe(0);
  const text = await readFile(out, 'utf8');
  expect(text).not.toContain(rgw.users.admin.secretAccessKey);
  return JSON.parse(text);
}

/** Status of a write with the grant's own credentials or form (the real client, not releng's checks). */
async function writeWith(g: GrantFile, key: string, body = 'an installer\n'): Promise<number> {
  if (g.access.method === 'presigned-post') {
    const file = path.join(base, 'post-body');
    await writeFile(file, body);
    // The uploader's form (one glob here), sent for any key: the server checks the policy.
    const a: GrantPost = { kind: 'grant.post', url: g.access.forms[0]!.url, bucket: g.bucket, key, file, size: Buffer.byteLength(body), sha256: sha256Text(body), grantId: g.id, form: 0 };
    try { await postWriter(g.access.forms).post(a); return 200; } catch (e: any) { return e?.$metadata?.httpStatusCode ?? -1; }
  }
  const store: S3Store = rgw.storeAs({ ...g.access.credentials }); // a copy: the SDK marks the object it is given
  try {
    await store.put({ bucket: g.bucket, key, body: { text: body }, size: Buffer.byteLength(body), sha256: sha256Text(body), contentType: 'application/octet-stream' });
    return 200;
  } catch (e: any) {
    if (/refused the credentials/.test(e.message)) return 403;
    if (typeof e?.status === 'number') return e.status; // explainS3Error keeps the HTTP status
    const m = /\((\w+)\)$/.exec(e.message ?? '');
    return m ? Number(m[1]) || -1 : -1;
  }
}

beforeAll(async () => {
  rgw = await startTestRgw({ buckets: ['releases'] });
  // Throwaway cluster only: allow STS sessions shorter than 900 s so expiry is tested in seconds.
  execFileSync('ceph', ['-c', path.join(rgw.dir, 'ceph.conf'), 'daemon', path.join(rgw.dir, 'run', 'client.rgw.a.asok'), 'config', 'set', 'rgw_sts_min_session_duration', '1'], { stdio: 'pipe' });
  const role = `releng-uploader-${Date.now()}`;
  await rgw.admin(['role', 'create', `--role-name=${role}`, '--path=/', `--assume-role-policy-doc=${JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: [`arn:aws:iam:::user/${rgw.users.admin.uid}`] }, Action: ['sts:AssumeRole'] }] })}`]);
  await rgw.admin(['role-policy', 'put', `--role-name=${role}`, '--policy-name=releases', `--policy-doc=${JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:*'], Resource: ['arn:aws:s3:::releases', 'arn:aws:s3:::releases/*'] }] })}`]);
  roleArn = `arn:aws:iam:::role/${role}`;
  base = await mkdtemp(path.join(os.tmpdir(), 'releng-grants-rgw-'));
  project = path.join(base, 'project');
  builder = path.join(base, 'builder');
  await mkdir(project); await mkdir(builder);
  env = {
    AWS_ACCESS_KEY_ID: rgw.users.admin.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.users.admin.secretAccessKey,
    KEYCMD_ENDPOINT: rgw.endpoint, KEYCMD_ROLE_ARN: roleArn, KEYCMD_ACCESS_KEY: rgw.users.admin.accessKeyId, KEYCMD_SECRET_KEY: rgw.users.admin.secretAccessKey,
  };
  await writeConfig();
  // A published release the grants must never overwrite.
  const pub = 'the published 2.90.0 installer\n';
  await rgw.store.put({ bucket: 'releases', key: 'lix/lix-2.90.0/lix-installer-x86_64-linux', body: { text: pub }, size: pub.length, sha256: sha256Text(pub), contentType: 'application/octet-stream' });
});

afterAll(async () => {
  await rgw?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

describe.each(['sts', 'post', 'command'])('grants enforced by Ceph RGW: %s', (method) => {
  it('writes the allowed names under its prefix; 403 for another prefix, another name, a published file', async () => {
    const g = await grant(method, '2.91.0', method === 'post' ? '10m' : '15m');
    expect(g.access.method).toBe(method === 'post' ? 'presigned-post' : method);
    if (g.access.method !== 'presigned-post' && method !== 'command') expect(g.access.credentials.sessionToken).toBeTruthy();
    expect(await writeWith(g, 'incoming/installers/2.91.0/lix-installer-x86_64-linux')).toBe(200);
    expect(await writeWith(g, 'incoming/installers/2.92.0/lix-installer-x86_64-linux')).toBe(403);
    expect(await writeWith(g, 'lix/lix-2.90.0/lix-installer-x86_64-linux')).toBe(403);
    expect(await rgw.store.getText('releases', 'lix/lix-2.90.0/lix-installer-x86_64-linux')).toBe('the published 2.90.0 installer\n');
    if (method !== 'command') {
      // The key tool stand-in scopes by prefix only; releng's own methods scope names too.
      expect(await writeWith(g, 'incoming/installers/2.91.0/evil.sh')).toBe(403);
    }
    if (method === 'post') {
      // content-length-range: the server refuses a body above maxSize.
      expect(await writeWith(g, 'incoming/installers/2.91.0/lix-installer-aarch64-darwin', 'x'.repeat(5000))).toBe(400);
    }
  });

  it('contribute uploads through the grant (sha256 and grant id in metadata); index publishes it', async () => {
    const version = { sts: '2.91.1', post: '2.91.2', command: '2.91.3' }[method]!;
    const g = await grant(method, version, method === 'post' ? '10m' : '15m');
    const file = path.join(builder, 'lix-installer-aarch64-darwin');
    await writeFile(file, `installer ${version}\n`);
    const gfile = path.join(base, `g-${method}.json`);
    await writeFile(gfile, JSON.stringify(g));
    const c = await relengInProcess(['contribute', '--grant', gfile, file], { cwd: builder, env: { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined } });
    expect(c.code, c.stderr).toBe(0);
    const h = await rgw.store.head('releases', `incoming/installers/${version}/lix-installer-aarch64-darwin`);
    expect(h?.sha256).toBe(sha256Text(`installer ${version}\n`));
    expect(h?.metadata['releng-grant']).toBe(g.id);
    const idx = await run(['index', '--environment', method, '--json']);
    expect(idx.code, idx.stderr).toBe(0);
    expect(await rgw.store.getText('releases', `lix/lix-${version}/lix-installer-aarch64-darwin`)).toBe(`installer ${version}\n`);
    // Published: the grant cannot replace it.
    expect(await writeWith(g, `lix/lix-${version}/lix-installer-aarch64-darwin`, 'replaced')).toBe(403);
  });

  it('is refused after it expires (server side), and contribute says the grant expired', async () => {
    const g = await grant(method, '2.91.9', '3s');
    const wait = new Date(g.expiresAt).getTime() - Date.now() + 1500;
    expect(wait).toBeLessThan(6000);
    await sleep(Math.max(0, wait));
    expect(await writeWith(g, 'incoming/installers/2.91.9/lix-installer-x86_64-linux')).toBe(403);
    // contribute refuses before sending; with a grant file whose expiry was edited, the server says no.
    const file = path.join(builder, 'lix-installer-x86_64-linux');
    await writeFile(file, 'late\n');
    const gfile = path.join(base, `g-expired-${method}.json`);
    await writeFile(gfile, JSON.stringify(g));
    const c = await relengInProcess(['contribute', '--grant', gfile, file], { cwd: builder, env: {} });
    expect(c.code).toBe(1);
    expect(c.stderr).toContain(`grant ${g.id} (uploader installers, environment ${method}) expired at`);
    await writeFile(gfile, JSON.stringify({ ...g, expiresAt: new Date(Date.now() + 3600_000).toISOString() }));
    const forced = await relengInProcess(['contribute', '--grant', gfile, file], { cwd: builder, env: {} });
    expect(forced.code).toBe(1);
    expect(forced.stderr).toMatch(/the server refused the upload \((AccessDenied|Forbidden|403|ExpiredToken)\)/);
  });
});

describe('grant: bad input', () => {
  it('names the uploader, the flag or the field, and writes nothing', async () => {
    const none = await run(['grant', 'nope', '--environment', 'sts']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('has no uploader "nope"');
    const noVersion = await run(['grant', 'installers', '--environment', 'sts']);
    expect(noVersion.stderr).toContain('contains {version}, and no version was given');
    const tooLong = await run(['grant', 'installers', '--environment', 'sts', '--version', '1.0', '--ttl', '13h']);
    expect(tooLong.stderr).toContain('longer than environments.sts.uploaders.installers.maxTtl');
    const underRelease = await run(['grant', 'installers', '--environment', 'post', '--version', '1.0', '--output', path.join(project, 'release', 'g.json')]);
    expect(underRelease.stderr).toContain('under release/, which must never hold credentials');
    const dry = await run(['grant', 'installers', '--environment', 'sts', '--version', '1.0', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toContain('[dry-run] sts AssumeRole');
    expect(dry.stderr).toContain('arn:aws:s3:::releases/incoming/installers/1.0/lix-installer-*-*');
  });

  it('the CLI: --help says what grant reads and changes', async () => {
    const r = await releng(['grant', '--help'], { cwd: project });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Changes: nothing in the buckets; writes the grant file (mode 0600');
  });
});
