// The promote planner with in-memory readers (no servers): what is copied, in which order, and
// the refusals and skips that protect production.
import { describe, expect, it } from 'vitest';
import { render } from '../../../lib/actions/index.ts';
import { sha256Text } from '../../../lib/hashing/checksums.ts';
import { planPromote, type PromoteRequest, type PromoteSide } from '../../../lib/promote/plan.ts';
import type { ObjectHead, S3Reader } from '../../../lib/s3/store.ts';

/** Buckets as maps key → text; heads carry the sha256 releng records. */
function memory(buckets: Record<string, Record<string, string>>): S3Reader {
  return {
    endpoint: 'memory://',
    async list(b, prefix) { return Object.entries(buckets[b] ?? {}).filter(([k]) => k.startsWith(prefix)).map(([key, v]) => ({ key, size: Buffer.byteLength(v) })); },
    async head(b, key): Promise<ObjectHead | undefined> { const v = buckets[b]?.[key]; return v === undefined ? undefined : { size: Buffer.byteLength(v), sha256: sha256Text(v), contentType: 'text/plain', metadata: {} }; },
    async getText(b, key) { return buckets[b]?.[key]; },
    async checkBucket() {},
  };
}

const sp = (c: string, name: string) => `/nix/store/${c.repeat(32)}-${name}`;
const P = { base: sp('a', 'base'), lib: sp('b', 'lib'), app: sp('c', 'hello-2.0.0') };
const narinfo = (p: string, refs: string[]) => `StorePath: ${p}\nURL: nar/${p.slice(11, 43)}.nar\nCompression: none\nFileSize: 3\nNarHash: sha256:x\nNarSize: 3\nReferences: ${refs.map((r) => r.slice(11)).join(' ')}\n`;
const manifestOf = (p: string) => `{\n  x86_64-linux = "${p}";\n}\n`;
const readManifest = async (text: string) => Object.fromEntries([...text.matchAll(/(\S+) = "([^"]+)";/g)].map((m) => [m[1]!, m[2]!]));

function source(): Record<string, Record<string, string>> {
  const cache: Record<string, string> = { 'nix-cache-info': 'StoreDir: /nix/store\n' };
  for (const [p, refs] of [[P.base, []], [P.lib, [P.base]], [P.app, [P.lib, P.base]]] as [string, string[]][]) {
    cache[`${p.slice(11, 43)}.narinfo`] = narinfo(p, refs);
    cache[`nar/${p.slice(11, 43)}.nar`] = 'NAR';
  }
  return {
    'src-rel': { 'hello/hello-2.0.0/manifest.nix': manifestOf(P.app), 'hello/hello-2.0.0/SHA256SUMS': 'sums\n', 'manifest.nix': manifestOf(P.app) },
    'src-cache': cache,
    'src-docs': { 'manual/hello/2.0/index.html': 'v2', 'manual/hello/stable/index.html': 'v2' },
  };
}

function request(src: Record<string, Record<string, string>>, dst: Record<string, Record<string, string>>, extra: Partial<PromoteRequest> = {}): PromoteRequest {
  const side = (name: string, b: Record<string, Record<string, string>>, p: string, endpoint: string): PromoteSide => ({
    name, store: memory(b), endpoint,
    releases: { bucket: `${p}-rel`, prefix: '', url: `s3://${p}-rel` }, cache: { bucket: `${p}-cache`, prefix: '', url: `s3://${p}-cache` }, docs: { bucket: `${p}-docs`, prefix: '', url: `s3://${p}-docs` },
  });
  return { project: 'hello', version: '2.0.0', major: '2.0', source: side('staging', src, 'src', 'https://a'), dest: side('production', dst, 'dst', 'https://b'),
    serverSideCopy: 'auto', readManifest, deleteStale: false, replaceArtifacts: false, latestLink: true, ...extra };
}

describe('planPromote', () => {
  it('copies only what the destination lacks: NARs first, narinfos by reference level, pointers last', async () => {
    const dst = { 'dst-cache': { [`${P.base.slice(11, 43)}.narinfo`]: narinfo(P.base, []), [`nar/${P.base.slice(11, 43)}.nar`]: 'NAR' } };
    const planned = await planPromote(request(source(), dst));
    const lines = planned.steps.map((s) => `${s.title}: ${s.actions.map((a) => render(a).split(' (')[0]).join(' | ')}`);
    expect(lines).toEqual([
      `cache NARs and listings to s3://dst-cache/: s3 transfer s3://src-cache/nar/${'b'.repeat(32)}.nar -> s3://dst-cache/nar/${'b'.repeat(32)}.nar | s3 transfer s3://src-cache/nar/${'c'.repeat(32)}.nar -> s3://dst-cache/nar/${'c'.repeat(32)}.nar | s3 transfer s3://src-cache/nix-cache-info -> s3://dst-cache/nix-cache-info`,
      `cache narinfos, level 0 of 1, to s3://dst-cache/: s3 transfer s3://src-cache/${'b'.repeat(32)}.narinfo -> s3://dst-cache/${'b'.repeat(32)}.narinfo`,
      `cache narinfos, level 1 of 1, to s3://dst-cache/: s3 transfer s3://src-cache/${'c'.repeat(32)}.narinfo -> s3://dst-cache/${'c'.repeat(32)}.narinfo`,
      'release files to s3://dst-rel/hello/hello-2.0.0/: s3 transfer s3://src-rel/hello/hello-2.0.0/SHA256SUMS -> s3://dst-rel/hello/hello-2.0.0/SHA256SUMS | s3 transfer s3://src-rel/hello/hello-2.0.0/manifest.nix -> s3://dst-rel/hello/hello-2.0.0/manifest.nix',
      'manual to s3://dst-docs/manual/hello/2.0/: s3 transfer s3://src-docs/manual/hello/2.0/index.html -> s3://dst-docs/manual/hello/2.0/index.html',
      'what users follow in production (root manifest.nix, latest link): s3 transfer s3://src-rel/manifest.nix -> s3://dst-rel/manifest.nix | s3 redirect s3://dst-rel/latest-hello-2.0 -> /hello/hello-2.0.0/',
      'manual to s3://dst-docs/manual/hello/stable/: s3 transfer s3://src-docs/manual/hello/stable/index.html -> s3://dst-docs/manual/hello/stable/index.html',
      'stale docs pages in production (--delete: the source no longer has them): ',
    ]);
    expect(planned.closure).toEqual([P.base, P.lib, P.app].sort());
    expect(planned.skipped.map((s) => s.what)).toContain('1 store path in s3://dst-cache/');
  });

  it('one endpoint: server-side copies', async () => {
    const planned = await planPromote(request(source(), {}, {}));
    expect(planned.steps[0]!.actions[0]!.kind).toBe('s3.transfer');
    const same = request(source(), {});
    same.dest.endpoint = same.source.endpoint;
    expect((await planPromote(same)).steps.flatMap((s) => s.actions).every((a) => a.kind === 's3.copy' || a.kind === 's3.redirect')).toBe(true);
  });

  it('never moves production back: a newer root manifest keeps root, stable/ and latest link', async () => {
    const dst = { 'dst-rel': { 'manifest.nix': manifestOf(sp('d', 'hello-2.1.0')) } };
    const planned = await planPromote(request(source(), dst));
    expect(planned.movesPointers).toBe(false);
    expect(planned.steps.flatMap((s) => s.actions).map((a) => render(a)).filter((l) => /dst-rel\/manifest\.nix$|latest|stable/.test(l.split(' (')[0]!))).toEqual([]);
    expect(planned.skipped).toContainEqual({ what: 'root manifest.nix, stable/ docs and latest link of production', reason: "production's root manifest.nix is at 2.1.0, newer than 2.0.0: it never moves back" });
  });

  it('a maintenance release in staging (its root manifest is another release) moves nothing users follow', async () => {
    const src = source();
    src['src-rel']!['manifest.nix'] = manifestOf(sp('d', 'hello-2.1.0'));
    const planned = await planPromote(request(src, {}));
    expect(planned.movesPointers).toBe(false);
    expect(planned.skipped.find((s) => s.what.startsWith('root manifest.nix'))?.reason).toContain("staging's root manifest.nix does not point at 2.0.0");
  });

  it('refuses a narinfo not signed by the destination key when re-signing is off, and a missing source NAR', async () => {
    const { parsePublicKey } = await import('../../../lib/nix/sign.ts');
    const key = parsePublicKey(`prod-1:${Buffer.alloc(32, 7).toString('base64')}`);
    await expect(planPromote(request(source(), {}, { destKey: key }))).rejects.toThrow(/not signed by production's key prod-1/);
    const src = source();
    delete src['src-cache']![`nar/${'a'.repeat(32)}.nar`];
    await expect(planPromote(request(src, {}))).rejects.toThrow(/NAR .* is missing in staging/);
  });

  it('--delete: stale docs pages only, each one an action', async () => {
    const dst = { 'dst-docs': { 'manual/hello/2.0/old.html': 'x', 'manual/hello/2.0/index.html': 'v2' }, 'dst-rel': { 'hello/hello-2.0.0/extra': 'x' } };
    const without = await planPromote(request(source(), dst));
    expect(without.steps.flatMap((s) => s.actions).filter((a) => a.kind === 's3.delete')).toEqual([]);
    // Kept, and the plan says so (the closing verification reports them as stale).
    expect(without.skipped).toContainEqual({ what: '1 object in s3://dst-docs/manual/hello/2.0/ that staging no longer has', reason: 'kept: pass --delete to remove them (the closing verification reports them as stale)' });
    const planned = await planPromote(request(source(), dst, { deleteStale: true }));
    expect(planned.steps.flatMap((s) => s.actions).filter((a) => a.kind === 's3.delete').map((a) => render(a))).toEqual(['s3 delete s3://dst-docs/manual/hello/2.0/old.html']);
    // The deletions are the last step, after every copy and what users follow; the release prefix's extra file stays.
    expect(planned.steps.at(-1)!.actions.map((a) => a.kind)).toEqual(['s3.delete']);
    expect(planned.steps.slice(0, -1).flatMap((s) => s.actions).some((a) => a.kind === 's3.delete')).toBe(false);
  });

  // issue 23: what releng itself was writing is repaired; other content in the release prefix is refused.
  const intentsAt = (keys: Record<string, string | undefined>) => ({
    settledKeys: [] as string[],
    pending(bucket: string, key: string) { const k = `${bucket}/${key}`; return k in keys ? { bucket, key, ...(keys[k] ? { sha256: keys[k] } : {}) } : undefined; },
    settled(bucket: string, key: string) { this.settledKeys.push(`${bucket}/${key}`); },
  });

  it('the release prefix: releng\'s own unfinished write of the source\'s bytes is a repair; other content is still refused', async () => {
    const dst = { 'dst-rel': { 'hello/hello-2.0.0/SHA256SUMS': 'su', 'hello/hello-2.0.0/manifest.nix': 'someone else\'s manifest' } };
    const intents = intentsAt({ 'dst-rel/hello/hello-2.0.0/SHA256SUMS': sha256Text('sums\n'), 'dst-rel/hello/hello-2.0.0/manifest.nix': sha256Text(manifestOf(P.app)) });
    // SHA256SUMS: cut short without our metadata (a killed transfer to a server that keeps the body);
    // manifest.nix: another releng's release (its sha256 metadata names other bytes), intent or not.
    const withoutMetadata = (req: PromoteRequest) => {
      const inner = req.dest.store;
      req.dest.store = { ...inner, head: async (b, k) => { const h = await inner.head(b, k); return h && k.endsWith('SHA256SUMS') ? { ...h, sha256: undefined } : h; } };
      return req;
    };
    await expect(planPromote(withoutMetadata(request(source(), dst, { destEvidence: { intents } })))).rejects.toThrow(/already holds 1 object with other content:\n  hello\/hello-2\.0\.0\/manifest\.nix$/);
    dst['dst-rel']['hello/hello-2.0.0/manifest.nix'] = manifestOf(P.app);
    const planned = await planPromote(withoutMetadata(request(source(), dst, { destEvidence: { intents } })));
    const lines = planned.steps.flatMap((s) => s.actions).map((a) => render(a)).filter((l) => l.includes('dst-rel/hello/'));
    expect(lines).toEqual([expect.stringMatching(/^s3 transfer s3:\/\/src-rel\/hello\/hello-2\.0\.0\/SHA256SUMS -> s3:\/\/dst-rel\/hello\/hello-2\.0\.0\/SHA256SUMS \(5 B, sha256 [0-9a-f]{12}, repair: releng began writing these bytes here and never saw the write acknowledged \(intent journal\)\)$/)]);
    expect(intents.settledKeys).toContain('dst-rel/hello/hello-2.0.0/manifest.nix');
    // An intent for other bytes is no evidence for these.
    await expect(planPromote(withoutMetadata(request(source(), dst, { destEvidence: { intents: intentsAt({ 'dst-rel/hello/hello-2.0.0/SHA256SUMS': 'f'.repeat(64) }) } })))).rejects.toThrow(/already holds 1 object with other content:\n  hello\/hello-2\.0\.0\/SHA256SUMS$/);
  });

  it('the cache: a NAR cut short under a narinfo already there, an empty narinfo and one releng was writing are copied again', async () => {
    const src = source();
    const dst: Record<string, Record<string, string>> = { 'dst-cache': { ...src['src-cache']! } };
    const h = (p: string) => p.slice(11, 43);
    dst['dst-cache']![`nar/${h(P.base)}.nar`] = '';           // cut short under a present narinfo
    dst['dst-cache']![`${h(P.lib)}.narinfo`] = '';             // an empty narinfo
    const intents = intentsAt({ [`dst-cache/${h(P.app)}.narinfo`]: undefined });
    const planned = await planPromote(request(src, dst, { destEvidence: { intents } }));
    const lines = planned.steps.flatMap((s) => s.actions).map((a) => render(a)).filter((l) => l.includes('dst-cache'));
    expect(lines).toEqual([
      expect.stringMatching(new RegExp(`^s3 transfer s3://src-cache/nar/${h(P.base)}\\.nar -> s3://dst-cache/nar/${h(P.base)}\\.nar \\(3 B, sha256 [0-9a-f]{12}, changed\\)$`)),
      expect.stringMatching(new RegExp(`^s3 transfer s3://src-cache/${h(P.lib)}\\.narinfo -> .* \\(.*, repair: an empty file, no narinfo\\)$`)),
      expect.stringMatching(new RegExp(`^s3 transfer s3://src-cache/${h(P.app)}\\.narinfo -> .* \\(.*, repair: releng began writing it here and never saw the write acknowledged \\(intent journal\\)\\)$`)),
    ]);
  });

  it('S3: an object carrying the source\'s sha256 in its metadata but cut short (a killed transfer) is a repair, not other content', async () => {
    const dst = { 'dst-rel': { 'hello/hello-2.0.0/SHA256SUMS': 'su' } };
    const req = request(source(), dst);
    const inner = req.dest.store;
    // What a server that keeps a truncated body shows: our sha256 metadata, fewer bytes.
    req.dest.store = { ...inner, head: async (b, k) => { const h = await inner.head(b, k); return h && k === 'hello/hello-2.0.0/SHA256SUMS' ? { ...h, sha256: sha256Text('sums\n') } : h; } };
    const planned = await planPromote(req);
    expect(planned.steps.flatMap((s) => s.actions).map((a) => render(a)).filter((l) => l.includes('dst-rel/hello/'))).toEqual([
      expect.stringMatching(/SHA256SUMS \(5 B, sha256 [0-9a-f]{12}, repair: it carries the planned sha256 with 2 bytes of 5\)$/),
      expect.stringMatching(/manifest\.nix \(.*, new\)$/),
    ]);
  });
});
