// The pure parts of `releng lock`: which Nix command, the commit computed in memory (checked against
// git's own commit-tree, byte for byte), the summary and its commit message (golden), redaction.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { apply } from '../../../lib/actions/index.ts';
import { repoWriter } from '../../../lib/git/actions.ts';
import { fileCommitObjects, type ObjectReader } from '../../../lib/git/objects.ts';
import { flakeRefOf, parseFlakeLock } from '../../../lib/lock/flake-lock.ts';
import { nixMessage, updateArgs, updateStyleFor } from '../../../lib/lock/nix.ts';
import { changeIdOf, commitMessage, diffLocks, type InputChange } from '../../../lib/lock/summary.ts';
import { createLogger } from '../../../lib/cli/log.ts';
import { redact } from '../../../lib/core/secrets.ts';
import { expectGolden } from '../../helpers/golden.ts';

describe('which Nix command updates an input', () => {
  it('Nix before 2.19 takes `flake lock --update-input`; Nix 2.19+ and Lix take `flake update INPUT`', () => {
    expect(updateStyleFor('nix (Nix) 2.8.0')).toBe('lock --update-input');
    expect(updateStyleFor('nix (Nix) 2.18.9')).toBe('lock --update-input');
    expect(updateStyleFor('nix (Nix) 2.19.2')).toBe('update INPUT');
    expect(updateStyleFor('nix (Nix) 2.31.0pre20250101_dirty')).toBe('update INPUT');
    expect(updateStyleFor('nix (Lix, like Nix) 2.91.1')).toBe('update INPUT');
    expect(() => updateStyleFor('nix (Nix) 2.3.16')).toThrow(/has no flakes/);
    expect(() => updateStyleFor('something else')).toThrow(/cannot read the Nix version/);
    expect(updateArgs(['a', 'b'], 'lock --update-input').slice(2)).toEqual(['flake', 'lock', '--update-input', 'a', '--update-input', 'b']);
    expect(updateArgs(['a', 'b'], 'update INPUT').slice(2)).toEqual(['flake', 'update', 'a', 'b']);
  });

  it('keeps Nix\'s and git\'s lines of a failure, not our command line or the dirty-tree warning', () => {
    const e = new Error("command failed (exit 1): nix flake lock --update-input x\n  warning: Git tree '/tmp/w' is dirty\n  fatal: repository 'https://h/x' not found\n  error: program 'git' failed with exit code 128\n  (use '--show-trace' to show detailed location information)");
    expect(nixMessage(e)).toBe("fatal: repository 'https://h/x' not found\nerror: program 'git' failed with exit code 128");
  });
});

describe('a commit computed in memory', () => {
  let dir: string;
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('has the id git itself gives the same change (nested path, tricky tree order), and apply writes exactly it', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-objects-'));
    const git = (args: string[], env: Record<string, string> = {}, input?: string) =>
      execFileSync('git', args, { cwd: dir, encoding: 'utf8', input, env: { ...process.env, ...env } }).trim();
    git(['init', '-q', '-b', 'main']);
    // 'sub.x' sorts before 'sub/' in a tree, 'sub-y' before both: the tree order must be git's.
    for (const [f, c] of [['sub/flake.lock', '{}\n'], ['sub/flake.nix', '{ }\n'], ['sub.x', 'x'], ['sub-y/z', 'z'], ['top', 't']] as const) {
      await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
      await writeFile(path.join(dir, f), c);
    }
    await writeFile(path.join(dir, 'run.sh'), '#!/bin/sh\n');
    git(['add', '-A']);
    git(['update-index', '--chmod=+x', 'run.sh']);
    git(['-c', 'user.name=a', '-c', 'user.email=a@b', 'commit', '-q', '-m', 'base']);
    const parent = git(['rev-parse', 'HEAD']);
    const reader: ObjectReader = { lsTree: async (t) => git(['ls-tree', '-z', t]), objectFormat: async () => 'sha1' };
    const spec = { parent, path: 'sub/flake.lock', content: '{"new":true}\n', message: 'flake.lock: update x\n\nbody\n', author: { name: 'Bot', email: 'bot@example.invalid' }, date: 1795000000 };
    const objects = await fileCommitObjects(reader, spec);
    const commit = objects.at(-1)!.id;

    // git's own way: a temporary index, write-tree, commit-tree with the same identity and date.
    const env = { GIT_INDEX_FILE: path.join(dir, '.git', 'tmp-index'), GIT_AUTHOR_NAME: 'Bot', GIT_AUTHOR_EMAIL: 'bot@example.invalid', GIT_COMMITTER_NAME: 'Bot', GIT_COMMITTER_EMAIL: 'bot@example.invalid', GIT_AUTHOR_DATE: '1795000000 +0000', GIT_COMMITTER_DATE: '1795000000 +0000' };
    git(['read-tree', parent], env);
    const blob = git(['hash-object', '-w', '--stdin'], env, spec.content);
    git(['update-index', '--cacheinfo', `100644,${blob},sub/flake.lock`], env);
    const tree = git(['write-tree'], env);
    const theirs = git(['commit-tree', tree, '-p', parent, '-m', 'flake.lock: update x\n\nbody'], env);
    expect(commit).toBe(theirs);

    // Nothing was written while computing; apply writes the objects and checks each id.
    await rm(path.join(dir, '.git', 'objects', theirs.slice(0, 2), theirs.slice(2)));
    expect(() => git(['cat-file', '-e', commit])).toThrow();
    await apply({ steps: [{ title: 'commit', actions: [{ kind: 'git.objects', objects, commit, parent, path: spec.path }], concurrency: 1 }], skipped: [] },
      { log: createLogger({ quiet: true }), dryRun: false, writers: { repo: repoWriter(dir) } });
    expect(git(['diff-tree', '--no-commit-id', '--name-only', '-r', parent, commit])).toBe('sub/flake.lock');
    expect(git(['show', `${commit}:sub/flake.lock`])).toBe('{"new":true}');
    expect(git(['ls-tree', commit, 'run.sh'])).toMatch(/^100755 /);
    git(['fsck', '--strict', '--no-dangling']);
  });
});

