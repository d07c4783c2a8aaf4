// Channel pieces without servers: the rollback guard over an in-memory S3 reader, name and
// redirect-target checks, product selection, and the planner's order when the prefix is complete.
import { describe, expect, it } from 'vitest';
import { channelsConfigSchema } from '../../../lib/config/channels.ts';
import { checkChannelGuard, releaseNameOfRedirect } from '../../../lib/channel/guard.ts';
import { checkRedirectTarget, redirectTarget, requireRelativePath, requireSegment, storePathBaseName } from '../../../lib/channel/names.ts';
import { planChannel, REDIRECT_CACHE_CONTROL } from '../../../lib/channel/plan.ts';
import { selectProduct } from '../../../lib/channel/products.ts';
import type { ChannelRelease } from '../../../lib/channel/release.ts';
import { renderPlan } from '../../../lib/actions/index.ts';
import { createLogger } from '../../../lib/cli/log.ts';
import type { ObjectHead, S3Reader } from '../../../lib/s3/store.ts';

/** An S3Reader over a map (an injected adapter, not a mock of the SDK). */
function memoryReader(objects: Record<string, Partial<ObjectHead>>, failing?: string): S3Reader & { warnings: string[] } {
  return {
    endpoint: 'memory://', warnings: [],
    async list(bucket, prefix) { return Object.entries(objects).filter(([k]) => k.startsWith(`${bucket}/${prefix}`)).map(([k, o]) => ({ key: k.slice(bucket.length + 1), size: o.size ?? 0 })); },
    async head(bucket, key) {
      if (failing === `${bucket}/${key}`) throw new Error('S3 request failed: AccessDenied');
      const o = objects[`${bucket}/${key}`];
      return o ? { size: 0, metadata: {}, ...o } : undefined;
    },
    async getText() { return undefined; },
    async checkBucket() {},
  };
}

const quiet = createLogger({ quiet: true });
const guard = (objects: Record<string, Partial<ObjectHead>>, next: string, force = false, failing?: string) =>
  checkChannelGuard({ reader: memoryReader(objects, failing), bucket: 'chan', key: 'nixos-24.11', channel: 'nixos-24.11', next, force, log: quiet });
const at = (name: string) => ({ 'chan/nixos-24.11': { redirect: `https://releases.nixos.org/nixos/24.11/${name}` } });

describe('rollback guard', () => {
  it('no channel yet → first; newer → publish; same → nothing to do', async () => {
    expect((await guard({}, 'nixos-24.11.5.abc')).verdict).toBe('first');
    expect((await guard(at('nixos-24.11.5.abc'), 'nixos-24.11.10.abc')).verdict).toBe('newer');
    expect(await guard(at('nixos-24.11.10.abc'), 'nixos-24.11.10.abc')).toMatchObject({ verdict: 'same', current: 'nixos-24.11.10.abc' });
  });
  it('older → refused, unless --force (then logged)', async () => {
    await expect(guard(at('nixos-24.11.10.abc'), 'nixos-24.11.9.abc')).rejects.toThrow('would go back in time from nixos-24.11.10.abc to nixos-24.11.9.abc');
    expect(await guard(at('nixos-24.11.10.abc'), 'nixos-24.11.9.abc', true)).toMatchObject({ verdict: 'forced' });
  });
  it('fails closed: object without redirect, unparsable release, S3 errors', async () => {
    await expect(guard({ 'chan/nixos-24.11': {} }, 'nixos-24.11.1.a')).rejects.toThrow('has no x-amz-website-redirect-location');
    await expect(guard({ 'chan/nixos-24.11': { redirect: 'https://releases.nixos.org/' } }, 'nixos-24.11.1.a')).rejects.toThrow('cannot parse the current release');
    await expect(guard({ 'chan/nixos-24.11': { redirect: 'https://releases.nixos.org/nixos/garbage' } }, 'nixos-24.11.1.a')).rejects.toThrow('cannot parse the current release');
    await expect(guard({}, 'nixos-24.11.1.a', false, 'chan/nixos-24.11')).rejects.toThrow('AccessDenied');
  });
  it('takes the release name from the end of the redirect (query ignored)', () => {
    expect(releaseNameOfRedirect('https://releases.nixos.org/nixos/24.11/nixos-24.11.1.a?x=1')).toBe('nixos-24.11.1.a');
    expect(releaseNameOfRedirect('/nixos/24.11/nixos-24.11.1.a/')).toBe('nixos-24.11.1.a');
  });
});

