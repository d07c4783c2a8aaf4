// The cache planner, without servers: a staged cache written by hand (the narinfo format Nix
// writes) and an in-memory bucket. Checks the order rules of issue 4 and what is skipped.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderPlan } from '../../lib/actions/index.ts';
import type { BucketRef } from '../../lib/environment/open.ts';
import type { S3Put } from '../../lib/s3/actions.ts';
import type { S3Reader } from '../../lib/s3/store.ts';
import { planCache } from '../../lib/upload/cache.ts';
import { parseNarInfo, stagingStoreUrl } from '../../lib/nix/cache.ts';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hexToNix32, sha256Text } from '../../lib/hashing/checksums.ts';

/**
 * A read-only bucket held in memory (an adapter, not a mock: planners take any S3Reader). Objects
 * carry our sha256 metadata, as releng's own PUTs leave them; `heads` counts HEAD requests.
 */
function memoryBucket(objects: Record<string, string>): S3Reader & { listings: number; heads: number } {
  const self = {
    endpoint: 'memory://',
    listings: 0,
    heads: 0,
    async list(_bucket: string, prefix: string) { self.listings++; return Object.entries(objects).filter(([k]) => k.startsWith(prefix)).map(([key, v]) => ({ key, size: Buffer.byteLength(v), etag: `"${createHash('md5').update(v).digest('hex')}"` })); },
    async head(_b: string, key: string) {
      self.heads++;
      const v = objects[key];
      return v === undefined ? undefined : { size: Buffer.byteLength(v), sha256: sha256Text(v), etag: `"${createHash('md5').update(v).digest('hex')}"`, metadata: {} };
    },
    async getText(_b: string, key: string) { return objects[key]; },
    async checkBucket() {},
  };
  return self;
}

const h = (c: string) => c.repeat(32);
const sp = (c: string, name: string) => `/nix/store/${h(c)}-${name}`;
// A chain: app → lib → base, and tool → base; base references itself (as Nix records it).
const paths = { base: sp('a', 'base'), lib: sp('b', 'lib'), app: sp('c', 'app'), tool: sp('d', 'tool') };
const refs: Record<string, string[]> = { base: [paths.base], lib: [paths.base], app: [paths.lib, paths.base], tool: [paths.base] };

