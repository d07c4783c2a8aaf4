// Issue 25, case 1: a value that reaches a program's command line must never be read as an option.
// `git.remote: "--upload-pack=touch PWNED"` made `git ls-remote` run `touch`. Two nets, each proven
// here with the real programs: releng.json refuses a leading "-" in every field that reaches an argv
// (the run stops naming the field, nothing runs), and every call site passes such values after
// `--end-of-options` / `--` (or as NAME=VALUE), so a value from anywhere else is still a value.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchRevision, remoteBranchHead, checkBranchMove } from '../../lib/channel/git.ts';
import { gitAt } from '../../lib/git/git.ts';
import { gitReader, gitWriter } from '../../lib/git/push.ts';
import { debFields, resolveSigner } from '../../lib/index/apt.ts';
import { gitMirror } from '../../lib/lock/mirror.ts';
import { closureOf, readCacheMetadata, stageCache } from '../../lib/nix/cache.ts';
import { fetchFromCache } from '../../lib/nix/fetch.ts';
import { realiseJobs } from '../../lib/nix/eval.ts';
import { copyByDigest } from '../../lib/oci/skopeo.ts';
import { relengInProcess } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

let work: string;
let p: ScratchProject;
/** The file every injected command would create. */
let pwned: string;
const touch = () => `touch ${pwned}`;

beforeAll(async () => {
  for (const [tool, pkg] of [['git', 'git'], ['nix', 'nix-bin'], ['skopeo', 'skopeo'], ['gpg', 'gnupg'], ['dpkg-deb', 'dpkg'], ['zstd', 'zstd']]) requireTool(tool!, pkg!);
  work = await mkdtemp(path.join(os.tmpdir(), 'releng-inject-'));
  pwned = path.join(work, 'PWNED');
  p = await scratchProject();
});

