// Local file trees to publish: walk a directory, hash each file (streaming, a few at a time).
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { sha256File } from './checksums.ts';
import type { LocalFile } from './s3/sync.ts';

/** Every regular file below `dir`, as LocalFile with `/`-separated relative keys, sorted. */
export async function localTree(dir: string, concurrency = 4): Promise<LocalFile[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  const files = entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? (e as any).path, e.name));
  const limit = pLimit(concurrency);
  const out = await Promise.all(files.map((abs) => limit(async () => ({
    rel: path.relative(dir, abs).split(path.sep).join('/'),
    source: { file: abs },
    size: (await stat(abs)).size,
    sha256: await sha256File(abs),
  }))));
  return out.sort((a, b) => a.rel.localeCompare(b.rel));
}
