// The smoke set from source (issue 23): the integration suite runs the bundle the Nix package ships
// (test/helpers/cli.ts); this file runs the quick start's flows through bin/releng on the TypeScript
// sources (RELENG_FROM_SOURCE=1, tsx), where module loading is lazier and slower, so a race that
// depends on load timing (as the file store's once did) shows in one of the two. A full release
// into the local environment, read back --deep; an outside builder's .deb (grant --version, contribute,
// index) installable with apt's own tools' view of it; a promote into file:// trees whose every file
// holds the bytes its plan named.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSha256Sums, sha256File } from '../../lib/hashing/checksums.ts';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

/** Command lines of running processes that contain `text` (from /proc). */
async function processesMentioning(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir('/proc')).filter((d) => /^\d+$/.test(d))) {
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').then((t) => t.split('\0').join(' ').trim(), () => '');
    if (cmd.includes(text)) found.push(cmd);
  }
  return found;
}

describe('from source: the quick start flows through tsx', () => {
  let p: ScratchProject;
  let trees: string;
  const run = (args: string[], cwd?: string) => releng(args, { cwd: cwd ?? p.dir, from: 'source' });

  beforeAll(async () => {
    for (const [tool, pkg] of [['nix-build', 'nix-bin'], ['skopeo', 'skopeo'], ['docker-registry', 'docker-registry'], ['gpg', 'gnupg'], ['dpkg-deb', 'dpkg']]) requireTool(tool!, pkg!);
    p = await scratchProject();
    trees = await mkdtemp(path.join(os.tmpdir(), 'releng-source-trees-'));
    for (const d of ['releases', 'cache', 'docs']) await mkdir(path.join(trees, d));
    await p.editConfig((c) => {
      c.environments.mirror = {
        releasesBucket: `file://${trees}/releases`, cacheBucket: `file://${trees}/cache`, docsBucket: `file://${trees}/docs`,
        cache: { signingKeyFile: '.releng/local/cache-signing.key', compression: 'zstd', storeOptions: { 'write-nar-listing': 'true' } },
        confirm: false,
      };
    });
    p.git('commit', '-q', '-am', 'a file-tree mirror environment');
  });
  afterAll(async () => {
    await p?.cleanup();
    if (trees) execFileSync('rm', ['-rf', trees]);
  });

  it('release: prepare → tag → build → upload into the local environment, then verify --deep', async () => {
    const r = await run(['release', '--date', '2026-11-21']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('released hello 1.0.0 to local');
    const v = await run(['verify', '--deep']);
    expect(v.code, v.stderr).toBe(0);
  });

  it('grant deb --version V --output F writes F; contribute and index publish the .deb', async () => {
    const debDir = execFileSync('nix-build', ['release.nix', '-A', 'deb.x86_64-linux', '--no-out-link'], { cwd: p.dir, encoding: 'utf8' }).trim();
    const deb = path.join(debDir, 'hello_1.0.0_amd64.deb');
    const grantFile = path.join(p.dir, '..', 'grant-deb.json');
    const g = await run(['grant', 'deb', '--version', '1.0.0', '--output', grantFile]);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).not.toBe('0.1.0\n'); // releng's own --version once took the flag
    expect(JSON.parse(await readFile(grantFile, 'utf8')).uploader).toBe('deb');
    const c = await run(['contribute', '--grant', grantFile, deb], path.dirname(grantFile));
    expect(c.code, c.stderr).toBe(0);
    const i = await run(['index', '--json']);
    expect(i.code, i.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(i.stdout).result)).toContain('hello_1.0.0_amd64.deb');
    // The gpg-agent that signing started is stopped with the run (it held a socket under .releng/).
    const home = path.join(p.dir, '.releng/local/gnupg');
    expect(await processesMentioning(`gpg-agent --homedir ${home}`)).toEqual([]);
  });

  it('promote into file:// trees: every file holds its planned bytes, verify --deep passes', async () => {
    const r = await run(['promote', '1.0.0', '--from', 'local', '--environment', 'mirror']);
    expect(r.code, r.stderr).toBe(0);
    const versionDir = path.join(p.dir, 'release/artifacts/hello/hello-1.0.0');
    const sums = parseSha256Sums(await readFile(path.join(versionDir, 'SHA256SUMS'), 'utf8'));
    expect(sums.size).toBeGreaterThan(5);
    for (const [name, sha256] of sums) {
      const file = path.join(trees, 'releases', 'hello', 'hello-1.0.0', name);
      expect((await stat(file)).size, name).toBe((await stat(path.join(versionDir, name))).size);
      expect(await sha256File(file), name).toBe(sha256);
    }
    // The cache tree: no empty NAR or listing (the race once left them at 0 bytes).
    // Promote run in the checkout that built the release copies what upload published: the closure
    // of manifest.nix and of build-result.json's drvs and outPaths (issue 25), as the staging cache.
    const nars = await readdir(path.join(trees, 'cache', 'nar'));
    const narinfos = (await readdir(path.join(trees, 'cache'))).filter((f) => f.endsWith('.narinfo'));
    const staged = (await readdir(path.join(p.dir, 'release', 'cache', 'local'))).filter((f) => f.endsWith('.narinfo'));
    expect(narinfos.sort()).toEqual(staged.sort());
    expect(nars.length).toBe(narinfos.length);
    for (const n of nars) expect((await stat(path.join(trees, 'cache', 'nar', n))).size, n).toBeGreaterThan(0);
    // The checkout's verify (the build's drvs and outputs too) and --published (the manifest's
    // closure) agree after a promote (issue 25).
    const v = await run(['verify', '--environment', 'mirror', '--deep']);
    expect(v.code, v.stderr).toBe(0);
    const published = await run(['verify', '--environment', 'mirror', '--deep', '--published', '1.0.0']);
    expect(published.code, published.stderr).toBe(0);
  });
});
