// prepare and tag with real git on scratch copies of examples/hello: the history they make, what
// --dry-run leaves alone, every bad input refused with the repository exactly as it was, and the
// restore after a git step fails halfway (a real hook refusing the merge or the commit).
import { existsSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readTagRecord } from '../../lib/release/tag-record.ts';
import { releng, relengInProcess } from '../helpers/cli.ts';
import { contextIn } from '../helpers/in-process.ts';
import { expectGolden } from '../helpers/golden.ts';
import { renderPlan } from '../../lib/actions/index.ts';
import { gitAt } from '../../lib/git/git.ts';
import { planPrepare } from '../../lib/phases/prepare.ts';
import { planTag } from '../../lib/phases/tag.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

const date = '2026-11-21';
const projects: ScratchProject[] = [];
afterEach(async () => { for (const p of projects.splice(0)) await p.cleanup(); });

async function project(): Promise<ScratchProject> {
  requireTool('git', 'git');
  const p = await scratchProject();
  projects.push(p);
  return p;
}

/** Everything a failed run must leave as it was. */
async function repoState(p: ScratchProject) {
  const tryGit = (...a: string[]) => { try { return p.git(...a); } catch { return '(none)'; } };
  return {
    status: p.git('status', '--porcelain', '--untracked-files=all'),
    head: p.git('rev-parse', 'HEAD'),
    symbolicHead: tryGit('symbolic-ref', '-q', 'HEAD'),
    refs: p.git('for-each-ref', '--format=%(refname) %(objectname)'),
    versionJson: await readFile(path.join(p.dir, 'version.json')),
    mergeInProgress: existsSync(path.join(p.dir, '.git', 'MERGE_HEAD')),
    tagRecord: existsSync(path.join(p.dir, 'release', 'tag.json')),
  };
}

async function write(p: ScratchProject, rel: string, text: string, commit = true) {
  await writeFile(path.join(p.dir, rel), text);
  if (commit) { p.git('add', '--', rel); p.git('commit', '-q', '-m', `test: ${rel}`); }
}

