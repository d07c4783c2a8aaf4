// Every channel kind NixOS publishes, from evaluations shaped like hydra.nixos.org's (see
// test/helpers/channel-fixture.ts), published with the shipped examples/nixos/releng.json into two
// S3 servers (releases and channels on different endpoints, as NixOS runs), and compared with what
// NixOS's mirror-nixos-branch.pl would write for the same evaluation (`perlWouldWrite`, below).
// Then: a re-run is a no-op (exit 3), an older evaluation is refused (exit 4), a dry run writes
// nothing, a corrupt product publishes nothing, Hydra faults are retried or named, the branch
// must fast-forward, skipped optional products keep their alias with a warning, and
// verifyChannelRelease finds tampered files and dangling redirects.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIRECT_CACHE_CONTROL } from '../../lib/channel/plan.ts';
import { verifyChannelRelease } from '../../lib/channel/verify.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { makeContext } from '../../lib/config/context.ts';
import { EXIT_ALREADY_PUBLISHED, EXIT_WOULD_GO_BACK, NothingToDo } from '../../lib/core/errors.ts';
import { createLogger, type Logger } from '../../lib/cli/log.ts';
import { routeByBucket } from '../../lib/s3/route.ts';
import { channelsVerifier } from '../../lib/verify/published.ts';
import pLimit from 'p-limit';
import { channel, stagingDirOf, type ChannelDeps, type ChannelSummary } from '../../lib/phases/channel.ts';
import { channelScratch, nixosJobs, nixpkgsJobs, registerEval, type BuiltFixture, type FixtureEval } from '../helpers/channel-fixture.ts';
import { releng } from '../helpers/cli.ts';
import { startFakeHydra, type FakeHydra } from '../helpers/hydra.ts';
import { repoRoot } from '../helpers/project.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';

const RELEASES_URL = 'https://releases.example.org';
const fast = { hydraRetry: { baseDelayMs: 1, maxDelayMs: 5 } } satisfies ChannelDeps;

/** A NixOS evaluation of series `series` (full or -small jobset). */
function nixosEval(key: string, series: string, version: string, small: boolean, opts: { failed?: string[]; outputsOf?: string; bigIso?: boolean } = {}): FixtureEval {
  return {
    key, project: 'nixos', jobset: `release-${series}${small ? '-small' : ''}`, mainJob: 'tested', nixname: `nixos-${version}`, version,
    jobs: nixosJobs(series, version, small, opts), outputsOf: opts.outputsOf,
  };
}

