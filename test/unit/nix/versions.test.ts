// The parseDrvName/compareVersions port against Nix itself: several hundred generated pairs,
// evaluated in one nix-instantiate call (the oracle), must agree exactly.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareVersions, parseDrvName } from '../../../lib/nix/versions.ts';
import { requireTool } from '../../helpers/tools.ts';

// Deterministic generator (no Math.random): the same cases every run, so a failure reproduces.
function rng(seed: number) {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
}
const pieces = ['0', '1', '2', '9', '10', '01', '007', '24', '11', '1234', '2147483647', '2147483648', '99999999999',
  'pre', 'pre1', 'a', 'b', 'alpha', 'rc', 'beta', 'abcdef', 'git', 'unstable', 'é', 'Z', ''];
const seps = ['.', '-', '', '..', '.-'];

function randomVersion(r: () => number): string {
  const n = Math.floor(r() * 6);
  let v = '';
  for (let i = 0; i < n; i++) {
    v += pieces[Math.floor(r() * pieces.length)];
    if (i < n - 1 || r() < 0.1) v += seps[Math.floor(r() * seps.length)];
  }
  return v;
}

function cases(): { pairs: [string, string][]; names: string[] } {
  const r = rng(5);
  const pairs: [string, string][] = [
    ['1.0', '1.0'], ['1.0', '1.0.0'], ['1.0pre', '1.0'], ['1.0', '1.0a'], ['2.3a', '2.3.1'], ['', '1'],
    ['24.11.1234.abcdef', '24.11.1235.abcdef'], ['24.11.999.f', '24.11.1000.a'], ['25.05pre1.a', '25.05.1.b'],
    ['2147483648', '2147483647'], ['01', '1'], ['1..2', '1.2'], ['1-2', '1.2'], ['a', 'B'], ['é', 'z'],
  ];
  for (let i = 0; i < 400; i++) {
    const a = randomVersion(r);
    // Half the time, a near neighbour of a: shares a prefix, which is where the rules matter.
    const b = r() < 0.5 ? a + seps[Math.floor(r() * 2)] + pieces[Math.floor(r() * pieces.length)] : randomVersion(r);
    pairs.push(r() < 0.5 ? [a, b] : [b, a]);
  }
  const names = ['hello-1.0', 'nixos-24.11.1234.abcdef', 'nixos-unstable-small', 'foo-bar-2.0-pre', 'a-', '-1', 'x-Y-2', 'gcc-wrapper-13.2.0',
    'nixpkgs-25.05pre123.abc', 'p-é1', 'noversion', ''];
  for (let i = 0; i < 100; i++) names.push(`pkg${seps[i % 3] === '' ? '-' : '-'}${['x', 'Y', '1', '-', 'é', '.'][i % 6]}${randomVersion(r)}`);
  return { pairs, names };
}

describe('Nix version semantics', () => {
  it('compareVersions and parseDrvName agree with nix-instantiate --eval on hundreds of generated cases', async () => {
    requireTool('nix-instantiate', 'nix-bin');
    const { pairs, names } = cases();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-versions-'));
    try {
      const input = path.join(dir, 'cases.json');
      await writeFile(input, JSON.stringify({ pairs, names }));
      const expr = `let c = builtins.fromJSON (builtins.readFile ${input}); in {
        cmp = map (p: builtins.compareVersions (builtins.elemAt p 0) (builtins.elemAt p 1)) c.pairs;
        names = map builtins.parseDrvName c.names; }`;
      const oracle = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr], { encoding: 'utf8' }));
      expect(pairs.length).toBeGreaterThanOrEqual(400);
      const ours = pairs.map(([a, b]) => compareVersions(a, b));
      const disagreements = pairs.map((p, i) => ({ p, nix: oracle.cmp[i], ours: ours[i] })).filter((d) => d.nix !== d.ours);
      expect(disagreements).toEqual([]);
      // Every result value occurs, so the test is not trivially one-sided.
      expect(new Set(ours)).toEqual(new Set([-1, 0, 1]));
      expect(names.map(parseDrvName)).toEqual(oracle.names);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('orders NixOS release names as the channel guard needs', () => {
    const v = (n: string) => parseDrvName(n).version;
    expect(v('nixos-24.11.1234.abcdef')).toBe('24.11.1234.abcdef');
    expect(v('nixos-unstable-small')).toBe('');
    expect(compareVersions(v('nixos-24.11.999.ffffff'), v('nixos-24.11.1000.000000'))).toBe(-1);
    expect(compareVersions(v('nixpkgs-25.05pre700000.abc'), v('nixpkgs-25.05.1.abc'))).toBe(-1);
  });
});