describe('prepare → tag on examples/hello', () => {
  it('makes the notes commit, the tag, the merge back; the branch tree is unchanged', async () => {
    const p = await project();
    const originalVersionJson = await readFile(path.join(p.dir, 'version.json'), 'utf8');

    const prep = await releng(['prepare', '--date', date, '--json'], { cwd: p.dir });
    expect(prep.code, prep.stderr).toBe(0);
    expect(JSON.parse(prep.stdout).result.fragments).toHaveLength(6);
    expect(p.git('log', '-1', '--format=%s')).toBe('release: release notes for 1.0.0');
    expect(p.git('show', '--name-status', '--format=', 'HEAD').split('\n').sort()).toEqual([
      'A\tdoc/manual/src/release-notes/rl-1.0.md', 'D\tdoc/manual/rl-next/drop-legacy-flag.md', 'D\tdoc/manual/rl-next/faster-startup.md',
      'D\tdoc/manual/rl-next/greeting-name.md', 'D\tdoc/manual/rl-next/static-tarball.md', 'D\tdoc/manual/rl-next/tidy-readme.md',
      'D\tdoc/manual/rl-next/utf8-output.md', 'M\tdoc/manual/src/SUMMARY.md',
    ]);
    // The committed notes are the golden file (same fragments, same date).
    expect(p.git('show', 'HEAD:doc/manual/src/release-notes/rl-1.0.md') + '\n')
      .toBe(await readFile(path.join(__dirname, '../golden/release-notes/hello-rl-1.0.md'), 'utf8'));
    expect(p.git('show', 'HEAD:doc/manual/src/SUMMARY.md')).toContain('  <!-- RELENG-AUTO-INSERTION-MARKER (prepare inserts new rl-MAJOR.md files below) -->\n  - [hello 1.0 (2026-11-21)](release-notes/rl-1.0.md)');

    // A second prepare has nothing to do (re-runs do only what is missing).
    const again = await releng(['prepare', '--date', date], { cwd: p.dir });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('skip release notes: doc/manual/src/release-notes/rl-1.0.md already has the section "# hello 1.0.0 (...)"');

    const treeBefore = p.git('rev-parse', 'main^{tree}');
    const tag = await releng(['tag'], { cwd: p.dir });
    expect(tag.code, tag.stderr).toBe(0);

    expect(p.git('describe', '--tags')).toBe('1.0.0');
    expect(p.git('cat-file', '-t', '1.0.0')).toBe('tag'); // annotated
    p.git('merge-base', '--is-ancestor', '1.0.0', 'main'); // throws unless the branch contains the tag
    expect(p.git('rev-parse', 'main^{tree}')).toBe(treeBefore);
    expect(p.git('rev-parse', 'HEAD')).toBe(p.git('rev-parse', '1.0.0^{commit}'));
    expect(() => p.git('symbolic-ref', '-q', 'HEAD')).toThrow(); // detached at the tag
    const atTag = p.git('show', '1.0.0:version.json');
    expect(JSON.parse(atTag).official_release).toBe(true);
    expect(atTag + '\n').toBe(originalVersionJson.replace('"official_release": false', '"official_release": true')); // formatting kept
    expect(JSON.parse(p.git('show', 'main:version.json')).official_release).toBe(false);
    expect(p.git('log', '-1', '--format=%s', 'main')).toBe('release: merge release 1.0.0 back to mainline');
    expect(p.git('log', '-1', '--format=%s', '1.0.0')).toBe('release: 1.0.0 "Hello World"');
    expect(p.git('status', '--porcelain', '--untracked-files=no')).toBe('');

    expect(await readTagRecord(p.dir)).toEqual({
      version: '1.0.0', branch: 'main', releaseCommit: p.git('rev-parse', '1.0.0^{commit}'), mergeCommit: p.git('rev-parse', 'main'),
    });
  });

  it('--dry-run prints the exact git commands and changes nothing', async () => {
    const p = await project();
    const before = await repoState(p);
    const prep = await releng(['prepare', '--date', date, '--dry-run'], { cwd: p.dir });
    expect(prep.code, prep.stderr).toBe(0);
    expect(prep.stderr).toContain('[dry-run] doc/manual/src/release-notes/rl-1.0.md would become:');
    expect(prep.stderr).toContain('|   Many thanks to [Ada Lovelace](https://git.example.invalid/ada), [Grace Hopper](https://github.com/ghopper), and margaret for this.');
    expect(prep.stderr).toContain("[dry-run] git commit -q -m $'release: release notes for 1.0.0\\n\\nRelease created with releng' -- doc/manual/src/release-notes/rl-1.0.md doc/manual/src/SUMMARY.md doc/manual/rl-next/drop-legacy-flag.md");
    const tag = await releng(['tag', '--dry-run'], { cwd: p.dir });
    expect(tag.code, tag.stderr).toBe(0);
    expect(tag.stderr).toContain("[dry-run] git tag -a 1.0.0 -m $'release: 1.0.0 \"Hello World\"\\n\\nRelease created with releng'");
    expect(tag.stderr).toContain("[dry-run] git merge -q --no-ff -s ours -m $'release: merge release 1.0.0 back to mainline");
    expect(tag.stderr).toContain('[dry-run] git checkout -q --detach 1.0.0');
    expect(await repoState(p)).toEqual(before);
  });

  it('the rendered plans are stable (golden)', async () => {
    const p = await project();
    const prepared = await planPrepare(await contextIn(p.dir, { extra: { date } }), gitAt(p.dir));
    const tagged = await planTag(await contextIn(p.dir), gitAt(p.dir));
    await expectGolden(`${renderPlan(prepared.plan)}\n${renderPlan(tagged.plan)}\n`, 'plans/prepare-and-tag-hello.txt');
  });

  it('--force-tag replaces an existing tag; without it the tag is refused', async () => {
    const p = await project();
    p.git('tag', '-a', '1.0.0', '-m', 'an older attempt');
    const old = p.git('rev-parse', 'refs/tags/1.0.0');
    const before = await repoState(p);
    const refused = await releng(['tag'], { cwd: p.dir });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`tag 1.0.0 already exists (${old.slice(0, 12)})`);
    expect(refused.stderr).toContain('--force-tag');
    expect(await repoState(p)).toEqual(before);
    const forced = await releng(['tag', '--force-tag'], { cwd: p.dir });
    expect(forced.code, forced.stderr).toBe(0);
    expect(p.git('rev-parse', 'refs/tags/1.0.0')).not.toBe(old);
    expect(p.git('describe', '--tags')).toBe('1.0.0');
  });
});