// The channels under test, each with the evaluation it publishes.
const V = {
  '23.11': '23.11.7870.aaaaaaa', '24.05': '24.05.7376.bbbbbbb', '24.11a': '24.11.700.cccccc0', '24.11': '24.11.719.ccccccc',
  '25.05': '25.05.812.ddddddd', '26.05': '26.05.100.eeeeeee', unstable: '26.11pre700000.fffffff',
};
const EVALS: FixtureEval[] = [
  nixosEval('nixos-23.11', '23.11', V['23.11'], false),
  nixosEval('nixos-23.11-small', '23.11', V['23.11'], true, { outputsOf: 'nixos-23.11' }),
  nixosEval('nixos-24.05', '24.05', V['24.05'], false),
  nixosEval('nixos-24.05-small', '24.05', V['24.05'], true, { outputsOf: 'nixos-24.05' }),
  // 24.11: a first evaluation with every image, then one whose aarch64 GNOME ISO failed (optional).
  nixosEval('nixos-24.11@a', '24.11', V['24.11a'], false),
  nixosEval('nixos-24.11', '24.11', V['24.11'], false, { failed: ['nixos.iso_gnome.aarch64-linux'] }),
  nixosEval('nixos-24.11-small', '24.11', V['24.11'], true, { outputsOf: 'nixos-24.11' }),
  nixosEval('nixos-25.05', '25.05', V['25.05'], false),
  nixosEval('nixos-25.05-small', '25.05', V['25.05'], true, { outputsOf: 'nixos-25.05' }),
  nixosEval('nixos-26.05', '26.05', V['26.05'], false, { bigIso: true }),
  nixosEval('nixos-26.05-small', '26.05', V['26.05'], true, { outputsOf: 'nixos-26.05' }),
  nixosEval('nixos-unstable', 'unstable', V.unstable, false),
  nixosEval('nixos-unstable-small', 'unstable', V.unstable, true, { outputsOf: 'nixos-unstable' }),
  { key: 'nixpkgs-unstable', project: 'nixpkgs', jobset: 'unstable', mainJob: 'unstable', nixname: 'nixpkgs-26.11pre700001.1111111', version: '26.11pre700001.1111111', jobs: nixpkgsJobs('26.11pre700001.1111111') },
  { key: 'nixpkgs-26.05-darwin', project: 'nixpkgs', jobset: 'nixpkgs-26.05-darwin', mainJob: 'darwin-tested', nixname: 'nixpkgs-darwin-26.05.800.2222222', version: '26.05.800.2222222', jobs: nixpkgsJobs('26.05.800.2222222') },
  // For the refusal tests: an older 26.05, a newer 26.05 with a corrupt product, a newer one for the dry run.
  nixosEval('nixos-26.05@old', '26.05', '26.05.90.0000009', false, { outputsOf: 'nixos-26.05' }),
  nixosEval('nixos-26.05@dry', '26.05', '26.05.300.3333333', false),
  // A required product whose build failed (published on a channel of its own, nixos-27.05).
  nixosEval('nixos-27.05@failed', '26.05', '27.05.1.5555555', false, { outputsOf: 'nixos-26.05', failed: ['nixos.iso_graphical.x86_64-linux'] }),
];
EVALS.find((e) => e.key === 'nixos-26.05@old')!.nixname = 'nixos-26.05.90.0000009';

/**
 * What mirror-nixos-branch.pl (NixOS/infra, pkgs/nixos-channel-scripts) writes for `channel` at
 * release `name` (version `version`): the files of the release prefix and the redirects of the
 * channels bucket. `has(job)` says whether the evaluation has a successful build of the job
 * (the script dies when a job it downloads has none; see `perlWouldDie`).
 */
