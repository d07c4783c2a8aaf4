// Interop with Lix's scripts (issue 26): a release tagged by `python -m releng tag` records only the
// branch, in releng/prev-git-branch.txt (no release/tag.json). releng build + upload of it still push
// the branch (with the merge of the tag) and the tag, as Lix's upload_artifacts does.
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

/** What create_release.xsh's official_release_commit_tag + merge_to_release + do_tag_merge do. */
async function tagLikeLixScripts(p: ScratchProject, version: string): Promise<{ release: string; merge: string }> {
  p.git('checkout', '-q', '--detach', 'main');
  const vj = path.join(p.dir, 'version.json');
  await writeFile(vj, (await readFile(vj, 'utf8')).replace('"official_release": false', '"official_release": true'));
  p.git('add', 'version.json');
  p.git('commit', '-q', '-m', `release: ${version} "Hello"\n\nRelease produced with releng/create_release.xsh`);
  p.git('tag', '-a', '-m', `release: ${version}`, version);
  await mkdir(path.join(p.dir, 'releng'), { recursive: true });
  await writeFile(path.join(p.dir, 'releng/prev-git-branch.txt'), 'main');
  p.git('switch', '-q', 'main');
  p.git('merge', '-q', '-m', `release: merge release ${version} back to mainline`, '-s', 'ours', version);
  const merge = p.git('rev-parse', 'HEAD');
  p.git('switch', '-q', '--detach', version);
  return { release: p.git('rev-parse', 'HEAD'), merge };
}

describe('a release tagged with Lix\'s scripts, uploaded with releng', () => {
  let p: ScratchProject;
  beforeEach(async () => {
    requireTool('nix-build', 'nix-bin');
    p = await scratchProject();
  });
  afterEach(async () => { await p?.cleanup(); });

  it('reads releng/prev-git-branch.txt: the branch with the merge, and the tag, are pushed', async () => {
    const { release, merge } = await tagLikeLixScripts(p, '1.0.0');
    await expect(readFile(path.join(p.dir, 'release/tag.json'))).rejects.toThrow(/ENOENT/);
    const b = await releng(['build', '--profile', 'x86_64-linux-only'], { cwd: p.dir });
    expect(b.code, b.stderr).toBe(0);
    const dry = await releng(['upload', '--noconfirm', '--dry-run'], { cwd: p.dir });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toContain(`git push --atomic ../remote.git ${merge}:refs/heads/main refs/tags/1.0.0:refs/tags/1.0.0`);
    const up = await releng(['upload', '--noconfirm'], { cwd: p.dir });
    expect(up.code, up.stderr).toBe(0);
    const remote = execFileSync('git', ['ls-remote', p.remote], { encoding: 'utf8' });
    expect(remote).toContain(`${merge}\trefs/heads/main`);
    expect(remote).toContain(`${release}\trefs/tags/1.0.0^{}`);
  }, 300_000);

  it('refuses a prev-git-branch.txt whose branch does not hold the merge of the tag, naming the file', async () => {
    await tagLikeLixScripts(p, '1.0.0');
    await writeFile(path.join(p.dir, 'releng/prev-git-branch.txt'), 'release-0.9');
    p.git('branch', 'release-0.9', 'main~1');
    const b = await releng(['build', '--profile', 'x86_64-linux-only'], { cwd: p.dir });
    expect(b.code, b.stderr).toBe(0);
    const up = await releng(['upload', '--noconfirm', '--dry-run'], { cwd: p.dir });
    expect(up.code).toBe(1);
    expect(up.stderr).toContain('releng/prev-git-branch.txt names branch release-0.9, but no merge of tag 1.0.0');
  }, 300_000);
});
