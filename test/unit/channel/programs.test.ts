// programs.sqlite and debuginfo pieces without servers (issue 27): which bin/ entries are programs
// (trees in the shape of Nix's NAR listings, `.ls` version 1), the memo, the same bytes from the same
// inputs, the debuginfo entry as the mirror writes it, and bad input naming its file. The end-to-end
// run against the real Nix, sqlite3 and an S3 cache is test/integration/channel-programs.test.ts.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { brotliCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveKeyOf, debugInfoEntry, debugOutputs, planDebugInfo } from '../../../lib/channel/debuginfo.ts';
import { openListingMemo } from '../../../lib/channel/listing-memo.ts';
import { factsOfListing, httpListingSource, type ListingSource, type PathFacts } from '../../../lib/channel/listings.ts';
import { generateProgramsIndex, packagesProviding, readPackageAttrs, type Evaluate } from '../../../lib/channel/programs.ts';
import { sha256Text } from '../../../lib/hashing/checksums.ts';
import type { S3Reader } from '../../../lib/s3/store.ts';

const P = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-tools-1.0';
const reg = (executable = true) => ({ type: 'regular', size: 10, executable, narOffset: 100 });
const dir = (entries: Record<string, unknown>) => ({ type: 'directory', entries });
const link = (target: string) => ({ type: 'symlink', target });
const listing = (root: unknown) => ({ version: 1, root });

describe('the programs of a NAR listing (generate-programs-index\'s rules)', () => {
  const facts = factsOfListing(listing(dir({
    bin: dir({
      tool: reg(), '.tool-wrapped': reg(), README: reg(false), sub: dir({ x: reg() }),
      inside: link('tool'), up: link('../libexec/real'), absInside: link(`${P}/libexec/real`), toDir: link('sub'),
      other: link('/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-other/bin/x'), outside: link('/run/wrappers/bin/sudo'),
      dangling: link('nothing'), loop: link('loop'), plain: link('../share/doc.txt'),
    }),
    libexec: dir({ real: reg() }),
    share: dir({ 'doc.txt': reg(false) }),
  })), P, 'x.ls');

  it('takes executables and links that end at one (inside the path) or leave for another store path', () => {
    expect(facts.programs).toEqual(['absInside', 'inside', 'other', 'tool', 'up']);
  });
  it('leaves out hidden names, plain files, directories, dangling links, loops and links out of the store', () => {
    for (const no of ['.tool-wrapped', 'README', 'sub', 'toDir', 'dangling', 'loop', 'outside', 'plain']) expect(facts.programs).not.toContain(no);
  });
  it('finds ELF debug files under lib/debug/.build-id/ (regular files with 2 + 38 hex digits only)', () => {
    const id = 'ab' + 'c'.repeat(38);
    const f = factsOfListing(listing(dir({ lib: dir({ debug: dir({ '.build-id': dir({
      ab: dir({ [`${'c'.repeat(38)}.debug`]: reg(false), [`${'d'.repeat(38)}`]: reg(), [`${'e'.repeat(38)}.debug`]: link('../x') }),
      zz: dir({ [`${'c'.repeat(38)}.debug`]: reg() }),
    }) }) }) })), P, 'x.ls');
    expect(f).toEqual({ programs: [], debug: [{ buildId: id, member: `lib/debug/.build-id/ab/${'c'.repeat(38)}.debug` }] });
  });
  it('refuses a listing of another version, naming it', () => {
    expect(() => factsOfListing({ version: 2, root: dir({}) }, P, 'https://cache.example/aaaa.ls')).toThrow(/https:\/\/cache\.example\/aaaa\.ls is not a NAR listing of version 1/);
    expect(() => factsOfListing('nope', P, 'u.ls')).toThrow(/u\.ls is not a NAR listing/);
  });
});

