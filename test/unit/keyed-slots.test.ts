// lib/core/heap.ts KeyedSlots: the slot index of the upload record and the run's knowledge (issue
// 31), held against a Map doing the same work: keys of several buckets (one a file tree's
// directory, with '/'), whole ids read from a file, drops and reuse, and growth past many sizes.
import { describe, expect, it } from 'vitest';
import { KeyedSlots, SLOT_CHUNK } from '../../lib/core/heap.ts';

describe('KeyedSlots', () => {
  it('finds what a Map would through 30,000 takes, whole ids, drops and re-takes; slots are reused, never shared', () => {
    const t = new KeyedSlots(() => ({ n: new Float64Array(SLOT_CHUNK) }));
    const model = new Map<string, number>();
    const buckets = ['b', 'other', '/srv/tree/dir'];
    const id = (b: string, k: string) => `${b}/${k}`;
    let seed = 7;
    const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
    for (let step = 0; step < 30_000; step++) {
      const b = buckets[rnd(3)]!;
      const k = `dir/${rnd(12_000)}/page.html`;
      const op = rnd(10);
      if (op < 5) {
        const i = t.take(b, k);
        if (model.has(id(b, k))) expect(i).toBe(model.get(id(b, k)));
        model.set(id(b, k), i);
        t.chunk(i).n[t.offset(i)] = step;
      } else if (op < 7) {
        const i = t.takeId(id(b, k));
        if (model.has(id(b, k))) expect(i).toBe(model.get(id(b, k)));
        model.set(id(b, k), i);
      } else if (op < 9) {
        expect(t.find(b, k)).toBe(model.get(id(b, k)));
      } else {
        expect(t.drop(b, k)).toBe(model.get(id(b, k)));
        model.delete(id(b, k));
      }
    }
    // Every slot held by one key only.
    expect(new Set(model.values()).size).toBe(model.size);
    for (const [whole, i] of model) {
      const b = buckets.find((x) => whole.startsWith(`${x}/`))!;
      expect(t.find(b, whole.slice(b.length + 1))).toBe(i);
    }
    expect(new Map(t.ids())).toEqual(model);
    expect(t.find('b', 'absent')).toBeUndefined();
    expect(t.find('nobucket', 'dir/1/page.html')).toBeUndefined();
  });

  it('a whole id is found by bucket and key even when the bucket holds "/" and another split of the id names a key too', () => {
    const t = new KeyedSlots(() => ({}));
    const i = t.takeId('/srv/a/b/c.txt');
    const j = t.take('/srv/a', 'x/c.txt');
    expect(t.find('/srv', 'a/b/c.txt')).toBe(i);
    // Found once by ('/srv', 'a/b/c.txt'), it is filed under that split; ids() still gives it whole.
    expect(t.find('/srv/a', 'b/c.txt')).toBeUndefined();
    expect(t.find('/srv/a', 'x/c.txt')).toBe(j);
    expect([...t.ids()].sort()).toEqual([['/srv/a/b/c.txt', i], ['/srv/a/x/c.txt', j]].sort());
  });
});
