// build --from-hydra (issue 15) against a fake Hydra in Hydra's real JSON shapes whose builds are real
// store paths, served from a real binary cache (nix copy --to file://…?secret-key=…, behind an HTTP
// server). The outputs are deleted from the local store first, so the Hydra path really fetches them.
// The release it lays out must equal a local build's, file for file; the refusals write nothing.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, readlink, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releng } from '../helpers/cli.ts';
import { serveDirectory, startFakeHydra, type FakeHydra, type StaticServer } from '../helpers/hydra.ts';
import { repoRoot, scratchProject, type ScratchProject } from '../helpers/project.ts';
import { tagLikeReleng } from '../helpers/tagged.ts';
import { requireTool } from '../helpers/tools.ts';

const nixEnv = { ...process.env, NIX_CONFIG: 'substituters =\nexperimental-features = nix-command flakes' };
const sh = (cmd: string, args: string[], cwd?: string) => execFileSync(cmd, args, { cwd, encoding: 'utf8', env: nixEnv, stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** Every file under dir (symlinks as their target): relative path → "size sha256". */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const abs = path.join(e.parentPath ?? (e as any).path, e.name);
    const rel = path.relative(dir, abs);
    const st = await lstat(abs);
    if (st.isSymbolicLink()) out[rel] = `-> ${await readlink(abs)}`;
    else if (st.isFile()) out[rel] = `${st.size} ${createHash('sha256').update(await readFile(abs)).digest('hex')}`;
  }
  return out;
}

const isValid = (p: string) => { try { sh('nix-store', ['--check-validity', p]); return true; } catch { return false; } };

