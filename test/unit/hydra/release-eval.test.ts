// build --from-hydra's reads (issue 15) against the fake Hydra in Hydra's shapes: which evaluation,
// which revision, which jobs; retries of the new reads; refusals with the exit status they carry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NothingToDo, ReleaseError } from '../../../lib/core/errors.ts';
import { evalRevision, resolveHydraRelease } from '../../../lib/hydra/release-eval.ts';
import { resolveMapping } from '../../../lib/nix/release-jobs.ts';
import { startFakeHydra, type FakeHydra } from '../../helpers/hydra.ts';

const rev = 'a'.repeat(40);
const other = 'b'.repeat(40);
const sp = (n: string) => `/nix/store/${'1'.repeat(31)}${n.length % 10}-${n}`;

describe('resolveHydraRelease', () => {
  let h: FakeHydra;
  const mapping = resolveMapping(undefined, 'hello', undefined);
  const base = { expectedRevision: rev, version: '1.0.0', mapping, systems: ['x86_64-linux'], dockerSystems: ['x86_64-linux'], profileName: 'x', retry: { baseDelayMs: 1, maxDelayMs: 2 } };
  const jobs = ['build.x86_64-linux', 'binaryTarball.x86_64-linux', 'dockerImage.x86_64-linux', 'manual'];

  beforeAll(async () => {
    h = await startFakeHydra();
    let id = 10;
    for (const job of jobs) await h.addBuild({ id: ++id, job, nixname: job, out: sp(job), evals: job === 'manual' ? [1] : [1, 2], drvPath: `${sp(job)}.drv` });
    await h.addBuild({ id: 20, job: 'tests.x86_64-linux', nixname: 'tests', out: sp('tests'), evals: [1], buildstatus: 1 });
    h.addEval({ id: 1, builds: [11, 12, 13, 14, 20], inputs: { hello: { type: 'git', uri: 'https://x/hello', revision: rev } } });
    h.addEval({ id: 2, builds: [11, 12, 13], inputs: { hello: { type: 'git', uri: 'https://x/hello', revision: rev } } });
  });
  afterAll(async () => { await h?.stop(); });

  it('takes the release jobs only (a failed test job of the same evaluation does not matter), with their build ids', async () => {
    const r = await resolveHydraRelease({ ...base, source: { url: `${h.url}/eval/1` } });
    expect(r.evalId).toBe(1);
    expect(r.jobs.all.map((j) => j.attr)).toEqual([...jobs].sort());
    expect(r.builds).toEqual({ 'build.x86_64-linux': 11, 'binaryTarball.x86_64-linux': 12, 'dockerImage.x86_64-linux': 13, manual: 14 });
    expect(r.jobs.manual.path).toBe(sp('manual'));
    expect(r.jobs.build['x86_64-linux']!.job.drvPath).toBe(`${sp('build.x86_64-linux')}.drv`);
  });

  it('a missing job names it and the contract', async () => {
    const e = await resolveHydraRelease({ ...base, source: { url: `${h.url}/eval/2` } }).catch((x) => x);
    expect(e).toBeInstanceOf(ReleaseError);
    expect(e.message).toContain('no job manual (manual)');
    expect(e.hint).toContain('release-jobs contract');
  });

  it('GET /eval/ID/builds is retried after HTTP 500 and a cut-off body', async () => {
    h.flaky.set('/eval/1/builds', 1);
    h.truncated.set('/eval/1/builds', 1);
    const r = await resolveHydraRelease({ ...base, source: { url: `${h.url}/eval/1` } });
    expect(r.evalId).toBe(1);
    expect(h.requests.filter((x) => x === 'GET /eval/1/builds').length).toBeGreaterThanOrEqual(3);
  });

  it('a jobset URL is its latest finished evaluation; a build URL its evaluation of the commit', async () => {
    // Newest evaluation with no unfinished build: 2 (which lacks the manual, so it is refused by name).
    const latest = await resolveHydraRelease({ ...base, source: { url: `${h.url}/jobset/nixos/release` } }).catch((x) => x);
    expect(latest.message).toContain(`evaluation ${h.url}/eval/2: `);
    expect(h.requests).toContain('GET /jobset/nixos/release/latest-eval');
    const e = await resolveHydraRelease({ ...base, source: { url: `${h.url}/build/14` } });
    expect(e.evalId).toBe(1);
  });

  it('another revision is refused, naming what each evaluation built', async () => {
    const e = await resolveHydraRelease({ ...base, expectedRevision: other, source: { url: `${h.url}/eval/1` } }).catch((x) => x);
    expect(e.message).toBe(`no evaluation of commit ${other} (tag 1.0.0): ${h.url}/eval/1 built ${rev}`);
  });

  it('an unfinished job is NothingToDo with exit status 5; a failed one a ReleaseError', async () => {
    await h.addBuild({ id: 30, job: 'manual', nixname: 'm', out: sp('manual'), evals: [3], finished: false });
    await h.addBuild({ id: 31, job: 'manual', nixname: 'm', out: sp('manual'), evals: [4], buildstatus: 7 });
    h.addEval({ id: 3, builds: [11, 12, 13, 30], inputs: { hello: { type: 'git', uri: 'u', revision: rev } } });
    h.addEval({ id: 4, builds: [11, 12, 13, 31], inputs: { hello: { type: 'git', uri: 'u', revision: rev } } });
    const e3 = await resolveHydraRelease({ ...base, source: { url: `${h.url}/eval/3` } }).catch((x) => x);
    expect(e3).toBeInstanceOf(NothingToDo);
    expect(e3.exitStatus).toBe(5);
    const e4 = await resolveHydraRelease({ ...base, source: { url: `${h.url}/eval/4` } }).catch((x) => x);
    expect(e4).not.toBeInstanceOf(NothingToDo);
    expect(e4.message).toContain('manual timed out');
  });
});