describe('the debuginfo entry', () => {
  it('is what the mirror writes: compact JSON, archive relative to debuginfo/', () => {
    expect(debugInfoEntry('nar/1abc.nar.xz', 'lib/debug/.build-id/ab/cd.debug')).toBe('{"archive":"../nar/1abc.nar.xz","member":"lib/debug/.build-id/ab/cd.debug"}');
    expect(archiveKeyOf('debuginfo/abcd', '../nar/1abc.nar.xz')).toBe('nar/1abc.nar.xz');
    expect(archiveKeyOf('cache/debuginfo/abcd', '../nar/x.nar.xz')).toBe('cache/nar/x.nar.xz');
    expect(archiveKeyOf('debuginfo/abcd', '../../../etc/passwd')).toBeUndefined();
  });
  it('comes from the debug outputs of the store paths', () => {
    expect(debugOutputs([`${P}-debug`, P, '/nix/store/cccccccccccccccccccccccccccccccc-debug', `${P}-debug`])).toEqual([`${P}-debug`]);
  });
  it('is planned only where absent; the same content is skipped; another build\'s is kept', async () => {
    const body = (u: string) => debugInfoEntry(u, 'lib/debug/.build-id/ab/x.debug');
    const objects: Record<string, string> = { 'cache/debuginfo/same': body('nar/a.nar.xz'), 'cache/debuginfo/other': body('nar/zzz.nar.xz') };
    const reader: S3Reader = { endpoint: 'memory://', async list() { return []; }, async head() { return undefined; }, async getText(b, k) { return objects[`${b}/${k}`]; }, async checkBucket() {} };
    const cache = { bucket: 'cache', prefix: '', url: 's3://cache' };
    const plan = await planDebugInfo({ reader, cache, entries: ['same', 'other', 'new'].map((id) => ({ key: `debuginfo/${id}`, body: body('nar/a.nar.xz'), storePath: P })) });
    expect(plan.puts.map((p) => [p.key, p.createOnly, p.contentType])).toEqual([['debuginfo/new', true, 'application/json']]);
    expect(plan.present).toBe(1);
    expect(plan.kept.map((k) => k.key)).toEqual(['debuginfo/other']);
  });
});

