// A fake Gerrit: a bare repository with test/fixtures/gerrit-hooks installed (Gerrit's receive rules
// as hooks, written from Gerrit's documentation), and readers of what it recorded: the changes
// (number, Change-Id, status, patch sets, topic, reviewers, CCs, hashtags, votes) and each upload.
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from './project.ts';

export interface FakeChange {
  number: number;
  changeId: string;
  branch: string;
  status: 'NEW' | 'MERGED' | 'ABANDONED';
  patchSets: number;
  /** The current patch set's commit. */
  current: string;
  topic?: string;
  reviewers: string[];
  cc: string[];
  hashtags: string[];
  labels: string[];
}

/** One accepted upload: change, patch set, commit, Change-Id, the options it carried. */
export interface Upload { change: number; patchSet: number; commit: string; changeId: string; options: string[] }

export interface FakeGerrit {
  dir: string;
  git(...args: string[]): string;
  changes(): FakeChange[];
  uploads(): Promise<Upload[]>;
  /** Gerrit's Abandon button. */
  abandon(change: number): void;
  /** Gerrit's Submit: the branch fast-forwards to the change's current patch set, which closes it as merged. */
  submit(change: number): void;
  /** A label as project.config defines it: `value = -1 Fails` lines. */
  defineLabel(name: string, values: string[]): void;
}

/** Makes the bare repository `dir` a fake Gerrit (hooks, push options advertised as Gerrit does). */
export async function fakeGerrit(dir: string): Promise<FakeGerrit> {
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  for (const h of ['pre-receive', 'post-receive', 'gerrit-lib.sh']) {
    await copyFile(path.join(repoRoot, 'test/fixtures/gerrit-hooks', h), path.join(dir, 'hooks', h));
  }
  await chmod(path.join(dir, 'hooks', 'pre-receive'), 0o755);
  await chmod(path.join(dir, 'hooks', 'post-receive'), 0o755);
  git('config', 'receive.advertisePushOptions', 'true');
  const config = () => {
    let out = '';
    try { out = git('config', '--get-regexp', '^change\\.'); } catch { /* no changes yet */ }
    const m = new Map<string, string[]>();
    for (const line of out.split('\n').filter(Boolean)) {
      const sp = line.indexOf(' ');
      const key = line.slice(0, sp);
      m.set(key, [...(m.get(key) ?? []), line.slice(sp + 1)]);
    }
    return m;
  };
  const self: FakeGerrit = {
    dir,
    git,
    changes() {
      const c = config();
      const numbers = [...new Set([...c.keys()].map((k) => Number(k.split('.')[1])))].sort((a, b) => a - b);
      return numbers.map((n) => {
        const one = (k: string) => c.get(`change.${n}.${k}`)?.[0];
        const all = (k: string) => c.get(`change.${n}.${k}`) ?? [];
        return {
          number: n, changeId: one('id')!, branch: one('branch')!, status: one('status') as FakeChange['status'],
          patchSets: Number(one('patchsets')), current: one('current')!, topic: one('topic'),
          reviewers: all('reviewer'), cc: all('cc'), hashtags: all('hashtag'), labels: all('label'),
        };
      });
    },
    async uploads() {
      let text = '';
      try { text = await readFile(path.join(dir, 'gerrit.log'), 'utf8'); } catch { /* none yet */ }
      return text.split('\n').filter(Boolean).map((l) => {
        const [change, patchSet, commit, changeId, ...options] = l.split(' ');
        return { change: Number(change), patchSet: Number(patchSet), commit: commit!, changeId: changeId!, options: options.filter(Boolean) };
      });
    },
    abandon(n) { git('config', `change.${n}.status`, 'ABANDONED'); },
    submit(n) {
      const c = self.changes().find((x) => x.number === n)!;
      let allowed = false;
      try { allowed = git('config', '--bool', 'gerrit.allowDirectPush') === 'true'; } catch { /* unset */ }
      git('config', 'gerrit.allowDirectPush', 'true');
      try {
        // A push from inside the server's repository runs its hooks as any push does.
        execFileSync('git', ['push', '-q', dir, `${c.current}:refs/heads/${c.branch}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      } finally {
        if (!allowed) git('config', '--unset', 'gerrit.allowDirectPush');
      }
    },
    defineLabel(name, values) {
      for (const v of values) git('config', '--add', `label.${name}.value`, v);
    },
  };
  return self;
}
