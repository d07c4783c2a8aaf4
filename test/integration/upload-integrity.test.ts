// Issue 9 end to end, against s3rver (the embedded local environment) and Ceph RGW (a faithful
// S3): the upload of examples/hello (signed cache, release files, manual, git push) and what a
// re-run trusts. Objects deleted or truncated behind releng's back are sent again; a byte flipped
// in release/artifacts refuses the upload before any write; a body corrupted in transit is
// refused by RGW (Content-MD5) and retried. RGW only (s3rver cannot): a wrong secret, a bucket
// policy, conditional writes with two uploads at once, multipart with a lowered threshold.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../lib/actions/index.ts';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { embeddedCredentials } from '../../lib/local/s3-server.ts';
import { createLogger } from '../../lib/cli/log.ts';
import { upload, type UploadSummary } from '../../lib/phases/upload.ts';
import { openUploadRecord, recordingWriter } from '../../lib/s3/record.ts';
import { createS3Client, s3Store, type S3Store } from '../../lib/s3/store.ts';
import { releng } from '../helpers/cli.ts';
import { startCorruptingProxy } from '../helpers/corrupting-proxy.ts';
import { contextIn } from '../helpers/in-process.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { startTestRgw, type TestRgw } from '../helpers/rgw.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tagLikeReleng } from '../helpers/tagged.ts';
import { requireTool } from '../helpers/tools.ts';

const buckets = ['local-releases', 'local-cache', 'local-docs'];
const fresh = ['--option', 'narinfo-cache-positive-ttl', '0', '--option', 'narinfo-cache-negative-ttl', '0'];

/** One S3 server under test, as releng's environment sees it. */
interface Server {
  kind: 's3rver' | 'rgw';
  endpoint: string;
  /** Admin store (releng's own adapter). */
  store: S3Store;
  /** Credentials releng uses, from environment variables. */
  creds: { accessKeyId: string; secretAccessKey: string };
  createBuckets(names: string[], opts?: { publicRead?: boolean }): Promise<void>;
  rgw?: TestRgw;
  stop(): Promise<void>;
}