describe('resolveHydraRelease with Lix\'s mapping (issue 17): build.SYSTEM, the manual in its doc output, the tarballs aggregate', () => {
  let h: FakeHydra;
  beforeAll(async () => {
    h = await startFakeHydra();
    await h.addBuild({ id: 1, job: 'build.x86_64-linux', nixname: 'lix-2.93.0', out: sp('lix-2.93.0'), evals: [1], drvPath: `${sp('lix')}.drv` });
    h.builds.get(1).buildoutputs.doc = { path: sp('lix-2.93.0-doc') };
    await h.addBuild({ id: 2, job: 'tarballs', nixname: 'lix-release-tarballs', out: sp('lix-release-tarballs'), evals: [1], drvPath: `${sp('tarballs')}.drv` });
    h.addEval({ id: 1, builds: [1, 2], inputs: {} });
    h.evals.get(1).flake = `git+https://git.lix.systems/lix-project/lix?ref=refs/tags/2.93.0&rev=${rev}`;
  });
  afterAll(async () => { await h?.stop(); });

  it('maps the jobs as a local build does', async () => {
    const mapping = resolveMapping({ build: { attr: 'build.{system}', output: 'out' }, manual: { attr: 'build.x86_64-linux', output: 'doc', path: 'share/doc/lix/manual' }, aggregate: { attr: 'tarballs', output: 'out' } }, 'lix', undefined);
    const r = await resolveHydraRelease({ source: { url: `${h.url}/eval/1` }, expectedRevision: rev, version: '2.93.0', mapping, systems: ['x86_64-linux'], dockerSystems: ['x86_64-linux'], profileName: 'x86_64-linux-only' });
    expect(r.jobs.manual.path).toBe(sp('lix-2.93.0-doc'));
    expect(r.jobs.aggregate?.path).toBe(sp('lix-release-tarballs'));
    expect(r.jobs.all.map((j) => j.attr)).toEqual(['build.x86_64-linux', 'tarballs']);
    expect(r.jobs.all[0]!.outputs).toEqual({ out: sp('lix-2.93.0'), doc: sp('lix-2.93.0-doc') });
  });
});

describe('evalRevision', () => {
  const ev = (o: any) => ({ id: 1, jobsetevalinputs: {}, ...o });
  it('a flake jobset: the locked rev of its flake URI', () => {
    expect(evalRevision(ev({ flake: `git+https://git.lix.systems/lix-project/lix?ref=refs/tags/2.93.0&rev=${rev}` }), 'E')).toBe(rev);
  });
  it('two git inputs and no hydra.input: an error that says to set it', () => {
    const e = (() => { try { evalRevision(ev({ jobsetevalinputs: { a: { type: 'git', revision: rev }, b: { type: 'git', revision: other } } }), 'E'); } catch (x) { return x as ReleaseError; } })();
    expect(e?.message).toContain('2 git inputs (a, b)');
    expect(e?.hint).toContain('hydra.input');
    expect(evalRevision(ev({ jobsetevalinputs: { a: { type: 'git', revision: rev }, b: { type: 'git', revision: other } } }), 'E', 'b')).toBe(other);
  });
});
