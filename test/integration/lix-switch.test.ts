// Lix can switch (issue 26): the Lix-shaped fixture at Lix's HEAD (test/fixtures/lix-flake: the
// nix-support/build scope, VERSION-SHORTREV for unofficial builds, release.nix, nix2container image
// descriptions, releaseTests) with examples/lix/releng.json, against s3rver, a docker-registry, a
// bare git remote and a fake Hydra serving release.nix's jobs. In order, on one checkout:
//   1. a rehearsal build of the untagged checkout: named with the package's own version, refused by
//      staging, published to an environment with "unofficial": true (nothing users follow moves);
//   2. a failing release test: the build stops before release/ is laid out, nothing is published;
//   3. the tagged release built by "Lix's Hydra" (release.nix jobs, images from descriptions), uploaded;
//   4. the installers (grant → contribute → index) land where Lix serves them;
//   5. branch-off of release-2.96, and a maintenance release from it that moves nothing users follow.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedCredentials } from '../../lib/local/s3-server.ts';
import { startLocalRegistry, type LocalRegistry } from '../../lib/local/registry-server.ts';
import { releng } from '../helpers/cli.ts';
import { serveDirectory, startFakeHydra, type FakeHydra, type StaticServer } from '../helpers/hydra.ts';
import { lixProject, type LixProject } from '../helpers/lix-project.ts';
import { repoRoot } from '../helpers/project.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { requireTool } from '../helpers/tools.ts';

const V = '2.96.0';
const buckets = { releases: 'releases.staging.lix.systems', cache: 'cache.staging.lix.systems', docs: 'docs.staging.lix.systems', install: 'install.staging.lix.systems' };
const rehearsalBuckets = { releases: 'rehearsal-releases', cache: 'rehearsal-cache', docs: 'rehearsal-docs' };
const allSystems = ['x86_64-linux', 'aarch64-linux', 'aarch64-darwin'];
const nixEnv = { ...process.env, NIX_CONFIG: 'substituters =\nexperimental-features = nix-command flakes' };
const sh = (cmd: string, args: string[], cwd?: string) => execFileSync(cmd, args, { cwd, encoding: 'utf8', env: nixEnv, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 }).trim();
const isValid = (p: string) => { try { sh('nix-store', ['--check-validity', p]); return true; } catch { return false; } };

