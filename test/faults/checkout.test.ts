// Issue 25, faults in the checkout itself (the real CLI, s3rver and Debian's docker-registry):
//   case 2: two uploads at once from one checkout, from a fresh build: the second waits for the
//           first (naming it) or, with RELENG_LOCK_WAIT=0, fails naming it; image preparation uses
//           per-run temporary directories; a damaged release/oci is rebuilt, not fatal;
//   case 3: a staged narinfo or .ls changed after Nix wrote it (same size, mtime kept) is never
//           sent: upload stages the path again and the release verifies;
//   case 7: a byte flipped at rest in published objects (under releng's own metadata) is left by a
//           plain re-run, caught by `verify --deep`, and sent again by `upload --deep`.
// The rule in each: a run exits non-zero naming the problem, or exits 0 and `verify --deep` passes.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from '../../lib/local/registry-server.ts';
import { dirImageProblem, prepareImage } from '../../lib/oci/image.ts';
import { readBuildResult } from '../../lib/release/build-result.ts';
import { lockCheckout } from '../../lib/release/checkout-lock.ts';
import { releng, relengCommand } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tagLikeReleng } from '../helpers/tagged.ts';
import { requireTool } from '../helpers/tools.ts';

const envs = ['race', 'held', 'oci', 'staged', 'deep'] as const;
let p: ScratchProject;
let s3: TestS3;
let registry: LocalRegistry;
/** A registry of its own for the damaged release/oci case: none of the blobs is there, so every one is read from release/oci. */
let fresh: LocalRegistry;
let work: string;

interface Run { code: number | null; stdout: string; stderr: string }

