// Local bare mirrors of the inputs' git repositories, under releng's state directory, kept up to
// date on each run so `git log OLD..NEW` of an update is one fetch of what is new (issue 13).
// The URL is given on each fetch and never stored in the mirror's config: a token in it stays out
// of files on disk. A mirror is a cache: a failed fetch costs the log, never the update.
import { createHash } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from '../core/exec.ts';
import { registerUrlCredentials } from '../core/secrets.ts';

/** releng's state directory: $RELENG_STATE_DIR, else $XDG_STATE_HOME/releng, else ~/.local/state/releng. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RELENG_STATE_DIR) return path.resolve(env.RELENG_STATE_DIR);
  return path.join(env.XDG_STATE_HOME ? path.resolve(env.XDG_STATE_HOME) : path.join(os.homedir(), '.local', 'state'), 'releng');
}

/** Where the mirror of `url` lives: readable name plus a hash of the URL without credentials. */
export function mirrorPath(state: string, url: string): string {
  const clean = url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
  const base = clean.replace(/\.git\/?$/, '').split(/[/:]/).filter(Boolean).pop() ?? 'repo';
  const slug = base.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40);
  return path.join(state, 'lock-mirrors', `${slug}-${createHash('sha256').update(clean).digest('hex').slice(0, 12)}.git`);
}

/** The commits between two revisions, as much as the mirror could tell. */
export interface History {
  /** Commits in OLD..NEW. */
  count: number;
  /** `git log --oneline` of OLD..NEW, newest first, at most `limit` lines. */
  log: string[];
  /** False when NEW does not contain OLD (the input moved to another line of history). */
  fastForward: boolean;
}

export interface Mirror {
  /** Fetches `url` into its mirror and reads OLD..NEW; a string says why there is no history. */
  history(url: string, oldRev: string, newRev: string, limit: number): Promise<History | { unavailable: string }>;
  /** `git ls-remote --heads --tags URL` (ref bumps: the refs that exist); throws with git's message. */
  refs(url: string): Promise<string>;
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

/** Mirrors under `state` (default stateDir()). */
export function gitMirror(state = stateDir()): Mirror {
  return {
    async history(url, oldRev, newRev, limit) {
      registerUrlCredentials(url);
      const dir = mirrorPath(state, url);
      const git = async (args: string[]) => (await run('git', ['--git-dir', dir, ...args])).stdout;
      const has = async (rev: string) => { try { await git(['cat-file', '-e', '--end-of-options', `${rev}^{commit}`]); return true; } catch { return false; } };
      try {
        if (!(await exists(dir))) {
          await mkdir(path.dirname(dir), { recursive: true });
          await run('git', ['init', '-q', '--bare', dir]);
        }
        if (!(await has(oldRev)) || !(await has(newRev))) {
          await git(['fetch', '-q', '--prune', '--no-tags', '--end-of-options', url, '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*']);
        }
        // A revision on no branch (a pinned PR head): servers allowing it hand it out by id.
        for (const rev of [oldRev, newRev]) if (!(await has(rev))) await git(['fetch', '-q', '--no-tags', '--end-of-options', url, rev]).catch(() => undefined);
      } catch (e) {
        return { unavailable: `cannot update the mirror ${dir}: ${(e as Error).message.split('\n').slice(-1)[0]!.trim()}` };
      }
      for (const rev of [oldRev, newRev]) {
        if (!(await has(rev))) return { unavailable: `${rev.slice(0, 12)} is not in ${url} any more` };
      }
      const range = `${oldRev}..${newRev}`;
      const count = Number((await git(['rev-list', '--count', '--end-of-options', range])).trim());
      const log = (await git(['log', '--no-decorate', '--format=%h %s', `-n${limit}`, '--end-of-options', range])).split('\n').filter(Boolean);
      const fastForward = await git(['merge-base', '--is-ancestor', '--end-of-options', oldRev, newRev]).then(() => true, () => false);
      return { count, log, fastForward };
    },
    async refs(url) {
      registerUrlCredentials(url);
      return (await run('git', ['ls-remote', '--heads', '--tags', '--end-of-options', url])).stdout;
    },
  };
}