describe('bad input: one clear error, the repository exactly as it was', () => {
  const cases: { name: string; command: 'prepare' | 'tag'; setup: (p: ScratchProject) => Promise<void>; error: string[] }[] = [
    {
      name: 'an unknown category', command: 'prepare',
      setup: (p) => write(p, 'doc/manual/rl-next/bad.md', '---\nsynopsis: Something\ncategory: Bugfixes\n---\nBody.\n'),
      error: ['doc/manual/rl-next/bad.md:3: category: unknown category "Bugfixes"; expected one of: Breaking Changes, Features'],
    },
    {
      name: 'a fragment with no synopsis', command: 'prepare',
      setup: (p) => write(p, 'doc/manual/rl-next/bad.md', '---\ncategory: Fixes\n---\nBody.\n'),
      error: ['doc/manual/rl-next/bad.md:1: synopsis: missing synopsis'],
    },
    {
      name: 'an author missing from change-authors.yml', command: 'prepare',
      setup: (p) => write(p, 'doc/manual/rl-next/bad.md', '---\nsynopsis: Something\ncategory: Fixes\ncredits: [ada, nobody]\n---\n'),
      error: ['doc/manual/rl-next/bad.md:4: credits: "nobody" is not in the change authors file'],
    },
    {
      name: 'malformed YAML', command: 'prepare',
      setup: (p) => write(p, 'doc/manual/rl-next/bad.md', '---\nsynopsis: Something\nissues: [12, 13\ncategory: Fixes\n---\n'),
      error: ['doc/manual/rl-next/bad.md:', 'malformed YAML front matter'],
    },
    {
      name: 'malformed change-authors.yml', command: 'prepare',
      setup: (p) => write(p, 'doc/manual/change-authors.yml', 'ada:\n  display_name: Ada\n  forgejo: [ada\n'),
      error: ['doc/manual/change-authors.yml:', 'malformed YAML'],
    },
    {
      name: 'a dirty tree (tag)', command: 'tag',
      setup: (p) => write(p, 'release.nix', '# modified\n', false),
      error: ['the working tree has uncommitted changes', ' M release.nix', 'commit or stash them first'],
    },
    {
      name: 'a staged change (tag)', command: 'tag',
      setup: async (p) => { await write(p, 'extra.txt', 'x\n', false); p.git('add', 'extra.txt'); },
      error: ['the working tree has uncommitted changes', 'A  extra.txt'],
    },
    {
      name: 'a detached HEAD (tag)', command: 'tag',
      setup: async (p) => { p.git('checkout', '-q', '--detach'); },
      error: ['HEAD is detached', 'git checkout the branch you release from'],
    },
    {
      name: 'a detached HEAD (prepare)', command: 'prepare',
      setup: async (p) => { p.git('checkout', '-q', '--detach'); },
      error: ['HEAD is detached'],
    },
    {
      name: 'an existing tag', command: 'tag',
      setup: async (p) => { p.git('tag', '1.0.0'); },
      error: ['tag 1.0.0 already exists', 'pass --force-tag to replace the tag'],
    },
    {
      name: 'version.json already official', command: 'tag',
      setup: (p) => write(p, 'version.json', '{\n  "version": "1.0.0",\n  "official_release": true,\n  "release_name": "Hello World"\n}\n'),
      error: ['version.json already says "official_release": true'],
    },
    {
      name: 'an invalid version.json', command: 'tag',
      setup: (p) => write(p, 'version.json', '{\n  "version": "one",\n  "official_release": false,\n  "release_name": "Hello World"\n}\n'),
      error: ['version.json is invalid', 'version: expected a version like 2.93.0'],
    },
    {
      name: 'an uncommitted fragment (prepare)', command: 'prepare',
      setup: (p) => write(p, 'doc/manual/rl-next/new.md', '---\nsynopsis: New\n---\n', false),
      error: ['fragments not committed to git:', 'doc/manual/rl-next/new.md'],
    },
    {
      name: 'a modified fragment (prepare)', command: 'prepare',
      setup: (p) => write(p, 'doc/manual/rl-next/tidy-readme.md', '---\nsynopsis: Changed but not committed\n---\n', false),
      error: ['files prepare edits or removes have uncommitted changes:', ' M doc/manual/rl-next/tidy-readme.md'],
    },
    {
      name: 'a SUMMARY.md without the marker (prepare)', command: 'prepare',
      setup: (p) => write(p, 'doc/manual/src/SUMMARY.md', '# Table of Contents\n'),
      error: ['doc/manual/src/SUMMARY.md has no line containing the marker "<!-- RELENG-AUTO-INSERTION-MARKER"'],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const p = await project();
      await c.setup(p);
      const before = await repoState(p);
      const r = await relengInProcess(c.command === 'prepare' ? ['prepare', '--date', date] : [c.command], { cwd: p.dir });
      expect(r.code, r.stderr).toBe(1);
      for (const e of c.error) expect(r.stderr).toContain(e);
      expect(await repoState(p)).toEqual(before);
    });
  }

  it('several bad fragments are all reported in one error, printed once by the CLI', async () => {
    const p = await project();
    await write(p, 'doc/manual/rl-next/a.md', '---\nsynopsis: A\ncategory: Nope\n---\n');
    await write(p, 'doc/manual/rl-next/b.md', '---\nsynopsis: B\nauthor: me\n---\n');
    const r = await releng(['prepare'], { cwd: p.dir });
    expect(r.stderr.match(/error:/g)).toHaveLength(1);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('(2 problems)');
    expect(r.stderr).toContain('doc/manual/rl-next/a.md:3: category: unknown category "Nope"');
    expect(r.stderr).toContain('doc/manual/rl-next/b.md:3: unknown key "author"');
  });
});

