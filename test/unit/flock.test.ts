// lib/core/flock.ts: the lock file names its holder once written; read while the holder is still
// writing it (flock creates it empty; writeFile truncates, then writes) it says nothing yet, and
// must not fail the run that reads it (a CI run failed with "Unexpected end of JSON input").
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lockHolder } from '../../lib/core/flock.ts';

describe('lockHolder', () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'releng-flock-')); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('is undefined for a missing, empty or half-written lock file, and the holder once written', async () => {
    const file = path.join(dir, 'checkout.lock');
    expect(await lockHolder(file)).toBeUndefined();
    await writeFile(file, '');
    expect(await lockHolder(file)).toBeUndefined();
    await writeFile(file, '{"pid": 12');
    expect(await lockHolder(file)).toBeUndefined();
    await writeFile(file, '{"host": "h"}\n');
    expect(await lockHolder(file)).toBeUndefined();
    await writeFile(file, JSON.stringify({ pid: 12, host: 'h', since: '2026-12-08T00:00:00.000Z', command: 'upload' }) + '\n');
    expect(await lockHolder(file)).toEqual({ pid: 12, host: 'h', since: '2026-12-08T00:00:00.000Z', command: 'upload' });
  });
});