/** A releng process of the bundle, started now (for runs that overlap). */
function start(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const how = relengCommand('bundle');
  return new Promise((resolve, reject) => {
    const child = spawn(how.file, [...how.args, ...args], { cwd: p.dir, env: { ...process.env, CI: 'true', ...how.env, ...env } as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

const upload = (env: string) => ['upload', '--environment', env, '--noconfirm'];
const verifyDeep = async (env: string) => {
  const v = await releng(['verify', '--environment', env, '--deep'], { cwd: p.dir });
  expect(v.code, `verify --deep of ${env}:\n${v.stderr}`).toBe(0);
};

beforeAll(async () => {
  for (const [tool, pkg] of [['nix-build', 'nix-bin'], ['zstd', 'zstd'], ['skopeo', 'skopeo'], ['docker-registry', 'docker-registry'], ['flock', 'util-linux']]) requireTool(tool!, pkg!);
  work = await mkdtemp(path.join(os.tmpdir(), 'releng-checkout-faults-'));
  [s3, registry, fresh] = await Promise.all([startTestS3(['rel', 'cache', 'docs']), startLocalRegistry({ dir: path.join(work, 'registry') }), startLocalRegistry({ dir: path.join(work, 'registry-fresh') })]);
  p = await scratchProject();
  const keyFile = path.join(work, 'cache.key');
  await writeFile(keyFile, execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'generate-secret', '--key-name', 'hello-checkout-1'], { encoding: 'utf8' }));
  await p.editConfig((c) => {
    for (const name of envs) {
      c.environments[name] = {
        colour: 'yellow', confirm: false,
        releasesBucket: `s3://rel/${name}`, cacheBucket: `s3://cache/${name}`, docsBucket: `s3://docs/${name}`,
        s3: { endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' },
        credentials: { source: 'embedded' },
        cache: { signingKeyFile: keyFile, compression: 'zstd', storeOptions: { 'write-nar-listing': 'true' } },
        docker: [{ registry: (name === 'oci' ? fresh : registry).host, repository: `hello-${name}`, tags: ['{version}'], latest: false, tlsVerify: false }],
      };
    }
  });
  p.git('commit', '-q', '-am', 'checkout fault environments');
  await tagLikeReleng(p);
  const b = await releng(['build'], { cwd: p.dir });
  expect(b.code, b.stderr).toBe(0);
}, 600_000);

afterAll(async () => {
  await Promise.all([s3?.stop(), registry?.stop(), fresh?.stop()]);
  await p?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('case 2: one writer of a checkout at a time', () => {
  it('two uploads at once from a fresh build: the second waits for the first, naming it; both exit 0 and the release verifies', async () => {
    // A fresh build: no images prepared, no cache staged (what the two runs raced on).
    for (const d of ['oci', 'cache']) await rm(path.join(p.dir, 'release', d), { recursive: true, force: true });
    await rm(path.join(p.dir, '.releng'), { recursive: true, force: true });
    const [a, b] = await Promise.all([start(upload('race')), start(upload('race'))]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const waited = [a, b].filter((r) => r.stderr.includes('another releng run is writing this checkout'));
    expect(waited.length, 'one of the two runs must have waited for the other').toBe(1);
    expect(waited[0]!.stderr).toMatch(/another releng run is writing this checkout \(pid \d+ on [^,]+, `releng upload`, since \d{4}-\d\d-\d\dT[\d:.]+Z\); waiting up to 600 s/);
    await verifyDeep('race');
  });

  it('RELENG_LOCK_WAIT=0: a run finding the checkout taken fails at once naming the holder, writes nothing; after it, the upload runs', async () => {
    const held = await lockCheckout(p.dir, 'upload', { info: () => undefined });
    const before = await s3.writes();
    try {
      const r = await start(upload('held'), { RELENG_LOCK_WAIT: '0' });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`another releng run is writing this checkout (pid ${process.pid} on ${os.hostname()}, \`releng upload\`, since `);
      expect(r.stderr).toContain('`releng upload` did not start');
      expect(await s3.writes()).toBe(before);
    } finally {
      await held.release();
    }
    const again = await start(upload('held'), { RELENG_LOCK_WAIT: '0' });
    expect(again.code, again.stderr).toBe(0);
    await verifyDeep('held');
  });

  it('a damaged release/oci (a layer blob deleted, another cut short) is rebuilt, not fatal', async () => {
    const oci = path.join(p.dir, 'release', 'oci');
    const prepared = await releng(['upload', '--environment', 'oci', '--dry-run'], { cwd: p.dir }); // prepares release/oci, publishes nothing
    expect(prepared.code, prepared.stderr).toBe(0);
    const images = (await readdir(oci)).filter((n) => /^[0-9a-f]{64}$/.test(n));
    expect(images.length).toBeGreaterThan(0);
    const damage = async (dir: string, how: 'delete' | 'truncate') => {
      const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
      const blob = path.join(dir, manifest.layers[0].digest.slice('sha256:'.length));
      if (how === 'delete') await rm(blob);
      else await writeFile(blob, (await readFile(blob)).subarray(0, 10));
    };
    await damage(path.join(oci, images[0]!), 'delete');
    if (images[1]) await damage(path.join(oci, images[1]), 'truncate');
    // A registry that has none of the blobs: every one is read from release/oci.
    const r = await start(upload('oci'));
    expect(r.code, r.stderr).toBe(0);
    for (const i of images.slice(0, 2)) expect(await dirImageProblem(path.join(oci, i))).toBeUndefined();
    await verifyDeep('oci');
  });

  it('image preparation: runs preparing the same image at once each use a directory of their own', async () => {
    const result = await readBuildResult(path.join(p.dir, 'release'));
    const d = result.dockerImages[0]!;
    const artifact = result.artifacts.find((a) => a.path === d.path)!;
    const tarball = path.join(p.dir, 'release', 'artifacts', d.path);
    for (let round = 0; round < 3; round++) {
      const dir = await mkdtemp(path.join(work, 'oci-'));
      const got = await Promise.all([0, 1, 2].map(() => prepareImage(tarball, artifact.sha256, dir)));
      expect(new Set(got.map((g) => g.digest)).size).toBe(1);
      expect((await readdir(dir)).filter((n) => n.includes('.tmp') || n.includes('.tar'))).toEqual([]);
    }
  });
});

describe('case 3: staged narinfo and .ls files are checked against the store and the key before any write', () => {
  /** Changes bytes of a file in place: same size, same mtime (what the staging memo and the hash memo look at). */
  async function tamper(file: string, change: (text: string) => string): Promise<void> {
    const st = await stat(file);
    const before = await readFile(file, 'utf8');
    const after = change(before);
    expect(after).not.toBe(before);
    expect(Buffer.byteLength(after)).toBe(Buffer.byteLength(before));
    await writeFile(file, after);
    await utimes(file, st.atime, st.mtime);
  }

  it('a narinfo (NarHash digit) and a .ls (narOffset digit) changed after staging are staged again, never sent; the release verifies', async () => {
    // Stage the cache (a dry run stages it locally and publishes nothing).
    const dry = await releng(['upload', '--environment', 'staged', '--dry-run'], { cwd: p.dir });
    expect(dry.code, dry.stderr).toBe(0);
    const staging = path.join(p.dir, 'release', 'cache', 'staged');
    const names = await readdir(staging);
    const narinfo = names.find((n) => n.endsWith('.narinfo'))!;
    const ls = names.find((n) => n.endsWith('.ls') && n !== narinfo.replace('.narinfo', '.ls'))!;
    const good = { narinfo: await readFile(path.join(staging, narinfo), 'utf8'), ls: await readFile(path.join(staging, ls), 'utf8') };
    await tamper(path.join(staging, narinfo), (t) => t.replace(/^(NarHash: sha256:)(.)/m, (_m, a, c) => `${a}${c === '0' ? '1' : '0'}`));
    await tamper(path.join(staging, ls), (t) => t.replace(/"narOffset":(\d)/, (_m, d) => `"narOffset":${d === '9' ? '8' : Number(d) + 1}`));
    const before = await s3.requests();
    const r = await releng(upload('staged'), { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('does not match the local store and the signing key; staging these paths again');
    expect(r.stderr).toContain(`${narinfo}: its NarHash is not the store path's`);
    expect(r.stderr).toMatch(new RegExp(`${ls.replace('.', '\\.')}: does not list the store path: .*narOffset`));
    // Nix staged them again as they were, and that is what the bucket holds.
    expect(await readFile(path.join(staging, narinfo), 'utf8')).toBe(good.narinfo);
    expect(await readFile(path.join(staging, ls), 'utf8')).toBe(good.ls);
    expect(await s3.store.getText('cache', `staged/${narinfo}`)).toBe(good.narinfo);
    expect(await s3.store.getText('cache', `staged/${ls}`)).toBe(good.ls);
    expect((await s3.requests()).length).toBeGreaterThan(before.length);
    await verifyDeep('staged');
  });

  it('the same change to a narinfo already published: the re-run restages it and sends nothing (the bucket holds the right bytes)', async () => {
    const staging = path.join(p.dir, 'release', 'cache', 'staged');
    const names = (await readdir(staging)).filter((n) => n.endsWith('.narinfo'));
    const texts = await Promise.all(names.map((n) => readFile(path.join(staging, n), 'utf8')));
    const narinfo = names[texts.findIndex((t) => /^References: \S/m.test(t))]!;
    await tamper(path.join(staging, narinfo), (t) => t.replace(/^(References: )(.)/m, (_m, a, c) => `${a}${c === '0' ? '1' : '0'}`));
    await s3.resetLog();
    const r = await releng([...upload('staged'), '--json'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${narinfo}: References`);
    expect((await s3.requests()).filter((l) => l.startsWith('PUT '))).toEqual([]);
    await verifyDeep('staged');
  });
});

describe('case 7: upload --deep re-reads what is published and re-sends what differs', () => {
  it('a byte flipped at rest in a release file and a NAR: a plain upload sends nothing and fails naming them, upload --deep sends them again and verifies', async () => {
    const first = await releng(upload('deep'), { cwd: p.dir });
    expect(first.code, first.stderr).toBe(0);
    const nar = (await s3.store.list('cache', 'deep/nar/'))[0]!.key;
    const keys = [['rel', 'deep/hello/hello-1.0.0/hello-1.0.0.tar.gz'], ['cache', nar]] as const;
    for (const [bucket, key] of keys) {
      // Bit rot: other bytes of the same size under releng's metadata (the planned sha256), as a disk
      // or a server changing a stored object would leave it.
      const head = (await s3.store.head(bucket, key))!;
      const file = path.join(work, 'rotten');
      await s3.store.download!(bucket, key, file);
      const bytes = await readFile(file);
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
      await writeFile(file, bytes);
      await s3.store.put({ bucket, key, body: { file }, size: bytes.length, sha256: head.sha256!, contentType: head.contentType ?? 'application/octet-stream' });
      const after = (await s3.store.head(bucket, key))!;
      expect([after.sha256, after.size]).toEqual([head.sha256, head.size]);
      expect((await s3.store.sha256Of!(bucket, key))!.sha256).not.toBe(head.sha256);
    }
    // A plain re-run sends nothing (the metadata says the planned sha256); its closing check reads the
    // contradicted objects and fails naming them, and so does verify --deep: both say upload --deep.
    const plain = await releng(upload('deep'), { cwd: p.dir });
    const caught = await releng(['verify', '--environment', 'deep', '--deep'], { cwd: p.dir });
    for (const r of [plain, caught]) {
      expect(r.code).toBe(1);
      for (const [bucket, key] of keys) expect(r.stderr).toContain(`s3://${bucket}/${key}`);
      expect(r.stderr).toContain('repair: releng upload --environment deep --deep');
    }
    const deep = await releng([...upload('deep'), '--deep', '--verbose'], { cwd: p.dir }); // --verbose: each write with its reason
    expect(deep.code, deep.stderr).toBe(0);
    for (const [bucket, key] of keys) expect(deep.stderr).toMatch(new RegExp(`s3://${bucket}/${key.replace(/[.]/g, '\\.')}.*repair: its metadata names the planned sha256, but its \\d+ bytes read back hash to [0-9a-f]{12} \\(--deep\\)`));
    await verifyDeep('deep');
  });
});