describe('planCache', () => {
  let dir: string;
  const bucket: BucketRef = { bucket: 'cache', prefix: '', url: 's3://cache' };
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-cache-unit-'));
    await mkdir(path.join(dir, 'nar'));
    await writeFile(path.join(dir, 'nix-cache-info'), 'StoreDir: /nix/store\n');
    for (const [name, p] of Object.entries(paths)) {
      const c = path.basename(p)[0]!;
      const nar = `nar/${c.repeat(52)}.nar.zst`;
      await writeFile(path.join(dir, nar), `NAR of ${name}`);
      await writeFile(path.join(dir, `${h(c)}.ls`), `{"version":1}`);
      await writeFile(path.join(dir, `${h(c)}.narinfo`), [
        `StorePath: ${p}`, `URL: ${nar}`, 'Compression: zstd', `FileHash: sha256:${hexToNix32(sha256Text(`NAR of ${name}`))}`, `FileSize: ${`NAR of ${name}`.length}`,
        'NarHash: sha256:x', 'NarSize: 1', `References: ${refs[name]!.map((r) => path.basename(r)).join(' ')}`, 'Sig: k-1:sig', '',
      ].join('\n'));
    }
  });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('puts NARs, listings and nix-cache-info first, then narinfos in reference levels', async () => {
    const plan = await planCache(memoryBucket({}), bucket, { stagingDir: dir, paths: Object.values(paths) });
    expect(plan.steps.map((s) => s.title)).toEqual([
      'cache NARs and listings to s3://cache/',
      'cache narinfos, level 0 of 2, to s3://cache/',
      'cache narinfos, level 1 of 2, to s3://cache/',
      'cache narinfos, level 2 of 2, to s3://cache/',
    ]);
    const keys = (i: number) => plan.steps[i]!.actions.map((a) => (a as S3Put).key);
    expect(keys(0)).toContain('nix-cache-info');
    expect(keys(0).filter((k) => k.startsWith('nar/'))).toHaveLength(4);
    expect(keys(0).filter((k) => k.endsWith('.ls'))).toHaveLength(4);
    expect(keys(0).some((k) => k.endsWith('.narinfo'))).toBe(false);
    expect(keys(1)).toEqual([`${h('a')}.narinfo`]);
    expect(keys(2).sort()).toEqual([`${h('b')}.narinfo`, `${h('d')}.narinfo`]);
    expect(keys(3)).toEqual([`${h('c')}.narinfo`]);
    const narinfo = plan.steps[1]!.actions[0] as S3Put;
    expect(narinfo.contentType).toBe('text/x-nix-narinfo');
    expect(renderPlan(plan)).toContain(`[dry-run] s3 put s3://cache/${h('a')}.narinfo (text/x-nix-narinfo, `);
  });

  it('every narinfo comes after the NARs and the narinfos of everything it references', async () => {
    const plan = await planCache(memoryBucket({}), bucket, { stagingDir: dir, paths: Object.values(paths) });
    const stepOf = new Map<string, number>();
    plan.steps.forEach((s, i) => s.actions.forEach((a) => stepOf.set((a as S3Put).key, i)));
    for (const [name, p] of Object.entries(paths)) {
      const c = path.basename(p)[0]!;
      const mine = stepOf.get(`${h(c)}.narinfo`)!;
      expect(stepOf.get(`nar/${c.repeat(52)}.nar.zst`)!).toBeLessThan(mine);
      for (const r of refs[name]!) if (r !== p) expect(stepOf.get(`${path.basename(r).slice(0, 32)}.narinfo`)!, `${name} → ${r}`).toBeLessThan(mine);
    }
  });

  /** The bucket as an earlier run left it: the staged files under these keys. */
  const staged = async (...rels: string[]) => Object.fromEntries(await Promise.all(rels.map(async (r) => [r, await readFile(path.join(dir, r), 'utf8')] as const)));
  const nar = (c: string) => `nar/${c.repeat(52)}.nar.zst`;

  it('skips what the bucket holds with the staged size and sha256, from one listing and a HEAD each', async () => {
    const remote = memoryBucket({
      'nix-cache-info': 'StoreDir: /nix/store\n',
      ...await staged(`${h('a')}.narinfo`, nar('a'), `${h('a')}.ls`),
      // An interrupted run: lib's NAR and listing landed, its narinfo did not.
      ...await staged(nar('b'), `${h('b')}.ls`),
    });
    const plan = await planCache(remote, bucket, { stagingDir: dir, paths: Object.values(paths) });
    expect(remote.listings).toBe(1);
    expect(remote.heads).toBe(5);
    const all = plan.steps.flatMap((s) => s.actions.map((a) => (a as S3Put).key)).sort();
    expect(all).toEqual([
      `${h('b')}.narinfo`, `${h('c')}.ls`, `${h('c')}.narinfo`, `${h('d')}.ls`, `${h('d')}.narinfo`,
      nar('c'), nar('d'),
    ].sort());
    // base is in the bucket, so lib and tool are level 0 now.
    expect(plan.steps[1]!.actions.map((a) => (a as S3Put).key).sort()).toEqual([`${h('b')}.narinfo`, `${h('d')}.narinfo`]);
    expect(plan.skipped.map((s) => s.what)).toEqual(['1 narinfo in s3://cache/', '2 NARs in s3://cache/nar/']);
  });

  it('re-sends a NAR the bucket lost or holds truncated, though its narinfo is there (issue 9)', async () => {
    const objects: Record<string, string> = { 'nix-cache-info': 'StoreDir: /nix/store\n' };
    for (const c of ['a', 'b', 'c', 'd']) Object.assign(objects, await staged(`${h(c)}.narinfo`, nar(c), `${h(c)}.ls`));
    delete objects[nar('a')]; // acknowledged, never stored
    objects[nar('b')] = objects[nar('b')]!.slice(0, 3); // stored truncated
    objects[nar('c')] = objects[nar('c')]!.replace('N', 'n'); // same size, other bytes
    const plan = await planCache(memoryBucket(objects), bucket, { stagingDir: dir, paths: Object.values(paths) });
    const puts = plan.steps.flatMap((s) => s.actions) as S3Put[];
    expect(puts.map((p) => `${p.key} ${p.reason}`).sort()).toEqual([`${nar('a')} new`, `${nar('b')} changed`, `${nar('c')} changed`]);
    expect(puts.find((p) => p.key === nar('a'))!.createOnly).toBe(true);
  });

  it('a narinfo with other bytes in the bucket is put again after its NAR', async () => {
    const objects: Record<string, string> = { 'nix-cache-info': 'StoreDir: /nix/store\n' };
    for (const c of ['a', 'b', 'c', 'd']) Object.assign(objects, await staged(`${h(c)}.narinfo`, nar(c), `${h(c)}.ls`));
    objects[`${h('d')}.narinfo`] = 'StorePath: truncated';
    const plan = await planCache(memoryBucket(objects), bucket, { stagingDir: dir, paths: Object.values(paths) });
    expect(plan.steps.map((s) => s.actions.map((a) => `${(a as S3Put).key} ${(a as S3Put).reason}`))).toEqual([[], [`${h('d')}.narinfo changed`]]);
  });

  it('refuses a staged NAR that is not what its narinfo says (FileHash), naming the file, before any write', async () => {
    await writeFile(path.join(dir, nar('b')), 'NAR of lIb'); // same size, one byte flipped
    await expect(planCache(memoryBucket({}), bucket, { stagingDir: dir, paths: Object.values(paths) }))
      .rejects.toThrow(`${path.join(dir, nar('b'))} does not match ${path.join(dir, `${h('b')}.narinfo`)}`);
  });

  it('nothing to do when the bucket holds every staged file', async () => {
    const objects: Record<string, string> = { 'nix-cache-info': 'StoreDir: /nix/store\n' };
    for (const c of ['a', 'b', 'c', 'd']) Object.assign(objects, await staged(`${h(c)}.narinfo`, nar(c), `${h(c)}.ls`));
    const plan = await planCache(memoryBucket(objects), bucket, { stagingDir: dir, paths: Object.values(paths) });
    expect(plan.steps.flatMap((s) => s.actions)).toEqual([]);
    expect(plan.skipped[0]!.reason).toContain('already in the cache');
  });

  it('refuses a narinfo whose reference would be missing from the cache', async () => {
    await expect(planCache(memoryBucket({}), bucket, { stagingDir: dir, paths: [paths.lib] }))
      .rejects.toThrow(`${paths.lib} references ${paths.base}, which is neither in s3://cache/ nor in the closure to upload`);
  });

  it('names a path missing from the staged cache', async () => {
    await expect(planCache(memoryBucket({}), bucket, { stagingDir: dir, paths: [sp('e', 'gone')] })).rejects.toThrow('is not in the staged cache');
  });

  it('notes a narinfo as signed only while its file is the one the staged check vouched for (issue 31)', async () => {
    const { cacheKnowledge } = await import('../../lib/upload/cache.ts');
    const { fileIdentity } = await import('../../lib/upload/staged-check.ts');
    const { statSync } = await import('node:fs');
    const file = (c: string) => path.join(dir, `${h(c)}.narinfo`);
    const md5Of = async (c: string) => createHash('md5').update(await readFile(file(c))).digest('hex');
    // a and b vouched for as they are; c vouched for, then rewritten (same bytes: another ctime, so not the file checked).
    const files = new Map(['a', 'b', 'c'].map((c) => [file(c), fileIdentity(statSync(file(c), { bigint: true }))]));
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(file('c'), await readFile(file('c')));
    const local = cacheKnowledge();
    await planCache(memoryBucket({}), bucket, { stagingDir: dir, paths: Object.values(paths), local, vouched: { publicKey: 'k-1:AAAA', files } });
    expect(local.signedBy!('cache', `${h('a')}.narinfo`, await md5Of('a'))).toBe('k-1:AAAA');
    expect(local.signedBy!('cache', `${h('b')}.narinfo`, await md5Of('b'))).toBe('k-1:AAAA');
    expect(local.signedBy!('cache', `${h('c')}.narinfo`, await md5Of('c'))).toBeUndefined();
    expect(local.signedBy!('cache', `${h('d')}.narinfo`, await md5Of('d'))).toBeUndefined();
  });

  it('uses the bucket prefix for keys and the listing', async () => {
    const plan = await planCache(memoryBucket({}), { bucket: 'cache', prefix: 'nix/', url: 's3://cache/nix' }, { stagingDir: dir, paths: [paths.base] });
    expect(plan.steps.flatMap((s) => s.actions.map((a) => (a as S3Put).key))).toContain(`nix/${h('a')}.narinfo`);
  });
});

