// apply.ts with an in-memory S3Writer injected (no module mocks): order, barriers, retries, dry-run, failure report.
import { describe, expect, it } from 'vitest';
import type { Plan } from '../../lib/actions/index.ts';
import { renderPlan } from '../../lib/actions/index.ts';
import { apply } from '../../lib/actions/index.ts';
import { withRetries } from '../../lib/core/retry.ts';
import { createLogger } from '../../lib/cli/log.ts';
import type { S3Put } from '../../lib/s3/actions.ts';
import type { PutRequest, S3Writer } from '../../lib/s3/store.ts';

const log = createLogger({ quiet: true });
const put = (key: string, size = 3): S3Put => ({ kind: 's3.put', bucket: 'b', key, source: { text: 'abc' }, size, sha256: 'a'.repeat(64), contentType: 'text/plain', reason: 'new' });

function memoryWriter(fail?: (req: PutRequest, n: number) => Error | undefined) {
  const written: string[] = [];
  let n = 0;
  const writer: S3Writer = {
    async put(req) { n++; const e = fail?.(req, n); if (e) throw e; await new Promise((r) => setTimeout(r, Math.random() * 3)); written.push(req.key); req.onProgress?.(req.size); },
    async delete(_b, key) { written.push(`delete ${key}`); },
    async copy(_f, to) { written.push(`copy ${to.key}`); },
  };
  return { writer, written };
}

describe('apply', () => {
  const plan: Plan = {
    steps: [
      { title: 'artifacts', actions: [put('x/1'), put('x/2'), put('x/3')] },
      { title: 'pointer', actions: [put('manifest.nix')] },
    ],
    skipped: [{ what: 'y', reason: 'already there' }],
  };

  it('runs steps in order: the pointer only after every artifact', async () => {
    const { writer, written } = memoryWriter();
    const r = await apply(plan, { log, writers: { s3: writer }, dryRun: false });
    expect(written.at(-1)).toBe('manifest.nix');
    expect(written.slice(0, 3).sort()).toEqual(['x/1', 'x/2', 'x/3']);
    expect(r.byKind).toEqual({ 's3.put': 4 });
    expect(r.bytes).toBe(12);
  });

  it('dry-run writes nothing and renders the exact operations', async () => {
    const { writer, written } = memoryWriter();
    await apply(plan, { log, writers: { s3: writer }, dryRun: true });
    expect(written).toEqual([]);
    expect(renderPlan(plan)).toBe([
      'artifacts:',
      '  [dry-run] s3 put s3://b/x/1 (text/plain, 3 B, sha256 aaaaaaaaaaaa, new)',
      '  [dry-run] s3 put s3://b/x/2 (text/plain, 3 B, sha256 aaaaaaaaaaaa, new)',
      '  [dry-run] s3 put s3://b/x/3 (text/plain, 3 B, sha256 aaaaaaaaaaaa, new)',
      'pointer:',
      '  [dry-run] s3 put s3://b/manifest.nix (text/plain, 3 B, sha256 aaaaaaaaaaaa, new)',
      'skip y: already there',
    ].join('\n'));
  });

  it('retries 5xx and dropped connections, then succeeds', async () => {
    const { writer, written } = memoryWriter((req, n) => (n <= 2 ? Object.assign(new Error('boom'), { $metadata: { httpStatusCode: 503 } }) : undefined));
    await apply({ steps: [{ title: 's', actions: [put('k')] }], skipped: [] }, { log, writers: { s3: writer }, dryRun: false, backoffMs: 1 });
    expect(written).toEqual(['k']);
  });

  it('does not retry a 4xx, and stops before the next step with a resumable message', async () => {
    let calls = 0;
    const { writer, written } = memoryWriter((req) => { if (req.key === 'x/2') { calls++; return Object.assign(new Error('denied'), { $metadata: { httpStatusCode: 403 } }); } return undefined; });
    const err = await apply(plan, { log, writers: { s3: writer }, dryRun: false, backoffMs: 1 }).catch((e) => e);
    expect(calls).toBe(1);
    expect(written).not.toContain('manifest.nix');
    expect(err.message).toContain('artifacts failed at: s3 put s3://b/x/2');
    expect(err.hint).toMatch(/re-run/);
  });

  it('consume: lets go of each action as it starts, applies and counts the same, and a failure still names the action and the step\'s count', async () => {
    const steps = () => [{ title: 'artifacts', actions: Array.from({ length: 40 }, (_, i) => put(`x/${i}`)) }, { title: 'pointer', actions: [put('manifest.nix')] }];
    const { writer, written } = memoryWriter();
    const consumedPlan: Plan = { steps: steps(), skipped: [] };
    const r = await apply(consumedPlan, { log, writers: { s3: writer }, dryRun: false, consume: true });
    expect(r.applied).toBe(41);
    expect(written.at(-1)).toBe('manifest.nix');
    expect(new Set(written).size).toBe(41);
    expect(consumedPlan.steps.flatMap((s) => s.actions).every((a) => a === undefined)).toBe(true);
    const failing = memoryWriter((req) => (req.key === 'x/7' ? Object.assign(new Error('denied'), { $metadata: { httpStatusCode: 403 } }) : undefined));
    const err = await apply({ steps: steps(), skipped: [] }, { log, writers: { s3: failing.writer }, dryRun: false, backoffMs: 1, consume: true }).catch((e) => e);
    expect(err.message).toContain('artifacts failed at: s3 put s3://b/x/7');
    expect(err.message).toMatch(/\d+ of 40 actions of this step completed/);
    expect(failing.written).not.toContain('manifest.nix');
  });

  it('a put and a transfer hand the writer the same object fields (one builder: objectFields)', async () => {
    const seen: PutRequest[] = [];
    const writer: S3Writer = { async put(req) { seen.push(req); }, async delete() {}, async copy() {} };
    const fields = { bucket: 'b', key: 'k', size: 3, sha256: 'a'.repeat(64), contentType: 'application/x-nix-nar', contentEncoding: 'zstd', cacheControl: 'max-age=60' };
    const plan: Plan = { steps: [{ title: 's', actions: [
      { kind: 's3.put', ...fields, source: { text: 'abc' }, reason: 'new', metadata: { grant: 'g1' }, md5: 'bWQ1', createOnly: true },
      { kind: 's3.transfer', ...fields, key: 'k2', from: { bucket: '/src', key: 'k' }, reason: 'new' },
    ] }], skipped: [] };
    await apply(plan, { log, writers: { s3: writer }, dryRun: false });
    const byKey = Object.fromEntries(seen.map((r) => [r.key, r]));
    expect(byKey.k).toMatchObject({ ...fields, body: { text: 'abc' }, metadata: { grant: 'g1' }, md5: 'bWQ1', createOnly: true });
    expect(byKey.k2).toMatchObject({ ...fields, key: 'k2', body: { file: '/src/k' } });
  });

  it('gives up after the bounded number of attempts', async () => {
    let n = 0;
    await expect(withRetries(async () => { n++; throw Object.assign(new Error('x'), { code: 'ECONNRESET' }); }, 3, 1)).rejects.toThrow('x');
    expect(n).toBe(3);
  });
});
