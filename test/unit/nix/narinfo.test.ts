// nix32 and narinfo signatures, checked against Nix itself: `nix-hash --to-base32` for the encoding,
// and a cache Nix wrote and signed (`nix copy --to file://...?secret-key=`) for the fingerprint.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nix32Decode, nix32Encode, parseSha256Hash } from '../../../lib/nix/nix32.ts';
import { checkNarInfoSignature, narInfoFingerprint, parseNarInfoStrict, parseNixPublicKey } from '../../../lib/nix/narinfo.ts';
import { requireTool } from '../../helpers/tools.ts';
import '../../helpers/setup.ts';

const nix = (args: string[], input?: string) => execFileSync('nix', ['--extra-experimental-features', 'nix-command', ...args], { encoding: 'utf8', input }).trim();

describe('nix32', () => {
  beforeAll(() => requireTool('nix-hash', 'nix-bin'));

  it('encodes as nix-hash --to-base32 does (sha256 and sha1 sizes, edge bytes)', () => {
    const samples = [Buffer.alloc(32, 0), Buffer.alloc(32, 0xff), Buffer.from('01'.repeat(32), 'hex'), ...Array.from({ length: 6 }, () => randomBytes(32)), randomBytes(20)];
    for (const b of samples) {
      const type = b.length === 32 ? 'sha256' : 'sha1';
      const theirs = execFileSync('nix-hash', ['--type', type, '--to-base32', b.toString('hex')], { encoding: 'utf8' }).trim();
      expect(nix32Encode(b)).toBe(theirs);
      expect(Buffer.from(nix32Decode(theirs, b.length)!).equals(b)).toBe(true);
    }
  });

  it('refuses foreign characters, wrong lengths and overflowing high bits', () => {
    const good = nix32Encode(randomBytes(32));
    expect(nix32Decode(good.replace(/^./, 'e'), 32)).toBeUndefined(); // 'e' is not in the alphabet
    expect(nix32Decode(good.slice(1), 32)).toBeUndefined();
    expect(nix32Decode('z' + good.slice(1), 32)).toBeUndefined(); // 52*5 = 260 bits: the top 4 must be 0
  });

  it('parses the three ways Nix prints a sha256, and nothing else', () => {
    const d = randomBytes(32);
    for (const t of [`sha256:${nix32Encode(d)}`, `sha256:${d.toString('hex')}`, `sha256-${d.toString('base64')}`]) expect(Buffer.from(parseSha256Hash(t)!).equals(d)).toBe(true);
    expect(parseSha256Hash(`sha512:${d.toString('hex')}`)).toBeUndefined();
    expect(parseSha256Hash(`md5:${d.toString('hex')}`)).toBeUndefined();
  });
});

describe('narinfo signatures, against a cache Nix signed', () => {
  let dir: string;
  let publicKey: string;
  let otherKey: string;
  let narinfos: string[];

  beforeAll(async () => {
    requireTool('nix', 'nix-bin');
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-narinfo-'));
    const secret = nix(['key', 'generate-secret', '--key-name', 'test-narinfo-1']);
    await writeFile(path.join(dir, 'key'), secret);
    publicKey = nix(['key', 'convert-secret-to-public'], secret);
    otherKey = nix(['key', 'convert-secret-to-public'], nix(['key', 'generate-secret', '--key-name', 'test-narinfo-1']));
    // A path with a reference: b refers to a.
    const expr = `let a = builtins.derivation { name = "narinfo-a-${Date.now()}"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo a > $out"]; };
      in builtins.derivation { name = "narinfo-b"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "echo \${a} > $out"]; }`;
    const out = execFileSync('nix-build', ['--no-out-link', '-E', expr], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    nix(['copy', '--to', `file://${dir}/cache?compression=xz&secret-key=${dir}/key`, out]);
    narinfos = (await readdir(path.join(dir, 'cache'))).filter((f) => f.endsWith('.narinfo'));
  }, 120_000);
  afterAll(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

  it('verifies every narinfo Nix signed, and the fingerprint matches `nix path-info --sigs` data', async () => {
    expect(narinfos.length).toBe(2);
    const key = parseNixPublicKey(publicKey);
    for (const f of narinfos) {
      const { info, problems } = parseNarInfoStrict(await readFile(path.join(dir, 'cache', f), 'utf8'));
      expect(problems).toEqual([]);
      expect(checkNarInfoSignature(info!, key)).toEqual({ ok: true });
      expect(narInfoFingerprint(info!)).toMatch(/^1;\/nix\/store\/[0-9a-z]{32}-narinfo-.*;sha256:[0-9a-z]{52};\d+;/);
    }
    const withRef = await Promise.all(narinfos.map(async (f) => parseNarInfoStrict(await readFile(path.join(dir, 'cache', f), 'utf8')).info!));
    expect(withRef.some((i) => i.references.length === 1)).toBe(true);
  });

  it('refuses a changed field, a changed reference, another key of the same name, and no signature', async () => {
    const key = parseNixPublicKey(publicKey);
    const text = await readFile(path.join(dir, 'cache', narinfos[0]!), 'utf8');
    const info = parseNarInfoStrict(text).info!;
    const bumped = parseNarInfoStrict(text.replace(/^NarSize: (\d+)$/m, (_, n) => `NarSize: ${Number(n) + 1}`)).info!;
    expect(checkNarInfoSignature(bumped, key).ok).toBe(false);
    const flipped = new Uint8Array(info.narHash); flipped[0]! ^= 1;
    expect(checkNarInfoSignature({ ...info, narHash: flipped }, key).ok).toBe(false);
    expect(checkNarInfoSignature({ ...info, references: [...info.references, '/nix/store/00000000000000000000000000000000-x'] }, key).ok).toBe(false);
    expect(checkNarInfoSignature(info, parseNixPublicKey(otherKey))).toMatchObject({ ok: false, why: expect.stringContaining('does not verify') });
    expect(checkNarInfoSignature({ ...info, sigs: [] }, key)).toEqual({ ok: false, why: 'not signed' });
  });

  it('reports missing and malformed fields instead of accepting them', () => {
    expect(parseNarInfoStrict('StorePath: /nix/store/x\nURL: nar/a.nar\n').problems).toEqual(expect.arrayContaining(['no NarHash field', 'no NarSize field', expect.stringContaining('is not a store path')]));
    const h = createHash('sha256').update('x').digest();
    const ok = `StorePath: /nix/store/${'a'.repeat(32)}-x\nURL: ../etc/passwd\nNarHash: sha256:${nix32Encode(h)}\nNarSize: 1\nReferences: \n`;
    expect(parseNarInfoStrict(ok).problems).toEqual([expect.stringContaining('not a relative path')]);
  });
});
