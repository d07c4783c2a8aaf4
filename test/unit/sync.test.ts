// planSync against an in-memory S3Reader (an injected read interface): what is skipped, put, deleted.
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