describe('parseNarInfo', () => {
  it('reads the fields the planner needs, references as store paths', () => {
    const info = parseNarInfo(`StorePath: ${paths.app}\nURL: nar/x.nar.zst\nFileSize: 12\nReferences: ${path.basename(paths.lib)}\n`, 't');
    expect(info).toEqual({ storePath: paths.app, url: 'nar/x.nar.zst', fileSize: 12, references: [paths.lib] });
    expect(parseNarInfo(`StorePath: ${paths.base}\nURL: u\nFileSize: 1\nReferences: \n`, 't').references).toEqual([]);
    expect(() => parseNarInfo('StorePath: x\nReferences: \n', 'file.narinfo')).toThrow('file.narinfo: narinfo has no URL field');
  });
});

describe('stagingStoreUrl', () => {
  it('passes compression, the key file and the environment\'s store options to Nix', () => {
    expect(stagingStoreUrl('/p/release/cache/staging', { signingKeyFile: 'k', compression: 'zstd', storeOptions: { 'write-nar-listing': 'true', 'ls-compression': 'zstd' } }, '/p/keys/staging.key'))
      .toBe('file:///p/release/cache/staging?compression=zstd&secret-key=/p/keys/staging.key&write-nar-listing=true&ls-compression=zstd');
  });
});