afterAll(async () => {
  await p?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('releng.json refuses a leading "-" wherever a value reaches a command line', () => {
  // field path (as the error names it) → how to set it in the local environment / the config.
  const fields: [string, (c: any, v: string) => void][] = [
    ['environments.local.git.remote', (c, v) => { c.environments.local.git.remote = v; }],
    ['environments.local.docker[0].registry', (c, v) => { c.environments.local.docker[0].registry = v; }],
    ['environments.local.docker[0].certDir', (c, v) => { c.environments.local.docker[0].certDir = v; }],
    ['environments.local.cache.signingKeyFile', (c, v) => { c.environments.local.cache.signingKeyFile = v; }],
    ['environments.local.apt.signingKey.keyId', (c, v) => { c.environments.local.apt.signingKey.keyId = v; }],
    ['environments.local.apt.signingKey.gnupgHome', (c, v) => { c.environments.local.apt.signingKey.gnupgHome = v; }],
    ['environments.local.credentials.command', (c, v) => { c.environments.local.credentials = { source: 'command', command: [v, 'x'] }; }],
    ['mainBranch', (c, v) => { c.mainBranch = v; }],
    ['versionFile', (c, v) => { c.versionFile = v; }],
    ['releaseJobs.file', (c, v) => { c.releaseJobs.file = v; }],
    ['releaseJobs.flake', (c, v) => { c.releaseJobs = { flake: v }; }],
    ['hydra.cache', (c, v) => { c.hydra = { cache: v, trustedPublicKeys: ['k:AAAA'] }; }],
    ['hydra.input', (c, v) => { c.hydra = { cache: 'https://cache.example', trustedPublicKeys: ['k:AAAA'], input: v }; }],
    ['channels.kinds[0].git.remote', (c, v) => { c.channels = { hydraUrl: 'https://hydra.example', kinds: [{ match: '^x$', prefix: 'x', binaryCacheUrl: 'https://cache.example', git: { remote: v } }] }; }],
    ['channels.kinds[0].git.fetchFrom', (c, v) => { c.channels = { hydraUrl: 'https://hydra.example', kinds: [{ match: '^x$', prefix: 'x', binaryCacheUrl: 'https://cache.example', git: { remote: '../r.git', fetchFrom: v } }] }; }],
    ['channels.kinds[0].git.branch', (c, v) => { c.channels = { hydraUrl: 'https://hydra.example', kinds: [{ match: '^x$', prefix: 'x', binaryCacheUrl: 'https://cache.example', git: { remote: '../r.git', branch: v } }] }; }],
  ];
  let original: string;
  beforeAll(async () => { original = await readFile(path.join(p.dir, 'releng.json'), 'utf8'); });

  for (const [field, set] of fields) {
    it(`${field}: "--upload-pack=touch …" stops the run naming the field; nothing runs`, async () => {
      const c = JSON.parse(original);
      set(c, `--upload-pack=${touch()}`);
      await writeFile(path.join(p.dir, 'releng.json'), JSON.stringify(c, null, 2));
      try {
        for (const args of [['check'], ['upload', '--dry-run']]) {
          const r = await relengInProcess(args, { cwd: p.dir });
          expect(r.code, r.stderr).toBe(1);
          expect(r.stderr).toContain(`${field}`);
          expect(r.stderr).toContain('starts with "-"');
          expect(existsSync(pwned)).toBe(false);
        }
      } finally {
        await writeFile(path.join(p.dir, 'releng.json'), original);
      }
    });
  }
});

describe('every call site keeps a leading-dash value a value (the programs themselves, no config in between)', () => {
  let repo: string;
  let bare: string;
  let head: string;
  beforeAll(async () => {
    repo = path.join(work, 'repo');
    bare = path.join(work, 'bare.git');
    execFileSync('git', ['init', '-q', '-b', 'main', repo]);
    execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-q', '--allow-empty', '-m', 'x']);
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', bare]);
    head = execFileSync('git', ['-C', repo, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  });

  const noneRan = () => expect(existsSync(pwned), `an injected option ran a command (${pwned} exists)`).toBe(false);

  it('git ls-remote (upload planning, check): --upload-pack is a remote name, not an option', async () => {
    await expect(gitReader(gitAt(repo)).lsRemote(`--upload-pack=${touch()}`, ['refs/heads/main'])).rejects.toThrow(/cannot read git remote/);
    noneRan();
  });

  it('git push (upload): --receive-pack is a remote name', async () => {
    await expect(gitWriter.push(repo, `--receive-pack=${touch()}`, ['HEAD:refs/heads/main'], { atomic: false })).rejects.toThrow(/command failed/);
    noneRan();
    // The same call with a real remote works (the argument order is still right).
    await gitWriter.push(repo, bare, ['HEAD:refs/heads/main'], { atomic: false });
    expect((await gitWriter.lsRemote!(repo, bare, ['refs/heads/main'])).get('refs/heads/main')).toBe(head);
  });

  it('channel branch reads and the revision fetch: remote, source and revision stay values', async () => {
    const mirror = path.join(work, 'mirror.git');
    await expect(remoteBranchHead(mirror, `--upload-pack=${touch()}`, 'main')).rejects.toThrow(/cannot read branch main/);
    await mkdir(mirror, { recursive: true });
    execFileSync('git', ['init', '-q', '--bare', mirror]);
    await expect(fetchRevision(mirror, `--upload-pack=${touch()}`, head, 'x')).rejects.toThrow(/cannot fetch revision/);
    // A revision that is an option of `git show` (--output writes a file) is a revision that does not exist.
    await expect(fetchRevision(mirror, bare, `--output=${pwned}`, 'x')).rejects.toThrow(/cannot fetch revision/);
    await expect(checkBranchMove({ mirror, remote: `--upload-pack=${touch()}`, branch: 'main', remoteHead: 'f'.repeat(40), rev: head, force: false })).rejects.toThrow(/cannot fetch branch main/);
    noneRan();
  });

  it('git history of a flake input (lock): url and revisions stay values', async () => {
    const m = gitMirror(path.join(work, 'lock-state'));
    await m.history(`--upload-pack=${touch()}`, head, head, 5).catch(() => undefined);
    await m.history(bare, `--output=${pwned}`, head, 5).catch(() => undefined);
    noneRan();
  });

  it('local refs: a ref that looks like an option is an unknown ref', async () => {
    expect(await gitAt(repo).commitOf(`--output=${pwned}`)).toBeUndefined();
    noneRan();
  });

  it('nix: store paths and caches after "--" are paths, never flags', async () => {
    // Each would be an option of nix copy / nix-store if it were not after `--` (--help, --version, --dry-run…).
    await expect(fetchFromCache(`file://${work}/no-cache`, ['k:AAAA'], ['--dry-run'])).rejects.toThrow(/--dry-run/);
    await expect(closureOf(['--version'])).rejects.toThrow(/--version/);
    await expect(stageCache({ dir: path.join(work, 'stage'), url: `file://${work}/stage`, drvs: ['--help'], outPaths: [] })).rejects.toThrow(/--help/);
    await expect(realiseJobs([{ attr: 'x', drvPath: '--version', outputs: {} } as any], path.join(work, 'gc'), work)).rejects.toThrow(/--version/);
    noneRan();
  });

  it('zstd / xz reading a staged file named like an option read a file', async () => {
    const dir = path.join(work, 'files');
    await mkdir(dir, { recursive: true });
    execFileSync('sh', ['-c', 'printf "StorePath: x\\n" | zstd -q -o ./--rm', ], { cwd: dir });
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      expect((await readCacheMetadata('--rm', undefined)).text).toMatch(/^StorePath: x/);
    } finally { process.chdir(cwd); }
    expect(existsSync(path.join(dir, '--rm'))).toBe(true);
  });

  it('skopeo: a cert dir or auth file starting with "-" is a path (NAME=VALUE)', async () => {
    const ref = '127.0.0.1:9/x@sha256:' + '0'.repeat(64);
    await expect(copyByDigest(ref, { tlsVerify: false, certDir: '--debug', authFile: '--insecure-policy' }, ref, { tlsVerify: false, certDir: '--debug', authFile: '--insecure-policy' }))
      .rejects.toThrow(/--src-cert-dir=--debug --src-authfile=--insecure-policy --dest-tls-verify=false --dest-cert-dir=--debug --dest-authfile=--insecure-policy/);
  });

  it('gpg and dpkg-deb: a key id or package file starting with "-" is a name', async () => {
    const home = path.join(work, 'gnupg');
    await mkdir(home, { recursive: true, mode: 0o700 });
    await expect(resolveSigner({ keyId: '--export-secret-keys', gnupgHome: home }, 'apt.signingKey')).rejects.toThrow(/no OpenPGP secret key "--export-secret-keys"/);
    await expect(debFields('--version')).rejects.toThrow(/--version/);
    noneRan();
  });
});