function perlWouldWrite(channel: string, name: string, version: string, fileOf: (job: string) => string | undefined) {
  const m = /^([a-z]+)-(.*)$/.exec(channel)!;
  const prefix = channel === 'nixpkgs-unstable' ? 'nixpkgs' : `${m[1]}/${m[2]}`;
  const releasePrefix = `${prefix}/${name}`;
  const files = ['src-url', 'git-revision', 'binary-cache-url', 'store-paths.xz'];
  const jobs: string[] = [];
  const download = (job: string, dst?: string) => {
    jobs.push(job);
    const f = dst ?? fileOf(job);
    if (f) files.push(f, `${f}.sha256`);
  };
  if (/nixos/.test(channel)) {
    download('nixos.channel', 'nixexprs.tar.xz');
    download('nixos.channel', 'nixexprs.tar.zst');
    download('nixpkgs.tarball', 'packages.json.br');
    download('nixos.options', 'options.json.br');
    if (!/-small/.test(channel) || /nixos-2([0123]\...|4\.05)-small/.test(channel)) {
      download('nixos.iso_minimal.aarch64-linux');
      download('nixos.iso_minimal.x86_64-linux');
    }
    if (!/-small/.test(channel)) {
      if (/nixos-2[01234]/.test(channel)) {
        const plasma = /nixos-2[0123]/.test(channel) ? 'plasma5' : 'plasma6';
        download(`nixos.iso_${plasma}.aarch64-linux`);
        download(`nixos.iso_${plasma}.x86_64-linux`);
        download('nixos.iso_gnome.aarch64-linux');
        download('nixos.iso_gnome.x86_64-linux');
      } else {
        download('nixos.iso_graphical.aarch64-linux');
        download('nixos.iso_graphical.x86_64-linux');
      }
      if (/nixos-2[0123]/.test(channel)) download('nixos.iso_minimal.i686-linux');
      if (/nixos-2([0123]\...|4\.05)/.test(channel)) download('nixos.ova.x86_64-linux');
    }
  } else {
    download('tarball', 'nixexprs.tar.xz');
    download('tarball', 'nixexprs.tar.zst');
    download('tarball', 'packages.json.br');
  }
  const redirects: Record<string, string> = {};
  const to = (from: string, target: string) => { redirects[from] = `${RELEASES_URL}/${target}`; };
  to(channel, releasePrefix);
  for (const ext of ['xz', 'zst']) to(`${channel}/nixexprs.tar.${ext}`, `${releasePrefix}/nixexprs.tar.${ext}?rev=REV&lastModified=LM`);
  to(`${channel}/git-revision`, `${releasePrefix}/git-revision`);
  to(`${channel}/packages.json.br`, `${releasePrefix}/packages.json.br`);
  to(`${channel}/store-paths.xz`, `${releasePrefix}/store-paths.xz`);
  if (/nixos/.test(channel)) {
    to(`${channel}/options.json.br`, `${releasePrefix}/options.json.br`);
    for (const arch of ['x86_64-linux', 'i686-linux', 'aarch64-linux']) {
      if (arch === 'i686-linux' && !/nixos-2[0123]/.test(channel)) continue;
      for (const artifact of ['nixos-graphical', 'nixos-plasma5', 'nixos-plasma6', 'nixos-gnome', 'nixos-minimal']) {
        to(`${channel}/latest-${artifact}-${arch}.iso`, `${releasePrefix}/${artifact}-${version}-${arch}.iso`);
        to(`${channel}/latest-${artifact}-${arch}.iso.sha256`, `${releasePrefix}/${artifact}-${version}-${arch}.iso.sha256`);
      }
      to(`${channel}/latest-nixos-${arch}.ova`, `${releasePrefix}/nixos-${version}-${arch}.ova`);
      to(`${channel}/latest-nixos-${arch}.ova.sha256`, `${releasePrefix}/nixos-${version}-${arch}.ova.sha256`);
    }
  }
  return { releasePrefix, files: [...new Set(files)].sort(), redirects, jobs };
}

