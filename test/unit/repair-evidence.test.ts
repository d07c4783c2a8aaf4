// What counts as releng's own damaged write (a `repair`) and what as someone else's content (refused
// in a release prefix): lib/s3/sync.ts relengWasWriting, through planSync and planReleaseBucket on
// real file trees (lib/fs/store.ts), with the intent journal and the upload record (issue 23).
import { mkdir, mkdtemp, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { fsStore } from '../../lib/fs/store.ts';
import { journalingWriter, openIntentJournal } from '../../lib/s3/intents.ts';
import { openUploadRecord } from '../../lib/s3/record.ts';
import type { ObjectHead, S3Reader } from '../../lib/s3/store.ts';
import { planSync, type LocalFile } from '../../lib/s3/sync.ts';

describe('repair or refuse', () => {
  let root: string;
  let state: string;
  const store = fsStore();
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'releng-tree-'));
    state = await mkdtemp(path.join(os.tmpdir(), 'releng-state-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(state, { recursive: true, force: true });
  });

  const planned = 'the planned artifact bytes, 41 of them\n';
  const local = (rel: string): LocalFile => ({ rel, source: { text: planned }, size: Buffer.byteLength(planned), sha256: sha256Text(planned) });
  const putPlanned = (key: string) => store.put({ bucket: root, key, body: { text: planned }, size: Buffer.byteLength(planned), sha256: sha256Text(planned), contentType: 'application/octet-stream' });
  const sidecarFile = (key: string) => path.join(root, '.releng', 'meta', `${key}.json`);
  const reasons = async (keys: string[], extra: object = {}) => {
    const plan = await planSync(store, { bucket: root, prefix: 'hello/hello-1.0.0/', files: keys.map(local), ...extra });
    return Object.fromEntries(plan.puts.map((p) => [p.key.slice('hello/hello-1.0.0/'.length), p.why ? `${p.reason}: ${p.why}` : p.reason]));
  };

  it('file trees: a sidecar recording the planned sha256, or no sidecar and a shorter file, is releng\'s cut-short write', async () => {
    const keys = ['sidecar-empty', 'sidecar-rotten', 'bare-short', 'bare-empty', 'bare-same-size', 'bare-longer', 'other-sidecar', 'fine'];
    for (const k of keys) await putPlanned(`hello/hello-1.0.0/${k}`);
    const file = (k: string) => path.join(root, 'hello/hello-1.0.0', k);
    // As releng before issue 23 left them: the planned sha256 in the sidecar beside an empty file (its size recorded).
    await truncate(file('sidecar-empty'), 0);
    const st = await stat(file('sidecar-empty'));
    await writeFile(sidecarFile('hello/hello-1.0.0/sidecar-empty'), JSON.stringify({ sha256: sha256Text(planned), size: 0, mtimeMs: st.mtimeMs }));
    // Changed behind releng's back after it wrote it (same size): the sidecar still names the planned bytes.
    await writeFile(file('sidecar-rotten'), planned.replace('planned', 'PLANNED'));
    // No sidecar: cut short (a run stopped between rename and sidecar, or an older releng), or foreign.
    for (const k of ['bare-short', 'bare-empty', 'bare-same-size', 'bare-longer']) await rm(sidecarFile(`hello/hello-1.0.0/${k}`));
    await truncate(file('bare-short'), 10);
    await truncate(file('bare-empty'), 0);
    await writeFile(file('bare-same-size'), 'x'.repeat(Buffer.byteLength(planned)));
    await writeFile(file('bare-longer'), planned + 'and more');
    // Another writer's releng wrote other bytes here: its sidecar records their sha256.
    await store.put({ bucket: root, key: 'hello/hello-1.0.0/other-sidecar', body: { text: 'other content' }, size: 13, sha256: sha256Text('other content'), contentType: 'x' });
    expect(await reasons(keys)).toEqual({
      'sidecar-empty': 'repair: it carries the planned sha256 with 0 bytes of 39',
      'sidecar-rotten': 'repair: its releng sidecar records the planned sha256, but the file holds other bytes (39 of 39)',
      'bare-short': 'repair: no releng sidecar, and 10 bytes of 39: a write cut short',
      'bare-empty': 'repair: no releng sidecar, and 0 bytes of 39: a write cut short',
      'bare-same-size': 'changed',
      'bare-longer': 'changed',
      'other-sidecar': 'changed',
    });
  });

  it('the intent journal: an unacknowledged write of the planned bytes makes a foreign-looking file a repair; one of other bytes does not', async () => {
    await mkdir(path.join(root, 'hello/hello-1.0.0'), { recursive: true });
    for (const k of ['ours', 'theirs']) await writeFile(path.join(root, 'hello/hello-1.0.0', k), 'y'.repeat(Buffer.byteLength(planned)));
    const dir = path.join(state, 'intents');
    const before = await openIntentJournal(dir, 'file://');
    const never: import('../../lib/s3/store.ts').S3Writer = { put: () => Promise.reject(new Error('killed')), delete: async () => {}, copy: async () => {} };
    await journalingWriter(never, before).put({ bucket: root, key: 'hello/hello-1.0.0/ours', body: { text: planned }, size: Buffer.byteLength(planned), sha256: sha256Text(planned), contentType: 'x' }).catch(() => undefined);
    await journalingWriter(never, before).put({ bucket: root, key: 'hello/hello-1.0.0/theirs', body: { text: 'other' }, size: 5, sha256: sha256Text('other'), contentType: 'x' }).catch(() => undefined);
    await before.close();
    const intents = await openIntentJournal(dir, 'file://');
    expect(await reasons(['ours', 'theirs'], { intents })).toEqual({
      ours: 'repair: releng began writing these bytes here and never saw the write acknowledged (intent journal)',
      theirs: 'changed',
    });
    // Without the journal both are other content.
    expect(await reasons(['ours', 'theirs'])).toEqual({ ours: 'changed', theirs: 'changed' });
  });

  it('S3: the upload record naming the planned sha256 makes an object without our metadata there a repair; never one another releng recorded other bytes for', async () => {
    const heads: Record<string, ObjectHead> = {
      // Not written by releng (no sha256 metadata), e.g. replaced by hand after this machine uploaded.
      'p/a': { size: 39, etag: 'x1', metadata: {} },
      'p/b': { size: 39, etag: 'x2', metadata: {} },
      // Another releng run published other bytes here (its sha256 metadata): its release, refused.
      'p/c': { size: 39, sha256: 'd'.repeat(64), etag: 'x3', metadata: { sha256: 'd'.repeat(64) } },
    };
    const reader: S3Reader = {
      endpoint: 'https://s3', async list(_b, prefix) { return Object.entries(heads).filter(([k]) => k.startsWith(prefix)).map(([key, h]) => ({ key, size: h.size, etag: h.etag })); },
      async head(_b, k) { return heads[k]; }, async getText() { return undefined; }, async checkBucket() {},
    };
    const record = await openUploadRecord(state, 'https://s3');
    record.set('b', 'p/a', { sha256: sha256Text(planned), size: 39, etag: 'e1' });
    record.set('b', 'p/b', { sha256: 'e'.repeat(64), size: 39, etag: 'e2' });
    record.set('b', 'p/c', { sha256: sha256Text(planned), size: 39, etag: 'e3' });
    const plan = await planSync(reader, { bucket: 'b', prefix: 'p/', files: [local('a'), local('b'), local('c')], record });
    expect(plan.puts.map((p) => `${p.key}:${p.reason}`)).toEqual(['p/a:repair', 'p/b:changed', 'p/c:changed']);
  });

  it('an open intent never overrides another releng\'s sidecar of other bytes', async () => {
    await store.put({ bucket: root, key: 'hello/hello-1.0.0/theirs', body: { text: 'their release' }, size: 13, sha256: sha256Text('their release'), contentType: 'x' });
    const dir = path.join(state, 'intents');
    const killed = await openIntentJournal(dir, 'file://');
    await journalingWriter({ put: () => Promise.reject(new Error('killed')), delete: async () => {}, copy: async () => {} }, killed)
      .put({ bucket: root, key: 'hello/hello-1.0.0/theirs', body: { text: planned }, size: 39, sha256: sha256Text(planned), contentType: 'x' }).catch(() => undefined);
    await killed.close();
    expect(await reasons(['theirs'], { intents: await openIntentJournal(dir, 'file://') })).toEqual({ theirs: 'changed' });
  });

  it('a key found holding the planned bytes settles an intent left open for it', async () => {
    await putPlanned('hello/hello-1.0.0/fine');
    const dir = path.join(state, 'intents');
    const killed = await openIntentJournal(dir, 'file://');
    await journalingWriter({ put: () => Promise.reject(new Error('killed after the rename')), delete: async () => {}, copy: async () => {} }, killed)
      .put({ bucket: root, key: 'hello/hello-1.0.0/fine', body: { text: planned }, size: 39, sha256: sha256Text(planned), contentType: 'x' }).catch(() => undefined);
    await killed.close();
    const intents = await openIntentJournal(dir, 'file://');
    expect(intents.pending(root, 'hello/hello-1.0.0/fine')).toBeDefined();
    expect(await reasons(['fine'], { intents })).toEqual({});
    await intents.close();
    expect((await openIntentJournal(dir, 'file://')).pending(root, 'hello/hello-1.0.0/fine')).toBeUndefined();
    // (utimes only to show the sidecar keeps vouching for an untouched file)
    const f = path.join(root, 'hello/hello-1.0.0/fine');
    const st = await stat(f);
    await utimes(f, st.atime, st.mtime);
    expect(await reasons(['fine'])).toEqual({});
  });
});
