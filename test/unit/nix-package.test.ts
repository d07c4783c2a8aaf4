// The flake cannot be built here (no nixpkgs, no network beyond npm and Debian), so this checks
// what can be checked without it, with the Nix that is here: every expression parses; the flake's
// lock reads (`nix flake metadata`); nix/runtime-tools.nix, nix/package.nix, nix/checks.nix and
// flake.nix's outputs evaluate over stand-ins for nixpkgs' functions, and what they evaluate to
// is what the code needs: every program the code runs (scanned from lib/, scripts/, bin/) is on
// the wrapper's PATH, the package keeps production dependencies only, the unit-test check has
// git, the apps point at programs the package installs. What stays unchecked: that the nixpkgs
// packages named really provide those programs, and the build itself (README, "With Nix").
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

const nixFile = (f: string) => path.join(repoRoot, f);
const NIX_CONFIG = 'experimental-features = nix-command flakes\nsubstituters =';

function evalJson(expr: string, env: NodeJS.ProcessEnv = process.env): any {
  requireTool('nix-instantiate', 'nix-bin');
  return JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr], { encoding: 'utf8', env, maxBuffer: 64 << 20 }));
}

function sources(dir: string, exts: string[]): string[] {
  return readdirSync(path.join(repoRoot, dir), { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && exts.some((e) => d.name.endsWith(e)))
    .map((d) => path.relative(repoRoot, path.join(d.parentPath, d.name)));
}

// Calls that execute a program: their first argument names it.
const execCall = /(?<![.\w]|function\s+)(run|tool|execa|execaSync|spawn|spawnSync|execFile|execFileSync|hasProgram)\(\s*/g;
/**
 * Call sites whose program is not a literal, each with where its names come from. A new one
 * fails the test until it is listed here (and its programs checked).
 */
const variableCallSites: Record<string, string> = {
  'lib/core/exec.ts:execa(cmd': 'run() and hasProgram() themselves: their callers are scanned',
  'lib/core/exec.ts:hasProgram(c': "requirePrograms(): its callers' names are scanned",
  'lib/phases/check.ts:run(t.name': 'the tools table of `releng check`: checked below against the same PATH',
  'lib/verify/decompress.ts:spawn(cmd!': 'the decompressors table of lib/verify/decompress.ts: scanned below',
  'lib/grants/mint.ts:run(cmd!': "the operator's own minting command from releng.json (not releng's to provide)",
  'lib/s3/credentials.ts:execa(cmd!': "the operator's credential_process from releng.json (not releng's to provide)",
  'lib/local/s3-server.ts:spawn(process.execPath': 'node itself (the s3rver child)',
};
/** Programs the code only probes for (hasProgram) and does without. */
const optionalPrograms = new Set(['nix-eval-jobs']);

/** Every program lib/, scripts/ and bin/releng execute, with where. */
function programsTheCodeRuns(): { programs: Map<string, string[]>; unlisted: string[] } {
  const programs = new Map<string, string[]>();
  const add = (name: string, where: string) => programs.set(name, [...(programs.get(name) ?? []), where]);
  const unlisted: string[] = [];
  for (const file of [...sources('lib', ['.ts', '.mjs']), ...sources('scripts', ['.ts', '.mjs'])]) {
    const text = readFileSync(path.join(repoRoot, file), 'utf8').split('\n').filter((l) => !/^\s*(\/\/|\*|\/\*)/.test(l)).join('\n');
    for (const m of text.matchAll(execCall)) {
      const rest = text.slice(m.index! + m[0].length);
      const literal = /^(['"`])([\w.+-]+)\1/.exec(rest);
      const ternary = /^[\w.!]+\s*\?\s*'([\w.+-]+)'\s*:\s*'([\w.+-]+)'/.exec(rest);
      if (literal) add(literal[2]!, file);
      else if (ternary) { add(ternary[1]!, file); add(ternary[2]!, file); }
      else {
        const arg = /^[^,)]*/.exec(rest)![0].trim();
        if (/^\w+\??:\s/.test(arg)) continue; // a declaration (`run(ctx: Context, ...)`), not a call
        const key = `${file}:${m[1]}(${arg}`;
        if (!variableCallSites[key]) unlisted.push(key);
      }
    }
    for (const m of text.matchAll(/(?<![.\w])requirePrograms\(([^)]*)\)/g)) for (const n of m[1]!.matchAll(/'([\w.+-]+)'/g)) add(n[1]!, file);
    // zx: $`program args` and $({...})`program args` (an interpolated program, ${releng}, is ours)
    for (const m of text.matchAll(/\$(?:\([^)]*\))?`([\w.+-]+)/g)) add(m[1]!, file);
    // the sh script the embedded registry runs under: 'docker-registry serve …', '… sleep 5; …'
    if (file === 'lib/local/registry-server.ts') for (const m of text.matchAll(/'([\w.+-]+) serve |; (sleep) \d/g)) add((m[1] ?? m[2])!, file);
    // the decompressors table: ['xz', '-dc']
    if (file === 'lib/verify/decompress.ts') for (const m of text.matchAll(/\[\s*'([\w.+-]+)',\s*'-dc'\s*\]/g)) add(m[1]!, file);
  }
  // bin/releng (sh): $(program ...), | program, exec program
  for (const m of readFileSync(path.join(repoRoot, 'bin/releng'), 'utf8').matchAll(/(?:\$\(|\|\s*|exec\s+)([a-z][\w.+-]*)/g)) add(m[1]!, 'bin/releng');
  return { programs, unlisted };
}

/** nixpkgs attributes runtime-tools.nix may use, as strings (their names). */
const standInAttrs = ['git', 'nix', 'skopeo', 'docker-distribution', 'xz', 'zstd', 'bzip2', 'gzip', 'gnutar', 'coreutils', 'findutils', 'util-linux', 'gnupg', 'dpkg', 'apt', 'rsync', 'bash', 'openssh'];
const standInPkgs = (extra: string[] = []) => `{ ${[...standInAttrs, ...extra].map((n) => `${n} = "${n}";`).join(' ')} }`;
const runtimeTools = (extra: string[] = []) =>
  evalJson(`let t = import ${nixFile('nix/runtime-tools.nix')} { pkgs = ${standInPkgs(extra)}; }; in { inherit (t) programs packages; aliases = t.aliases "DIR"; }`);

/** nix/package.nix called as callPackage would, with stand-ins for nixpkgs' functions (buildNpmPackage returns its arguments). */
const packageExpr = (args: string) => `
  let
    lib = {
      importJSON = p: builtins.fromJSON (builtins.readFile p);
      fileset = { unions = fs: fs; toSource = { root, fileset }: { root = toString root; files = map toString fileset; }; };
      makeBinPath = ps: builtins.concatStringsSep ":" (map (p: "\${p}/bin") ps);
      optionalString = c: s: if c then s else "";
      licenses.mit = "mit";
    };
    pkgs = ${standInPkgs(['nix-eval-jobs'])};
    buildNpmPackage = a: a;
    importNpmLock = { __functor = self: a: { packageLock = a.packageLock; }; npmConfigHook = "npmConfigHook"; };
  in import ${nixFile('nix/package.nix')} ({ inherit lib pkgs buildNpmPackage importNpmLock; nodejs_20 = "nodejs_20"; makeWrapper = "makeWrapper"; } // ${args})`;

describe('Nix expressions (no nixpkgs here: parsed and evaluated over stand-ins)', () => {
  it('every .nix file and flake.nix parse', () => {
    requireTool('nix-instantiate', 'nix-bin');
    const files = ['flake.nix', ...readdirSync(path.join(repoRoot, 'nix')).filter((f) => f.endsWith('.nix')).map((f) => `nix/${f}`)];
    expect(files).toEqual(expect.arrayContaining(['nix/package.nix', 'nix/checks.nix', 'nix/runtime-tools.nix', 'nix/npm-lock.nix']));
    for (const f of files) {
      const r = spawnSync('nix-instantiate', ['--parse', nixFile(f)], { encoding: 'utf8' });
      expect(r.status, `${f}: ${r.stderr}`).toBe(0);
    }
    // and a broken expression is caught (the check itself works)
    expect(spawnSync('nix-instantiate', ['--parse', '-E', '{ a = ; }'], { encoding: 'utf8' }).status).not.toBe(0);
  });

  it('the flake lock reads: nixpkgs and nix2container are locked to a revision (`nix flake metadata`)', () => {
    requireTool('nix', 'nix-bin');
    const meta = JSON.parse(execFileSync('nix', ['flake', 'metadata', '--json', '--no-write-lock-file', repoRoot], { encoding: 'utf8', env: { ...process.env, NIX_CONFIG }, stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(meta.description).toMatch(/^releng: /);
    for (const input of ['nixpkgs', 'nix2container']) {
      expect(meta.locks.nodes[input].locked.rev, input).toMatch(/^[0-9a-f]{40}$/);
      expect(meta.locks.nodes[input].locked.narHash, input).toMatch(/^sha256-/);
    }
    expect(meta.locks.nodes.root.inputs).toEqual({ nixpkgs: 'nixpkgs', nix2container: 'nix2container' });
  });

  it('every program the code runs is on the wrapper PATH (nix/runtime-tools.nix `programs`)', async () => {
    const { programs, unlisted } = programsTheCodeRuns();
    expect(unlisted, 'programs executed from a variable: list the call site in variableCallSites with where its names come from').toEqual([]);
    // the scan finds what it should (it cannot silently find nothing)
    for (const p of ['git', 'nix', 'nix-store', 'skopeo', 'xz', 'zstd', 'bzip2', 'flock', 'docker-registry', 'gpg', 'gpgv', 'dpkg-deb', 'apt-ftparchive', 'tar', 'chmod', 'find', 'bash']) {
      if (p === 'bash') continue; // zx's shell, not a call: added below
      expect([...programs.keys()], p).toContain(p);
    }
    programs.set('bash', ['scripts/*.mjs (zx runs $`...` with bash)']);
    // node: the wrapper's PATH adds nodejs_20 itself (nix/package.nix)
    programs.delete('node');
    const tools = runtimeTools(['nix-eval-jobs']);
    const missing = [...programs].filter(([p]) => !(p in tools.programs)).map(([p, where]) => `${p} (${[...new Set(where)].join(', ')})`);
    expect(missing, 'add these to nix/runtime-tools.nix `programs` (program = nixpkgs package)').toEqual([]);
    for (const pkg of Object.values(tools.programs)) expect(tools.packages).toContain(pkg);
    expect(new Set(tools.packages).size).toBe(tools.packages.length);
    // `releng check` lists tools by the package providing them: the same PATH
    const { tools: checked } = await import('../../lib/phases/check.ts');
    for (const t of checked) expect(tools.programs[t.name], `${t.name} (releng check runs it)`).toBe(t.nixpkgs);
    expect(tools.aliases).toBe('ln -s docker-distribution/bin/registry DIR/docker-registry');
    // an older nixpkgs without nix-eval-jobs still evaluates (releng falls back to nix-instantiate)
    const old = runtimeTools();
    expect(old.programs['nix-eval-jobs']).toBeUndefined();
    for (const p of programs.keys()) if (!optionalPrograms.has(p)) expect(old.programs, p).toHaveProperty([p]);
  });

  it('nix/package.nix: production dependencies only, the bundle built, both programs wrapped with the tools PATH', () => {
    const pkg = evalJson(packageExpr('{ npmRegistry = "https://npm.example/registry/"; }'));
    expect(pkg.pname).toBe('releng');
    expect(pkg.version).toBe(JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).version);
    expect(pkg.npmBuildScript).toBe('build');
    expect(pkg.installPhase).toContain('npm prune --omit=dev --offline');
    expect(pkg.installPhase).not.toMatch(/cp -r lib scripts/); // no TypeScript sources in the package
    expect(pkg.installPhase).toContain('wrap $out/lib/releng/bin/releng $out/bin/releng');
    expect(pkg.installPhase).toMatch(/\$out\/bin\/releng-release --add-flags "\$out\/lib\/releng\/node_modules\/zx\/build\/cli\.js \$out\/lib\/releng\/scripts\/release\.mjs"/);
    // the PATH the wrapper gets: every runtime tool and node
    const wrapPath = /--prefix PATH : "\$out\/lib\/releng\/tools:([^"]+)"/.exec(pkg.installPhase)?.[1];
    expect(wrapPath).toBeDefined();
    for (const p of [...runtimeTools(['nix-eval-jobs']).packages, 'nodejs_20']) expect(wrapPath!.split(':'), p).toContain(`${p}/bin`);
    // what the source holds: enough to build, not the tests
    expect(pkg.src.files.map((f: string) => path.relative(repoRoot, f)).sort()).toEqual(['bin', 'lib', 'nix', 'package-lock.json', 'package.json', 'scripts', 'tsconfig.json']);
    // the npm lock it installs from: every dependency resolvable on the registry given
    const lock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8'));
    for (const dep of Object.keys(JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).dependencies)) {
      expect(pkg.npmDeps.packageLock.packages[`node_modules/${dep}`].resolved, dep).toBe(`https://npm.example/registry/${dep}/-/${dep.split('/').pop()}-${lock.packages[`node_modules/${dep}`].version}.tgz`);
    }
    // with the dev dependencies (the unit-test check): no prune, the sources kept
    const dev = evalJson(packageExpr('{ withDevDependencies = true; }'));
    expect(dev.installPhase).not.toContain('npm prune');
    expect(dev.installPhase).toContain('cp -r lib scripts tsconfig.json $out/lib/releng/');
  });

  it('nix/package.nix takes the registry from RELENG_NPM_REGISTRY (with --impure), and says what to set when it is not a URL', () => {
    const env = (v: string) => ({ ...process.env, RELENG_NPM_REGISTRY: v });
    const fromEnv = evalJson(`(${packageExpr('{ }')}).npmDeps.packageLock.packages."node_modules/ora".resolved`, env('https://mirror.example/npm'));
    expect(fromEnv).toMatch(/^https:\/\/mirror\.example\/npm\/ora\/-\/ora-\d/);
    const byDefault = evalJson(`(${packageExpr('{ }')}).npmDeps.packageLock.packages."node_modules/ora".resolved`, env(''));
    expect(byDefault).toMatch(/^https:\/\/registry\.npmjs\.org\/ora\/-\/ora-/);
    const r = spawnSync('nix-instantiate', ['--eval', '--strict', '-E', `(${packageExpr('{ }')}).npmDeps.packageLock.packages."node_modules/ora".resolved`], { encoding: 'utf8', env: env('npm.example') });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('npmRegistry is "npm.example", not the http(s) URL of an npm registry');
    // the command the error names is the one the README documents
    const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    expect(r.stderr).toContain('RELENG_NPM_REGISTRY=https://npm.example/ nix run --impure .#releng');
    expect(readme).toContain('RELENG_NPM_REGISTRY=https://npm.example/ nix run --impure .#releng -- --help');
    expect(readme).toContain('releng.override { npmRegistry = "https://npm.example/"; }');
  });

  it('nix/checks.nix: the unit tests run with git, nix and the dev dependencies; the help check runs the built package', () => {
    const checks = evalJson(`
      let
        releng = { outPath = "/nix/store/00000000000000000000000000000000-releng"; override = a: { outPath = "/nix/store/11111111111111111111111111111111-releng-dev"; args = a; }; };
        pkgs = { nodejs_20 = "nodejs_20"; nix = "nix"; git = "git"; runCommand = name: attrs: script: attrs // { inherit name script; }; };
        c = import ${nixFile('nix/checks.nix')} { inherit pkgs releng; };
      in { unit = removeAttrs c.unit-tests [ ]; help = c.help; names = builtins.attrNames c; }`);
    expect(checks.names).toEqual(expect.arrayContaining(['releng', 'unit-tests', 'help']));
    expect(checks.unit.nativeBuildInputs).toEqual(expect.arrayContaining(['git', 'nix', 'nodejs_20']));
    expect(checks.unit.script).toContain('/nix/store/11111111111111111111111111111111-releng-dev/lib/releng');
    expect(checks.unit.script).toMatch(/GIT_AUTHOR_NAME=\S+ GIT_AUTHOR_EMAIL=\S+ GIT_COMMITTER_NAME=\S+ GIT_COMMITTER_EMAIL=\S+/);
    expect(checks.unit.script).toContain('vitest run test/unit');
    expect(checks.help.script).toContain('/nix/store/00000000000000000000000000000000-releng/bin/releng --help');
  });

  it("flake.nix's outputs (over a stand-in nixpkgs): apps run programs the package installs, for each system", () => {
    const out = evalJson(`
      let
        flake = import ${nixFile('flake.nix')};
        systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
        genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
        pkgsFor = system: {
          stdenv.hostPlatform.system = system;
          callPackage = f: args: { outPath = "/nix/store/00000000000000000000000000000000-releng-\${system}"; file = toString f; };
        };
        nixpkgs = { lib = { inherit genAttrs; }; legacyPackages = genAttrs systems pkgsFor; };
        self = flake.outputs { inherit self nixpkgs; nix2container = { outPath = "/nix2container"; }; };
      in {
        inputs = builtins.attrNames flake.inputs;
        apps = builtins.mapAttrs (s: a: builtins.mapAttrs (n: app: { inherit (app) type program; }) a) self.apps;
        packages = builtins.mapAttrs (s: p: p.releng.file) self.packages;
      }`);
    expect(out.inputs).toEqual(['nix2container', 'nixpkgs']);
    for (const system of ['x86_64-linux', 'aarch64-linux', 'x86_64-darwin', 'aarch64-darwin']) {
      expect(out.packages[system]).toBe(nixFile('nix/package.nix'));
      const store = `/nix/store/00000000000000000000000000000000-releng-${system}`;
      expect(out.apps[system].releng).toEqual({ type: 'app', program: `${store}/bin/releng` });
      expect(out.apps[system].release).toEqual({ type: 'app', program: `${store}/bin/releng-release` });
      expect(out.apps[system].default).toEqual(out.apps[system].releng);
    }
  });
});