describe('a git step failing halfway restores the repository', () => {
  async function hook(p: ScratchProject, name: string) {
    const file = path.join(p.dir, '.git', 'hooks', name);
    await writeFile(file, '#!/bin/sh\necho "test hook refuses" >&2\nexit 1\n');
    await chmod(file, 0o755);
  }

  it('tag: the merge back is refused after the release commit and the tag exist', async () => {
    const p = await project();
    await hook(p, 'pre-merge-commit');
    const before = await repoState(p);
    const r = await relengInProcess(['tag'], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('failed at: git merge -q --no-ff -s ours');
    expect(r.stderr).toContain('test hook refuses');
    expect(r.stderr).toContain('the repository was restored: branch main at');
    expect(await repoState(p)).toEqual(before); // on main, same HEAD, no tag 1.0.0, version.json bytes, no merge in progress
  });

  it('tag --force-tag: the old tag is put back', async () => {
    const p = await project();
    p.git('tag', '-a', '1.0.0', '-m', 'older');
    await hook(p, 'pre-merge-commit');
    const before = await repoState(p);
    const r = await relengInProcess(['tag', '--force-tag'], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(await repoState(p)).toEqual(before);
  });

  it('prepare: the commit is refused after the notes were written and the fragments removed', async () => {
    const p = await project();
    await hook(p, 'pre-commit');
    const before = await repoState(p);
    const r = await relengInProcess(['prepare', '--date', date], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('failed at: git commit');
    expect(await repoState(p)).toEqual(before);
    expect(existsSync(path.join(p.dir, 'doc/manual/src/release-notes/rl-1.0.md'))).toBe(false);
    expect(existsSync(path.join(p.dir, 'doc/manual/rl-next/greeting-name.md'))).toBe(true);
  });
});
