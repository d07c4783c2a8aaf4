// Values that must not escape their place (issue 9): bucket URLs, prefixes and keys; versions that
// git cannot tag or that are not one path segment; fragments with NUL bytes or invalid UTF-8; and
// the checksum helpers, checked against Nix's and git's own tools.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestFile, hexToNix32, md5Base64, nix32ToHex, nixSha256ToHex, sha256HexToBase64, sha256Text } from '../../lib/hashing/checksums.ts';
import { configSchema, loadConfig } from '../../lib/config/config.ts';
import { decodeFragment } from '../../lib/release-notes/fragments.ts';
import { keyProblem, s3UrlProblem } from '../../lib/config/keys.ts';
import { tagNameProblem, versionFileSchema } from '../../lib/config/version.ts';
import { requireTool } from '../helpers/tools.ts';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'releng-integrity-unit-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

const baseConfig = (releasesBucket: string) => ({
  project: 'x', releaseJobs: { file: 'r.nix' }, profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'all',
  environments: { staging: { releasesBucket, cacheBucket: 's3://cache', docsBucket: 's3://docs', s3: { endpoint: 'http://127.0.0.1:1' } } },
});

describe('bucket URLs, prefixes and keys', () => {
  it('refuses "s3://rel/../cache" when the config loads, naming the field', async () => {
    const file = path.join(dir, 'releng.json');
    await writeFile(file, JSON.stringify(baseConfig('s3://rel/../cache')));
    const err = await loadConfig(file).then(() => undefined, (e) => e);
    expect(err?.message).toContain(file);
    expect(err?.message).toContain('environments.staging.releasesBucket: the prefix has a ".." segment');
  });

  it('refuses every kind of bad segment, accepts plain ones', () => {
    for (const bad of ['s3://rel/a/./b', 's3://rel//a', 's3://rel/a%2Fb', 's3://rel/a?x', 's3://rel/a#x', 's3://rel/a\\b', 's3://rel/a\u0000b', 's3://rel/a\u0007b', 's3://re..l', 's3://Rel', 's3://1.2.3.4']) {
      expect(s3UrlProblem(bad), bad).toBeDefined();
      expect(configSchema.safeParse(baseConfig(bad)).success, bad).toBe(false);
    }
    for (const good of ['s3://rel', 's3://rel/', 's3://rel/lix', 's3://rel/lix/releases/', 's3://releases.lix.systems']) {
      expect(s3UrlProblem(good), good).toBeUndefined();
      expect(configSchema.safeParse(baseConfig(good)).success, good).toBe(true);
    }
    expect(keyProblem('nar/abc.nar.zst')).toBeUndefined();
    expect(keyProblem('manual/../x')).toContain('".."');
    expect(keyProblem('a/b%20c')).toContain('"%"');
  });

  it('transitChecksum and conditionalWrites default to sha256 and off, and take only known values', () => {
    const c = configSchema.parse(baseConfig('s3://rel'));
    expect(c.environments.staging!.s3!.transitChecksum).toBe('sha256');
    expect(c.environments.staging!.s3!.conditionalWrites).toBe(false);
    const bad = baseConfig('s3://rel') as any;
    bad.environments.staging.s3.transitChecksum = 'crc32';
    expect(configSchema.safeParse(bad).success).toBe(false);
  });
});

describe('versions are git tag names and one path segment', () => {
  const ok = (v: string) => versionFileSchema.safeParse({ version: v, official_release: false, release_name: 'x' }).success;

  it('refuses 1.0.0.lock and friends, with the reason', () => {
    expect(ok('1.0.0.lock')).toBe(false);
    expect(tagNameProblem('1.0.0.lock')).toBe('ends with ".lock"');
    for (const v of ['1.0..0', '1.0.0.', '1.0~rc1', '1.0/2']) expect(ok(v), v).toBe(false);
    for (const v of ['1.0.0', '2.93.0', '2.93', '2.94.0-pre.20250101', '1.0.0+build.5']) expect(ok(v), v).toBe(true);
  });

  it('agrees with git check-ref-format on every sample', () => {
    requireTool('git', 'git');
    const samples = ['1.0.0', '1.0.0.lock', '1.0..0', '1.0.0.', '.1.0', '1.0~1', '1.0^1', '1.0:1', '1.0 1', '1.0?', '1.0*', '1.0[1', '1.0\\1', '1@{0', '@', '1.0-rc1', '1.0+x', '1.0\u0001'];
    for (const v of samples) {
      const git = spawnSync('git', ['check-ref-format', `refs/tags/${v}`]).status === 0;
      expect(tagNameProblem(v) === undefined, `${JSON.stringify(v)}: git says ${git ? 'valid' : 'invalid'}`).toBe(git);
    }
  });
});

describe('fragments with NUL bytes or invalid UTF-8', () => {
  it('are refused with file and line; valid UTF-8 (and CRLF) passes', () => {
    const nul = decodeFragment('rl-next/a.md', Buffer.from('---\nsynopsis: x\n---\nbody\u0000here\n'));
    expect(String(nul)).toBe('rl-next/a.md:4: contains a NUL byte; release notes are text: remove it');
    const latin1 = decodeFragment('rl-next/b.md', Buffer.concat([Buffer.from('---\nsynopsis: x\n---\n\ncaf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    expect(String(latin1)).toBe('rl-next/b.md:5: is not valid UTF-8; save the fragment as UTF-8');
    expect(decodeFragment('c.md', Buffer.from('---\r\nsynopsis: café ✓\r\n---\r\n'))).toBe('---\nsynopsis: café ✓\n---\n');
  });
});

describe('checksum helpers', () => {
  it('digestFile reads sha256 and MD5 in one pass, equal to sha256sum and md5sum', async () => {
    const f = path.join(dir, 'blob');
    await writeFile(f, Buffer.alloc(3 * 1024 * 1024 + 7, 'releng'));
    const d = await digestFile(f, { md5: true });
    expect(d.sha256).toBe(execFileSync('sha256sum', [f], { encoding: 'utf8' }).split(' ')[0]);
    expect(Buffer.from(d.md5!, 'base64').toString('hex')).toBe(execFileSync('md5sum', [f], { encoding: 'utf8' }).split(' ')[0]);
    expect(d.size).toBe(3 * 1024 * 1024 + 7);
    expect((await digestFile(f)).md5).toBeUndefined();
    expect(md5Base64('')).toBe('1B2M2Y8AsgTpgAmY7PhCfg==');
    expect(sha256HexToBase64(sha256Text(''))).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  });

  it('nix32 matches nix-hash --to-base32 both ways', () => {
    requireTool('nix-hash', 'nix-bin');
    for (const text of ['', 'NAR of base', 'releng']) {
      const hex = sha256Text(text);
      const nix = execFileSync('nix-hash', ['--type', 'sha256', '--to-base32', hex], { encoding: 'utf8' }).trim();
      expect(hexToNix32(hex)).toBe(nix);
      expect(nix32ToHex(nix)).toBe(hex);
      expect(nixSha256ToHex(`sha256:${nix}`)).toBe(hex);
    }
    expect(nixSha256ToHex('sha256:' + 'z'.repeat(52))).toBeUndefined();
    expect(nixSha256ToHex('md5:abc')).toBeUndefined();
  });
});
