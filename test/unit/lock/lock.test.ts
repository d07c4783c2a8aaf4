// The pure parts of `releng lock`: which Nix command, the commit computed in memory (checked against
// git's own commit-tree, byte for byte), the summary and its commit message (golden), redaction.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { apply } from '../../../lib/actions/index.ts';
import { repoWriter } from '../../../lib/git/actions.ts';
import { fileCommitObjects, unsignedCommit, type ObjectReader } from '../../../lib/git/objects.ts';
import { signPayload } from '../../../lib/git/sign.ts';
import { bumpRefInFlakeNix, newerRef, refNames, refPattern, refVersion } from '../../../lib/lock/ref-bump.ts';
import { requireTool } from '../../helpers/tools.ts';
import { flakeRefOf, parseFlakeLock, pinsOf } from '../../../lib/lock/flake-lock.ts';
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
    const message = commitMessage(changes, { changeId: changeIdOf('releng/lock', 'main', pinsOf(before, ['docs', 'nixpkgs', 'tools'])) });
    await expectGolden(message, 'lock/commit-message.txt');
    expect(message).not.toContain('tok3nValue');
  });

  it('names a stream\'s Gerrit change by the stream and what main pins for its inputs, never by the new lock', () => {
    const all = ['docs', 'nixpkgs', 'tools'];
    const id = changeIdOf('releng/lock', 'main', pinsOf(before, all));
    expect(id).toMatch(/^I[0-9a-f]{40}$/);
    // The same main lock: the same change, whatever the update is.
    expect(changeIdOf('releng/lock', 'main', pinsOf(lockOf(JSON.parse(JSON.stringify(before.nodes)), before.nodes.root!.inputs!), all))).toBe(id);
    // Main's lock moved (the change merged): a new change. Another stream or target branch: another change.
    expect(changeIdOf('releng/lock', 'main', pinsOf(after, all))).not.toBe(id);
    expect(changeIdOf('releng/lock-docs', 'main', pinsOf(before, all))).not.toBe(id);
    expect(changeIdOf('releng/lock', 'release-2.93', pinsOf(before, all))).not.toBe(id);
    // A per-input stream depends only on its input's pins: nixpkgs moving on main leaves docs' change as it is.
    expect(pinsOf(after, ['docs'])).toBe(pinsOf(before, ['docs']));
    expect(pinsOf(after, ['nixpkgs'])).not.toBe(pinsOf(before, ['nixpkgs']));
  });

  it('names inputs of inputs by input path, as Nix prints them, never by lock node key (golden)', async () => {
    // Lock files as Nix 2.8 writes them: root has gamma (node gamma_2) and alpha, whose gamma is node gamma.
    const node = (name: string, rev: string, lm: number, inputs?: Record<string, string | string[]>) =>
      ({ ...(inputs ? { inputs } : { flake: false }), ...gitNode(`file:///srv/${name}`, rev, lm) });
    const nested = (alphaRev: string, gammaRev: string, extra: Record<string, string | string[]> = {}) => lockOf({
      alpha: node('alpha', alphaRev, 1790000000, { gamma: 'gamma', ...extra }),
      gamma: node('gamma', gammaRev, 1791000000),
      gamma_2: node('gamma', revs.a, 1780000000),
    }, { alpha: 'alpha', gamma: 'gamma_2' });
    const b = nested(revs.a, revs.b);
    const a = nested(revs.c, revs.d, { nixpkgs: ['gamma'] });
    const changes = diffLocks(b, a, ['alpha', 'gamma'], []);
    expect(changes.map((c) => [c.name, c.status])).toEqual([['alpha', 'updated'], ['alpha/gamma', 'updated'], ['alpha/nixpkgs', 'added'], ['gamma', 'unchanged']]);
    expect(changes.find((c) => c.name === 'alpha/gamma')).toMatchObject({ url: 'git+file:///srv/gamma', old: { rev: revs.b, date: '2026-10-03T04:00:00Z' }, new: { rev: revs.d } });
    changes.find((c) => c.name === 'alpha/gamma')!.commits = { count: 1, log: ['dddddd gamma: second'], fastForward: true };
    const message = commitMessage(changes, { trailers: [['Topic', 'flake-lock'], ['Reviewer', 'alice@example.org']] });
    await expectGolden(message, 'lock/commit-message-nested.txt');
    expect(message).not.toContain('gamma_2');
    expect(message.split('\n')[0]).toBe('flake.lock: update alpha');
    // Only the input of an input moved (releng lock alpha/gamma): the subject names it by path.
    const onlyNested = diffLocks(b, nested(revs.a, revs.d), ['alpha/gamma'], []);
    expect(commitMessage(onlyNested).split('\n')[0]).toBe('flake.lock: update alpha/gamma');
  });

  it('names inputs as flake references, credentials redacted', () => {
    expect(flakeRefOf({ type: 'github', owner: 'NixOS', repo: 'nixpkgs', ref: 'nixos-unstable' })).toBe('github:NixOS/nixpkgs/nixos-unstable');
    expect(flakeRefOf({ type: 'git', url: 'https://git.lix.systems/lix-project/nix-eval-jobs', ref: 'main' })).toBe('git+https://git.lix.systems/lix-project/nix-eval-jobs?ref=main');
    expect(redact(flakeRefOf({ type: 'git', url: 'https://bot:An0therT0ken@git.example.invalid/x.git' }))).toBe('git+https://bot:***@git.example.invalid/x.git');
  });
});