describe('cacheKnowledge signedBy (issue 31)', () => {
  it('answers with the vouched key for bytes of the MD5 noted, and never for two keys', async () => {
    const { cacheKnowledge } = await import('../../lib/upload/cache.ts');
    const digest = (text: string) => ({ size: Buffer.byteLength(text), md5: createHash('md5').update(text).digest('base64') });
    const hex = (text: string) => createHash('md5').update(text).digest('hex');
    const [ta, tb] = ['StorePath: /nix/store/a\n', 'StorePath: /nix/store/b\n'];
    const k = cacheKnowledge();
    k.note('c', 'a.narinfo', '/staged/a.narinfo', digest(ta), true, 'k-1:AAAA');
    k.note('c', 'b.narinfo', '/staged/b.narinfo', digest(tb), true);
    expect(k.signedBy!('c', 'a.narinfo', hex(ta))).toBe('k-1:AAAA');
    expect(k.signedBy!('c', 'a.narinfo', hex(ta).toUpperCase())).toBe('k-1:AAAA');
    // Other bytes than the ones checked: no answer (the verifier checks their signature).
    expect(k.signedBy!('c', 'a.narinfo', hex(tb))).toBeUndefined();
    // Not vouched, or not known: no answer.
    expect(k.signedBy!('c', 'b.narinfo', hex(tb))).toBeUndefined();
    expect(k.signedBy!('c', 'x.narinfo', hex(ta))).toBeUndefined();
    // Vouched with two keys in one run: neither is answered.
    k.note('c', 'b.narinfo', '/staged/b.narinfo', digest(tb), true, 'k-2:BBBB');
    expect(k.signedBy!('c', 'a.narinfo', hex(ta))).toBeUndefined();
    expect(k.signedBy!('c', 'b.narinfo', hex(tb))).toBeUndefined();
  });
});
