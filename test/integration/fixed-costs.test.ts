// Issue 16's fixed costs: the memos that let a re-run skip local Nix work (manifest evaluation,
// staging the cache, the closure query, the signing key's public half) are trusted only while what
// determines them is unchanged. Real Nix throughout: a counting wrapper on PATH only notes each
// call and runs the real nix-instantiate.
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closureOf, hashPart, parseNarInfo, publicKeyOf, stageCacheMemoised, stagingStoreUrl } from '../../lib/nix/cache.ts';
import { manifestMemoFile, readManifestWithNix, renderManifest } from '../../lib/nix/manifest.ts';
import { localPathInfos, narListing } from '../../lib/nix/store-info.ts';
import { fileIdentity, stagedCacheProblems } from '../../lib/upload/staged-check.ts';
import { requireTool } from '../helpers/tools.ts';

for (const [tool, pkg] of [['nix-build', 'nix-bin'], ['nix-instantiate', 'nix-bin'], ['nix-store', 'nix-bin']] as const) requireTool(tool, pkg);

let dir: string;
beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'releng-fixed-costs-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

/** A nix-instantiate on PATH that counts its calls, then runs the real one. */
async function countingNix(name: string): Promise<{ calls: () => Promise<number>; restore: () => void; bin: string }> {
  const real = execFileSync('sh', ['-c', 'command -v nix-instantiate'], { encoding: 'utf8' }).trim();
  const bin = path.join(dir, name);
  await import('node:fs/promises').then((fs) => fs.mkdir(bin, { recursive: true }));
  const count = path.join(bin, 'count');
  await writeFile(count, '');
  await writeFile(path.join(bin, 'nix-instantiate'), `#!/bin/sh\necho x >> '${count}'\nexec '${real}' "$@"\n`);
  await chmod(path.join(bin, 'nix-instantiate'), 0o755);
  const old = process.env.PATH;
  process.env.PATH = `${bin}${path.delimiter}${old}`;
  return {
    bin,
    calls: async () => (await readFile(count, 'utf8')).split('\n').filter(Boolean).length,
    restore: () => { process.env.PATH = old; },
  };
}

describe('manifest evaluation memo', () => {
  const a = { 'x86_64-linux': `/nix/store/${'a'.repeat(32)}-bench-1.0.0` };
  const b = { 'x86_64-linux': `/nix/store/${'b'.repeat(32)}-bench-1.0.1` };

  it('evaluates a manifest once, and again when its bytes change (never the memoised value for other bytes)', async () => {
    const nix = await countingNix('bin-bytes');
    try {
      const memoDir = path.join(dir, 'state-bytes');
      const file = path.join(dir, 'bytes.nix');
      await writeFile(file, renderManifest(a));
      expect(await readManifestWithNix(file, { memoDir })).toEqual(a);
      expect(await readManifestWithNix(file, { memoDir })).toEqual(a);
      expect(await nix.calls()).toBe(1);
      expect(Object.keys(JSON.parse(await readFile(path.join(memoDir, manifestMemoFile), 'utf8')).entries)).toHaveLength(1);
      await writeFile(file, renderManifest(b)); // same file, other bytes
      expect(await readManifestWithNix(file, { memoDir })).toEqual(b);
      expect(await nix.calls()).toBe(2);
    } finally { nix.restore(); }
  });

  it('does not trust a memo entry made by another Nix, nor one whose value does not render to the bytes', async () => {
    const memoDir = path.join(dir, 'state-nix');
    const file = path.join(dir, 'nix.nix');
    await writeFile(file, renderManifest(a));
    const first = await countingNix('bin-nix-1');
    try { expect(await readManifestWithNix(file, { memoDir })).toEqual(a); } finally { first.restore(); }
    expect(await first.calls()).toBe(1);
    // Another nix-instantiate on PATH (another identity): evaluated again, by it.
    const second = await countingNix('bin-nix-2');
    try { expect(await readManifestWithNix(file, { memoDir })).toEqual(a); } finally { second.restore(); }
    expect(await second.calls()).toBe(1);
    // A tampered entry (a value these bytes do not say) is ignored: Nix answers.
    const memoFile = path.join(memoDir, manifestMemoFile);
    const memo = JSON.parse(await readFile(memoFile, 'utf8'));
    for (const e of Object.values(memo.entries) as { value: Record<string, string> }[]) e.value = b;
    await writeFile(memoFile, JSON.stringify(memo));
    const third = await countingNix('bin-nix-3');
    try { expect(await readManifestWithNix(file, { memoDir })).toEqual(a); } finally { third.restore(); }
    expect(await third.calls()).toBe(1);
  });

  it('never memoises a manifest that is not a literal attribute set (it could import other files)', async () => {
    const nix = await countingNix('bin-literal');
    try {
      const memoDir = path.join(dir, 'state-literal');
      const file = path.join(dir, 'let.nix');
      await writeFile(file, `let p = "${a['x86_64-linux']}"; in { x86_64-linux = p; }\n`);
      expect(await readManifestWithNix(file, { memoDir })).toEqual(a);
      expect(await readManifestWithNix(file, { memoDir })).toEqual(a);
      expect(await nix.calls()).toBe(2);
      await expect(readFile(path.join(memoDir, manifestMemoFile), 'utf8')).rejects.toThrow(/ENOENT/);
    } finally { nix.restore(); }
  });

  it('still refuses what Nix cannot evaluate', async () => {
    const file = path.join(dir, 'broken.nix');
    await writeFile(file, '{ x86_64-linux = ; }\n');
    await expect(readManifestWithNix(file, { memoDir: path.join(dir, 'state-broken') })).rejects.toThrow(/nix-instantiate/);
  });
});

