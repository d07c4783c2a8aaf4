// Retention's decision (lib/index/retention.ts): a file leaves only after it has been unreferenced
// for the whole grace period; what the published generation references is never deleted and starts
// its grace now; a lost or damaged ledger, or a clock in the future, only delays.
import { describe, expect, it } from 'vitest';
import { decideRetention, parseLedger, renderLedger } from '../../../lib/index/retention.ts';

const now = new Date('2026-12-07T12:00:00Z');
const ago = (s: number) => new Date(now.getTime() - s * 1000).toISOString();
const GRACE = 3600;

describe('decideRetention', () => {
  it('keeps what the next generation references, records what left, deletes what has been unreferenced longer than the grace', () => {
    const existing = ['pool/a.deb', 'pool/b.deb', 'pool/c.deb', 'pool/d.deb', 'dists/s/main/binary-amd64/by-hash/SHA256/old'];
    const ledger = { version: 1 as const, unreferenced: { 'pool/c.deb': ago(GRACE + 1), 'pool/d.deb': ago(GRACE - 60), 'pool/gone.deb': ago(99999) } };
    const d = decideRetention(existing, new Set(['pool/a.deb']), new Set(['pool/b.deb']), ledger, now, GRACE);
    expect(d.expired).toEqual(['pool/c.deb']);
    expect(d.ledger.unreferenced).toEqual({
      'dists/s/main/binary-amd64/by-hash/SHA256/old': now.toISOString(), // first seen unreferenced now
      'pool/b.deb': now.toISOString(), // leaves the indexes with this run
      'pool/d.deb': ago(GRACE - 60),
    });
    expect(d.waiting.find((w) => w.key === 'pool/d.deb')!.deleteAfter.toISOString()).toBe(new Date(now.getTime() + 60_000).toISOString());
  });

  it('never deletes what the published generation references, whatever the ledger says', () => {
    const d = decideRetention(['pool/b.deb'], new Set(), new Set(['pool/b.deb']), { version: 1, unreferenced: { 'pool/b.deb': ago(10 * GRACE) } }, now, GRACE);
    expect(d.expired).toEqual([]);
    expect(d.ledger.unreferenced['pool/b.deb']).toBe(now.toISOString());
  });

  it('a time in the future counts from now; a damaged ledger is empty with a reason; the text is stable', () => {
    const future = new Date(now.getTime() + 86400_000).toISOString();
    const d = decideRetention(['pool/x.deb'], new Set(), new Set(), { version: 1, unreferenced: { 'pool/x.deb': future } }, now, GRACE);
    expect(d.expired).toEqual([]);
    expect(d.ledger.unreferenced['pool/x.deb']).toBe(now.toISOString());
    expect(parseLedger('{ not json').damaged).toBeTruthy();
    expect(parseLedger(JSON.stringify({ version: 1, unreferenced: { k: 'yesterday' } })).damaged).toContain('unreferenced.k');
    expect(parseLedger(undefined)).toEqual({ ledger: { version: 1, unreferenced: {} } });
    const text = renderLedger({ version: 1, unreferenced: { b: ago(1), a: ago(2) } });
    expect(Object.keys(JSON.parse(text).unreferenced)).toEqual(['a', 'b']);
    expect(parseLedger(text).ledger).toEqual(JSON.parse(text));
  });
});
