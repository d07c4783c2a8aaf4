// The Nix expressions that can be checked here without nixpkgs: every file parses, and the
// profile plumbing of nix/release-jobs.nix and nix/eval-jobs.nix evaluates as releng expects.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderManifest } from '../../lib/nix/manifest.ts';
import { repoRoot } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

const nixEval = (expr: string) => JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '--expr', expr], { encoding: 'utf8' }));

describe('Nix expressions', () => {
  it('every .nix file of the repo parses (flake.nix included)', () => {
    requireTool('nix-instantiate', 'nix-bin');
    const files = ['flake.nix', ...readdirSync(path.join(repoRoot, 'nix')).map((f) => `nix/${f}`), 'examples/hello/release.nix'];
    for (const f of files.filter((f) => f.endsWith('.nix'))) {
      execFileSync('nix-instantiate', ['--parse', path.join(repoRoot, f)], { stdio: 'pipe' });
    }
    expect(files.length).toBeGreaterThan(5);
  });

  it('releaseJobs maps every profile to build/binaryTarball/dockerImage per system, and the manual', () => {
    const r = nixEval(`let rj = import ${repoRoot}/nix/release-jobs.nix { }; in rj.releaseJobs {
      build = s: "build-" + s; binaryTarball = s: "tarball-" + s; dockerImage = s: "image-" + s; manual = "manual"; }`);
    expect(Object.keys(r).sort()).toEqual(['all', 'x86_64-linux-only']);
    expect(r.all.build).toEqual({ 'x86_64-linux': 'build-x86_64-linux', 'aarch64-linux': 'build-aarch64-linux', 'aarch64-darwin': 'build-aarch64-darwin' });
    expect(Object.keys(r.all.dockerImage).sort()).toEqual(['aarch64-linux', 'x86_64-linux']);
    expect(r['x86_64-linux-only'].binaryTarball).toEqual({ 'x86_64-linux': 'tarball-x86_64-linux' });
    expect(r.all.manual).toBe('manual');
  });

  it('hydraJobs keeps the release jobs\' names (Hydra job names) and adds a `release` aggregate of all of them', () => {
    const drv = (n: string) => `builtins.derivation { name = "${n}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; }`;
    const jobs = `{ build.x86_64-linux = ${drv('b')}; binaryTarball.x86_64-linux = ${drv('t')}; manual = ${drv('m')}; }`;
    const r = nixEval(`let rj = import ${repoRoot}/nix/release-jobs.nix { }; h = rj.hydraJobs { jobs = ${jobs}; }; in {
      names = map (j: j.attr) (import ${repoRoot}/nix/eval-jobs.nix { jobs = h; });
      aggregate = h.release._hydraAggregate; constituents = map (d: d.name) h.release.constituents; }`);
    expect(r.names.sort()).toEqual(['binaryTarball.x86_64-linux', 'build.x86_64-linux', 'manual', 'release']);
    expect(r.aggregate).toBe(true);
    expect(r.constituents.sort()).toEqual(['b', 'm', 't']);
  });

  it('eval-jobs.nix flattens nested jobs and skips non-derivations', () => {
    const drv = (n: string) => `builtins.derivation { name = "${n}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; }`;
    const r = nixEval(`import ${repoRoot}/nix/eval-jobs.nix { jobs = { build.x86_64-linux = ${drv('a')}; manual = ${drv('m')}; meta = "not a job"; }; }`);
    expect(r.map((j: any) => j.attr).sort()).toEqual(['build.x86_64-linux', 'manual']);
    expect(r[0].drvPath).toMatch(/^\/nix\/store\/.*\.drv$/);
    expect(r[0].outputs.out).toMatch(/^\/nix\/store\//);
  });

  it('manifest.nix renders as golden text and evaluates back to the same attrset', () => {
    const paths = { 'x86_64-linux': '/nix/store/6ip47dnf5vlwvh28kzqrgrqicka5c76m-hello-1.0.0-x86_64-linux', 'aarch64-linux': '/nix/store/m1flhl92ynwrmj4v2pdjw9ms6midmr5l-hello-1.0.0-aarch64-linux' };
    const text = renderManifest(paths);
    expect(text).toBe(`{
  aarch64-linux = "/nix/store/m1flhl92ynwrmj4v2pdjw9ms6midmr5l-hello-1.0.0-aarch64-linux";
  x86_64-linux = "/nix/store/6ip47dnf5vlwvh28kzqrgrqicka5c76m-hello-1.0.0-x86_64-linux";
}
`);
    expect(nixEval(text)).toEqual(paths);
  });
});