describe('names that must not escape', () => {
  it('refuses ../, absolute paths, NUL and newlines', () => {
    for (const bad of ['..', '.', 'a/b', '/etc', 'a\0b', 'a\nb', '']) expect(() => requireSegment(bad, 'file')).toThrow('would escape the release prefix');
    expect(() => requireRelativePath('/nixos/24.11', 'prefix')).toThrow('is absolute');
    expect(() => requireRelativePath('nixos/../x', 'prefix')).toThrow('would escape');
    expect(() => storePathBaseName('/nix/store/aaaa-x/../../etc/passwd', 'job')).toThrow('"." or ".." segments');
    expect(storePathBaseName('/nix/store/aaaa-x/iso/n.iso', 'job')).toBe('n.iso');
  });
  it('refuses redirect targets outside the releases host or prefix', () => {
    expect(redirectTarget('https://releases.nixos.org', 'nixos/24.11/r', 'f.iso', '?rev=1')).toBe('https://releases.nixos.org/nixos/24.11/r/f.iso?rev=1');
    expect(redirectTarget('/local-releases', 'nixos/24.11/r', undefined)).toBe('/local-releases/nixos/24.11/r');
    expect(() => checkRedirectTarget('https://evil.example/nixos/24.11/r', 'https://releases.nixos.org', 'nixos/24.11/r')).toThrow('outside the releases host');
    expect(() => checkRedirectTarget('//evil.example/x', '/local-releases', 'nixos/24.11/r')).toThrow('outside the releases host');
    expect(() => checkRedirectTarget('https://releases.nixos.org/nixos/24.11/r/../../x', 'https://releases.nixos.org', 'nixos/24.11/r')).toThrow('dot or encoded');
    expect(() => checkRedirectTarget('https://releases.nixos.org/nixos/24.11/other', 'https://releases.nixos.org', 'nixos/24.11/r')).toThrow('not under');
    expect(() => redirectTarget('https://releases.nixos.org', 'nixos/24.11/r', 'f\n.iso')).toThrow('whitespace or control');
  });
});

const product = (subtype: string, file: string, extra = {}) => ({ type: 'file', subtype, name: file, filesize: 1, sha256hash: 'a'.repeat(64), path: `/nix/store/${'a'.repeat(32)}-x/${file}`, defaultpath: '', ...extra });
const buildWith = (products: any[]) => ({ id: 1, finished: true, buildstatus: 0, nixname: 'x', project: 'p', jobset: 'j', job: 'tarball', jobsetevals: [1], buildoutputs: {}, buildproducts: Object.fromEntries(products.map((p, i) => [String(i + 1), p])) });
const spec = (o = {}) => ({ job: 'tarball', optional: false, redirects: [], ...o });

describe('product selection', () => {
  const build = buildWith([product('source-dist', 'nixexprs.tar.xz'), product('json-br', 'packages.json.br')]);
  it('by subtype or file-name regex; several without either is an error', () => {
    expect(selectProduct(build, spec({ subtype: 'json-br' }), 'u')!.path).toMatch(/packages\.json\.br$/);
    expect(selectProduct(build, spec({ fileMatches: '\\.tar\\.xz$' }), 'u')!.path).toMatch(/nixexprs\.tar\.xz$/);
    expect(() => selectProduct(build, spec(), 'u')).toThrow('has 2 products');
    expect(selectProduct(build, spec({ subtype: 'iso' }), 'u')).toBeUndefined();
    expect(() => selectProduct(buildWith([product('testlog', '', { type: 'report', sha256hash: null, filesize: null })]), spec(), 'u')).toThrow('not a regular file');
  });
});