describe('ref bumps (lock.refBumps)', () => {
  const nixos = refPattern('nixos-(\\d\\d)\\.(\\d\\d)');

  it('moves to the newest ref of the pattern on the remote, compared as numbers, the whole name matched', () => {
    const refs = refNames([
      'a\trefs/heads/nixos-24.11', 'b\trefs/heads/nixos-25.05', 'c\trefs/heads/nixos-25.11-small', 'd\trefs/heads/nixos-unstable',
      'e\trefs/heads/nixos-25.11', 'f\trefs/tags/nixos-9.99', 'g\trefs/tags/nixos-25.05^{}',
    ].join('\n'));
    expect(refs).toEqual(['nixos-24.11', 'nixos-25.05', 'nixos-25.11-small', 'nixos-unstable', 'nixos-25.11', 'nixos-9.99']);
    expect(newerRef(nixos, 'nixos-25.05', refs)).toBe('nixos-25.11');
    expect(newerRef(nixos, 'nixos-25.11', refs)).toBeUndefined();
    expect(newerRef(nixos, 'nixos-25.05', ['nixos-24.11', 'nixos-25.05', 'nixos-unstable'])).toBeUndefined();
    // Numbers, not strings: release-2.100 is newer than release-2.93.
    expect(newerRef(refPattern('release-(\\d+)\\.(\\d+)'), 'release-2.93', ['release-2.100', 'release-2.94', 'release-2.93'])).toBe('release-2.100');
    expect(refVersion(nixos, 'nixos-unstable')).toBeUndefined();
  });

  it('edits the input\'s own string in flake.nix, and refuses to guess between two', () => {
    const nix = `{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    stable.url = "github:NixOS/nixpkgs/nixos-25.05";
    channel = { url = "git+https://git.example.invalid/channel?ref=nixos-25.05&shallow=1"; flake = false; };
    attrs = { type = "github"; owner = "o"; repo = "r"; ref = "nixos-25.05"; };
  };
  inputs.other.url = "github:NixOS/nixpkgs/nixos-25.05";
  outputs = { self, ... }: { };
}
`;
    const gh = { type: 'github', owner: 'NixOS', repo: 'nixpkgs', ref: 'nixos-25.05' };
    const bumped = bumpRefInFlakeNix(nix, 'flake.nix', 'nixpkgs', gh, 'nixos-25.05', 'nixos-25.11');
    expect(bumped).toBe(nix.replace('nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05"', 'nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11"'));
    expect(bumpRefInFlakeNix(nix, 'flake.nix', 'other', gh, 'nixos-25.05', 'nixos-25.11')).toContain('inputs.other.url = "github:NixOS/nixpkgs/nixos-25.11"');
    expect(bumpRefInFlakeNix(nix, 'flake.nix', 'channel', { type: 'git', url: 'https://git.example.invalid/channel', ref: 'nixos-25.05' }, 'nixos-25.05', 'nixos-25.11'))
      .toContain('"git+https://git.example.invalid/channel?ref=nixos-25.11&shallow=1"');
    expect(bumpRefInFlakeNix(nix, 'flake.nix', 'attrs', { type: 'github', owner: 'o', repo: 'r', ref: 'nixos-25.05' }, 'nixos-25.05', 'nixos-25.11'))
      .toContain('ref = "nixos-25.11"; };');
    // Two inputs written the same way with nothing saying which is which: an error naming the file.
    const twice = '{ inputs = import ./inputs.nix { a = "github:NixOS/nixpkgs/nixos-25.05"; } // { b = "github:NixOS/nixpkgs/nixos-25.05"; }; }';
    expect(() => bumpRefInFlakeNix(twice.replace(/[ab] = /g, ''), 'nix/flake.nix', 'nixpkgs', gh, 'nixos-25.05', 'nixos-25.11')).toThrow(/nix\/flake\.nix: cannot tell where input nixpkgs sets its ref nixos-25\.05/);
    expect(() => bumpRefInFlakeNix('{ inputs.x.url = "github:NixOS/nixpkgs"; }', 'flake.nix', 'x', gh, 'nixos-25.05', 'nixos-25.11')).toThrow(/no strings naming NixOS\/nixpkgs/);
  });
});

