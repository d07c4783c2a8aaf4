// The lean PUT path and the upload record against a real S3 server (s3rver), counting requests at
// the server (issue 6): what we put reads back byte for byte with its headers; a re-plan with the
// record makes no HEAD and no PUT; a remote replacement or a corrupt record falls back to HEAD.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../lib/actions/index.ts';
import { localTree } from '../../lib/upload/local-tree.ts';
import { embeddedCredentials } from '../../lib/local/s3-server.ts';
import { createLogger } from '../../lib/cli/log.ts';
import { leanClient } from '../../lib/s3/lean-put.ts';
import { openUploadRecord, recordingWriter } from '../../lib/s3/record.ts';
import { planSync } from '../../lib/s3/sync.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';

/** Temp dirs of this file, removed after it. */
const temps: string[] = [];
const tmp = async (prefix: string) => { const d = await mkdtemp(path.join(os.tmpdir(), prefix)); temps.push(d); return d; };
afterAll(async () => { await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))); });


const hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const log = createLogger({ quiet: true });

describe('lean PUT path and upload record on s3rver', () => {
  let s3: TestS3;
  beforeAll(async () => { s3 = await startTestS3(['b']); });
  afterAll(async () => { await s3?.stop(); });

  async function get(key: string): Promise<{ status: number; body: Buffer; headers: Headers }> {
    const r = await fetch(`${s3.endpoint}/b/${key.split('/').map(encodeURIComponent).join('/')}`);
    return { status: r.status, body: Buffer.from(await r.arrayBuffer()), headers: r.headers };
  }

  it('puts files and texts with awkward keys and every header, readable by a plain GET', async () => {
    const dir = await tmp('releng-lean-');
    const small = randomBytes(3000);
    const big = randomBytes(1024 * 1024 + 17); // streamed, not read whole
    await writeFile(path.join(dir, 'small'), small);
    await writeFile(path.join(dir, 'big'), big);
    const cases = [
      { key: 'a b/c+d/é (1)!.html', body: { file: path.join(dir, 'small') }, bytes: small },
      { key: 'big/file.tar.xz', body: { file: path.join(dir, 'big') }, bytes: big },
      { key: 'text/~odd*name.txt', body: { text: 'hello ✓\n' }, bytes: Buffer.from('hello ✓\n') },
      { key: "text/a&b'c\"d.txt", body: { text: 'amp' }, bytes: Buffer.from('amp') },
    ];
    for (const c of cases) {
      const r = await s3.store.put({ bucket: 'b', key: c.key, body: c.body, size: c.bytes.length, sha256: hex(c.bytes), contentType: 'text/html; charset=utf-8', contentEncoding: 'identity', cacheControl: 'max-age=60' });
      expect(r && r.etag).toMatch(/^"[0-9a-f]{32}"$/);
      const g = await get(c.key);
      expect(g.status).toBe(200);
      expect(hex(g.body)).toBe(hex(c.bytes));
      const h = await s3.store.head('b', c.key);
      expect(h).toMatchObject({ size: c.bytes.length, sha256: hex(c.bytes), contentType: 'text/html; charset=utf-8', cacheControl: 'max-age=60', contentEncoding: 'identity' });
    }
    await s3.store.put({ bucket: 'b', key: 'channel/latest', body: { text: '' }, size: 0, sha256: hex(''), contentType: 'text/plain', redirect: '/releases/1.0/' });
    expect((await s3.store.head('b', 'channel/latest'))?.redirect).toBe('/releases/1.0/');
    expect((await s3.store.list('b', '')).map((o) => o.key).sort()).toEqual(['a b/c+d/é (1)!.html', 'big/file.tar.xz', 'channel/latest', "text/a&b'c\"d.txt", 'text/~odd*name.txt']);
  });

  it('lists every page of a prefix with sizes and ETags (more than 1,000 keys)', async () => {
    const { default: pLimit } = await import('p-limit');
    const limit = pLimit(16);
    const keys = Array.from({ length: 1003 }, (_, i) => `many/${String(i).padStart(4, '0')}&.txt`);
    await Promise.all(keys.map((key, i) => limit(() => s3.store.put({ bucket: 'b', key, body: { text: `${i}` }, size: `${i}`.length, sha256: hex(`${i}`), contentType: 'text/plain' }))));
    const listed = await s3.store.list('b', 'many/');
    expect(listed.map((o) => o.key).sort()).toEqual(keys);
    expect(listed.find((o) => o.key === 'many/0123&.txt')).toMatchObject({ size: 3, etag: `"${createHash('md5').update('123').digest('hex')}"` });
  });

  it('a file shorter than planned fails the put instead of sending a truncated object', async () => {
    const dir = await tmp('releng-lean-');
    await writeFile(path.join(dir, 'f'), 'short');
    await expect(s3.store.put({ bucket: 'b', key: 'x/f', body: { file: path.join(dir, 'f') }, size: 50, sha256: hex('short'), contentType: 'text/plain' })).rejects.toThrow(/changed after planning/);
    // Streamed (over 1 MiB): a file that grew is not cut to the planned size and sent.
    const grown = randomBytes(2 * 1024 * 1024);
    await writeFile(path.join(dir, 'grown'), grown);
    await expect(s3.store.put({ bucket: 'b', key: 'x/grown', body: { file: path.join(dir, 'grown') }, size: grown.length - 10, sha256: hex(grown.subarray(0, grown.length - 10)), contentType: 'application/octet-stream' }))
      .rejects.toThrow(/changed after planning \(now 2097152 bytes, planned 2097142\)/);
    expect(await s3.store.head('b', 'x/grown')).toBeUndefined(); // checked before the first byte went out
  });

  it('multipart: streamed parts, each signed with its sha256, read back whole', async () => {
    const dir = await tmp('releng-lean-');
    const bytes = randomBytes(11 * 1024 * 1024 + 5);
    await writeFile(path.join(dir, 'big'), bytes);
    const lean = leanClient({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: async () => ({ ...embeddedCredentials }) });
    await s3.resetLog();
    let progressed = 0;
    const etag = await lean.putMultipart({ bucket: 'b', key: 'mp/big.bin', headers: { 'content-type': 'application/octet-stream', 'x-amz-meta-sha256': hex(bytes) } },
      path.join(dir, 'big'), bytes.length, hex(bytes), 5 * 1024 * 1024, 2, (n) => { progressed += n; });
    expect(etag).toBeTruthy();
    expect(progressed).toBe(bytes.length);
    expect((await s3.requests()).filter((l) => l.startsWith('PUT ')).length).toBe(3);
    expect(hex((await get('mp/big.bin')).body)).toBe(hex(bytes));
    expect((await s3.store.head('b', 'mp/big.bin'))?.sha256).toBe(hex(bytes));
  });

  it('multipart: a file that changed after planning (same size) is refused before anything is sent', async () => {
    const dir = await tmp('releng-lean-');
    const planned = randomBytes(11 * 1024 * 1024);
    const now = Buffer.from(planned);
    now[now.length - 1] ^= 0xff; // same size, different last byte
    await writeFile(path.join(dir, 'big'), now);
    const lean = leanClient({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: async () => ({ ...embeddedCredentials }) });
    await s3.resetLog();
    await expect(lean.putMultipart({ bucket: 'b', key: 'mp/changed.bin', headers: { 'x-amz-meta-sha256': hex(planned) } },
      path.join(dir, 'big'), now.length, hex(planned), 5 * 1024 * 1024, 2)).rejects.toThrow(/changed after planning/);
    expect(await s3.requests()).toEqual([]);
    expect(await s3.store.head('b', 'mp/changed.bin')).toBeUndefined();
  });

  it('re-plan with the record: no HEAD, no PUT; replaced remotely or corrupt record: HEAD decides', async () => {
    const tree = await tmp('releng-tree-');
    const state = await tmp('releng-state-');
    for (let i = 0; i < 5; i++) await writeFile(path.join(tree, `f${i}.txt`), `content ${i}`);
    const files = await localTree(tree);
    const upload = async () => {
      const record = await openUploadRecord(state, s3.endpoint);
      await s3.resetLog();
      const plan = await planSync(s3.store, { bucket: 'b', prefix: 'rec/', files, record });
      await apply({ steps: [{ title: 'up', actions: plan.puts }], skipped: [] }, { log, dryRun: false, writers: { s3: recordingWriter(s3.store, { record }) } });
      await record.save();
      const reqs = await s3.requests();
      return { puts: plan.puts.map((p) => p.key), heads: reqs.filter((l) => l.startsWith('HEAD ')).length, writes: reqs.filter((l) => /^(PUT|POST|DELETE) /.test(l)).length };
    };
    expect((await upload()).puts).toHaveLength(5);
    expect(await upload()).toEqual({ puts: [], heads: 0, writes: 0 });

    // Someone replaces rec/f1.txt with other bytes of the same size (not through our record).
    await s3.store.put({ bucket: 'b', key: 'rec/f1.txt', body: { text: 'CONTENT 1' }, size: 9, sha256: hex('CONTENT 1'), contentType: 'text/plain' });
    expect(await upload()).toEqual({ puts: ['rec/f1.txt'], heads: 1, writes: 1 });
    expect(await upload()).toEqual({ puts: [], heads: 0, writes: 0 });

    // A corrupt record: every same-size object is HEADed, nothing is put, and the record is rebuilt.
    const [recordFile] = (await readdir(state)).filter((f) => f.startsWith('uploads-'));
    await writeFile(path.join(state, recordFile!), '{"version":1,"objects":');
    expect(await upload()).toEqual({ puts: [], heads: 5, writes: 0 });
    expect(await upload()).toEqual({ puts: [], heads: 0, writes: 0 });
  });
});