describe('planner', () => {
  const rev = '1'.repeat(40);
  /** A nixos-24.11 release of one channel product (nixexprs.tar.xz), with the given kind settings. */
  const nixosRelease = (kind: Record<string, unknown>): ChannelRelease => {
    const config = channelsConfigSchema.parse({
      hydraUrl: 'https://hydra.example', kinds: [{ match: 'nixos-(?<series>.*)', prefix: 'nixos/{series}', git: { remote: 'git@example:nixpkgs.git' }, binaryCacheUrl: 'https://cache.example', ...kind }],
    });
    const channelBuild = buildWith([product('channel', 'nixexprs.tar.xz')]);
    return {
      channel: 'nixos-24.11', kind: config.kinds[0]!, vars: { channel: 'nixos-24.11', series: '24.11', release: 'nixos-24.11.5.abc', version: '24.11.5.abc', rev },
      hydra: { base: 'https://hydra.example', build: async () => channelBuild as any, buildAt: async () => ({ build: channelBuild as any, url: '' }), evaluation: async () => ({}) as any, storePaths: async () => [], jobInEval: async () => channelBuild as any },
      build: channelBuild as any, evalId: 7, evaluation: {} as any, evalUrl: 'https://hydra.example/eval/7', releaseName: 'nixos-24.11.5.abc', version: '24.11.5.abc', rev, releasePrefix: 'nixos/24.11/nixos-24.11.5.abc',
    };
  };

  it('with the release page present: no file step; git push, aliases, then the channel object last', async () => {
    const release = nixosRelease({
      products: [{ job: 'nixos.channel', file: 'nixexprs.tar.xz', redirects: [{ name: 'nixexprs.tar.xz', query: '?rev={rev}&lastModified={lastModified}' }] }],
      redirects: [{ name: 'git-revision', file: 'git-revision' }],
    });
    const reader = memoryReader({
      'rel/nixos/24.11/nixos-24.11.5.abc': { contentType: 'text/html' },
      'rel/nixos/24.11/nixos-24.11.5.abc/nixexprs.tar.xz': {},
      'rel/nixos/24.11/nixos-24.11.5.abc/git-revision': {},
      'chan/nixos-24.11/git-revision': { redirect: 'https://releases.example/nixos/24.11/nixos-24.11.5.abc/git-revision', cacheControl: REDIRECT_CACHE_CONTROL },
    });
    const plan = await planChannel({
      release, reader, releases: { bucket: 'rel', prefix: '', url: 's3://rel' }, channels: { bucket: 'chan', prefix: '', url: 's3://chan' },
      releasesUrl: 'https://releases.example', git: { cwd: '/m', remote: 'git@example:nixpkgs.git', branch: 'nixos-24.11', force: false },
      commitDate: new Date(1700000000_000), stagingDir: '/nonexistent', log: quiet,
      download: async () => { throw new Error('must not download'); },
    });
    expect(plan.prefixComplete).toBe(true);
    expect(renderPlan(plan)).toBe([
      'channel branch nixos-24.11:',
      `  [dry-run] git push git@example:nixpkgs.git ${rev}:refs/heads/nixos-24.11`,
      'channel aliases in s3://chan/nixos-24.11/:',
      `  [dry-run] s3 redirect s3://chan/nixos-24.11/nixexprs.tar.xz -> https://releases.example/nixos/24.11/nixos-24.11.5.abc/nixexprs.tar.xz?rev=${rev}&lastModified=1700000000`,
      'channel nixos-24.11 (last):',
      '  [dry-run] s3 redirect s3://chan/nixos-24.11 -> https://releases.example/nixos/24.11/nixos-24.11.5.abc',
      'skip release files and page of s3://rel/nixos/24.11/nixos-24.11.5.abc: the release page exists, so the prefix is complete',
      'skip 1 channel aliases: already redirect to this release',
    ].join('\n'));
  });

  it('a completed prefix without an optional product gets no alias to it (never a redirect to nothing)', async () => {
    const release = nixosRelease({ products: [{ job: 'nixos.channel', file: 'nixexprs.tar.xz', redirects: [{ name: 'nixexprs.tar.xz' }] }] });
    const plan = await planChannel({
      release, reader: memoryReader({ 'rel/nixos/24.11/nixos-24.11.5.abc': { contentType: 'text/html' } }),
      releases: { bucket: 'rel', prefix: '', url: 's3://rel' }, channels: { bucket: 'chan', prefix: '', url: 's3://chan' },
      releasesUrl: 'https://releases.example', git: { cwd: '/m', remote: 'git@example:nixpkgs.git', branch: 'nixos-24.11', force: false, remoteHead: rev },
      commitDate: new Date(1700000000_000), stagingDir: '/nonexistent', log: quiet,
      download: async () => { throw new Error('must not download'); },
    });
    const text = renderPlan(plan);
    expect(text).not.toContain('s3 redirect s3://chan/nixos-24.11/nixexprs.tar.xz');
    expect(text).toContain('skip channel alias nixos-24.11/nixexprs.tar.xz: the file of job nixos.channel is missing (nixexprs.tar.xz is not in the completed release prefix s3://rel/nixos/24.11/nixos-24.11.5.abc/); no alias is created for it');
    expect(text).toContain('[dry-run] s3 redirect s3://chan/nixos-24.11 -> https://releases.example/nixos/24.11/nixos-24.11.5.abc');
  });
});