async function startServer(kind: Server['kind']): Promise<Server> {
  if (kind === 's3rver') {
    const s3: TestS3 = await startTestS3(buckets);
    return { kind, endpoint: s3.endpoint, store: s3.store, creds: { ...embeddedCredentials }, async createBuckets() { /* configured at start */ }, stop: () => s3.stop() };
  }
  const rgw = await startTestRgw();
  const admin = createS3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, rgw.users.admin);
  const server: Server = {
    kind, endpoint: rgw.endpoint, store: rgw.store, creds: rgw.users.admin, rgw,
    async createBuckets(names, opts = {}) {
      for (const b of names) {
        await rgw.createBucket(b);
        // Nix fetches the cache over plain HTTP GETs, as users do from a public cache.
        if (opts.publicRead) {
          await admin.send(new PutBucketPolicyCommand({ Bucket: b, Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${b}/*`] }] }) }));
        }
      }
    },
    stop: () => rgw.stop(),
  };
  await server.createBuckets(buckets.filter((b) => b !== 'local-cache'));
  await server.createBuckets(['local-cache'], { publicRead: true });
  return server;
}

let p: ScratchProject;
let result: any;
beforeAll(async () => {
  requireTool('nix-build', 'nix-bin');
  requireTool('git', 'git');
  p = await scratchProject();
  // No images here (test/integration/images.test.ts covers them): the S3 destinations are the subject.
  await p.editConfig((c) => { c.environments.local.docker = []; });
  p.git('commit', '-q', '-am', 'no images in this test');
  p.git('push', '-q', 'origin', 'main');
  await tagLikeReleng(p);
  const r = await releng(['build', '--json'], { cwd: p.dir });
  expect(r.code, r.stderr).toBe(0);
  result = JSON.parse(r.stdout).result;
}, 600_000);
afterAll(async () => { await p?.cleanup(); });

/** Points the local environment at `server` (env-var credentials) with extra s3 settings. */
async function pointAt(server: Server, s3: Record<string, unknown> = {}, names = { releases: 'local-releases', cache: 'local-cache', docs: 'local-docs' }) {
  await p.editConfig((c) => {
    const env = c.environments.local;
    env.s3 = { endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED', ...s3 };
    env.credentials = { source: 'env', accessKeyIdVar: 'RELENG_TEST_S3_KEY', secretAccessKeyVar: 'RELENG_TEST_S3_SECRET' };
    env.releasesBucket = `s3://${names.releases}`;
    env.cacheBucket = `s3://${names.cache}`;
    env.docsBucket = `s3://${names.docs}`;
  });
}

async function uploadAs(creds: { accessKeyId: string; secretAccessKey: string }): Promise<UploadSummary> {
  process.env.RELENG_TEST_S3_KEY = creds.accessKeyId;
  process.env.RELENG_TEST_S3_SECRET = creds.secretAccessKey;
  const ctx = await contextIn(p.dir, { noCheckGit: true });
  return upload(ctx);
}

/** Nix fetches the x86_64 build from the cache over HTTP, trusting only the environment's key. */
function nixFetches(server: Server, bucket = 'local-cache') {
  const store = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
  try {
    const pub = execFileSync('cat', [path.join(p.dir, '.releng/local/cache-signing.key.pub')], { encoding: 'utf8' }).trim();
    execFileSync('nix', ['copy', '--from', `${server.endpoint}/${bucket}`, '--to', store, '--option', 'trusted-public-keys', pub, ...fresh, result.manifest['x86_64-linux']],
      { stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    execFileSync('rm', ['-rf', store]);
  }
}

const objects = async (s: Server) => {
  const out = new Map<string, number>();
  for (const b of buckets) for (const o of await s.store.list(b, '')) out.set(`${b}/${o.key}`, o.size);
  return out;
};

for (const kind of ['s3rver', 'rgw'] as const) {
  describe(`upload integrity against ${kind}`, () => {
    let server: Server;
    beforeAll(async () => {
      if (kind === 'rgw') for (const t of ['radosgw', 'ceph-mon', 'ceph-osd']) requireTool(t, t === 'radosgw' ? 'radosgw' : t);
      server = await startServer(kind);
      await pointAt(server);
    }, 120_000);
    afterAll(async () => { await server?.stop(); });

    it('uploads the release; Nix fetches it back with only the environment key; a re-run writes nothing', async () => {
      const first = await uploadAs(server.creds);
      expect(first.applied['s3.put']).toBeGreaterThan(20);
      nixFetches(server);
      const again = await uploadAs(server.creds);
      expect(again.applied).toEqual({});
    });

    it('re-sends what was deleted or truncated behind its back (a NAR whose narinfo stays, a release file, a narinfo)', async () => {
      const nar = (await server.store.list('local-cache', 'nar/'))[0]!.key;
      const narinfo = (await server.store.list('local-cache', '')).find((o) => o.key.endsWith('.narinfo'))!;
      const tarball = 'hello/hello-1.0.0/hello-1.0.0.tar.gz';
      const tarHead = (await server.store.head('local-releases', tarball))!;
      // Acknowledged but never stored: gone.
      await server.store.delete('local-cache', nar);
      // Stored truncated, with the sha256 metadata of the whole (a killed upload on a server that keeps partial bodies).
      const truncate = async (bucket: string, key: string, sha256: string) => {
        const text = 'trunc';
        await server.store.put({ bucket, key, body: { text }, size: 5, sha256, contentType: 'application/octet-stream' });
      };
      await truncate('local-releases', tarball, tarHead.sha256!);
      await truncate('local-cache', narinfo.key, (await server.store.head('local-cache', narinfo.key))!.sha256!);

      const summary = await uploadAs(server.creds);
      expect(summary.applied['s3.put']).toBe(3);
      expect((await server.store.head('local-releases', tarball))).toMatchObject({ size: tarHead.size, sha256: tarHead.sha256 });
      expect((await server.store.head('local-cache', narinfo.key))?.size).toBe(narinfo.size);
      expect(await server.store.head('local-cache', nar)).toBeDefined();
      nixFetches(server);
      expect((await uploadAs(server.creds)).applied).toEqual({});
    });

    it('a byte flipped in release/artifacts (same size, same mtime) refuses the upload, naming the file, and writes nothing', async () => {
      const file = path.join(p.dir, 'release/artifacts/hello/hello-1.0.0/hello-1.0.0-x86_64-linux.tar.xz');
      const before = await stat(file);
      const bytes = await readFile(file);
      const flipped = Buffer.from(bytes);
      flipped[100] = flipped[100]! ^ 0xff;
      await writeFile(file, flipped);
      await utimes(file, before.atime, before.mtime);
      // Something to send, so that "writes nothing" means something: a release file gone.
      await server.store.delete('local-releases', 'hello/hello-1.0.0/SHA256SUMS');
      const had = await objects(server);
      try {
        const err = await uploadAs(server.creds).then(() => undefined, (e) => e);
        expect(err?.message).toContain(`${file}: ${before.size} bytes, sha256 ${sha256Text(flipped)}; build-result.json recorded`);
        expect(await objects(server)).toEqual(had);
      } finally {
        await writeFile(file, bytes);
      }
      expect((await uploadAs(server.creds)).applied).toEqual({ 's3.put': 1 });
    });

    it('a local write failure after a complete publish names the memo file, says the publish completed, and to run releng verify', async () => {
      await server.store.delete('local-releases', 'hello/hello-1.0.0/SHA256SUMS'); // one write to make
      const { uploadStateDir } = await import('../../lib/phases/upload.ts');
      const record = await openUploadRecord(uploadStateDir(p.dir), server.endpoint);
      // The memo is written to FILE.PID.tmp then renamed: a directory there makes the write fail (as ENOSPC would).
      const blocker = `${record.file}.${process.pid}.tmp`;
      await (await import('node:fs/promises')).mkdir(blocker, { recursive: true });
      try {
        const err = await uploadAs(server.creds).then(() => undefined, (e) => e);
        expect(err?.message).toContain(`the upload itself completed (every planned write was acknowledged), but saving the local memo ${record.file} failed: EISDIR`);
        expect(err?.hint).toContain('releng verify --environment local');
        expect(await server.store.head('local-releases', 'hello/hello-1.0.0/SHA256SUMS')).toBeDefined();
      } finally {
        await rm(blocker, { recursive: true, force: true });
      }
    });

    it(kind === 'rgw' ? 'a body corrupted in transit is refused by the server (Content-MD5) and the retry stores the right bytes'
      : 'a body corrupted in transit is stored by s3rver (it checks nothing); its ETag is not the MD5 sent, so releng deletes it and sends it again', async () => {
      const proxy = await startCorruptingProxy(server.endpoint, { corrupt: 1 });
      const state = await mkdtemp(path.join(os.tmpdir(), 'releng-record-'));
      try {
        const viaProxy = s3Store(createS3Client({ endpoint: proxy.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, server.creds), proxy.endpoint, { transitChecksum: 'content-md5', readRetry: { attempts: 2, backoffMs: 1 } });
        const record = await openUploadRecord(state, proxy.endpoint);
        const text = 'the bytes of one release file\n'.repeat(100);
        const file = path.join(state, 'f');
        await writeFile(file, text);
        const md5 = (await import('../../lib/hashing/checksums.ts')).md5Base64(text);
        const put = { kind: 's3.put' as const, bucket: 'local-docs', key: 'transit/f.txt', source: { file }, size: text.length, sha256: sha256Text(text), md5, contentType: 'text/plain', reason: 'new' as const };
        const warnings: string[] = [];
        const log = createLogger({ plain: true, stream: { write: (s: string) => { warnings.push(s); return true; }, isTTY: false } as any });
        await apply({ steps: [{ title: 'one put', actions: [put] }], skipped: [] }, { log, dryRun: false, writers: { s3: recordingWriter(viaProxy, { record }) }, backoffMs: 1 });
        expect(proxy.corrupted).toEqual(['PUT /local-docs/transit/f.txt']);
        const stored = await server.store.getText('local-docs', 'transit/f.txt');
        if (kind === 'rgw') {
          expect(proxy.seen[0]).toMatch(/^PUT \/local-docs\/transit\/f.txt -> 400$/);
          // RGW checks the signed payload sha256 first, then Content-MD5 (proved on its own below).
          expect(warnings.join('')).toMatch(/retrying \(1\/4\) s3 put s3:\/\/local-docs\/transit\/f.txt.*(XAmzContentSHA256Mismatch|BadDigest)/);
          expect(stored).toBe(text);
          expect(record.get('local-docs', 'transit/f.txt')?.sha256).toBe(sha256Text(text));
        } else {
          // s3rver answered 200 for the flipped body; the single-part ETag (MD5 of what it stored) told
          // releng, which deleted the object and sent it again (lib/s3/lean-put.ts).
          expect(proxy.seen.filter((l) => l.startsWith('PUT /local-docs/transit/f.txt')).length).toBe(2);
          expect(proxy.seen.some((l) => l.startsWith('DELETE /local-docs/transit/f.txt'))).toBe(true);
          expect(stored).toBe(text);
          expect(record.get('local-docs', 'transit/f.txt')?.sha256).toBe(sha256Text(text));
        }
      } finally {
        await proxy.stop();
        await rm(state, { recursive: true, force: true });
        await server.store.delete('local-docs', 'transit/f.txt');
      }
    });

    if (kind !== 'rgw') return;

    it('Content-MD5 is verified on its own: a lying one is refused (BadDigest); RGW 16 ignores x-amz-checksum-sha256', async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-lie-'));
      try {
        const file = path.join(dir, 'f');
        await writeFile(file, 'hello');
        const { md5Base64 } = await import('../../lib/hashing/checksums.ts');
        const md5Store = s3Store(createS3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, server.creds), server.endpoint, { transitChecksum: 'content-md5' });
        const err = await md5Store.put({ bucket: 'local-docs', key: 'lie/md5', body: { file }, size: 5, sha256: sha256Text('hello'), md5: md5Base64('hellO'), contentType: 'text/plain' }).then(() => undefined, (e) => e);
        expect(err?.message).toMatch(/BadDigest \(HTTP 400\)/);
        expect(await server.store.head('local-docs', 'lie/md5')).toBeUndefined();
        // Why content-md5 is the default: this RGW stores a body whose x-amz-checksum-sha256 lies.
        const { leanClient } = await import('../../lib/s3/lean-put.ts');
        const lean = leanClient({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: async () => server.creds });
        await lean.putObject({ bucket: 'local-docs', key: 'lie/sha', headers: { 'x-amz-checksum-sha256': Buffer.from(sha256Text('hellO'), 'hex').toString('base64') } }, { file }, 5, sha256Text('hello'), { transit: 'payload-sha256-only' });
        expect(await server.store.getText('local-docs', 'lie/sha')).toBe('hello');
        await server.store.delete('local-docs', 'lie/sha');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('a wrong secret is refused, and releng says so without printing it', async () => {
      const wrong = 'wrong-secret-' + 'x9'.repeat(10);
      const r = await releng(['upload', '--no-check-git'], { cwd: p.dir, env: { RELENG_TEST_S3_KEY: server.creds.accessKeyId, RELENG_TEST_S3_SECRET: wrong } });
      expect(r.code).toBe(1);
      // RGW answers the bucket check's listing with AccessDenied for a bad signature.
      expect(r.stderr).toContain(`error: S3 refused access to s3://local-releases at ${server.endpoint} (AccessDenied): the credentials are wrong`);
      expect(r.stderr + r.stdout).not.toContain(wrong);
    });

    it('a user limited by a bucket policy to one prefix is refused elsewhere; the error names the key', async () => {
      const pol = { releases: 'pol-releases', cache: 'pol-cache', docs: 'pol-docs' };
      await server.createBuckets(Object.values(pol));
      const admin = createS3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, server.creds);
      const other = server.rgw!.users.other;
      for (const b of Object.values(pol)) {
        await admin.send(new PutBucketPolicyCommand({ Bucket: b, Policy: JSON.stringify({ Version: '2012-10-17', Statement: [
          { Effect: 'Allow', Principal: { AWS: [`arn:aws:iam:::user/${other.uid}`] }, Action: ['s3:ListBucket'], Resource: [`arn:aws:s3:::${b}`] },
          { Effect: 'Allow', Principal: { AWS: [`arn:aws:iam:::user/${other.uid}`] }, Action: ['s3:GetObject', 's3:PutObject'], Resource: [`arn:aws:s3:::${b}/incoming/*`] },
        ] }) }));
      }
      await pointAt(server, {}, pol);
      try {
        const err = await uploadAs(other).then(() => undefined, (e) => e);
        expect(err?.message).toMatch(/S3 refused access to s3:\/\/pol-cache\/\S+ at .* \(AccessDenied\)/);
        expect(await server.store.list('pol-cache', '')).toEqual([]);
      } finally {
        await pointAt(server);
      }
    });

    it('conditional writes: two uploads of the same release at once both exit 0, and one correct state results', async () => {
      const cc = { releases: 'cc-releases', cache: 'cc-cache', docs: 'cc-docs' };
      await server.createBuckets([cc.releases, cc.docs]);
      await server.createBuckets([cc.cache], { publicRead: true });
      await pointAt(server, { conditionalWrites: true }, cc);
      // A fresh remote, so both runs push the branch and the tag too.
      const remote = p.remote;
      execFileSync('rm', ['-rf', remote]);
      execFileSync('git', ['init', '-q', '--bare', '-b', 'main', remote]);
      execFileSync('git', ['push', '-q', remote, 'main~1:refs/heads/main'], { cwd: p.dir });
      try {
        const env = { RELENG_TEST_S3_KEY: server.creds.accessKeyId, RELENG_TEST_S3_SECRET: server.creds.secretAccessKey };
        // Two checkouts (two machines): runs in one checkout take turns (its lock, issue 25), so the
        // race the server settles is between a copy and the original.
        // The local environment's signing key is made by its first upload: make it first (a dry run), so both checkouts sign with it.
        expect((await releng(['upload', '--no-check-git', '--dry-run'], { cwd: p.dir, env })).code).toBe(0);
        const other = await mkdtemp(path.join(path.dirname(p.dir), 'other-checkout-')); // beside it: ../remote.git is the same remote
        execFileSync('cp', ['-a', `${p.dir}/.`, other]);
        const [a, b] = await Promise.all([releng(['upload', '--no-check-git'], { cwd: p.dir, env }), releng(['upload', '--no-check-git'], { cwd: other, env }).finally(() => rm(other, { recursive: true, force: true }))]);
        expect(a.code, a.stderr).toBe(0);
        expect(b.code, b.stderr).toBe(0);
        expect(a.stderr + b.stderr).not.toContain('cannot lock ref');
        nixFetches(server, cc.cache);
        expect(execFileSync('git', ['ls-remote', remote], { encoding: 'utf8' })).toContain('refs/tags/1.0.0^{}');
        const again = await releng(['upload', '--no-check-git', '--json'], { cwd: p.dir, env });
        expect(again.code, again.stderr).toBe(0);
        expect(JSON.parse(again.stdout).result.applied).toEqual({});
        // A key another run created with other bytes: a failure naming the key, nothing overwritten.
        const store = s3Store(createS3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, server.creds), server.endpoint, { conditionalWrites: true });
        const key = 'hello/hello-1.0.0/SHA256SUMS';
        const there = await store.getText(cc.releases, key);
        const err = await store.put({ bucket: cc.releases, key, body: { text: 'other' }, size: 5, sha256: sha256Text('other'), contentType: 'text/plain', createOnly: true }).then(() => undefined, (e) => e);
        expect(err?.message).toContain(`s3://${cc.releases}/${key} was created by another run at the same time with other content`);
        expect(await store.getText(cc.releases, key)).toBe(there);
        // The same bytes: success, nothing written.
        expect(await store.put({ bucket: cc.releases, key, body: { text: there! }, size: Buffer.byteLength(there!), sha256: sha256Text(there!), contentType: 'text/plain', createOnly: true })).toMatchObject({ alreadyThere: true });
      } finally {
        await pointAt(server);
      }
    });

    it('multipart (threshold lowered): parts carry Content-MD5 or x-amz-checksum-sha256, the object reads back whole; a conditional re-put is settled', async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-mp-'));
      try {
        const file = path.join(dir, 'big');
        const bytes = Buffer.alloc(11 * 1024 * 1024 + 123);
        for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i / 4096) & 0xff;
        await writeFile(file, bytes);
        const sha256 = sha256Text(bytes);
        for (const transitChecksum of ['content-md5', 'sha256'] as const) {
          const store = s3Store(createS3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, server.creds), server.endpoint,
            { transitChecksum, conditionalWrites: true, multipartThreshold: 6 * 1024 * 1024, partSize: 5 * 1024 * 1024 });
          const key = `mp/${transitChecksum}.bin`;
          const req = { bucket: 'local-releases', key, body: { file }, size: bytes.length, sha256, contentType: 'application/octet-stream', createOnly: true };
          await store.put(req);
          const head = await store.head('local-releases', key);
          expect(head).toMatchObject({ size: bytes.length, sha256 });
          expect(head?.etag).toMatch(/-3"?$/); // three parts: S3 names a multipart object's ETag md5-N
          const got = await createS3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, server.creds)
            .send(new GetObjectCommand({ Bucket: 'local-releases', Key: key }));
          expect(sha256Text(Buffer.from(await got.Body!.transformToByteArray()))).toBe(sha256);
          expect(await store.put(req)).toMatchObject({ alreadyThere: true });
          await store.delete('local-releases', key);
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