describe('generateProgramsIndex', () => {
  let base: string;
  beforeAll(async () => { base = await mkdtemp(path.join(os.tmpdir(), 'releng-programs-unit-')); });
  afterAll(async () => { await rm(base, { recursive: true, force: true }); });

  const paths = (attr: string, system: string) => `/nix/store/${sha256Text(attr + system).replace(/[^0-9a-df-np-sv-z]/g, '').padEnd(32, '0').slice(0, 32)}-${attr}`;
  const evaluate: Evaluate = async (_expr, system, each) => {
    for (const attr of ['zsh', 'bash', 'bashInteractive', 'notListed', 'missing']) each({ attr, outputs: { out: paths(attr === 'bashInteractive' ? 'bash' : attr, system) } });
  };
  /** A source answering from a map, counting requests. */
  function source(): ListingSource & { asked: string[] } {
    const asked: string[] = [];
    const bin = (names: string[]): PathFacts => ({ programs: names, debug: [] });
    const known = new Map<string, PathFacts>();
    for (const s of ['x86_64-linux', 'aarch64-linux']) {
      known.set(paths('zsh', s), bin(['zsh']));
      known.set(paths('bash', s), bin(['bash', 'sh']));
      known.set(paths('notListed', s), bin(['secret']));
    }
    // Answers arrive in a random order (a real cache's latencies vary).
    return { url: 'memory://', asked, async facts(p) { asked.push(p); await new Promise((r) => setTimeout(r, Math.random() * 8)); return known.get(p); }, async narUrl() { return undefined; } };
  }
  async function packagesFile(attrs: string[]): Promise<string> {
    const file = path.join(base, `packages-${attrs.length}.json.br`);
    await writeFile(file, brotliCompressSync(Buffer.from(JSON.stringify({ version: 2, packages: Object.fromEntries(attrs.map((a) => [a, { name: `${a}-1`, outputs: { out: null }, meta: { description: 'x'.repeat(200) } }])) }))));
    return file;
  }

  it('indexes the listed packages per system, the shortest attribute owning a shared path, with the same bytes twice', async () => {
    const pkgs = await packagesFile(['zsh', 'bash', 'bashInteractive', 'missing']);
    const run = async (name: string) => {
      const memo = await openListingMemo(path.join(base, `${name}.memo.sqlite`));
      const src = source();
      const output = path.join(base, `${name}.sqlite`);
      try {
        const stats = await generateProgramsIndex({ exprDir: base, packagesFile: pkgs, systems: ['x86_64-linux', 'aarch64-linux'], source: src, memo, output, evaluate, concurrency: 3 });
        return { stats, output, src };
      } finally { memo.close(); }
    };
    const a = await run('a');
    expect(a.stats).toMatchObject({ packages: 4, paths: 6, fetched: 4, missing: 2, rows: 6, evaluated: { 'x86_64-linux': 4, 'aarch64-linux': 4 } });
    expect(packagesProviding(a.output, 'x86_64-linux', 'sh')).toEqual(['bash']);
    expect(packagesProviding(a.output, 'aarch64-linux', 'zsh')).toEqual(['zsh']);
    expect(packagesProviding(a.output, 'x86_64-linux', 'secret')).toEqual([]); // not in packages.json.br
    // Sorted rows, the same bytes from the same inputs (whatever order the listings arrived in).
    expect(execFileSync('sqlite3', [a.output, 'select name, system, package from Programs'], { encoding: 'utf8' }).trim().split('\n')).toEqual([
      'bash|aarch64-linux|bash', 'bash|x86_64-linux|bash', 'sh|aarch64-linux|bash', 'sh|x86_64-linux|bash', 'zsh|aarch64-linux|zsh', 'zsh|x86_64-linux|zsh']);
    const b = await run('b');
    expect(sha256Text(await readFile(b.output))).toBe(sha256Text(await readFile(a.output)));
  });

  it('remembers listings between runs: a second run asks only for what the cache lacked', async () => {
    const pkgs = await packagesFile(['zsh', 'bash', 'missing']);
    const memoFile = path.join(base, 'shared.memo.sqlite');
    const once = async () => {
      const memo = await openListingMemo(memoFile);
      const src = source();
      try {
        const stats = await generateProgramsIndex({ exprDir: base, packagesFile: pkgs, systems: ['x86_64-linux'], source: src, memo, output: path.join(base, 'm.sqlite'), evaluate });
        memo.prune();
        return { stats, asked: src.asked };
      } finally { memo.close(); }
    };
    expect((await once()).asked).toHaveLength(3);
    const second = await once();
    expect(second.asked).toEqual([paths('missing', 'x86_64-linux')]);
    expect(second.stats).toMatchObject({ fetched: 0, remembered: 2, missing: 1 });
  });

  it('refuses a packages file that is not brotli JSON with packages, naming it', async () => {
    const bad = path.join(base, 'bad.json.br');
    await writeFile(bad, 'not brotli');
    await expect(readPackageAttrs(bad)).rejects.toThrow(new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not a brotli-compressed packages.json`));
    const empty = path.join(base, 'empty.json.br');
    await writeFile(empty, brotliCompressSync(Buffer.from('{"version":2,"foo":{}}')));
    await expect(readPackageAttrs(empty)).rejects.toThrow(/lists no packages/);
  });
});

describe('httpListingSource', () => {
  it('retries 5xx and a dropped body, treats 404 as "not there", and names the URL when it gives up', async () => {
    const calls: string[] = [];
    let flaky = 2;
    const fetchImpl = (async (url: string) => {
      calls.push(url);
      if (url.endsWith('.narinfo')) return new Response('StorePath: x\nURL: nar/abc.nar.xz\n', { status: 200 });
      if (url.includes('bbbb')) return new Response('', { status: 404 });
      if (url.includes('cccc')) return new Response('', { status: 503 });
      if (flaky-- > 0) return new Response('', { status: 500 });
      return new Response(JSON.stringify(listing(dir({ bin: dir({ ok: reg() }) }))), { status: 200 });
    }) as unknown as typeof fetch;
    const src = httpListingSource('http://cache.test/', { fetchImpl, backoffMs: 1, localStore: false });
    expect(await src.facts(P)).toEqual({ programs: ['ok'], debug: [] });
    expect(calls.filter((c) => c.endsWith('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.ls'))).toHaveLength(3);
    expect(await src.facts('/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-x')).toBeUndefined();
    // A listing stored brotli-compressed (ls-compression=br) and served without Content-Encoding.
    const br = httpListingSource('http://cache.test/', { localStore: false, fetchImpl: (async () => new Response(brotliCompressSync(Buffer.from(JSON.stringify(listing(dir({ bin: dir({ z: reg() }) })))) ), { status: 200 })) as unknown as typeof fetch });
    expect(await br.facts(P)).toEqual({ programs: ['z'], debug: [] });
    expect(await src.narUrl(P)).toBe('nar/abc.nar.xz');
    await expect(src.facts('/nix/store/cccccccccccccccccccccccccccccccc-x')).rejects.toThrow(/GET http:\/\/cache\.test\/cccccccccccccccccccccccccccccccc\.ls: HTTP 503 \(4 attempts\)/);
  });
});

describe('examples/nixos/releng.json', () => {
  it('indexes programs and debug info for NixOS channels (as the mirror does), not for nixpkgs-* ones', async () => {
    const { loadConfig } = await import('../../../lib/config/config.ts');
    const { kindFor } = await import('../../../lib/channel/release.ts');
    const file = new URL('../../../examples/nixos/releng.json', import.meta.url).pathname;
    const { config } = await loadConfig(file);
    for (const ch of ['nixos-24.11', 'nixos-unstable-small']) {
      expect(kindFor(config.channels!, ch, file).kind.programs, ch).toEqual({ systems: ['x86_64-linux', 'aarch64-linux'], packages: 'packages.json.br', tarballs: ['nixexprs.tar.xz', 'nixexprs.tar.zst'], debuginfo: true, listingConcurrency: 32 });
    }
    for (const ch of ['nixpkgs-unstable', 'nixpkgs-26.05-darwin']) expect(kindFor(config.channels!, ch, file).kind.programs, ch).toBeUndefined();
  });
});

describe('channels.kinds[].programs in releng.json', () => {
  it('names the field of a bad value', async () => {
    const { channelsConfigSchema } = await import('../../../lib/config/channels.ts');
    const kind = { match: 'nixos-.*', prefix: 'nixos', git: { remote: 'r' }, binaryCacheUrl: 'https://cache.example' };
    const bad = channelsConfigSchema.safeParse({ hydraUrl: 'https://hydra.example', kinds: [{ ...kind, programs: { systems: [], tarballs: ['nixexprs.zip'], extra: 1 } }] });
    expect(bad.success).toBe(false);
    const issues = bad.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
    expect(issues).toContain('kinds.0.programs.systems: name at least one system');
    expect(issues).toContain('kinds.0.programs.tarballs.0: expected a .tar.xz or .tar.zst file name');
    expect(issues).toMatch(/kinds\.0\.programs: .*extra/);
    const ok = channelsConfigSchema.parse({ hydraUrl: 'https://hydra.example', kinds: [{ ...kind, programs: { systems: ['x86_64-linux'] } }] });
    expect(ok.kinds[0]!.programs).toEqual({ systems: ['x86_64-linux'], packages: 'packages.json.br', tarballs: ['nixexprs.tar.xz', 'nixexprs.tar.zst'], debuginfo: true, listingConcurrency: 32 });
  });
});
