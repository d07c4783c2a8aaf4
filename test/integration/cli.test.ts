// The command line as a user meets it (issue 14): help per command with only its flags, wrapped to
// 80 columns without a terminal, `help CMD`, --version, suggestions for mistyped commands and
// flags, shell completion scripts run by the real shells, and `releng init`.
import { execFileSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pkg from '../../package.json' with { type: 'json' };
import { commands } from '../../lib/cli/commands.ts';
import { completionScript } from '../../lib/cli/main.ts';
import { loadConfig } from '../../lib/config/config.ts';
import { startingConfig } from '../../lib/phases/init.ts';
import { execa } from 'execa';
import { releng } from '../helpers/cli.ts';
import { repoRoot, scratchProject } from '../helpers/project.ts';
import { expectGolden } from '../helpers/golden.ts';
import { requireTool } from '../helpers/tools.ts';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'releng-cli-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('help and usage', () => {
  it('main help, upload -h, help serve and check --help match their snapshots', async () => {
    const cases: [string[], string][] = [
      [['--help'], 'cli/help.txt'],
      [['upload', '-h'], 'cli/upload-help.txt'],
      [['help', 'serve'], 'cli/serve-help.txt'],
      [['check', '--help'], 'cli/check-help.txt'],
    ];
    for (const [args, golden] of cases) {
      const r = await releng(args, { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      await expectGolden(r.stdout, golden);
    }
  });

  it('every command has -h and --help, with only the flags it uses, within 80 columns', async () => {
    for (const c of commands) {
      const r = await releng([c.name, '-h'], { cwd: dir });
      expect(r.code, `${c.name}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`Usage: releng ${c.name}`);
      expect(r.stdout).toContain('Examples:');
      for (const line of r.stdout.split('\n')) expect(line.length, `${c.name}: ${line}`).toBeLessThanOrEqual(80);
    }
    const serve = (await releng(['serve', '--help'], { cwd: dir })).stdout;
    expect(serve).not.toContain('--dry-run');
    expect(serve).not.toContain('--noconfirm');
    expect((await releng(['build', '--help'], { cwd: dir })).stdout).not.toContain('--environment');
  });

  it('a flag a command does not take is a usage error', async () => {
    const r = await releng(['serve', '--dry-run'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--dry-run'");
  });

  it('--version prints the version of the package', async () => {
    const r = await releng(['--version'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('suggests the command and the flag that were meant; exit 2', async () => {
    const cmd = await releng(['biuld'], { cwd: dir });
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toContain("unknown command 'biuld'");
    expect(cmd.stderr).toContain('Did you mean build?');
    const help = await releng(['help', 'biuld'], { cwd: dir });
    expect(help.code).toBe(2);
    expect(help.stderr).toContain('Did you mean build?');
    const flag = await releng(['upload', '--envirnment', 'staging'], { cwd: dir });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('Did you mean --environment?');
    expect(flag.stdout).toBe('');
  });

  it('no arguments prints the main help', async () => {
    const r = await releng([], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Commands:');
    expect(r.stdout).toContain('Exit status: 0 success, 1 failure, 2 usage error;');
  });
});

describe('the bundle (npm run build)', () => {
  it('answers like the sources, and finds the files it opens by path (s3rver child: check on local)', async () => {
    await execa('npm', ['run', 'build'], { cwd: repoRoot });
    const bundle = path.join(repoRoot, 'dist', 'lib', 'releng.mjs');
    for (const args of [['--help'], ['upload', '--help'], ['--version']]) {
      const fromBundle = await execa('node', [bundle, ...args], { cwd: dir });
      expect(fromBundle.stdout).toBe((await releng(args, { cwd: dir })).stdout);
    }
    // Production dependencies are inside the bundle (issue 16: start-up). From node_modules come
    // only s3rver (run by the s3rver child, a file of its own), zx (the scripts/*.mjs), and the AWS
    // SDK's optional SigV4a signers, which it requires in a try only for SigV4a (never used; not installed).
    const bare = new Set<string>();
    const spec = `["']([@a-z0-9][\\w@/.-]*)["']`;
    const forms = new RegExp(`(?:\\bfrom\\s*${spec}|\\bimport\\(\\s*${spec}\\s*\\)|\\brequire\\(\\s*${spec}\\s*\\))`, 'g');
    for (const f of (await readdir(path.dirname(bundle))).filter((f) => f.endsWith('.mjs'))) {
      const text = await readFile(path.join(path.dirname(bundle), f), 'utf8');
      for (const m of text.matchAll(forms)) {
        const name = (m[1] ?? m[2] ?? m[3])!;
        if (!name.startsWith('node:') && !builtinModules.includes(name)) bare.add(name);
      }
    }
    expect([...bare].sort()).toEqual(['@aws-sdk/signature-v4-crt', '@aws-sdk/signature-v4a', 's3rver']);
    const project = await scratchProject();
    try {
      const r = await execa('node', [bundle, 'check'], { cwd: project.dir, reject: false, env: { CI: 'true' } });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain('✔ local: bucket s3://local-releases: reachable, writable');
    } finally {
      await project.cleanup();
    }
  });
});

describe('shell completion', () => {
  it('bash: the generated script completes commands and flags in a real bash', async () => {
    const r = await releng(['completion', 'bash'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(completionScript('bash').trimEnd()); // execa strips the final newline
    const file = path.join(dir, 'releng.bash');
    await writeFile(file, r.stdout + '\n');
    const complete = (words: string[]) => execFileSync('bash', ['--norc', '-c',
      `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _releng; printf '%s\\n' "\${COMPREPLY[@]}"`, 'bash', file, ...words], { encoding: 'utf8' }).trim().split('\n');
    expect(complete(['releng', 'up'])).toEqual(['upload']);
    expect(complete(['releng', 'upload', '--env'])).toEqual(['--environment']);
    expect(complete(['releng', 'serve', '--'])).toContain('--registry-port');
    expect(complete(['releng', 'serve', '--'])).not.toContain('--dry-run');
    expect(complete(['releng', 'completion', 'z'])).toEqual(['zsh']);
  });

  it('fish: the real fish completes from the generated script', async () => {
    requireTool('fish', 'fish');
    const file = path.join(dir, 'releng.fish');
    await writeFile(file, (await releng(['completion', 'fish'], { cwd: dir })).stdout);
    const complete = (line: string) => execFileSync('fish', ['--no-config', '-c', `source ${file}; complete -C '${line}'`], { encoding: 'utf8' });
    expect(complete('releng che')).toMatch(/^check\t/m);
    expect(complete('releng upload --force-push-')).toContain('--force-push-tag');
    expect(complete('releng serve --')).not.toContain('--dry-run');
  });

  it('zsh: the generated script parses and defines _releng after compinit', async () => {
    requireTool('zsh', 'zsh');
    const file = path.join(dir, '_releng');
    await writeFile(file, (await releng(['completion', 'zsh'], { cwd: dir })).stdout);
    execFileSync('zsh', ['-n', file]);
    const out = execFileSync('zsh', ['-fc', `autoload -U compinit; compinit -u -d ${dir}/zcompdump; source ${file}; whence -w _releng; echo $_comps[releng]`], { encoding: 'utf8' });
    expect(out).toContain('_releng: function');
    expect(out.trim().split('\n').pop()).toBe('_releng');
  });

  it('an unknown shell is a usage error naming the shells', async () => {
    const r = await releng(['completion', 'powershell'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('expected one of: bash, zsh, fish');
  });
});

describe('releng init', () => {
  it('the starting releng.json (golden), which the schema loads', async () => {
    const text = JSON.stringify(startingConfig({ project: 'lix', system: 'x86_64-linux', flake: true, origin: 'https://git.lix.systems/lix-project/lix', branch: 'main' }), null, 2) + '\n';
    await expectGolden(text, 'init/releng.json');
  });

  it('writes releng.json named after the flake, loads, and refuses to overwrite', async () => {
    const repo = path.join(dir, 'My_Repo');
    execFileSync('git', ['init', '-q', '-b', 'trunk', repo]);
    await writeFile(path.join(repo, 'flake.nix'), '{ outputs = { self }: { packages.x86_64-linux.default = derivation { pname = "widget"; name = "widget"; system = "x86_64-linux"; builder = "/bin/sh"; }; }; }\n');
    const r = await releng(['init'], { cwd: repo });
    expect(r.code, r.stderr).toBe(0);
    const loaded = await loadConfig(path.join(repo, 'releng.json'));
    expect(loaded.config.project).toBe('widget');
    expect(loaded.config.mainBranch).toBe('trunk');
    expect(loaded.config.releaseJobs).toEqual({ flake: '.#release-jobs', forceRecurse: true });
    expect(Object.keys(loaded.config.environments)).toEqual(['local', 'staging', 'production']);
    const before = await readFile(path.join(repo, 'releng.json'), 'utf8');
    const again = await releng(['init'], { cwd: repo });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists; releng init never overwrites it');
    expect(await readFile(path.join(repo, 'releng.json'), 'utf8')).toBe(before);
  });

  it('without a flake: the directory name and release.nix; a bad --project is refused', async () => {
    const repo = path.join(dir, 'Plain.Project');
    execFileSync('git', ['init', '-q', '-b', 'main', repo]);
    const bad = await releng(['init', '--project', 'Bad Name'], { cwd: repo });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--project Bad Name: expected a lowercase name');
    const r = await releng(['init', '--json'], { cwd: repo });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).result.project).toBe('plain-project');
    const loaded = await loadConfig(path.join(repo, 'releng.json'));
    expect(loaded.config.releaseJobs).toEqual({ file: 'release.nix', args: {} });
  });
});