describe('releng channel: every NixOS channel kind, as mirror-nixos-branch.pl publishes it', () => {
  let base: string;
  let project: string;
  let remote: string;
  let hydra: FakeHydra;
  let fx: BuiltFixture;
  let rel: TestS3;
  let chan: TestS3;
  const urls = new Map<string, string>();
  const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const writes = async () => (await rel.writes()) + (await chan.writes());
  const branchOn = (b: string) => execFileSync('git', ['ls-remote', remote, `refs/heads/${b}`], { encoding: 'utf8' }).split('\t')[0] || undefined;
  const evalOf = (key: string) => EVALS.find((e) => e.key === key)!;

  async function inProcess(name: string, extra: Record<string, string | boolean | undefined>, deps: ChannelDeps = fast, dryRun = false, log: Logger = { ...createLogger({ quiet: true }), warn: () => {} }) {
    const loaded = await loadConfig(path.join(project, 'releng.json'));
    const ctx = makeContext(loaded, { version: '', major: '', official: false, releaseName: '', file: '' },
      { dryRun, json: false, noconfirm: true, verbose: false, noCheckGit: false, environment: 'test', extra }, log);
    return channel(ctx, [name], deps) as Promise<ChannelSummary>;
  }

  beforeAll(async () => {
    Object.assign(process.env, env);
    ({ base, project, remote, fx } = await channelScratch('releng-channel-kinds-', EVALS));
    [hydra, rel, chan] = await Promise.all([startFakeHydra(), startTestS3(['rel']), startTestS3(['chan'])]);
    for (const [i, e] of EVALS.entries()) urls.set(e.key, (await registerEval(hydra, fx, e, 1000 + i)).buildUrl);
    // The shipped example, pointed at the test's Hydra, cache, git remote and two S3 servers.
    const example = JSON.parse(await readFile(path.join(repoRoot, 'examples/nixos/releng.json'), 'utf8'));
    example.channels.hydraUrl = hydra.url;
    delete example.channels.stateDir;
    // programs.sqlite needs a nixpkgs in the tarball and listings in the cache, which this fixture's have
    // not: test/integration/channel-programs.test.ts publishes it (here the files and redirects are compared).
    for (const k of example.channels.kinds) { k.binaryCacheUrl = fx.cache.url; k.git.remote = remote; delete k.programs; }
    example.environments = {
      test: {
        releasesBucket: 's3://rel', cacheBucket: 's3://rel', docsBucket: 's3://rel', channelsBucket: 's3://chan', releasesUrl: RELEASES_URL,
        s3: { endpoint: rel.endpoint }, bucketS3: { chan: { endpoint: chan.endpoint, region: 'us-east-1' } }, credentials: { source: 'env' },
      },
    };
    await writeFile(path.join(project, 'releng.json'), JSON.stringify(example, null, 2));
  }, 600_000);

  afterAll(async () => {
    await Promise.all([hydra?.stop(), fx?.cache.stop(), rel?.stop(), chan?.stop()]);
    if (base) await rm(base, { recursive: true, force: true });
  });

  const CHANNELS = ['nixos-23.11', 'nixos-23.11-small', 'nixos-24.05', 'nixos-24.05-small', 'nixos-24.11-small', 'nixos-25.05', 'nixos-25.05-small',
    'nixos-26.05', 'nixos-26.05-small', 'nixos-unstable', 'nixos-unstable-small', 'nixpkgs-unstable', 'nixpkgs-26.05-darwin'];

  /** Compares what releng published for `ch` with what the Perl script writes (minus the documented differences). */
  async function expectAsPerl(ch: string, key = ch) {
    const e = evalOf(key);
    const fileOf = (job: string) => e.jobs.find((j) => j.job === job && !j.failed)?.files[0]!.path.split('/').at(-1);
    const perl = perlWouldWrite(ch, e.nixname, e.version, fileOf);
    const prefix = perl.releasePrefix;
    const published = (await rel.store.list('rel', `${prefix}/`)).map((o) => o.key.slice(prefix.length + 1)).sort();
    // Differences (docs/channel.md): a failed optional job is left out (the script dies instead).
    const skipped = e.jobs.filter((j) => j.failed).map((j) => j.files[0]!.path.split('/').at(-1)!);
    expect(published, ch).toEqual(perl.files.filter((f) => !skipped.some((s) => f.startsWith(s))));
    // Redirects: every one the script writes whose target exists, with the same target; none other.
    const rev = fx.revs.get(key)!;
    const lm = String(Number(execFileSync('git', ['show', '-s', '--format=%ct', rev], { cwd: fx.sourceRepo, encoding: 'utf8' }).trim()));
    const expected = Object.fromEntries(Object.entries(perl.redirects).map(([k, v]) => [k, v.replace('REV', rev).replace('LM', lm)])
      .filter(([, v]) => { const f = v.slice(`${RELEASES_URL}/${prefix}/`.length).split('?')[0]!; return v === `${RELEASES_URL}/${prefix}` || published.includes(f); }));
    const aliases = (await chan.store.list('chan', `${ch}/`)).map((o) => o.key);
    const got: Record<string, string> = {};
    for (const k of [ch, ...aliases]) {
      const h = await chan.store.head('chan', k);
      expect(h?.cacheControl, k).toBe(REDIRECT_CACHE_CONTROL);
      got[k] = h!.redirect!;
    }
    expect(got, ch).toEqual(expected);
    expect(branchOn(ch)).toBe(rev);
    const v = await verifyChannelRelease({ reader: routeByBucket(rel.store, { chan: chan.store }), releases: { bucket: 'rel', prefix: '', url: 's3://rel' }, channels: { bucket: 'chan', prefix: '', url: 's3://chan' }, channel: ch, releasesUrl: RELEASES_URL });
    expect(v.problems, ch).toEqual([]);
    return { perl, published, got };
  }

  it('publishes each channel kind with the files and redirects of mirror-nixos-branch.pl, minus dangling redirects', async () => {
    for (const ch of CHANNELS) {
      const s = await inProcess(ch, { build: urls.get(ch) });
      expect(s.verdict, ch).toBe('first');
      await expectAsPerl(ch);
    }
  }, 600_000);

  const run = (args: string[]) => releng(['channel', ...args, '--environment', 'test'], { cwd: project, env });

  it(`a re-run is a no-op: exit ${EXIT_ALREADY_PUBLISHED} ("already published"), no write, --json says so`, async () => {
    const before = await writes();
    const r = await run(['nixos-26.05', '--build', urls.get('nixos-26.05')!, '--json']);
    expect(r.code, r.stderr).toBe(EXIT_ALREADY_PUBLISHED);
    expect(r.stderr).toContain(`channel nixos-26.05 is already at nixos-${V['26.05']}: nothing to do`);
    expect(r.stderr).not.toContain('error:');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, exitStatus: EXIT_ALREADY_PUBLISHED, result: { verdict: 'same', release: `nixos-${V['26.05']}` } });
    expect(await writes()).toBe(before);
  });

  it(`an older evaluation is refused with exit ${EXIT_WOULD_GO_BACK} ("would go back in time"), nothing changes`, async () => {
    const before = await writes();
    const r = await run(['nixos-26.05', '--build', urls.get('nixos-26.05@old')!]);
    expect(r.code, r.stderr).toBe(EXIT_WOULD_GO_BACK);
    expect(r.stderr).toContain(`channel nixos-26.05 would go back in time from nixos-${V['26.05']} to nixos-26.05.90.0000009; refusing`);
    await expect(inProcess('nixos-26.05', { build: urls.get('nixos-26.05@old') })).rejects.toSatisfy((e: unknown) => e instanceof NothingToDo && e.exitStatus === EXIT_WOULD_GO_BACK);
    expect(await writes()).toBe(before);
    expect((await chan.store.head('chan', 'nixos-26.05'))!.redirect).toBe(`${RELEASES_URL}/nixos/26.05/nixos-${V['26.05']}`);
  });

  it('a dry run reads and checks everything, prints the exact writes, and writes nothing', async () => {
    const before = await writes();
    const head = branchOn('nixos-26.05');
    const r = await run(['nixos-26.05', '--build', urls.get('nixos-26.05@dry')!, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    const prefix = 'nixos/26.05/nixos-26.05.300.3333333';
    for (const line of [
      `[dry-run] s3 put s3://rel/${prefix}/nixexprs.tar.zst`,
      `[dry-run] s3 put s3://rel/${prefix}/nixos-graphical-26.05.300.3333333-x86_64-linux.iso.sha256`,
      `[dry-run] s3 redirect s3://chan/nixos-26.05/latest-nixos-minimal-x86_64-linux.iso -> ${RELEASES_URL}/${prefix}/nixos-minimal-26.05.300.3333333-x86_64-linux.iso`,
      `[dry-run] s3 redirect s3://chan/nixos-26.05 -> ${RELEASES_URL}/${prefix}`,
    ]) expect(r.stdout + r.stderr).toContain(line);
    expect(await writes()).toBe(before);
    expect(branchOn('nixos-26.05')).toBe(head);
  });

  it('the channel branch must fast-forward: a diverged branch stops the run before any upload; --force moves it with a lease', async () => {
    // Someone pushed a commit that is not an ancestor of the next release to the channel branch.
    const clone = path.join(base, 'diverge');
    execFileSync('git', ['clone', '-q', fx.sourceRepo, clone]);
    execFileSync('git', ['-c', 'user.name=x', '-c', 'user.email=x@example.invalid', 'commit', '-q', '--allow-empty', '-m', 'elsewhere'], { cwd: clone });
    execFileSync('git', ['push', '-q', '--force', remote, 'HEAD:refs/heads/nixos-26.05'], { cwd: clone });
    const diverged = branchOn('nixos-26.05');
    const before = await writes();
    await expect(inProcess('nixos-26.05', { build: urls.get('nixos-26.05@dry') })).rejects.toThrow(`branch nixos-26.05 on ${remote} is at ${diverged}, which is not an ancestor of ${fx.revs.get('nixos-26.05@dry')}: moving it would not be a fast-forward`);
    expect(await writes()).toBe(before);
    const staging = stagingDirOf(path.join(project, '.releng'), 'nixos-26.05', 'nixos-26.05.300.3333333');
    const s = await inProcess('nixos-26.05', { build: urls.get('nixos-26.05@dry'), force: true, 'keep-staged': true });
    expect(s).toMatchObject({ verdict: 'newer', staging: { dir: staging, kept: true } });
    expect(branchOn('nixos-26.05')).toBe(fx.revs.get('nixos-26.05@dry'));
    expect(existsSync(path.join(staging, 'nixexprs.tar.xz'))).toBe(true); // --keep-staged
    await expectAsPerl('nixos-26.05', 'nixos-26.05@dry');
  });

  it('a skipped optional product keeps its alias at the earlier release, with a warning in the log and in the result', async () => {
    const s1 = await inProcess('nixos-24.11', { build: urls.get('nixos-24.11@a') });
    expect(s1.staleAliases).toEqual([]);
    await expectAsPerl('nixos-24.11', 'nixos-24.11@a');
    const warnings: string[] = [];
    const log = createLogger({ quiet: true });
    const s2 = await inProcess('nixos-24.11', { build: urls.get('nixos-24.11') }, fast, false, { ...log, warn: (m: string) => { warnings.push(m); } });
    const old = `${RELEASES_URL}/nixos/24.11/nixos-${V['24.11a']}/nixos-gnome-${V['24.11a']}-aarch64-linux.iso`;
    expect(s2.staleAliases.map((a) => [a.alias, a.target])).toEqual([
      ['nixos-24.11/latest-nixos-gnome-aarch64-linux.iso', old],
      ['nixos-24.11/latest-nixos-gnome-aarch64-linux.iso.sha256', `${old}.sha256`],
    ]);
    expect(s2.staleAliases[0]!.reason).toMatch(/optional product of job nixos\.iso_gnome\.aarch64-linux skipped: its build .*\/build\/\d+ did not succeed \(failed, buildstatus 1\)/);
    expect(warnings.join('\n')).toContain(`channel alias s3://chan/nixos-24.11/latest-nixos-gnome-aarch64-linux.iso keeps pointing at ${old}`);
    // Everything else is what the script would publish for this evaluation (which it would refuse: the job failed).
    const perl = perlWouldWrite('nixos-24.11', `nixos-${V['24.11']}`, V['24.11'], () => undefined);
    expect(perl.jobs).toContain('nixos.iso_gnome.aarch64-linux');
    const published = (await rel.store.list('rel', `nixos/24.11/nixos-${V['24.11']}/`)).map((o) => o.key.split('/').at(-1));
    expect(published).not.toContain(`nixos-gnome-${V['24.11']}-aarch64-linux.iso`);
    expect(published).toContain(`nixos-gnome-${V['24.11']}-x86_64-linux.iso`);
    const v = await verifyChannelRelease({ reader: routeByBucket(rel.store, { chan: chan.store }), releases: { bucket: 'rel', prefix: '', url: 's3://rel' }, channels: { bucket: 'chan', prefix: '', url: 's3://chan' }, channel: 'nixos-24.11', releasesUrl: RELEASES_URL });
    expect(v.problems).toEqual([]);
  });

  it('a corrupt product publishes nothing; the staging of another release of the channel is removed (bounded)', async () => {
    const e = { ...evalOf('nixos-26.05@dry'), key: 'nixos-26.05@corrupt', nixname: 'nixos-26.05.400.4444444', version: '26.05.400.4444444' };
    fx.revs.set(e.key, fx.revs.get('nixos-26.05@dry')!);
    const { buildUrl, buildOf } = await registerEval(hydra, { ...fx, outs: new Map([[e.key, fx.outs.get('nixos-26.05')!]]) }, { ...e, outputsOf: undefined }, 5000);
    hydra.builds.get(buildOf['nixos.channel']!).buildproducts['2'].sha256hash = 'f'.repeat(64);
    const stale = stagingDirOf(path.join(project, '.releng'), 'nixos-26.05', 'nixos-26.05.300.3333333');
    expect(existsSync(stale)).toBe(true); // kept by --keep-staged above
    const before = await writes();
    await expect(inProcess('nixos-26.05', { build: buildUrl })).rejects.toThrow(/\/tarballs\/nixos-26\.05\.100\.eeeeeee\.tar\.zst from http:\/\/127\.0\.0\.1:\d+ is corrupt: sha256 [0-9a-f]{64}, but Hydra recorded f{64}/);
    expect(await writes()).toBe(before);
    expect(existsSync(stale)).toBe(false);
    const staging = stagingDirOf(path.join(project, '.releng'), 'nixos-26.05', 'nixos-26.05.400.4444444');
    expect(existsSync(path.join(staging, 'nixexprs.tar.zst'))).toBe(false);
    expect((await chan.store.head('chan', 'nixos-26.05'))!.redirect).toBe(`${RELEASES_URL}/nixos/26.05/nixos-26.05.300.3333333`);
  });

  it('a required product that failed stops the run before any download or write', async () => {
    const before = await writes();
    const nars = fx.narGets();
    await expect(inProcess('nixos-27.05', { build: urls.get('nixos-27.05@failed') }))
      .rejects.toThrow(new RegExp(`job nixos\\.iso_graphical\\.x86_64-linux of evaluation ${hydra.url}/eval/\\d+ has not succeeded \\(build ${hydra.url}/build/\\d+: failed, buildstatus 1\\)`));
    expect(await writes()).toBe(before);
    expect(fx.narGets()).toBe(nars);
    expect(branchOn('nixos-27.05')).toBeUndefined();
  });

  describe('Hydra faults', () => {
    it('5xx answers, reset connections and cut-off bodies are retried (bounded), then the run goes on', async () => {
      const e = evalOf('nixos-25.05');
      const build = urls.get('nixos-25.05')!;
      const evalPath = new URL(build).pathname.replace(/\/build\/(\d+)\d\d$/, '/eval/$1');
      const buildPath = new URL(build).pathname;
      hydra.flaky.set(buildPath, 2);
      hydra.truncated.set(evalPath, 1);
      hydra.resets.set(`${evalPath}/store-paths`, 1);
      const warnings: string[] = [];
      const log = createLogger({ quiet: true });
      await run(['nixos-25.11', '--build', build, '--dry-run']).then((r) => expect(r.code, r.stderr).toBe(0));
      expect(hydra.flaky.get(buildPath)).toBe(0);
      hydra.flaky.set(buildPath, 2);
      hydra.truncated.set(evalPath, 1);
      const s = await inProcess('nixos-25.11', { build }, fast, false, { ...log, warn: (m: string) => { warnings.push(m); } });
      expect(s.verdict).toBe('first');
      expect(warnings.join('\n')).toContain(`Hydra: Hydra answered HTTP 500 for ${hydra.url}${buildPath}; retrying in`);
      expect(warnings.join('\n')).toContain(`Hydra: Hydra's answer for ${hydra.url}${evalPath} was cut off`);
      void e;
    });

    it('a body cut off every time, or not JSON, fails naming the URL and what was expected; nothing is written', async () => {
      const build = urls.get('nixos-25.05')!;
      const buildPath = new URL(build).pathname;
      const before = await writes();
      hydra.truncated.set(buildPath, 100);
      await expect(inProcess('nixos-25.11-small', { build })).rejects.toThrow(new RegExp(`Hydra's answer for ${hydra.url}${buildPath} was cut off \\(.*it announced \\d+ bytes\\): expected a Hydra build \\(JSON object with id, nixname, jobsetevals, buildproducts\\) \\(4 attempts\\)`));
      hydra.truncated.delete(buildPath);
      hydra.raw.set('/build/999999', '{"id": 999999, "nixname": "nixos-26');
      await expect(inProcess('nixos-25.11-small', { build: `${hydra.url}/build/999999` })).rejects.toThrow(`Hydra answered invalid JSON for ${hydra.url}/build/999999`);
      await expect(inProcess('nixos-25.11-small', { build: `${hydra.url}/build/999999` })).rejects.toThrow('expected a Hydra build (JSON object with id, nixname, jobsetevals, buildproducts); the body was probably cut off (4 attempts)');
      expect(await writes()).toBe(before);
      expect(await chan.store.head('chan', 'nixos-25.11-small')).toBeUndefined();
    });
  });

  it('verify: the CLI checks a published channel; a changed file and a dangling redirect are found and named', async () => {
    const ok = await run(['nixos-23.11', '--verify']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/channel nixos-23\.11: \d+ files hashed, \d+ \.sha256 files and \d+ redirects checked/);
    const prefix = `nixos/23.11/nixos-${V['23.11']}`;
    const iso = `nixos-plasma5-${V['23.11']}-x86_64-linux.iso`;
    const h = (await rel.store.head('rel', `${prefix}/${iso}`))!;
    // Same size and the same sha256 metadata, other bytes: only hashing the body finds it.
    await rel.store.put({ bucket: 'rel', key: `${prefix}/${iso}`, body: { text: 'x'.repeat(h.size) }, size: h.size, sha256: h.sha256!, contentType: 'application/octet-stream' });
    await rel.store.delete('rel', `${prefix}/nixos-${V['23.11']}-x86_64-linux.ova.sha256`);
    const bad = await run(['nixos-23.11', '--verify']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('channel nixos-23.11 failed verification (2 problems)');
    expect(bad.stderr).toMatch(new RegExp(`s3://rel/${prefix.replace(/\./g, '\\.')}/${iso.replace(/\./g, '\\.')} holds ${h.size} bytes with sha256 [0-9a-f]{64}, but the release page says ${h.size} bytes, ${h.sha256}`));
    expect(bad.stderr).toContain(`s3://chan/nixos-23.11/latest-nixos-x86_64-linux.ova.sha256 redirects to ${RELEASES_URL}/${prefix}/nixos-${V['23.11']}-x86_64-linux.ova.sha256, but s3://rel/${prefix}/nixos-${V['23.11']}-x86_64-linux.ova.sha256 does not exist (a dangling redirect)`);
    // `releng verify`'s channels destination runs the same verifier over every channel of the bucket.
    const env = (await loadConfig(path.join(project, 'releng.json'))).config.environments.test!;
    const rels = { bucket: 'rel', prefix: '', url: 's3://rel' };
    const scope = { deep: false, limit: pLimit(4), tmpDir: base, repair: '', progress: { tick() {}, addTotal() {}, item() {}, stop() {} } };
    const target = { name: 'test', s3: routeByBucket(rel.store, { chan: chan.store }), releases: rels, cache: rels, docs: rels, channels: { bucket: 'chan', prefix: '', url: 's3://chan' }, registries: [], root: project, environment: env };
    const found = await channelsVerifier.verify(target, {} as never, scope);
    expect(found.checked.channels).toBeGreaterThan(1);
    expect(found.problems.map((p) => p.where).sort()).toEqual([`s3://chan/nixos-23.11/latest-nixos-x86_64-linux.ova.sha256`, `s3://rel/${prefix}/${iso}`]);
    for (const p of found.problems) expect(p).toMatchObject({ destination: 'channels', what: expect.stringMatching(/^channel nixos-23\.11: /), repair: expect.stringContaining('releng channel nixos-23.11') });
  });
});
