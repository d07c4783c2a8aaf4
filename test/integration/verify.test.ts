// releng verify against real servers: one build of examples/hello, uploaded to an environment on
// s3rver and one on Ceph RGW; then each destination is damaged the way the issue found them damaged
// (deleted, wrong sha256 metadata, a byte flipped at the same size, a narinfo re-signed by another
// key, a stray object, a moved tag) and verify must exit 1 with one line naming the key, what
// differs and the repair — and the repair must work. Real clients read the result back.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { embeddedCredentials } from '../../lib/local/s3-server.ts';
import { createS3Client, type S3Store } from '../../lib/s3/store.ts';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { allowAnonymousRead } from '../helpers/public-read.ts';
import { startTestRgw, type TestRgw } from '../helpers/rgw.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tagLikeReleng } from '../helpers/tagged.ts';
import { requireTool } from '../helpers/tools.ts';
import '../helpers/setup.ts';

const buckets = ['rel', 'cache', 'docs'];
const prefix = 'hello/hello-1.0.0/';
let p: ScratchProject;
let s3: TestS3;
let rgw: TestRgw;
let keys: string;
let result: any;
let initialCommit: string;
let releaseCommit: string;
const cliEnv = () => ({ RGW_KEY: rgw.users.admin.accessKeyId, RGW_SECRET: rgw.users.admin.secretAccessKey });

beforeAll(async () => {
  requireTool('nix-build', 'nix-bin');
  requireTool('zstd', 'zstd');
  [s3, rgw] = await Promise.all([startTestS3(buckets), startTestRgw({ buckets })]);
  // A binary cache is read anonymously (Nix sends no credentials): RGW buckets are private unless a policy says otherwise.
  await allowAnonymousRead(rgw, 'cache');
  p = await scratchProject();
  keys = await mkdtemp(path.join(os.tmpdir(), 'releng-verify-keys-'));
  const nix = (args: string[], input?: string) => execFileSync('nix', ['--extra-experimental-features', 'nix-command', ...args], { encoding: 'utf8', input }).trim();
  for (const name of ['srv', 'rgw']) await writeFile(path.join(keys, name), nix(['key', 'generate-secret', '--key-name', `hello-${name}-1`]));
  await p.editConfig((c) => {
    const base = (endpoint: string, name: string, credentials: any) => ({
      ...c.environments.local, releasesBucket: 's3://rel', cacheBucket: 's3://cache', docsBucket: 's3://docs', confirm: false,
      s3: { ...c.environments.local.s3, endpoint }, credentials, cache: { ...c.environments.local.cache, signingKeyFile: path.join(keys, name) },
      docker: [{ registry: 'embedded', repository: `hello-${name}`, tags: ['{version}', '{major}'], latest: true }],
    });
    c.environments.srv = base(s3.endpoint, 'srv', { source: 'embedded' });
    c.environments.rgw = { ...base(rgw.endpoint, 'rgw', { source: 'env', accessKeyIdVar: 'RGW_KEY', secretAccessKeyVar: 'RGW_SECRET' }), git: { remote: '../remote-rgw.git', gerrit: false } };
  });
  p.git('commit', '-q', '-am', 'test environments');
  initialCommit = p.git('rev-parse', 'HEAD');
  p.git('push', '-q', 'origin', 'main');
  // Each environment its own remote: a tag moved in one case stays there.
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', path.join(path.dirname(p.remote), 'remote-rgw.git')]);
  p.git('push', '-q', path.join(path.dirname(p.remote), 'remote-rgw.git'), 'main');
  releaseCommit = (await tagLikeReleng(p)).releaseCommit;
  const r = await releng(['build', '--json'], { cwd: p.dir });
  expect(r.code, r.stderr).toBe(0);
  result = JSON.parse(r.stdout).result;
}, 240_000);
afterAll(async () => {
  await Promise.all([s3?.stop(), rgw?.stop()]);
  await p?.cleanup();
  if (keys) await rm(keys, { recursive: true, force: true });
});