describe('Lix at HEAD switches to releng: rehearsal, release tests, its Hydra, installers, branch-off', () => {
  let s3: TestS3;
  let registry: LocalRegistry;
  let hydra: FakeHydra;
  let cache: StaticServer;
  let p: LixProject;
  let work: string;
  let regDir: string;
  const env = { AWS_ACCESS_KEY_ID: embeddedCredentials.accessKeyId, AWS_SECRET_ACCESS_KEY: embeddedCredentials.secretAccessKey };
  const keys = async (bucket: string) => (await s3.store.list(bucket, '')).map((o) => o.key).sort();
  const get = async (bucket: string, key: string) => {
    const res = await fetch(`${s3.endpoint}/${bucket}/${key}`);
    expect(res.status, `${bucket}/${key}`).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  };
  const run = (args: string[]) => releng(args, { cwd: p.dir, env });
  const buildResult = async () => JSON.parse(await readFile(path.join(p.dir, 'release/build-result.json'), 'utf8'));

  beforeAll(async () => {
    for (const [t, pkg] of [['nix-build', 'nix-bin'], ['git', 'git'], ['skopeo', 'skopeo'], ['docker-registry', 'docker-registry'], ['xz', 'xz-utils']]) requireTool(t!, pkg!);
    work = await mkdtemp(path.join(os.tmpdir(), 'releng-lix-switch-'));
    s3 = await startTestS3([...Object.values(buckets), ...Object.values(rehearsalBuckets)]);
    regDir = path.join(work, 'registry');
    registry = await startLocalRegistry({ dir: regDir });
    hydra = await startFakeHydra();
    cache = await serveDirectory(path.join(work, 'cache'));
    sh('nix-store', ['--generate-binary-cache-key', 'hydra-afnix-test-1', path.join(work, 'hydra.sec'), path.join(work, 'hydra.pub')]);
    p = await lixProject('staging', { s3Endpoint: s3.endpoint, registryHost: registry.host });
    // Store paths of this run alone (src is in every job), so deleting them touches no other test.
    await writeFile(path.join(p.dir, 'src', 'run-id'), `${process.pid}-${Date.now()}-${Math.random()}\n`);
    const config = JSON.parse(await readFile(path.join(p.dir, 'releng.json'), 'utf8'));
    // The example's Hydra mapping as it is; only where the Hydra and its cache are.
    config.hydra = { ...config.hydra, url: hydra.url, cache: cache.url, trustedPublicKeys: [(await readFile(path.join(work, 'hydra.pub'), 'utf8')).trim()] };
    // A rehearsal environment: staging's settings, buckets of its own, no registries, unofficial builds allowed.
    const st = config.environments.staging;
    config.environments.rehearsal = {
      ...st, colour: 'blue', releasesBucket: `s3://${rehearsalBuckets.releases}`, cacheBucket: `s3://${rehearsalBuckets.cache}`, docsBucket: `s3://${rehearsalBuckets.docs}`,
      docker: [], git: undefined, uploaders: undefined, grants: undefined, $comment: undefined, unofficial: true, confirm: false,
    };
    await writeFile(path.join(p.dir, 'releng.json'), JSON.stringify(config, null, 2) + '\n');
    p.git('add', '-A');
    p.git('commit', '-q', '-m', 'run id; the Hydra of this test; a rehearsal environment');
  }, 300_000);
  afterAll(async () => {
    await cache?.stop();
    await hydra?.stop();
    await registry?.stop();
    await s3?.stop();
    await p?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a rehearsal: the untagged checkout builds as VERSION-SHORTREV (the package\'s version), staging refuses it, the rehearsal environment takes it', async () => {
    const rev = p.git('rev-parse', '--short=7', 'HEAD');
    const pv = `${V}-${rev}`;
    const b = await run(['build', '--json']);
    expect(b.code, b.stderr).toBe(0);
    const result = await buildResult();
    expect(result).toMatchObject({ version: pv, versionJson: V, official: false, rehearsal: true, tag: null, releaseDir: `lix/lix-${pv}` });
    expect(result.releaseTests.map((t: any) => t.attr)).toEqual(JSON.parse(await readFile(path.join(repoRoot, 'examples/lix/releng.json'), 'utf8')).profiles.all.releaseTests);
    const names = result.artifacts.map((a: any) => a.path.slice(`lix/lix-${pv}/`.length)).filter((n: string) => !n.startsWith('manual/'));
    expect(names).toEqual(expect.arrayContaining([...allSystems.map((s) => `lix-${pv}-${s}.tar.xz`), `lix-${pv}-docker-image-x86_64-linux.tar.gz`, `lix-${pv}-manual.tar.gz`, `lix-${pv}.tar.gz`]));
    // The evaluated derivations are rooted (Lix: nix-eval-jobs --gc-roots-dir release/gcroots).
    expect(sh('nix-store', ['--gc', '--print-roots'])).toContain(path.join(p.dir, 'release/gcroots/tarballs.drv'));

    const before = await keys(buckets.releases);
    const refused = await run(['upload', '--environment', 'staging', '--noconfirm']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`is a rehearsal build (${pv}, from an untagged checkout of unofficial ${V}), and environment "staging" does not take unofficial releases`);
    expect(refused.stderr).toContain('upload it to rehearsal (environments with "unofficial": true)');
    expect(await keys(buckets.releases)).toEqual(before);

    const up = await run(['upload', '--environment', 'rehearsal', '--noconfirm']);
    expect(up.code, up.stderr).toBe(0);
    const published = await keys(rehearsalBuckets.releases);
    expect(published).toContain(`lix/lix-${pv}/lix-${pv}-x86_64-linux.tar.xz`);
    expect(published).not.toContain('manifest.nix'); // the root manifest is what `nix upgrade-nix` follows
    expect(up.stderr).toContain(`skip root manifest.nix of s3://${rehearsalBuckets.releases}: ${pv} is an unofficial (rehearsal) build`);
    expect((await keys(rehearsalBuckets.docs)).every((k) => k.startsWith('manual/lix/nightly/'))).toBe(true);
    const verify = await run(['verify', '--environment', 'rehearsal', '--deep']);
    expect(verify.code, verify.stderr).toBe(0);
    // Nor does a rehearsal become staging's release through promote.
    const promoted = await run(['promote', pv, '--from', 'rehearsal', '--environment', 'staging', '--noconfirm']);
    expect(promoted.code).toBe(1);
    expect(promoted.stderr).toContain('environment "rehearsal" takes unofficial (rehearsal) releases, and "staging" does not');
    expect(await keys(buckets.releases)).toEqual(before);
  }, 600_000);

  it('a failing release test stops the build before release/ is laid out: nothing is published', async () => {
    const nixSh = path.join(p.dir, 'src/nix.sh');
    const good = await readFile(nixSh, 'utf8');
    // The package still builds (it only substitutes the version in); the static build runs it and fails.
    await writeFile(nixSh, good.replace('#!/bin/sh\n', '#!/bin/sh\necho "broken" >&2; exit 3\n'));
    p.git('commit', '-q', '-am', 'break nix');
    const releasesBefore = await keys(rehearsalBuckets.releases);
    const b = await run(['build']);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/release tests? failed; the release stops here/);
    expect(b.stderr).toContain('.#releaseTests.x86_64-linux.staticBuild');
    await expect(readFile(path.join(p.dir, 'release/build-result.json'))).rejects.toThrow(/ENOENT/);
    const up = await run(['upload', '--environment', 'rehearsal', '--noconfirm']);
    expect(up.code).toBe(1);
    expect(up.stderr).toContain('no build result');
    expect(await keys(rehearsalBuckets.releases)).toEqual(releasesBefore);
    p.git('reset', '-q', '--hard', 'HEAD~1');
  }, 600_000);

  it('the tagged release from Lix\'s Hydra: release.nix\'s jobs, images assembled from their descriptions, uploaded and verified', async () => {
    for (const cmd of [['prepare', '--date', '2026-12-01'], ['tag']]) {
      const r = await run(cmd);
      expect(r.code, `${cmd[0]}: ${r.stderr}`).toBe(0);
    }
    const tagCommit = p.git('rev-parse', `${V}^{commit}`);
    // The jobset: release.nix with systems = Lix's, as Hydra evaluates it (job names = attribute paths).
    const jobs: { attr: string; drvPath: string; system: string; name: string; outputs: Record<string, string> }[] = JSON.parse(sh('nix-instantiate', ['--eval', '--strict', '--json', '--read-write-mode', '--expr',
      `import ${repoRoot}/nix/eval-jobs.nix { jobs = import ${p.dir}/release.nix { systems = [ "x86_64-linux" "aarch64-linux" "aarch64-darwin" "i686-linux" ]; }; }`], p.dir));
    const names = jobs.map((j) => j.attr);
    expect(names).toEqual(expect.arrayContaining(['build.i686-linux', 'dockerImage.aarch64-linux', 'release.x86_64-linux', 'binaryTarball.aarch64-darwin']));
    expect(names.filter((n) => n.startsWith('tarballs'))).toEqual([]); // no aggregate of release files on Lix's Hydra
    sh('nix-store', ['--realise', ...jobs.map((j) => j.drvPath)]);
    const outputs = [...new Set(jobs.flatMap((j) => Object.values(j.outputs)))];
    sh('nix', ['copy', '--to', `file://${path.join(work, 'cache')}?secret-key=${path.join(work, 'hydra.sec')}`, ...outputs]);
    let id = 500;
    const all: number[] = [];
    for (const j of jobs) {
      all.push(++id);
      await hydra.addBuild({ id, job: j.attr, nixname: j.name, project: 'lix', jobset: 'release-2.96', system: j.system, out: j.outputs.out!, outputs: j.outputs, evals: [41], drvPath: j.drvPath });
    }
    // A release.nix jobset's inputs: the checkout (lixSrc), nixpkgs, and the systems list.
    hydra.addEval({ id: 41, builds: all, project: 'lix', jobset: 'release-2.96', inputs: {
      lixSrc: { type: 'git', uri: 'https://git.lix.systems/lix-project/lix', revision: tagCommit },
      nixpkgs: { type: 'git', uri: 'https://github.com/NixOS/nixpkgs', revision: '0123456789abcdef0123456789abcdef01234567' },
    } });
    // Nothing of the release stays in the local store: the Hydra path must fetch it.
    await rm(path.join(p.dir, 'release/gcroots'), { recursive: true, force: true });
    // (with what refers to them: the image's copyToRoot links to nix; all of this run alone, by the run id in src)
    sh('nix-store', ['--delete', ...sh('nix-store', ['--query', '--referrers-closure', ...outputs]).split('\n')]);
    expect(isValid(jobs.find((j) => j.attr === 'build.x86_64-linux')!.outputs.out!)).toBe(false);

    const b = await run(['build', '--from-hydra', `${hydra.url}/eval/41`, '--json']);
    expect(b.code, b.stderr).toBe(0);
    const result = await buildResult();
    expect(result).toMatchObject({ version: V, official: true, tag: V, hydra: { evalId: 41, revision: tagCommit } });
    expect(Object.keys(result.hydra.builds).sort()).toEqual([...allSystems.flatMap((s) => [`binaryTarball.${s}`, `build.${s}`]), 'dockerImage.aarch64-linux', 'dockerImage.x86_64-linux'].sort());
    // The debug output of aarch64-darwin's build (Lix's separateDebugInfo) comes along to the cache.
    expect(result.outPaths).toContain(jobs.find((j) => j.attr === 'build.aarch64-darwin')!.outputs.debug);
    // The image assembled from the nix2container description: its config, the nix layer, copyToRoot at / with /tmp 1777.
    const image = path.join(p.dir, 'release/artifacts/lix', `lix-${V}`, `lix-${V}-docker-image-aarch64-linux.tar.gz`);
    const x = path.join(work, 'image');
    sh('mkdir', ['-p', x]);
    sh('tar', ['-xzf', image, '-C', x]);
    const manifest = JSON.parse(await readFile(path.join(x, 'manifest.json'), 'utf8'));
    expect(manifest[0].RepoTags).toEqual([`lix:${V}`]);
    const config = JSON.parse(await readFile(path.join(x, manifest[0].Config), 'utf8'));
    expect(config).toMatchObject({ architecture: 'arm64', os: 'linux', config: { Cmd: ['/bin/nix'] } });
    expect(config.rootfs.diff_ids).toHaveLength(2);
    for (const [i, l] of (manifest[0].Layers as string[]).entries()) {
      expect(`sha256:${createHash('sha256').update(await readFile(path.join(x, l))).digest('hex')}`).toBe(config.rootfs.diff_ids[i]);
    }
    const nixOut = jobs.find((j) => j.attr === 'build.aarch64-linux')!.outputs.out!;
    expect(sh('tar', ['-tf', path.join(x, manifest[0].Layers[0])])).toContain(`${nixOut.slice(1)}/bin/nix`);
    const root = sh('tar', ['-tvf', path.join(x, manifest[0].Layers[1])]);
    expect(root).toMatch(/^drwxrwxrwt root\/root .* tmp\/$/m);
    expect(root).toMatch(/^-r--r--r-- root\/root .* etc\/passwd$/m);
    expect(root).toMatch(/^drwxrwxrwt root\/root .* var\/tmp\/$/m);
    expect(root).not.toMatch(/ \d\d:\d\d nix\/store/); // rewritten to /, not under its store path

    const up = await run(['upload', '--environment', 'staging', '--noconfirm']);
    expect(up.code, up.stderr).toBe(0);
    expect(await keys(buckets.releases)).toContain('manifest.nix');
    for (const tag of [V, '2.96', 'latest']) {
      const { stdout } = await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/lix-project/lix-releng-staging:${tag}`]);
      expect(JSON.parse(stdout).manifests.map((m: any) => m.platform.architecture).sort(), tag).toEqual(['amd64', 'arm64']);
    }
    const verify = await run(['verify', '--environment', 'staging', '--deep']);
    expect(verify.code, verify.stderr).toBe(0);
  }, 600_000);

  it('installers land where Lix serves them: lix/lix-VERSION/lix-installer-SYSTEM and the copies at lix/', async () => {
    const grantFile = path.join(work, 'grant-installers.json');
    const g = await run(['grant', 'installers', '--environment', 'staging', '--version', V, '--output', grantFile]);
    expect(g.code, g.stderr).toBe(0);
    const builder = path.join(work, 'installer-builder');
    sh('mkdir', ['-p', builder]);
    const systems = ['aarch64-darwin', 'aarch64-linux', 'x86_64-linux'];
    for (const s of systems) await writeFile(path.join(builder, `lix-installer-${s}`), `installer ${V} ${s}\n`);
    const c = await releng(['contribute', '--grant', grantFile, ...systems.map((s) => `lix-installer-${s}`)], { cwd: builder, env });
    expect(c.code, c.stderr).toBe(0);
    const i = await run(['index', '--environment', 'staging', '--noconfirm']);
    expect(i.code, i.stderr).toBe(0);
    const published = await keys(buckets.install);
    for (const s of systems) {
      expect(published).toContain(`lix/lix-${V}/lix-installer-${s}`);
      expect(published).toContain(`lix/lix-installer-${s}`);
      expect((await get(buckets.install, `lix/lix-installer-${s}`)).toString()).toBe(`installer ${V} ${s}\n`);
    }
    expect(published.filter((k) => k.startsWith('incoming/') && !k.endsWith('.rejected'))).toEqual([]);
    // Not in the releases bucket: Lix serves installers from install.lix.systems.
    expect((await keys(buckets.releases)).filter((k) => k.includes('installer'))).toEqual([]);
  }, 300_000);

  it('branch-off: release-2.96 at the merge commit, here and on the remote; a maintenance release from it moves nothing users follow', async () => {
    const record = JSON.parse(await readFile(path.join(p.dir, 'release/tag.json'), 'utf8'));
    const b = await run(['branch-off', '--environment', 'staging', '--noconfirm', '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout).result).toMatchObject({ branch: 'release-2.96', commit: record.mergeCommit, created: true, pushed: true });
    expect(p.git('rev-parse', 'release-2.96')).toBe(record.mergeCommit);
    expect(execFileSync('git', ['ls-remote', p.remote, 'refs/heads/release-2.96'], { encoding: 'utf8' })).toContain(record.mergeCommit);
    const again = await run(['branch-off', '--environment', 'staging', '--noconfirm']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`refs/heads/release-2.96 is already on the remote at ${record.mergeCommit.slice(0, 12)}`);

    // The main line moves on: 2.97.0, released from main.
    p.git('checkout', '-q', 'main');
    const vj = path.join(p.dir, 'version.json');
    const setVersion = async (v: string) => writeFile(vj, JSON.stringify({ version: v, official_release: false, release_name: 'Fixture Pastry' }, null, 4) + '\n');
    await setVersion('2.97.0');
    p.git('commit', '-q', '-am', 'version.json: 2.97.0');
    const r97 = await run(['release', '--environment', 'staging', '--noconfirm', '--date', '2026-12-02']);
    expect(r97.code, r97.stderr).toBe(0);
    const manifest97 = (await get(buckets.releases, 'manifest.nix')).toString();
    const stable97 = (await get(buckets.docs, 'manual/lix/stable/index.html')).toString();
    expect(stable97).toContain('Lix 2.97.0 reference manual');
    const latest = async () => JSON.parse((await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/lix-project/lix-releng-staging:latest`])).stdout);
    const latest97 = await latest();

    // A maintenance release from release-2.96: 2.96.1.
    p.git('checkout', '-q', 'release-2.96');
    await setVersion('2.96.1');
    p.git('commit', '-q', '-am', 'version.json: 2.96.1');
    const r961 = await run(['release', '--environment', 'staging', '--noconfirm', '--date', '2026-12-03']);
    expect(r961.code, r961.stderr).toBe(0);
    expect(r961.stderr).toContain('2.96.1 is a maintenance release (a newer version is tagged on main)');
    expect((await keys(buckets.releases))).toContain('lix/lix-2.96.1/manifest.nix');
    expect((await get(buckets.releases, 'manifest.nix')).toString()).toBe(manifest97);
    expect((await get(buckets.docs, 'manual/lix/stable/index.html')).toString()).toBe(stable97);
    expect((await get(buckets.docs, 'manual/lix/2.96/index.html')).toString()).toContain('Lix 2.96.1 reference manual');
    expect(await latest()).toEqual(latest97);
    // tag merged back into release-2.96, which the git push moved on the remote
    expect(execFileSync('git', ['ls-remote', p.remote, 'refs/heads/release-2.96'], { encoding: 'utf8' })).toContain(p.git('rev-parse', 'release-2.96'));
    expect(p.git('merge-base', '--is-ancestor', record.mergeCommit, 'release-2.96') === '').toBe(true);
  }, 600_000);

  it('branch-off refuses a branch that exists elsewhere, on the remote or here, and a maintenance version', async () => {
    const remoteGit = (...args: string[]) => execFileSync('git', ['-C', p.remote, ...args], { encoding: 'utf8' }).trim();
    // 2.96.1 (tagged on release-2.96 above): a maintenance release, not a new major.
    p.git('checkout', '-q', '2.96.1');
    const r0 = await run(['branch-off', '--environment', 'staging', '--noconfirm']);
    expect(r0.code).toBe(1);
    expect(r0.stderr).toContain('2.96.1 is not the first release of a major (X.Y.0)');
    // Back at 2.96.0's tag, with a record whose merge commit is not release-2.96's.
    p.git('checkout', '-q', `${V}`);
    const other = p.git('rev-parse', '2.96.1^{commit}');
    const before = remoteGit('rev-parse', 'refs/heads/release-2.96');
    // (main's tip: on neither release-2.96 nor 2.96.1's history)
    await writeFile(path.join(p.dir, 'release/tag.json'), JSON.stringify({ version: V, branch: 'main', releaseCommit: p.git('rev-parse', `${V}^{commit}`), mergeCommit: p.git('rev-parse', 'main') }, null, 2) + '\n');
    const r = await run(['branch-off', '--environment', 'staging', '--noconfirm', '--branch', 'release-2.96']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/release-2\.96 exists here at [0-9a-f]{12}, which does not contain the merge commit/);
    expect(remoteGit('rev-parse', 'refs/heads/release-2.96')).toBe(before);
    remoteGit('update-ref', 'refs/heads/release-x', other);
    const r2 = await run(['branch-off', '--environment', 'staging', '--noconfirm', '--branch', 'release-x']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(`already has release-x at ${other.slice(0, 12)}, which does not contain the merge commit`);
    expect(() => p.git('rev-parse', '--verify', '-q', 'refs/heads/release-x')).toThrow(); // nothing created here either
  }, 120_000);
});
