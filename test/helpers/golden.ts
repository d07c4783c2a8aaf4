// Golden files for generated text: compare byte for byte; UPDATE_GOLDEN=1 rewrites them (review the diff).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { repoRoot } from './project.ts';

export async function expectGolden(actual: string, name: string): Promise<void> {
  const file = path.join(repoRoot, 'test', 'golden', name);
  if (process.env.UPDATE_GOLDEN) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, actual);
  }
  const expected = await readFile(file, 'utf8').catch(() => {
    throw new Error(`no golden file ${file}: run with UPDATE_GOLDEN=1 once and review it`);
  });
  expect(actual).toBe(expected);
}
