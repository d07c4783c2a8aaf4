// The write-ahead intent journal (lib/s3/intents.ts, issue 23): an intent is on disk before its
// write starts, a run that ends leaves nothing behind, a run that dies leaves its open intents for
// the next, and the next run's acknowledged writes (or a destination found holding the planned
// bytes) close them. Real files; a real child process killed with SIGKILL.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { journalingWriter, openIntentJournal } from '../../lib/s3/intents.ts';
import { nothingWritten, type S3Writer } from '../../lib/s3/store.ts';
import { repoRoot } from '../helpers/project.ts';

describe('intent journal', () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'releng-intents-')); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });
  const sha = (c: string) => c.repeat(64);

  it('an intent is on disk before the write starts; the write acknowledged, a closed run leaves no file', async () => {
    const j = await openIntentJournal(dir, 'file://');
    const seen: string[] = [];
    const inner: S3Writer = {
      async put(req) { seen.push(await readFile(j.file, 'utf8')); expect(req.key).toBe('k'); },
      async delete() {},
      async copy() { seen.push(await readFile(j.file, 'utf8')); },
    };
    const w = journalingWriter(inner, j);
    await w.put({ bucket: '/t', key: 'k', body: { text: 'x' }, size: 1, sha256: sha('a'), contentType: 'text/plain' });
    await w.copy({ bucket: '/s', key: 'n' }, { bucket: '/t', key: 'n' }, { size: 9 });
    expect(JSON.parse(seen[0]!.trim())).toMatchObject({ op: 'begin', store: 'file://', bucket: '/t', key: 'k', sha256: sha('a'), size: 1 });
    expect(seen[1]!.trim().split('\n').map((l) => JSON.parse(l).op)).toEqual(['begin', 'end', 'begin']);
    await j.close();
    expect(await readdir(dir)).toEqual([]);
    // A run that writes nothing creates nothing.
    const idle = await openIntentJournal(dir, 'file://');
    await idle.close();
    expect(await readdir(dir)).toEqual([]);
  });

  it('a write that failed stays open for the next run of the same store only; that run\'s acknowledged write closes it', async () => {
    const j = await openIntentJournal(dir, 'file://');
    const failing: S3Writer = { async put() { throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }); }, async delete() {}, async copy() {} };
    await expect(journalingWriter(failing, j).put({ bucket: '/t', key: 'big', body: { text: 'x' }, size: 1, sha256: sha('b'), contentType: 'x' })).rejects.toThrow(/no space/);
    await j.close();
    expect(await readdir(dir)).toHaveLength(1);
    // This process is alive, so its file is not "dead" for compaction yet, but its intents are read.
    const next = await openIntentJournal(dir, 'file://');
    expect(next.pending('/t', 'big')).toEqual({ bucket: '/t', key: 'big', sha256: sha('b'), size: 1 });
    expect(next.pending('/t', 'other')).toBeUndefined();
    expect((await openIntentJournal(dir, 'https://s3.example')).pending('/t', 'big')).toBeUndefined();
    await journalingWriter({ async put() {}, async delete() {}, async copy() {} }, next).put({ bucket: '/t', key: 'big', body: { text: 'x' }, size: 1, sha256: sha('b'), contentType: 'x' });
    await next.close();
    expect((await openIntentJournal(dir, 'file://')).pending('/t', 'big')).toBeUndefined();
  });

  it('a failure that left the key as it was (a conditional create someone else won) closes the intent: their object is never taken for ours', async () => {
    const j = await openIntentJournal(dir, 'https://s3');
    const lost: S3Writer = { async put() { throw nothingWritten(new Error('created by another run at the same time with other content')); }, async delete() {}, async copy() { throw nothingWritten(new Error('x')); } };
    await expect(journalingWriter(lost, j).put({ bucket: 'b', key: 'k', body: { text: 'x' }, size: 1, sha256: sha('d'), contentType: 'x' })).rejects.toThrow(/another run/);
    await expect(journalingWriter(lost, j).copy({ bucket: 'b', key: 's' }, { bucket: 'b', key: 'c' }, { size: 3 })).rejects.toThrow();
    await j.close();
    const next = await openIntentJournal(dir, 'https://s3');
    expect(next.pending('b', 'k')).toBeUndefined();
    expect(next.pending('b', 'c')).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });

  it('a run killed with SIGKILL mid-write leaves its intent; the next run that finds the bytes in place settles it and compacts the dead file away', async () => {
    // A real child process: begins a write and is killed while "writing".
    const script = `
      import { openIntentJournal, journalingWriter } from ${JSON.stringify(path.join(repoRoot, 'lib/s3/intents.ts'))};
      const j = await openIntentJournal(${JSON.stringify(dir)}, 'file://');
      const w = journalingWriter({ put: () => { console.log('writing'); return new Promise(() => {}); }, delete: async () => {}, copy: async () => {} }, j);
      w.put({ bucket: '/t', key: 'a.tar.xz', body: { text: '' }, size: 5, sha256: '${sha('c')}', contentType: 'x' });
      setTimeout(() => {}, 60_000);`;
    const file = path.join(dir, '..', `${path.basename(dir)}-child.mts`);
    await writeFile(file, script);
    try {
      await new Promise<void>((resolve, reject) => {
        const child = execFile('node', ['--import', path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs'), file], { timeout: 60_000 });
        child.stdout!.on('data', (d) => { if (String(d).includes('writing')) child.kill('SIGKILL'); });
        child.on('exit', (_code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`child ended without being killed (${signal})`))));
      });
    } finally {
      await rm(file, { force: true });
    }
    const names = await readdir(dir);
    expect(names).toHaveLength(1);
    const next = await openIntentJournal(dir, 'file://');
    expect(next.pending('/t', 'a.tar.xz')).toMatchObject({ sha256: sha('c'), size: 5 });
    // A planner found the planned bytes there: the intent is fulfilled.
    next.settled('/t', 'a.tar.xz');
    await next.close();
    expect(await readdir(dir)).toEqual([]);
  }, 90_000);
});
