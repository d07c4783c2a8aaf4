// forEachLimited (lib/core/each.ts, issue 31): what apply, planSync and the verifiers run their
// objects through instead of a promise per object. Bounded, lazy over iterables, and after a
// failure nothing new starts and nothing it started is still running when it throws.
import { describe, expect, it } from 'vitest';
import { forEachLimited } from '../../lib/core/each.ts';

const tick = () => new Promise((r) => setTimeout(r, 1));

describe('forEachLimited', () => {
  it('runs every item once, never more than the limit at a time', async () => {
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    await forEachLimited(Array.from({ length: 200 }, (_, i) => i), 7, async (x, i) => {
      expect(i).toBe(x);
      running++;
      most = Math.max(most, running);
      await tick();
      seen.push(x);
      running--;
    });
    expect(most).toBe(7);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it('reads an iterable lazily: no more items taken than are running', async () => {
    let taken = 0;
    function* items() { for (let i = 0; i < 100; i++) { taken++; yield i; } }
    const ahead: number[] = [];
    await forEachLimited(items(), 4, async (x) => { ahead.push(taken - (x + 1)); await tick(); });
    expect(taken).toBe(100);
    // When item x starts, exactly the items up to x were read: none waits read in a queue.
    expect(new Set(ahead)).toEqual(new Set([0]));
  });

  it('after a failure starts nothing new, waits for those in flight, and throws the first error', async () => {
    const started: number[] = [];
    let inFlight = 0;
    const err = await forEachLimited(Array.from({ length: 50 }, (_, i) => i), 5, async (x) => {
      started.push(x);
      inFlight++;
      try {
        await tick();
        if (x === 3) throw new Error('item 3 failed');
        if (x === 4) throw new Error('item 4 failed later');
        await tick();
      } finally { inFlight--; }
    }).then(() => undefined, (e) => e);
    expect(err?.message).toBe('item 3 failed');
    expect(inFlight).toBe(0);
    expect(started.length).toBeLessThan(50);
  });

  it('an empty list resolves at once', async () => {
    await forEachLimited([], 16, async () => { throw new Error('never called'); });
  });
});
