// lib/core/exec.ts: argument lists split to fit the kernel, and a failed command shown without its
// megabytes of arguments (issue 31: 50,000 store paths in one `nix path-info`).
import { describe, expect, it } from 'vitest';
import { argvBatches, run } from '../../lib/core/exec.ts';
import { ReleaseError } from '../../lib/core/errors.ts';

describe('argvBatches', () => {
  it('keeps the order, puts every item in exactly one group, and keeps each group within the bound', () => {
    const items = Array.from({ length: 5000 }, (_, i) => `/nix/store/${String(i).padStart(32, '0')}-part-${i}`);
    const groups = argvBatches(items, 10_000);
    expect(groups.flat()).toEqual(items);
    expect(groups.length).toBeGreaterThan(20);
    for (const g of groups) expect(g.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0)).toBeLessThanOrEqual(10_000);
    // One item larger than the bound goes alone; none is dropped, and no group is empty.
    const big = 'x'.repeat(20_000);
    expect(argvBatches(['a', big, 'b'], 10_000)).toEqual([['a'], [big], ['b']]);
    expect(argvBatches([])).toEqual([]);
  });
});

describe('run', () => {
  it('names a failed command by its first arguments and how many more, not all of them', async () => {
    const args = ['-c', 'exit 3', 'sh', ...Array.from({ length: 20_000 }, (_, i) => `argument-${i}`)];
    const e = await run('sh', args).catch((x) => x);
    expect(e).toBeInstanceOf(ReleaseError);
    expect(e.message).toMatch(/^command failed \(exit 3\): sh -c 'exit 3' sh argument-0 /);
    expect(e.message).toMatch(/… \(\d+ more arguments\)$/);
    expect(e.message.length).toBeLessThan(2200);
  });

  it('says an argument list the kernel refuses is too long, without printing it', async () => {
    const args = Array.from({ length: 60_000 }, (_, i) => `/nix/store/${String(i).padStart(32, '0')}-bench-part-${i}`);
    const e = await run('true', args).catch((x) => x);
    expect(e).toBeInstanceOf(ReleaseError);
    expect(e.message).toMatch(/^command not started, its argument list is too long \(60000 arguments, \d+ bytes\): true \/nix\/store\//);
    expect(e.message.length).toBeLessThan(2200);
  });
});