const lockOf = (nodes: Record<string, unknown>, root: Record<string, unknown>) =>
  parseFlakeLock(JSON.stringify({ nodes: { ...nodes, root: { inputs: root } }, root: 'root', version: 7 }), 'flake.lock');
const gitNode = (url: string, rev: string, lastModified: number) => ({ locked: { type: 'git', url, ref: 'main', rev, lastModified, narHash: `sha256-${rev.slice(0, 8)}` }, original: { type: 'git', url } });

describe('the summary of an update', () => {
  const revs = { a: 'a'.repeat(40), b: 'b'.repeat(40), c: 'c'.repeat(40), d: 'd'.repeat(40) };
  const before = lockOf({
    nixpkgs: { locked: { type: 'github', owner: 'NixOS', repo: 'nixpkgs', rev: revs.a, lastModified: 1790000000, narHash: 'sha256-x' }, original: { type: 'github', owner: 'NixOS', repo: 'nixpkgs', ref: 'nixos-unstable' } },
    tools: gitNode('https://bot:tok3nValue@git.example.invalid/tools.git', revs.b, 1790000000),
    docs: gitNode('https://git.example.invalid/docs.git', revs.c, 1790000000),
  }, { nixpkgs: 'nixpkgs', tools: 'tools', docs: 'docs', pkgs2: ['nixpkgs'] });
  const after = lockOf({
    nixpkgs: { locked: { type: 'github', owner: 'NixOS', repo: 'nixpkgs', rev: revs.d, lastModified: 1795000000, narHash: 'sha256-y' }, original: { type: 'github', owner: 'NixOS', repo: 'nixpkgs', ref: 'nixos-unstable' } },
    tools: gitNode('https://bot:tok3nValue@git.example.invalid/tools.git', revs.b, 1790000000),
    docs: gitNode('https://git.example.invalid/docs.git', revs.c, 1790000000),
  }, { nixpkgs: 'nixpkgs', tools: 'tools', docs: 'docs', pkgs2: ['nixpkgs'] });

  it('says input by input what happened, and renders the commit message (golden)', async () => {
    const changes: InputChange[] = diffLocks(before, after, ['nixpkgs', 'tools'], [{ input: 'tools', message: "fatal: could not read Username for 'https://git.example.invalid'\nerror: program 'git' failed" }]);
    expect(changes.map((c) => [c.name, c.status])).toEqual([['docs', 'not-requested'], ['nixpkgs', 'updated'], ['pkgs2', 'follows'], ['tools', 'failed']]);
    changes.find((c) => c.name === 'nixpkgs')!.commits = { count: 25, log: ['d00d001 hello: 2.12 -> 2.13', 'd00d002 lib: fix typo'], fastForward: true };
    const message = commitMessage(changes, { changeId: changeIdOf(before, after) });
    await expectGolden(message, 'lock/commit-message.txt');
    expect(message).not.toContain('tok3nValue');
    expect(changeIdOf(before, after)).toBe(changeIdOf(before, after));
    expect(changeIdOf(before, after)).not.toBe(changeIdOf(after, before));
  });

  it('names inputs as flake references, credentials redacted', () => {
    expect(flakeRefOf({ type: 'github', owner: 'NixOS', repo: 'nixpkgs', ref: 'nixos-unstable' })).toBe('github:NixOS/nixpkgs/nixos-unstable');
    expect(flakeRefOf({ type: 'git', url: 'https://git.lix.systems/lix-project/nix-eval-jobs', ref: 'main' })).toBe('git+https://git.lix.systems/lix-project/nix-eval-jobs?ref=main');
    expect(redact(flakeRefOf({ type: 'git', url: 'https://bot:An0therT0ken@git.example.invalid/x.git' }))).toBe('git+https://bot:***@git.example.invalid/x.git');
  });
});
