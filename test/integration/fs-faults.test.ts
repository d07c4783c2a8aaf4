// Faults on file:// trees (issue 23), with the real CLI and real files: a promote killed with
// SIGKILL while it writes a large file, a disk that fills up mid-file (a real tmpfs), and files
// left truncated under their final names as older releng versions left them. Each time the same
// command, run again, ends in a state `releng verify --deep` accepts, with every file the planned
// bytes. An object someone else wrote (no record, no intent, no releng sidecar; other bytes at the
// full size) is still refused.
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { differencesFromPlan, filesIn, mountTmpfs, remountTmpfs, startReleng, treeFixture, umount, waitFor, type TreeFixture } from '../helpers/trees.ts';

const promoteTo = (env: string) => ['promote', '1.0.0', '--from', 'staging', '--environment', env];
const verifyDeep = (env: string) => ['verify', '--environment', env, '--deep', '--published', '1.0.0'];

describe('file trees heal on a re-run (issue 23)', () => {
  let f: TreeFixture;
  let small: string;
  beforeAll(async () => {
    small = await mkdtemp(path.join(os.tmpdir(), 'releng-small-'));
    mountTmpfs(small, 256 * 1024 * 1024);
    f = await treeFixture({ bigBytes: 48 * 1024 * 1024, envs: ['production', 'small'], roots: { small } });
  }, 600_000);
  afterAll(async () => {
    await f?.cleanup();
    umount(small);
    await rm(small, { recursive: true, force: true });
  });

  const release = (env: string) => path.join(f.dir(env, 'releases'), 'hello', 'hello-1.0.0');
  const intentFiles = () => readdir(path.join(f.p.dir, '.releng', 'upload-state', 'intents')).catch(() => [] as string[]);

  it('SIGKILL while the large file is written: the re-run finishes, verify --deep passes, no temp file is left', async () => {
    const run = startReleng('source', promoteTo('production'), f.p.dir);
    try {
      // Killed while the temporary file of the large artifact holds some of its bytes, not all.
      const tmp = await waitFor('the large artifact half written', async () => {
        if (run.child.exitCode !== null) throw new Error(`releng ended before it was killed:\n${run.output()}`);
        const t = (await readdir(release('production')).catch(() => [] as string[])).find((n) => n.startsWith('.releng-tmp-') && n.endsWith(f.big.rel));
        const size = t ? (await stat(path.join(release('production'), t)).catch(() => undefined))?.size : undefined;
        return size !== undefined && size > 0 && size < f.big.size ? t : undefined;
      }, 240_000, 2);
      run.child.kill('SIGKILL');
      expect((await run.exited).signal).toBe('SIGKILL');
      // Under its final name nothing was written; the temp file and the run's intent are left behind.
      await expect(stat(path.join(release('production'), f.big.rel))).rejects.toThrow();
      expect(await readdir(release('production'))).toContain(tmp);
      const journal = await intentFiles();
      expect(journal).toHaveLength(1);
      expect(await readFile(path.join(f.p.dir, '.releng', 'upload-state', 'intents', journal[0]!), 'utf8')).toContain(`"key":"hello/hello-1.0.0/${f.big.rel}"`);
    } finally {
      if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    }
    const again = await f.run(promoteTo('production'));
    expect(again.code, again.stderr).toBe(0);
    const deep = await f.run(verifyDeep('production'));
    expect(deep.code, deep.stderr).toBe(0);
    expect(await differencesFromPlan(f, 'production', 'staging')).toEqual([]);
    // The killed run's temp file was swept, and its journal settled.
    expect((await readdir(release('production'))).filter((n) => n.startsWith('.releng-tmp-'))).toEqual([]);
    expect(await intentFiles()).toEqual([]);
  }, 900_000);

  it('a full disk mid-file: the run fails naming the file and what to do, leaves nothing half written, and the re-run after freeing space finishes', async () => {
    // Room for everything but half of the large artifact.
    remountTmpfs(small, Math.floor(f.big.size / 2));
    const full = await f.run(promoteTo('small'));
    expect(full.code).toBe(1);
    expect(full.stderr).toContain(`${release('small')}/${f.big.rel}: ENOSPC`);
    expect(full.stderr).toContain(`free space on the filesystem of ${f.dir('small', 'releases')}`);
    await expect(stat(path.join(release('small'), f.big.rel))).rejects.toThrow();
    for (const b of ['releases', 'cache', 'docs'] as const) {
      expect((await filesIn(f.dir('small', b))).filter((n) => path.basename(n).startsWith('.releng-tmp-'))).toEqual([]);
    }
    remountTmpfs(small, 4 * f.big.size);
    const again = await f.run(promoteTo('small'));
    expect(again.code, again.stderr).toBe(0);
    const deep = await f.run(verifyDeep('small'));
    expect(deep.code, deep.stderr).toBe(0);
    expect(await differencesFromPlan(f, 'small', 'staging')).toEqual([]);
  }, 900_000);

  it('files older releng left truncated under their final names (sidecar with the planned sha256 and size 0, or no sidecar) are repaired by the re-run', async () => {
    const prod = (b: 'releases' | 'cache' | 'docs') => f.dir('production', b);
    const meta = (b: 'releases' | 'cache' | 'docs', rel: string) => path.join(prod(b), '.releng', 'meta', `${rel}.json`);
    const planned = async (b: 'releases' | 'cache' | 'docs', rel: string) => JSON.parse(await readFile(meta(b, rel), 'utf8')).sha256 as string;
    const nars = (await filesIn(prod('cache'))).filter((n) => n.startsWith('nar/'));
    const lss = (await filesIn(prod('cache'))).filter((n) => n.endsWith('.ls'));
    const pages = (await filesIn(prod('docs'))).filter((n) => n.startsWith('manual/') && n.endsWith('.html'));
    // As the race of issue 23 left them: emptied, the sidecar recording the planned sha256 beside size 0.
    const asOldReleng = async (b: 'releases' | 'cache' | 'docs', rel: string) => {
      const file = path.join(prod(b), rel);
      const sha = await planned(b, rel);
      await truncate(file, 0);
      await writeFile(meta(b, rel), JSON.stringify({ sha256: sha, size: 0, mtimeMs: (await stat(file)).mtimeMs, contentType: 'application/octet-stream' }) + '\n');
    };
    await asOldReleng('releases', `hello/hello-1.0.0/${f.big.rel}`);
    await asOldReleng('cache', nars[0]!);
    await asOldReleng('cache', lss[0]!);
    await asOldReleng('docs', pages[0]!);
    // Cut short with no sidecar (a write stopped between its rename and its sidecar).
    const sums = 'hello/hello-1.0.0/SHA256SUMS';
    await truncate(path.join(prod('releases'), sums), 10);
    await rm(meta('releases', sums));
    await truncate(path.join(prod('cache'), nars[1]!), 100);
    await rm(meta('cache', nars[1]!));
    expect((await differencesFromPlan(f, 'production', 'staging')).length).toBeGreaterThanOrEqual(6);

    const dry = await f.run([...promoteTo('production'), '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toMatch(new RegExp(`${f.big.rel} \\(.*, repair: it carries the planned sha256 with 0 bytes of ${f.big.size}\\)`));
    expect(dry.stderr).toMatch(/SHA256SUMS \(.*, repair: no releng sidecar, and 10 bytes of \d+: a write cut short\)/);
    const again = await f.run(promoteTo('production'));
    expect(again.code, again.stderr).toBe(0);
    const deep = await f.run(verifyDeep('production'));
    expect(deep.code, deep.stderr).toBe(0);
    expect(await differencesFromPlan(f, 'production', 'staging')).toEqual([]);
  }, 900_000);

  it('an object someone else wrote (no record, no intent, no releng sidecar; other bytes at the full size) is still refused, and left as it is', async () => {
    const rel = 'hello/hello-1.0.0/SHA256SUMS';
    const file = path.join(f.dir('production', 'releases'), rel);
    const side = path.join(f.dir('production', 'releases'), '.releng', 'meta', `${rel}.json`);
    const good = await readFile(file);
    const goodSide = await readFile(side);
    const foreign = Buffer.alloc(good.length, 'z');
    await writeFile(file, foreign);
    await rm(side);
    try {
      const r = await f.run(promoteTo('production'));
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`already holds 1 object with other content:\n  ${rel}`);
      expect(r.stderr).toContain('a published release is immutable');
      expect((await readFile(file)).equals(foreign)).toBe(true);
      expect(sha256Text(await readFile(file))).not.toBe(sha256Text(good));
    } finally {
      await writeFile(file, good);
      await writeFile(side, goodSide);
    }
  }, 600_000);
});
