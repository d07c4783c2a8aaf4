// test/helpers/rgw.ts leaves no cluster behind when the process that started it dies without
// afterAll: SIGTERM (vitest's worker timeout) runs its exit hook; SIGKILL runs nothing, and the
// reaper (vitest globalSetup teardown, test/helpers/global-teardown.ts) kills the orphan.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/project.ts';
import { CLUSTER_RECORDS, reapOrphanClusters } from '../helpers/rgw.ts';

const alive = (pid: number) => { try { return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z'; } catch { return false; } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts test/helpers/rgw-child.ts; resolves with the cluster it started (bounded: 150 s). */
function startChild(): Promise<{ child: ChildProcess; dir: string; pids: number[]; exited: Promise<NodeJS.Signals | number | null> }> {
  const child = spawn(process.execPath, ['--import', path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs'), path.join(repoRoot, 'test/helpers/rgw-child.ts')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => { child.kill('SIGTERM'); reject(new Error(`the child did not start a cluster in 150 s: ${err}`)); }, 150_000);
    child.stderr!.on('data', (c) => { err += c; });
    child.stdout!.on('data', (c) => {
      out += c;
      if (!out.includes('\n')) return;
      clearTimeout(timer);
      resolve({ child, exited, ...JSON.parse(out.split('\n')[0]!) });
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the child exited (${code}) before starting a cluster: ${err}`)); });
  });
}

/** Waits (at most 15 s) until no pid is alive and the dir is gone; returns what is left. */
async function leftOf(pids: number[], dir: string): Promise<string[]> {
  for (let i = 0; i < 150 && (pids.some(alive) || existsSync(dir)); i++) await sleep(100);
  return [...pids.filter(alive).map((p) => `pid ${p} alive`), ...(existsSync(dir) ? [`${dir} exists`] : [])];
}

describe('RGW test clusters do not outlive the process that started them', () => {
  it('SIGTERM: the exit hook kills the daemons by pid and removes the cluster dir', async () => {
    const { child, dir, pids, exited } = await startChild();
    expect(pids).toHaveLength(3);
    expect(pids.every(alive)).toBe(true);
    expect(existsSync(path.join(CLUSTER_RECORDS, `${path.basename(dir)}.json`))).toBe(true);
    child.kill('SIGTERM');
    expect(await exited).toBe('SIGTERM'); // it still dies of the signal
    expect(await leftOf(pids, dir)).toEqual([]);
    expect(existsSync(path.join(CLUSTER_RECORDS, `${path.basename(dir)}.json`))).toBe(false);
  });

  it('SIGKILL: no hook runs, the cluster is left; the reaper (globalSetup teardown) kills it', async () => {
    const { child, dir, pids, exited } = await startChild();
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(pids.every(alive)).toBe(true); // what the reaper is for
    expect(reapOrphanClusters()).toContain(dir);
    expect(await leftOf(pids, dir)).toEqual([]);
  });
});