/** Writes an object as another writer would (the SDK, a correct payload hash): our sha256 metadata is whatever `claims` says. */
async function putRaw(flavour: 'srv' | 'rgw', bucket: string, key: string, bytes: Buffer, claims = sha256Text(bytes), contentType = 'application/octet-stream') {
  const client = flavour === 'srv'
    ? createS3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, { ...embeddedCredentials })
    : createS3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, rgw.users.admin);
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes, ContentType: contentType, Metadata: { sha256: claims } }));
}
async function getBytes(store: S3Store, bucket: string, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of (await store.getStream(bucket, key))!) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}
const nixArgs = ['--extra-experimental-features', 'nix-command'];

for (const flavour of ['srv', 'rgw'] as const) {
  describe(`verify on ${flavour === 'srv' ? 's3rver' : 'Ceph RGW'}`, () => {
    const env = flavour;
    const store = () => (flavour === 'srv' ? s3.store : rgw.store);
    const endpoint = () => (flavour === 'srv' ? s3.endpoint : rgw.endpoint);
    const run = (args: string[]) => releng([...args, '--environment', env], { cwd: p.dir, env: cliEnv() });
    const verify = async (...flags: string[]) => {
      const r = await run(['verify', '--json', ...flags]);
      return { ...r, json: JSON.parse(r.stdout) };
    };
    // Problem lines as logged (plain mode prefixes a timestamp).
    const lines = (stderr: string) => stderr.split('\n').map((l) => /^(?:\[[^\]]+\] )?(warning: .*)$/.exec(l)?.[1]).filter((l): l is string => !!l);
    const firstPath = () => (Object.values(result.manifest as Record<string, string>)[0]!);
    const narinfoKey = () => `${firstPath().slice(11, 43)}.narinfo`;

    it('upload ends with the whole verification; verify and verify --deep pass and count what they read; Nix agrees', async () => {
      const up = await run(['upload', '--noconfirm']);
      expect(up.code, up.stderr).toBe(0);
      expect(up.stderr).toMatch(/verified release prefix: \d+ objects/);
      const quick = await verify();
      expect(quick.code, quick.stderr).toBe(0);
      expect(quick.json.result).toMatchObject({ ok: true, source: 'build', deep: false, problems: [] });
      const c = quick.json.result.checked;
      const files = result.artifacts.filter((a: any) => a.path.startsWith(prefix));
      expect(c['release prefix'].objects).toBe(files.length);
      expect(c['binary cache'].narinfos).toBeGreaterThanOrEqual(2);
      expect(c.images).toMatchObject({ tags: 3, manifests: 3 });
      expect(c.git.refs).toBe(1);
      const deep = await verify('--deep');
      expect(deep.code, deep.stderr).toBe(0);
      expect(deep.json.result.checked['binary cache']['NARs hashed']).toBe(deep.json.result.checked['binary cache'].narinfos);
      expect(deep.json.result.checked['release prefix']['bytes read']).toBe(files.reduce((n: number, a: any) => n + a.size, 0));
      // Nix fetches every manifest path with only this environment's key trusted.
      const publicKey = execFileSync('nix', [...nixArgs, 'key', 'convert-secret-to-public'], { input: await readFile(path.join(keys, env)), encoding: 'utf8' }).trim();
      const dest = await mkdtemp(path.join(os.tmpdir(), 'releng-verify-nix-'));
      for (const sp of Object.values(result.manifest) as string[]) {
        execFileSync('nix', [...nixArgs, 'copy', '--from', `${endpoint()}/cache`, '--to', dest, '--option', 'trusted-public-keys', publicKey,
          '--option', 'narinfo-cache-negative-ttl', '0', '--option', 'narinfo-cache-positive-ttl', '0', sp], { stdio: ['ignore', 'pipe', 'pipe'] });
      }
      await rm(dest, { recursive: true, force: true });
    }, 300_000);

    it('a no-op re-run proves by listing what a verification read back; a rewrite at the same size or a deletion is not vouched for', async () => {
      // Issue 16: the closing verification of a re-run lists instead of HEADing objects whose listed
      // size, ETag and Last-Modified are those a previous verification's HEAD saw with our sha256
      // metadata. A HEAD within 2 s of an object's write notes nothing: the first re-run may HEAD.
      await new Promise((r) => setTimeout(r, 2100));
      const first = await run(['upload', '--noconfirm']);
      expect(first.code, first.stderr).toBe(0);
      const noop = await run(['upload', '--noconfirm', '--json']);
      expect(noop.code, noop.stderr).toBe(0);
      const checked = JSON.parse(noop.stdout).result.verified;
      const files = result.artifacts.filter((a: any) => a.path.startsWith(prefix));
      // SHA256SUMS and manifest.nix are always downloaded, never vouched for.
      expect(checked['release prefix']['objects proven by listing']).toBe(files.length - 2);
      expect(checked.docs['objects proven by listing']).toBe(checked.docs.objects);

      // Another writer: a page rewritten with other bytes of the same size (its own sha256 claimed),
      // another page deleted, and a release file rewritten at the same size claiming the right sha256.
      const pages = (await store().list('docs', 'manual/hello/1.0/')).map((o) => o.key).sort();
      expect(pages.length).toBeGreaterThanOrEqual(2);
      const [rewritten, deleted] = pages as [string, string];
      const pageBytes = await getBytes(store(), 'docs', rewritten);
      const otherPage = Buffer.from(pageBytes.toString('utf8').toUpperCase() === pageBytes.toString('utf8') ? pageBytes.map((b) => b ^ 1) : Buffer.from(pageBytes.toString('utf8').toUpperCase()));
      expect(otherPage.length).toBe(pageBytes.length);
      await putRaw(flavour, 'docs', rewritten, otherPage, undefined, 'text/html');
      await store().delete('docs', deleted);
      const file = `${prefix}hello-1.0.0-manual.tar.gz`;
      const bytes = await getBytes(store(), 'rel', file);
      const flipped = Buffer.from(bytes);
      flipped[flipped.length >> 1]! ^= 0x20;
      await putRaw(flavour, 'rel', file, flipped, sha256Text(bytes));

      // verify (no local record) names the page, the deletion and the lying release file: its listed
      // ETag is not the MD5 of release/'s file, so quick reads it (issue 16).
      const v = await verify();
      expect(v.code).toBe(1);
      expect(lines(v.stderr).sort()).toEqual([
        `warning: docs: s3://docs/${deleted}: missing — repair: releng upload --environment ${env}`,
        `warning: docs: s3://docs/${rewritten}: sha256 metadata ${sha256Text(otherPage)}, expected ${sha256Text(pageBytes)} — repair: releng upload --environment ${env}`,
        `warning: release prefix: s3://rel/${file}: content sha256 ${sha256Text(flipped)} (${bytes.length} bytes), expected ${sha256Text(bytes)} (${bytes.length} bytes) — repair: releng upload --environment ${env} --deep (its bytes are not what its metadata says: --deep reads them back and sends them again)`,
      ].sort());
      // upload re-sends both pages, and its verification reads the release file whose ETag changed
      // since it was verified (its metadata proves nothing then): exit 1 naming it.
      const up = await run(['upload', '--noconfirm']);
      expect(up.code).toBe(1);
      expect(up.stderr).toContain(`s3://rel/${file}: content sha256 ${sha256Text(flipped)}`);
      expect((await getBytes(store(), 'docs', rewritten)).equals(pageBytes)).toBe(true);
      expect((await getBytes(store(), 'docs', deleted)).length).toBeGreaterThan(0);
      // The repair it names.
      await store().delete('rel', file);
      const again = await run(['upload', '--noconfirm']);
      expect(again.code, again.stderr).toBe(0);
      const deep = await verify('--deep');
      expect(deep.code, deep.stderr).toBe(0);
    }, 300_000);

    it('works from the published release alone (--published VERSION: SHA256SUMS and manifest.nix are the truth)', async () => {
      const r = await verify('--published', '1.0.0', '--deep');
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.result.source).toBe('published');
      expect(r.json.result.notChecked.map((n: any) => n.destination)).toEqual(expect.arrayContaining(['root manifest', 'images']));
      if (flavour === 'srv') {
        const none = await verify('--published', '9.9.9');
        expect(none.code).toBe(1);
        expect(none.stderr).toContain('release prefix: s3://rel/hello/hello-9.9.9/SHA256SUMS: missing');
      }
    }, 300_000);

    it('deleted, wrong sha256 metadata, re-signed narinfo, stray object, moved tag: one line each with the repair; the repairs work', async () => {
      const deleted = `${prefix}hello-1.0.0.tar.gz`;
      await store().delete('rel', deleted);
      const page = 'manual/hello/1.0/index.html';
      const pageBytes = await getBytes(store(), 'docs', page);
      await putRaw(flavour, 'docs', page, pageBytes, 'f'.repeat(64), 'text/html');
      const info = (await store().getText('cache', narinfoKey()))!;
      const forged = info.replace(/^Sig: hello-\w+-1:.*$/m, `Sig: hello-${env}-1:${Buffer.alloc(64, 7).toString('base64')}`);
      expect(forged).not.toBe(info);
      await putRaw(flavour, 'cache', narinfoKey(), Buffer.from(forged), undefined, 'text/x-nix-narinfo');
      await putRaw(flavour, 'rel', `${prefix}extra.txt`, Buffer.from('not released'));
      const remote = flavour === 'rgw' ? path.join(path.dirname(p.remote), 'remote-rgw.git') : p.remote;
      execFileSync('git', ['--git-dir', remote, 'update-ref', 'refs/tags/1.0.0', initialCommit]);

      const r = await verify();
      expect(r.code).toBe(1);
      const repair = `repair: releng upload --environment ${env}`;
      // The page's bytes are the release's (its listed ETag is their MD5): quick proves it by listing
      // and leaves its metadata to --deep (issue 16, docs/verify.md "What quick proves").
      const metadataLine = `warning: docs: s3://docs/${page}: sha256 metadata ${'f'.repeat(64)}, expected ${sha256Text(pageBytes)} — ${repair}`;
      const expected = [
        `warning: binary cache: s3://cache/${narinfoKey()}: the signature by hello-${env}-1 does not verify (the narinfo was changed after signing, or signed by another key of that name) (trusted key hello-${env}-1) — repair: delete s3://cache/${narinfoKey()}, then releng upload --environment ${env}`,
        `warning: docs: s3://docs/${page}: sha256 metadata ${'f'.repeat(64)}, expected ${sha256Text(pageBytes)} — ${repair}`,
        `warning: git: ../remote${flavour === 'rgw' ? '-rgw' : ''}.git refs/tags/1.0.0: points at ${initialCommit}, expected the release commit ${releaseCommit} — ${repair} --force-push-tag (only if ${initialCommit.slice(0, 12)} was never announced)`,
        `warning: release prefix: s3://rel/${deleted}: missing — ${repair}`,
        `warning: release prefix: s3://rel/${prefix}extra.txt: not part of the release (SHA256SUMS does not list it; 12 bytes) — repair: delete it (the release prefix holds exactly what SHA256SUMS lists), e.g. aws s3 rm s3://rel/${prefix}extra.txt`,
      ].sort();
      expect(lines(r.stderr).sort()).toEqual(expected.filter((l) => l !== metadataLine));
      expect(r.json.result.notChecked.map((n: any) => n.destination)).toContain('docs');
      // --deep reads each object with one GET and checks its headers as the HEAD would: the page's metadata too.
      expect(lines((await verify('--deep')).stderr).sort()).toEqual(expected);
      expect(r.json).toMatchObject({ ok: false, result: { ok: false } });
      expect(r.json.result.problems).toContainEqual({ destination: 'release prefix', where: `s3://rel/${deleted}`, what: 'missing', repair: `releng upload --environment ${env}`, bucket: 'rel', key: deleted });

      // upload skips the path whose narinfo is there, yet its closing verification is not fooled;
      // whatever it finds wrong leaves the upload record (a record entry may have vouched for the page).
      const up = await run(['upload', '--noconfirm', '--force-push-tag']);
      expect(up.code).toBe(1);
      expect(up.stderr).toContain('verification after upload failed');
      expect(up.stderr).toContain(`s3://cache/${narinfoKey()}`);
      const records = (await readdir(path.join(p.dir, '.releng/upload-state'))).filter((f) => f.startsWith('uploads-'));
      const mine = [];
      for (const f of records) {
        const rec = JSON.parse(await readFile(path.join(p.dir, '.releng/upload-state', f), 'utf8'));
        if (rec.endpoint === endpoint()) mine.push(rec);
      }
      expect(mine).toHaveLength(1);
      expect(Object.keys(mine[0].objects)).not.toContain(`cache/${narinfoKey()}`);
      expect(Object.keys(mine[0].objects)).toContain(`rel/${prefix}SHA256SUMS`);
      // The repairs the lines name.
      await store().delete('cache', narinfoKey());
      await store().delete('rel', `${prefix}extra.txt`);
      const again = await run(['upload', '--noconfirm']);
      expect(again.code, again.stderr).toBe(0);
      const after = await verify();
      expect(after.code, after.stderr).toBe(0);
    }, 300_000);

    it('a byte flipped at the same size, metadata left alone (release file and NAR): quick names the release file (listing), --deep names both; the repairs work', async () => {
      const file = `${prefix}hello-1.0.0-manual.tar.gz`;
      const bytes = await getBytes(store(), 'rel', file);
      const flipped = Buffer.from(bytes);
      flipped[flipped.length >> 1]! ^= 0x20;
      await putRaw(flavour, 'rel', file, flipped, sha256Text(bytes));
      const url = /^URL: (.*)$/m.exec((await store().getText('cache', narinfoKey()))!)![1]!;
      const nar = await getBytes(store(), 'cache', url);
      const badNar = Buffer.from(nar);
      badNar[badNar.length - 3]! ^= 0x01;
      await putRaw(flavour, 'cache', url, badNar, sha256Text(nar), 'application/x-nix-nar');

      // Quick proves release files by listing against release/ (issue 16): the ETag is not the MD5 of
      // the released bytes, so it reads the file. A NAR's HEAD cannot see it: that is --deep's.
      const quick = await verify();
      expect(quick.code).toBe(1);
      expect(lines(quick.stderr)).toContainEqual(`warning: release prefix: s3://rel/${file}: content sha256 ${sha256Text(flipped)} (${bytes.length} bytes), expected ${sha256Text(bytes)} (${bytes.length} bytes) — repair: releng upload --environment ${env} --deep (its bytes are not what its metadata says: --deep reads them back and sends them again)`);
      const r = await verify('--deep');
      expect(r.code).toBe(1);
      const found = lines(r.stderr);
      expect(found).toHaveLength(2);
      expect(found).toContainEqual(`warning: release prefix: s3://rel/${file}: content sha256 ${sha256Text(flipped)} (${bytes.length} bytes), expected ${sha256Text(bytes)} (${bytes.length} bytes) — repair: releng upload --environment ${env} --deep (its bytes are not what its metadata says: --deep reads them back and sends them again)`);
      const narLine = found.find((l) => l.startsWith(`warning: binary cache: s3://cache/${url}: FileHash sha256:`));
      expect(narLine, r.stderr).toBeDefined();
      expect(narLine).toContain(`repair: delete s3://cache/${url} and s3://cache/${narinfoKey()}, then releng upload --environment ${env}`);
      await store().delete('rel', file);
      await store().delete('cache', url);
      await store().delete('cache', narinfoKey());
      const up = await run(['upload', '--noconfirm']);
      expect(up.code, up.stderr).toBe(0);
      const deep = await verify('--deep');
      expect(deep.code, deep.stderr).toBe(0);
    }, 300_000);

    it('a NAR listing (.ls) changed in place, sha256 metadata left alone: verify names the key; deleting it and uploading repairs it', async () => {
      const ls = `${firstPath().slice(11, 43)}.ls`;
      const bytes = await getBytes(store(), 'cache', ls);
      const bad = Buffer.from(bytes);
      bad[bytes.indexOf('"type"') + 2]! ^= 0x01; // "type" -> "txpe": JSON still, a listing no more
      await putRaw(flavour, 'cache', ls, bad, sha256Text(bytes), 'application/json');
      const r = await verify();
      expect(r.code).toBe(1);
      const found = lines(r.stderr);
      expect(found, r.stderr).toHaveLength(1);
      expect(found[0]).toMatch(new RegExp(`^warning: binary cache: s3://cache/${ls}: is not a Nix NAR listing: .*\\(${firstPath().replaceAll('.', '\\.')}\\) — repair: delete s3://cache/${ls}, then releng upload --environment ${env}$`));
      expect(r.json.result.checked['binary cache'].listings).toBeGreaterThan(0);
      await store().delete('cache', ls);
      const up = await run(['upload', '--noconfirm']);
      expect(up.code, up.stderr).toBe(0);
      expect(await getBytes(store(), 'cache', ls)).toEqual(bytes);
      expect((await verify()).code).toBe(0);
    }, 300_000);

    it('an image layer blob with a byte flipped at the same size: quick passes, --deep names its digest', async () => {
      // The embedded registry's filesystem storage: blobs/sha256/XX/HEX/data (manifests too); the largest layer an image manifest names.
      const blobs = path.join(p.dir, '.releng/local/registry/data/docker/registry/v2/blobs/sha256');
      const dataOf = (hex: string) => path.join(blobs, hex.slice(0, 2), hex, 'data');
      const layers = new Set<string>();
      for (const xx of await readdir(blobs)) for (const hex of await readdir(path.join(blobs, xx))) {
        try { for (const l of JSON.parse(await readFile(dataOf(hex), 'utf8')).layers ?? []) layers.add(l.digest.slice('sha256:'.length)); } catch { /* a layer, not JSON */ }
      }
      let biggest = { file: '', size: -1, hex: '' };
      for (const hex of layers) {
        const size = (await readFile(dataOf(hex))).length;
        if (size > biggest.size) biggest = { file: dataOf(hex), size, hex };
      }
      const original = await readFile(biggest.file);
      const flipped = Buffer.from(original);
      flipped[original.length >> 1]! ^= 0x01;
      await writeFile(biggest.file, flipped);
      try {
        const quick = await verify();
        expect(quick.code, quick.stderr).toBe(0); // a HEAD sees the same size
        const r = await verify('--deep');
        expect(r.code).toBe(1);
        const found = lines(r.stderr);
        expect(found.length, r.stderr).toBeGreaterThan(0);
        for (const l of found) expect(l).toContain(`@sha256:${biggest.hex}: content sha256:${sha256Text(flipped)} (${original.length} bytes) is not the digest image sha256:`);
        expect(r.json.result.checked.images['blobs hashed']).toBeGreaterThan(0);
      } finally {
        await writeFile(biggest.file, original);
      }
      const ok = await verify('--deep');
      expect(ok.code, ok.stderr).toBe(0);
    }, 300_000);
  });
}