describe('examples/nixos/releng.json', () => {
  it('loads, and maps NixOS channel names to the prefixes the NixOS mirror uses', async () => {
    const { loadConfig } = await import('../../../lib/config/config.ts');
    const { kindFor } = await import('../../../lib/channel/release.ts');
    const { fillTemplate } = await import('../../../lib/channel/names.ts');
    const file = new URL('../../../examples/nixos/releng.json', import.meta.url).pathname;
    const { config } = await loadConfig(file);
    const { productsFor } = await import('../../../lib/channel/plan.ts');
    const prefix = (channel: string) => {
      const { kind, groups } = kindFor(config.channels!, channel, file);
      const images = productsFor(kind, channel).filter((p) => /\.(iso|ova)_?/.test(p.job)).map((p) => p.job.replace(/^nixos\./, ''));
      return { prefix: fillTemplate(kind.prefix, { ...groups, channel }, 'prefix'), images };
    };
    const both = (kind: string) => [`${kind}.x86_64-linux`, `${kind}.aarch64-linux`];
    expect(prefix('nixos-23.11')).toEqual({ prefix: 'nixos/23.11', images: [...both('iso_minimal'), 'iso_minimal.i686-linux', ...both('iso_plasma5'), ...both('iso_gnome'), 'ova.x86_64-linux'] });
    expect(prefix('nixos-23.11-small')).toEqual({ prefix: 'nixos/23.11-small', images: both('iso_minimal') });
    expect(prefix('nixos-24.05')).toEqual({ prefix: 'nixos/24.05', images: [...both('iso_minimal'), ...both('iso_plasma6'), ...both('iso_gnome'), 'ova.x86_64-linux'] });
    expect(prefix('nixos-24.05-small')).toEqual({ prefix: 'nixos/24.05-small', images: both('iso_minimal') });
    expect(prefix('nixos-24.11')).toEqual({ prefix: 'nixos/24.11', images: [...both('iso_minimal'), ...both('iso_plasma6'), ...both('iso_gnome')] });
    expect(prefix('nixos-24.11-small')).toEqual({ prefix: 'nixos/24.11-small', images: [] });
    expect(prefix('nixos-26.05')).toEqual({ prefix: 'nixos/26.05', images: [...both('iso_minimal'), ...both('iso_graphical')] });
    expect(prefix('nixos-unstable')).toEqual({ prefix: 'nixos/unstable', images: [...both('iso_minimal'), ...both('iso_graphical')] });
    expect(prefix('nixos-unstable-small')).toEqual({ prefix: 'nixos/unstable-small', images: [] });
    expect(prefix('nixpkgs-unstable')).toEqual({ prefix: 'nixpkgs', images: [] });
    expect(prefix('nixpkgs-26.05-darwin')).toEqual({ prefix: 'nixpkgs/26.05-darwin', images: [] });
    expect(() => prefix('nixos-foo')).toThrow('no channel kind matches "nixos-foo"');
  });
});

describe('release source', () => {
  it('takes the revision from the git input, else from a locked flake reference', async () => {
    const { revisionOf } = await import('../../../lib/channel/release.ts');
    const rev = 'abcdef0123456789abcdef0123456789abcdef01';
    const ev = (o: object) => ({ id: 1, jobsetevalinputs: {}, ...o }) as any;
    expect(revisionOf(ev({ jobsetevalinputs: { nixpkgs: { revision: rev, uri: 'https://github.com/NixOS/nixpkgs.git' } } }), 'nixpkgs', 'u')).toEqual({ rev, uri: 'https://github.com/NixOS/nixpkgs.git' });
    expect(revisionOf(ev({ flake: `github:NixOS/nixpkgs/${rev}` }), 'nixpkgs', 'u').rev).toBe(rev);
    expect(revisionOf(ev({ flake: `git+https://example/nixpkgs?ref=x&rev=${rev}` }), 'nixpkgs', 'u').rev).toBe(rev);
    expect(() => revisionOf(ev({}), 'nixpkgs', 'https://hydra/eval/1')).toThrow('evaluation https://hydra/eval/1 has no revision for input "nixpkgs"');
    expect(() => revisionOf(ev({ jobsetevalinputs: { nixpkgs: { revision: 'main; rm -rf /' } } }), 'nixpkgs', 'u')).toThrow('is not a git commit id');
  });

  it('--hydra-json: a failed build or a file that is not RunCommand JSON is refused before asking Hydra', async () => {
    const { resolveRelease } = await import('../../../lib/channel/release.ts');
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const dir = await mkdtemp((await import('node:os')).tmpdir() + '/releng-hj-');
    const channels = channelsConfigSchema.parse({ hydraUrl: 'http://127.0.0.1:1', kinds: [{ match: 'nixos-.*', prefix: 'nixos', git: { remote: 'r' }, binaryCacheUrl: 'https://cache.example' }] });
    const noFetch = (async () => { throw new Error('must not fetch'); }) as unknown as typeof fetch;
    const failed = `${dir}/failed.json`;
    await writeFile(failed, JSON.stringify({ build: 5, finished: true, buildStatus: 1, nixName: 'nixos-1.2', project: 'p', jobset: 'j', job: 'tested' }));
    await expect(resolveRelease({ channel: 'nixos-x', channels, configFile: 'c', source: { hydraJsonFile: failed }, fetchImpl: noFetch })).rejects.toThrow('build 5 (tested) has not succeeded');
    const wrong = `${dir}/wrong.json`;
    await writeFile(wrong, JSON.stringify({ build: 'five' }));
    await expect(resolveRelease({ channel: 'nixos-x', channels, configFile: 'c', source: { hydraJsonFile: wrong }, fetchImpl: noFetch })).rejects.toThrow(/build: .*\n.*finished/s);
  });
});
