// planSync against an in-memory S3Reader (an injected read interface): what is skipped, put, deleted.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ObjectHead, RemoteObject, S3Reader } from '../../lib/s3/store.ts';
import { planSync, type LocalFile } from '../../lib/s3/sync.ts';
import { contentHeadersFor } from '../../lib/s3/content-type.ts';

function reader(objects: Record<string, { size: number; sha256?: string }>): S3Reader & { heads: string[] } {
  const heads: string[] = [];
  return {
    heads,
    endpoint: 'mem://',
    async list(_b, prefix) { return Object.entries(objects).filter(([k]) => k.startsWith(prefix)).map(([key, o]): RemoteObject => ({ key, size: o.size })); },
    async head(_b, key) { heads.push(key); const o = objects[key]; return o ? ({ size: o.size, sha256: o.sha256, metadata: {} } as ObjectHead) : undefined; },
    async getText() { return undefined; },
    async checkBucket() {},
  };
}
const file = (rel: string, size: number, sha: string): LocalFile => ({ rel, source: { text: 'x' }, size, sha256: sha.repeat(64) });

describe('planSync', () => {
  it('skips identical objects, puts new and changed ones, repairs a damaged copy of its own object', async () => {
    const r = reader({ 'p/same': { size: 1, sha256: 'a'.repeat(64) }, 'p/changed': { size: 1, sha256: 'b'.repeat(64) }, 'p/resized': { size: 9, sha256: 'e'.repeat(64) }, 'p/truncated': { size: 0, sha256: 'c'.repeat(64) } });
    const plan = await planSync(r, { bucket: 'b', prefix: 'p/', files: [file('same', 1, 'a'), file('changed', 1, 'c'), file('resized', 1, 'c'), file('truncated', 1, 'c'), file('new', 1, 'd')] });
    // truncated: our sha256 with another size, a body cut short (issue 9): a repair, not other content.
    expect(plan.puts.map((p) => `${p.key}:${p.reason}`)).toEqual(['p/changed:changed', 'p/new:new', 'p/resized:changed', 'p/truncated:repair']);
    expect(plan.unchanged).toBe(1);
    expect(r.heads.sort()).toEqual(['p/changed', 'p/resized', 'p/same', 'p/truncated']);
    expect(plan.skipped).toEqual([{ what: '1 object in s3://b/p/', reason: 'already there with the same sha256' }]);
    expect(plan.deletes).toEqual([]);
  });

  it('treats an object without our sha256 metadata as changed (never trusts an ETag)', async () => {
    const plan = await planSync(reader({ 'k': { size: 1 } }), { bucket: 'b', prefix: '', files: [file('k', 1, 'a')] });
    expect(plan.puts).toHaveLength(1);
  });

  it('deletes stale objects only when asked (manual sync)', async () => {
    const r = reader({ 'm/old.html': { size: 1 }, 'm/keep.html': { size: 1, sha256: 'a'.repeat(64) }, 'other/x': { size: 1 } });
    const files = [file('keep.html', 1, 'a')];
    expect((await planSync(r, { bucket: 'b', prefix: 'm/', files })).deletes).toEqual([]);
    expect((await planSync(r, { bucket: 'b', prefix: 'm/', files, deleteStale: true })).deletes.map((d) => d.key)).toEqual(['m/old.html']);
  });

  it('sets content types and encodings by name', () => {
    expect(contentHeadersFor('a/SHA256SUMS')).toEqual({ contentType: 'text/plain' });
    expect(contentHeadersFor('x.tar.xz.sha256')).toEqual({ contentType: 'text/plain' });
    expect(contentHeadersFor('manifest.nix')).toEqual({ contentType: 'text/plain' });
    expect(contentHeadersFor('packages.json.br')).toEqual({ contentType: 'application/json', contentEncoding: 'br' });
    expect(contentHeadersFor('index.html')).toEqual({ contentType: 'text/html' });
    expect(contentHeadersFor('x.tar.xz')).toEqual({ contentType: 'application/x-xz' });
    expect(contentHeadersFor('x.tar.gz')).toEqual({ contentType: 'application/gzip' });
    expect(contentHeadersFor('x.bin')).toEqual({ contentType: 'application/octet-stream' });
  });
});

describe('an S3 object cut short without metadata (issue 25)', () => {
  const sha = (t: string) => createHash('sha256').update(t).digest('hex');
  /** A reader whose objects have bodies (and so sha256Of), without our metadata unless given. */
  function bodies(objects: Record<string, { body: string; sha256?: string }>): S3Reader {
    return {
      endpoint: 'mem://',
      async list(_b, prefix) { return Object.entries(objects).filter(([k]) => k.startsWith(prefix)).map(([key, o]): RemoteObject => ({ key, size: Buffer.byteLength(o.body) })); },
      async head(_b, key) { const o = objects[key]; return o ? ({ size: Buffer.byteLength(o.body), sha256: o.sha256, metadata: {} } as ObjectHead) : undefined; },
      async sha256Of(_b, key, limit) { const o = objects[key]; if (!o) return undefined; const b = Buffer.from(o.body).subarray(0, limit); return { size: b.length, sha256: sha(b.toString()) }; },
      async getText() { return undefined; },
      async checkBucket() {},
    };
  }
  const planned = 'the planned bytes of a release file\n';
  const local = (rel: string): LocalFile => ({ rel, source: { text: planned }, size: Buffer.byteLength(planned), sha256: sha(planned) });

  it('its bytes are the first bytes of the plan: a repair, even with no intent or record; other bytes, or our metadata for others, are other content', async () => {
    const r = bodies({
      'p/half': { body: planned.slice(0, 11) },                            // a PUT killed mid-body on a server that keeps it
      'p/foreign': { body: 'someone else' },                               // shorter, but not the plan's first bytes
      'p/longer': { body: `${planned}and more` },                          // not shorter: nothing cut short
      'p/ours-other': { body: planned.slice(0, 11), sha256: 'e'.repeat(64) }, // releng's metadata for other bytes
    });
    const plan = await planSync(r, { bucket: 'b', prefix: 'p/', files: ['half', 'foreign', 'longer', 'ours-other'].map(local), createOnly: true });
    expect(plan.puts.map((p) => `${p.key}:${p.reason}${p.why ? `: ${p.why}` : ''}`)).toEqual([
      'p/foreign:changed',
      `p/half:repair: no sha256 metadata, and its 11 bytes are the first 11 of the planned ${Buffer.byteLength(planned)}: a body cut short`,
      'p/longer:changed',
      'p/ours-other:changed',
    ]);
  });
});