describe('staging memo (nix copy to the staged cache)', () => {
  let out: string;
  let key1: string;
  let key2: string;
  let pub1: string;
  let pub2: string;
  beforeAll(async () => {
    // A tiny closure (root → dep), built by real Nix without nixpkgs.
    const expr = `let dep = builtins.derivation { name = "fixed-costs-dep-${process.pid}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo dep > $out" ]; };
      in builtins.derivation { name = "fixed-costs-root-${process.pid}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo \${dep} > $out" ]; }`;
    out = execFileSync('nix-build', ['--no-out-link', '-E', expr], { encoding: 'utf8' }).trim();
    key1 = path.join(dir, 'k1.sec');
    key2 = path.join(dir, 'k2.sec');
    await writeFile(key1, execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'generate-secret', '--key-name', 'fc-1']));
    await writeFile(key2, execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'generate-secret', '--key-name', 'fc-2']));
    pub1 = execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'convert-secret-to-public'], { input: await readFile(key1), encoding: 'utf8' }).trim();
    pub2 = execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'convert-secret-to-public'], { input: await readFile(key2), encoding: 'utf8' }).trim();
  }, 120_000);

  const cacheCfg = { compression: 'zstd', storeOptions: {} } as never;

  it('skips nix copy only while every staged file is there with its size, and restages otherwise', async () => {
    const stage = path.join(dir, 'staged');
    const memoFile = path.join(dir, 'state-stage', 'staged-test.json');
    const opts = { dir: stage, url: stagingStoreUrl(stage, cacheCfg, key1), publicKey: pub1, drvs: [], outPaths: [out], memoFile };
    const first = await stageCacheMemoised(opts);
    expect(first.staged).toBe(true);
    expect(first.paths).toHaveLength(2);
    expect(first.paths).toContain(out);
    const narinfo = path.join(stage, `${hashPart(out)}.narinfo`);
    const again = await stageCacheMemoised(opts);
    expect(again).toEqual({ paths: first.paths, staged: false });

    // A deleted narinfo: nix copy runs and writes it back.
    await unlink(narinfo);
    expect((await stageCacheMemoised(opts)).staged).toBe(true);
    expect(parseNarInfo(await readFile(narinfo, 'utf8'), narinfo).storePath).toBe(out);
    expect((await stageCacheMemoised(opts)).staged).toBe(false);

    // A deleted nix-cache-info (uploaded with the cache): restaged, and Nix writes it back.
    await unlink(path.join(stage, 'nix-cache-info'));
    expect((await stageCacheMemoised(opts)).staged).toBe(true);
    expect(await readFile(path.join(stage, 'nix-cache-info'), 'utf8')).toMatch(/^StoreDir: /m);

    // A NAR of another size: the memo is not trusted.
    const nar = path.join(stage, parseNarInfo(await readFile(narinfo, 'utf8'), narinfo).url);
    await truncate(nar, 1);
    expect((await stageCacheMemoised(opts)).staged).toBe(true);
    await rm(stage, { recursive: true, force: true }); // as upload does on a key change
    expect((await stageCacheMemoised(opts)).staged).toBe(true);

    // Another key (its URL and public key): restaged, and Nix's real client reads the cache signed by it.
    const other = { ...opts, url: stagingStoreUrl(stage, cacheCfg, key2), publicKey: pub2 };
    await rm(stage, { recursive: true, force: true });
    expect((await stageCacheMemoised(other)).staged).toBe(true);
    expect((await stageCacheMemoised(other)).staged).toBe(false);
    expect((await stageCacheMemoised(opts)).staged).toBe(true); // back to key 1: the memo is key 2's
    const info = execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'path-info', '--json', '--store', `file://${stage}`, out], { encoding: 'utf8' });
    expect(JSON.parse(info)[0].path).toBe(out);

    // Other paths: the memo is for another set.
    expect((await stageCacheMemoised({ ...opts, outPaths: [out, first.paths.find((p) => p !== out)!] })).staged).toBe(true);
  }, 120_000);

  it('the staged-cache check (issue 25) runs again only for a path whose staged files or store path changed since it passed (issue 31)', async () => {
    const stage = path.join(dir, 'staged-check');
    const memo = { file: path.join(dir, 'state-check', 'staged-check-test.json'), racyMs: 0 };
    const { paths } = await stageCacheMemoised({ dir: stage, url: stagingStoreUrl(stage, cacheCfg, key1), publicKey: pub1, drvs: [], outPaths: [out], memoFile: path.join(dir, 'state-check', 'staged-test.json') });
    const asked: string[][] = [];
    const store = { infos: (ps: string[]) => { asked.push([...ps].sort()); return localPathInfos(ps); }, listing: narListing };
    // vouch: the narinfo files that passed, with their identities (lib/verify/cache.ts then leaves their signatures alone).
    let vouched = new Map<string, string>();
    const check = (o: { publicKey?: string; memo?: typeof memo } = {}) => {
      vouched = new Map();
      return stagedCacheProblems(stage, paths, { publicKey: o.publicKey ?? pub1, store, memo: 'memo' in o ? o.memo : memo, vouch: (f, id) => vouched.set(f, id) });
    };
    const narinfoOf = (p: string) => path.join(stage, `${hashPart(p)}.narinfo`);
    const identityOf = async (f: string) => fileIdentity(await import('node:fs/promises').then((fs) => fs.stat(f, { bigint: true })));
    expect(await check()).toEqual([]);
    expect(asked).toEqual([[...paths].sort()]);
    expect([...vouched.keys()].sort()).toEqual(paths.map(narinfoOf).sort());
    expect(vouched.get(narinfoOf(out))).toBe(await identityOf(narinfoOf(out)));
    // Unchanged: every path passes from the memo, without asking the store (no nix path-info), and is vouched for.
    expect(await check()).toEqual([]);
    expect(asked).toHaveLength(1);
    expect(vouched.size).toBe(paths.length);
    // A NarHash digit changed in place, size and mtime kept: that path alone is checked again, and refused.
    const narinfo = path.join(stage, `${hashPart(out)}.narinfo`);
    const text = await readFile(narinfo, 'utf8');
    const { atime, mtime } = await import('node:fs/promises').then((fs) => fs.stat(narinfo));
    await writeFile(narinfo, text.replace(/^(NarHash: sha256:)(.)/m, (_m, a, c) => `${a}${c === '0' ? '1' : '0'}`));
    await import('node:fs/promises').then((fs) => fs.utimes(narinfo, atime, mtime));
    expect((await check()).map((b) => [b.storePath, b.problem])).toEqual([[out, 'its NarHash is not the store path\'s']]);
    expect(asked.at(-1)).toEqual([out]);
    // A path that fails is not vouched for; the others still are.
    expect(vouched.has(narinfoOf(out))).toBe(false);
    expect(vouched.size).toBe(paths.length - 1);
    // Still refused on the next run: a failed path is never memoised.
    expect(await check()).toHaveLength(1);
    await writeFile(narinfo, text);
    expect(await check()).toEqual([]);
    // Another key: nothing passes from the memo (and the narinfos are not signed by it).
    const before = asked.length;
    expect((await check({ publicKey: pub2 })).map((b) => b.problem).every((m) => m.startsWith('not signed by the environment\'s key'))).toBe(true);
    expect(asked[before]).toEqual([...paths].sort());
    // Another key vouches for nothing.
    expect(vouched.size).toBe(0);
    // Files written within the racy window (here: the last minute, all of them) are not memoised, nor vouched for.
    expect(await check({ memo: { ...memo, racyMs: 60_000 } })).toEqual([]);
    expect(vouched.size).toBe(0);
    expect(await check({ memo: { ...memo, racyMs: 60_000 } })).toEqual([]);
    expect(asked.slice(-2)).toEqual([[...paths].sort(), [...paths].sort()]);
  }, 120_000);

  it('reads the store\'s records and closures of more paths than one argument list holds (issue 31: 50,000 paths)', async () => {
    // 40 arguments of 60 KB (the store path behind 60,000 slashes, which Nix reads as the path
    // itself): 2.4 MB, more than Linux's ARG_MAX (2 MiB) as 45,000 plain store paths would be, in
    // few enough calls to stay quick. Real Nix answers each batch.
    const many = Array.from({ length: 40 }, () => '/'.repeat(60_000) + out.slice(1));
    const infos = await localPathInfos(many);
    expect([...infos.keys()]).toEqual([out]);
    expect(infos.get(out)!.narSize).toBeGreaterThan(0);
    const closure = await closureOf(many);
    expect(closure).toContain(out);
    expect(closure).toHaveLength(2);
  }, 120_000);

  it('a corrupt memo file is not trusted', async () => {
    const stage = path.join(dir, 'staged-corrupt');
    const memoFile = path.join(dir, 'state-corrupt', 'staged-test.json');
    const opts = { dir: stage, url: stagingStoreUrl(stage, cacheCfg, key1), publicKey: pub1, drvs: [], outPaths: [out], memoFile };
    expect((await stageCacheMemoised(opts)).staged).toBe(true);
    await writeFile(memoFile, '{"version":1,');
    expect((await stageCacheMemoised(opts)).staged).toBe(true);
    // A memo that leaves a closure path's narinfo out is not trusted either.
    const memo = JSON.parse(await readFile(memoFile, 'utf8'));
    delete memo.files[`${hashPart(out)}.narinfo`];
    await writeFile(memoFile, JSON.stringify(memo));
    expect((await stageCacheMemoised(opts)).staged).toBe(true);
  }, 120_000);
});

describe('signing key public half without Nix', () => {
  it('gives what nix key convert-secret-to-public gives, and leaves other forms to Nix', async () => {
    for (const name of ['pk-1', 'cache.example.org-1']) {
      const secret = execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'generate-secret', '--key-name', name], { encoding: 'utf8' });
      const viaNix = execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'convert-secret-to-public'], { input: secret, encoding: 'utf8' }).trim();
      expect(publicKeyOf(secret)).toBe(viaNix);
      expect(publicKeyOf(`${secret}\n`)).toBe(viaNix);
      expect(publicKeyOf(` ${secret}`)).toBeUndefined(); // Nix keeps the space in the name: Nix decides
      // Halves that disagree (another key's public half): not derived here.
      const raw = Buffer.from(secret.slice(secret.indexOf(':') + 1), 'base64');
      raw[40] = raw[40]! ^ 1;
      expect(publicKeyOf(`${name}:${raw.toString('base64')}`)).toBeUndefined();
    }
    expect(publicKeyOf('not a key')).toBeUndefined();
  });
});