describe('a signed commit computed in memory', () => {
  let dir: string;
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('changes two files at once and carries an SSH signature git verify-commit accepts; the same input signs to the same commit', async () => {
    requireTool('ssh-keygen', 'openssh-client');
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-signed-'));
    const git = (args: string[], input?: string) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', input }).trim();
    git(['init', '-q', '-b', 'main']);
    await mkdir(path.join(dir, 'nix'), { recursive: true });
    for (const [f, c] of [['nix/flake.lock', '{}\n'], ['nix/flake.nix', '{ }\n'], ['README', 'r\n']] as const) await writeFile(path.join(dir, f), c);
    git(['add', '-A']);
    git(['-c', 'user.name=a', '-c', 'user.email=a@b', 'commit', '-q', '-m', 'base']);
    const parent = git(['rev-parse', 'HEAD']);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bot', '-f', path.join(dir, 'key')]);
    const key = { format: 'ssh' as const, key: path.join(dir, 'key') };
    const reader: ObjectReader = { lsTree: async (t) => git(['ls-tree', '-z', t]), objectFormat: async () => 'sha1' };
    const spec = {
      parent, path: 'nix/flake.lock', content: '{"new":true}\n', also: [{ path: 'nix/flake.nix', content: '{ bumped = true; }\n' }],
      message: 'flake.lock: update x\n', author: { name: 'Bot', email: 'bot@example.invalid' }, date: 1795000000,
      sign: (payload: string) => signPayload(key, payload, 'lock.signing'),
    };
    const objects = await fileCommitObjects(reader, spec);
    const again = await fileCommitObjects(reader, spec);
    expect(again.at(-1)!.id).toBe(objects.at(-1)!.id);
    await apply({ steps: [{ title: 'commit', actions: [{ kind: 'git.objects', objects, commit: objects.at(-1)!.id, parent, path: spec.path }], concurrency: 1 }], skipped: [] },
      { log: createLogger({ quiet: true }), dryRun: false, writers: { repo: repoWriter(dir) } });
    const commit = objects.at(-1)!.id;
    expect(git(['diff-tree', '--no-commit-id', '--name-only', '-r', parent, commit]).split('\n')).toEqual(['nix/flake.lock', 'nix/flake.nix']);
    expect(git(['show', `${commit}:README`])).toBe('r');
    await writeFile(path.join(dir, 'allowed'), `bot@example.invalid ${await readFile(path.join(dir, 'key.pub'), 'utf8')}`);
    const verified = execFileSync('git', ['-c', `gpg.ssh.allowedSignersFile=${path.join(dir, 'allowed')}`, 'verify-commit', '-v', commit], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(verified).toContain('flake.lock: update x');
    // What was signed is the commit without its signature: git's own unsigned form of it.
    const raw = git(['cat-file', 'commit', commit]) + '\n';
    expect(unsignedCommit(raw)).toBe(Buffer.from((await fileCommitObjects(reader, { ...spec, sign: undefined })).at(-1)!.data, 'base64').toString());
    // A byte changed in the commit and the signature no longer verifies.
    const forged = git(['hash-object', '-t', 'commit', '-w', '--stdin'], raw.replace('update x', 'update y'));
    expect(() => execFileSync('git', ['-c', `gpg.ssh.allowedSignersFile=${path.join(dir, 'allowed')}`, 'verify-commit', forged], { cwd: dir, stdio: 'pipe' })).toThrow();
    git(['fsck', '--strict', '--no-dangling']);
  });
});
