// nix/npm-lock.nix (builtins only) evaluated by the Nix that is here over our real package-lock.json:
// every package gets its tarball URL on the registry, and a missing registry is an evaluation error
// that says what to set (issue 14: the flake must run without guessing).
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

const expr = (registry: string) => `import ${path.join(repoRoot, 'nix/npm-lock.nix')} { lock = builtins.fromJSON (builtins.readFile ${path.join(repoRoot, 'package-lock.json')}); registry = ${JSON.stringify(registry)}; }`;

describe('nix/npm-lock.nix', () => {
  it('gives every locked package its tarball URL on the registry (scoped and nested names too)', () => {
    requireTool('nix-instantiate', 'nix-bin');
    const out = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr('https://registry.example/npm/')], { encoding: 'utf8', maxBuffer: 64 << 20 }));
    const lock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8'));
    const paths = Object.keys(lock.packages).filter((p) => p !== '');
    expect(paths.length).toBeGreaterThan(100);
    for (const p of paths) {
      const name = p.split('node_modules/').pop()!;
      const short = name.split('/').pop();
      expect(out.packages[p].resolved, p).toBe(`https://registry.example/npm/${name}/-/${short}-${lock.packages[p].version}.tgz`);
      expect(out.packages[p].integrity).toBe(lock.packages[p].integrity);
    }
    expect(out.packages['node_modules/@aws-sdk/client-s3'].resolved).toMatch(/^https:\/\/registry\.example\/npm\/@aws-sdk\/client-s3\/-\/client-s3-/);
    expect(out.packages['']).toEqual(lock.packages['']);
  });

  it('without a registry URL: an evaluation error naming npmRegistry, RELENG_NPM_REGISTRY and the nix run command', () => {
    requireTool('nix-instantiate', 'nix-bin');
    for (const bad of ['', 'registry.npmjs.org']) {
      const r = spawnSync('nix-instantiate', ['--eval', '--strict', '-E', expr(bad)], { encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(`npmRegistry is ${JSON.stringify(bad)}, not the http(s) URL of an npm registry`);
      expect(r.stderr).toContain('RELENG_NPM_REGISTRY=https://npm.example/ nix run --impure .#releng');
      expect(r.stderr).toContain('releng.override { npmRegistry = "https://npm.example/"; }');
    }
  });
});

// nix/runtime-tools.nix (every program the code runs on the wrapper PATH): test/unit/nix-package.test.ts.