describe('build --from-hydra: a release from what Hydra built', () => {
  let p: ScratchProject;
  let hydra: FakeHydra;
  let cache: StaticServer;
  let work: string;
  let cacheDir: string;
  let untrustedCacheDir: string;
  let tagCommit: string;
  let outputs: string[];
  let local: Record<string, string>;
  let manualOut: string;
  let queuedManual: number;
  const profile = ['--profile', 'x86_64-linux-only'];
  const release = () => path.join(p.dir, 'release');

  beforeAll(async () => {
    requireTool('nix', 'nix-bin');
    requireTool('xz', 'xz-utils');
    work = await mkdtemp(path.join(os.tmpdir(), 'releng-hydra-'));
    cacheDir = path.join(work, 'cache');
    untrustedCacheDir = path.join(work, 'cache-untrusted');
    hydra = await startFakeHydra();
    cache = await serveDirectory(cacheDir);
    for (const name of ['hydra', 'intruder']) sh('nix-store', ['--generate-binary-cache-key', `${name}-test-1`, path.join(work, `${name}.sec`), path.join(work, `${name}.pub`)]);
    const trusted = (await readFile(path.join(work, 'hydra.pub'), 'utf8')).trim();

    p = await scratchProject();
    // Store paths of this run alone (the src is in every job), so deleting them touches no other test.
    await writeFile(path.join(p.dir, 'src', 'run-id'), `${process.pid}-${Date.now()}-${Math.random()}\n`);
    await p.editConfig((c) => { c.hydra = { url: hydra.url, cache: cache.url, trustedPublicKeys: [trusted] }; });
    p.git('add', '-A');
    p.git('commit', '-q', '-m', 'run id, hydra');
    await tagLikeReleng(p, '1.0.0');
    tagCommit = p.git('rev-parse', '1.0.0^{commit}');

    // The local build: the reference release.
    const r = await releng(['build', ...profile], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    local = { ...prefixed('artifacts', await snapshot(path.join(release(), 'artifacts'))), ...prefixed('manual', await snapshot(path.join(release(), 'manual'))) };

    // The same jobs as Hydra evaluates them (job names = attribute paths), with their real derivations.
    const jobs: { attr: string; drvPath: string; system: string; name: string; outputs: Record<string, string> }[] = JSON.parse(sh('nix-instantiate', ['--eval', '--strict', '--json', '--read-write-mode', '--expr',
      `import ${repoRoot}/nix/eval-jobs.nix { jobs = import ${p.dir}/release.nix { systems = [ "x86_64-linux" ]; dockerSystems = [ "x86_64-linux" ]; }; }`], p.dir));
    // What a release consists of (build, binaryTarball, dockerImage, manual): the `deb` job is for
    // `releng contribute`/`index` (docs/grants-and-index.md), not fetched by build --from-hydra.
    outputs = jobs.filter((j) => !j.attr.startsWith('deb.')).flatMap((j) => Object.values(j.outputs));
    // Hydra's cache, signed with Hydra's key; and the same paths signed by a key nobody trusts.
    sh('nix', ['copy', '--to', `file://${cacheDir}?secret-key=${path.join(work, 'hydra.sec')}`, ...outputs]);
    sh('nix', ['copy', '--to', `file://${untrustedCacheDir}?secret-key=${path.join(work, 'intruder.sec')}`, ...outputs]);

    let id = 100;
    const builds: Record<string, number> = {};
    for (const j of jobs) {
      builds[j.attr] = ++id;
      await hydra.addBuild({ id, job: j.attr, nixname: j.name, project: 'hello', jobset: 'release', system: j.system, out: j.outputs.out!, evals: [5, 6, 7, 9], drvPath: j.drvPath });
    }
    const failedManual = ++id;
    await hydra.addBuild({ id: failedManual, job: 'manual', nixname: 'hello-manual', project: 'hello', jobset: 'release', out: jobs.find((j) => j.attr === 'manual')!.outputs.out!, evals: [6], buildstatus: 1 });
    manualOut = jobs.find((j) => j.attr === 'manual')!.outputs.out!;
    queuedManual = ++id;
    await hydra.addBuild({ id: queuedManual, job: 'manual', nixname: 'hello-manual', project: 'hello', jobset: 'release', out: jobs.find((j) => j.attr === 'manual')!.outputs.out!, evals: [9], finished: false });
    const all = Object.values(builds);
    const others = jobs.filter((j) => j.attr !== 'manual').map((j) => builds[j.attr]!);
    const input = (revision: string) => ({ hello: { type: 'git', uri: 'https://git.example.invalid/hello', revision } });
    hydra.addEval({ id: 5, builds: all, inputs: input('0123456789abcdef0123456789abcdef01234567'), project: 'hello', jobset: 'release' });
    hydra.addEval({ id: 6, builds: [...others, failedManual], inputs: input(tagCommit), project: 'hello', jobset: 'release' });
    hydra.addEval({ id: 7, builds: all, inputs: input(tagCommit), project: 'hello', jobset: 'release' });
    hydra.addEval({ id: 9, builds: [...others, queuedManual], inputs: input(tagCommit), project: 'hello', jobset: 'release' });

    // Nothing of the release stays in the local store: the Hydra path must fetch it.
    await rm(path.join(release(), 'gcroots'), { recursive: true, force: true });
    sh('nix-store', ['--delete', ...outputs]);
    for (const o of outputs) expect(isValid(o), o).toBe(false);
  }, 600_000);

  afterAll(async () => {
    await hydra?.stop();
    await cache?.stop();
    await p?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  function prefixed(prefix: string, s: Record<string, string>): Record<string, string> {
    return Object.fromEntries(Object.entries(s).map(([k, v]) => [`${prefix}/${k}`, v]));
  }

  /** Runs a refused build and checks that release/ is byte for byte what it was. */
  async function refused(args: string[], code: number) {
    const before = await snapshot(release());
    const r = await releng(['build', ...profile, ...args], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(code);
    expect(await snapshot(release())).toEqual(before);
    return r;
  }

  it('refuses an evaluation of another revision', async () => {
    const r = await refused(['--from-hydra', `${hydra.url}/eval/5`], 1);
    expect(r.stderr).toContain(`no evaluation of commit ${tagCommit} (tag 1.0.0)`);
    expect(r.stderr).toContain(`${hydra.url}/eval/5 built 0123456789abcdef0123456789abcdef01234567`);
  });

  it('a job not finished yet: exit 5 ("not ready"), with --json naming it', async () => {
    const r = await refused(['--from-hydra', `${hydra.url}/eval/9`, '--json'], 5);
    const out = JSON.parse(r.stdout);
    expect(out.exitStatus).toBe(5);
    expect(out.result.unfinished).toEqual(['manual']);
    expect(r.stderr).toContain('not finished yet');
  });

  it('refuses a failed job', async () => {
    const r = await refused(['--from-hydra', `${hydra.url}/eval/6`], 1);
    expect(r.stderr).toMatch(/release job did not succeed:\n\s+manual failed \(http:\/\/127\.0\.0\.1:\d+\/build\/\d+\)/);
  });

  it('refuses a cache signed with a key not in hydra.trustedPublicKeys', async () => {
    await rename(cacheDir, `${cacheDir}.good`);
    await rename(untrustedCacheDir, cacheDir);
    try {
      const r = await refused(['--from-hydra', `${hydra.url}/eval/7`], 1);
      expect(r.stderr).toContain('not signed by a key in hydra.trustedPublicKeys');
      for (const o of outputs) expect(isValid(o), o).toBe(false);
    } finally {
      await rename(cacheDir, untrustedCacheDir);
      await rename(`${cacheDir}.good`, cacheDir);
    }
  });

  it('refuses when a path is missing from the cache', async () => {
    const narinfo = path.join(cacheDir, `${path.basename(manualOut).slice(0, 32)}.narinfo`);
    await rename(narinfo, `${narinfo}.away`);
    try {
      const r = await refused(['--from-hydra', `${hydra.url}/eval/7`], 1);
      expect(r.stderr).toContain('lacks a path of the release');
      expect(isValid(manualOut)).toBe(false);
    } finally {
      await rename(`${narinfo}.away`, narinfo);
    }
  });

  it("the jobset's latest finished evaluation: fetched from the cache, the same release/ as the local build", async () => {
    const r = await releng(['build', ...profile, '--from-hydra', `${hydra.url}/jobset/hello/release`, '--json'], { cwd: p.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`evaluation ${hydra.url}/eval/7 of ${tagCommit}`);
    for (const o of outputs) expect(isValid(o), o).toBe(true);
    const fromHydra = { ...prefixed('artifacts', await snapshot(path.join(release(), 'artifacts'))), ...prefixed('manual', await snapshot(path.join(release(), 'manual'))) };
    expect(Object.keys(fromHydra).length).toBeGreaterThan(10);
    expect(fromHydra).toEqual(local);
    const result = JSON.parse(await readFile(path.join(release(), 'build-result.json'), 'utf8'));
    expect(result.hydra).toMatchObject({ url: hydra.url, evalId: 7, evalUrl: `${hydra.url}/eval/7`, cache: cache.url, revision: tagCommit });
    expect(Object.keys(result.hydra.builds).sort()).toEqual(['binaryTarball.x86_64-linux', 'build.x86_64-linux', 'dockerImage.x86_64-linux', 'manual']);
    expect(result.drvs).toEqual([]);
    // The manifest check, as a user does it: Nix reads manifest.nix, each entry is that system's program.
    const manifest = JSON.parse(sh('nix-instantiate', ['--eval', '--strict', '--json', path.join(release(), 'artifacts', 'manifest.nix')]));
    expect(sh(`${manifest['x86_64-linux']}/bin/hello`, [])).toContain('hello 1.0.0, x86_64-linux');
    expect(sh('sha256sum', ['-c', 'SHA256SUMS'], path.join(release(), 'artifacts/hello/hello-1.0.0'))).not.toContain('FAILED');
  }, 300_000);

  it('upload publishes the Hydra-built release unchanged (build-result.json without derivations)', async () => {
    // As the RunCommand script runs it: unattended (HYDRA_JSON set), --noconfirm, plain lines.
    const r = await releng(['upload', '--noconfirm', '--json'], { cwd: p.dir, env: { HYDRA_JSON: path.join(work, 'any.json') } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('released hello 1.0.0 to local');
    expect(r.stderr).not.toMatch(/\x1b\[/);
    expect(JSON.parse(r.stdout).ok).toBe(true);
  }, 300_000);

  it('--hydra-json: the build named by Hydra\'s RunCommand file leads to its evaluation', async () => {
    const file = path.join(work, 'hydra.json');
    const b = hydra.builds.get([...hydra.builds.keys()].find((id) => hydra.builds.get(id).job === 'build.x86_64-linux')!);
    await writeFile(file, JSON.stringify({
      event: 'buildFinished', build: b.id, finished: true, timestamp: b.timestamp, project: 'hello', jobset: 'release', job: b.job, drvPath: b.drvpath,
      startTime: b.starttime, stopTime: b.stoptime, buildStatus: 0, nixName: b.nixname, system: b.system, homepage: null, description: null, license: null,
      outputs: [{ name: 'out', path: b.buildoutputs.out.path }], products: [], metrics: [],
    }));
    // The newest evaluation of the tag's commit holding that build (9) still builds the manual: not ready.
    const early = await releng(['build', ...profile, '--hydra-json', file], { cwd: p.dir, env: { HYDRA_JSON: file } });
    expect(early.code, early.stderr).toBe(5);
    expect(early.stderr).toContain(`evaluation ${hydra.url}/eval/9: 1 release job not finished yet`);
    // Hydra finishes it; the next RunCommand run takes evaluation 9.
    await hydra.addBuild({ id: queuedManual, job: 'manual', nixname: 'hello-manual', project: 'hello', jobset: 'release', out: manualOut, evals: [9] });
    const r = await releng(['build', ...profile, '--hydra-json', file, '--json'], { cwd: p.dir, env: { HYDRA_JSON: file } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`evaluation ${hydra.url}/eval/9 of ${tagCommit}`);
    expect(JSON.parse(r.stdout).result.hydra).toMatchObject({ evalId: 9, builds: { manual: queuedManual } });
  }, 300_000);

  it('--builders and --max-jobs reach nix-store (dry run prints them; a builder that does not exist fails the build)', async () => {
    const dry = await releng(['build', ...profile, '--builders', 'ssh://releng-no-such-builder.invalid x86_64-linux', '--max-jobs', '0', '--dry-run'], { cwd: p.dir });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toContain("[dry-run] nix-store --realise --option builders ssh://releng-no-such-builder.invalid x86_64-linux --max-jobs 0 /nix/store/");
    // Profile `all` has aarch64-linux jobs not built yet: with no local jobs, Nix must use the builder, which does not exist.
    const remote = await releng(['build', '--profile', 'all', '--builders', 'ssh://releng-no-such-builder.invalid x86_64-linux', '--max-jobs', '0'], { cwd: p.dir });
    expect(remote.code).toBe(1);
    expect(remote.stderr).toContain('1 available machines');
    expect(remote.stderr).toContain('unable to start any build');
    const bad = await releng(['build', ...profile, '--max-jobs', 'many'], { cwd: p.dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--max-jobs many: expected a number');
    const both = await releng(['build', ...profile, '--from-hydra', `${hydra.url}/eval/7`, '--max-jobs', '2'], { cwd: p.dir });
    expect(both.code).toBe(2);
  }, 300_000);
});
