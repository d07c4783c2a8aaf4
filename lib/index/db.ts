// The index's memo of uploads it has processed, keyed by bucket/key and sha256, so a re-run does not
// download them again (issue 12). A JSON file under .releng/index/; losing it costs downloads only:
// what is published is always re-read from the bucket.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';

const entry = z.object({
  status: z.enum(['accepted', 'rejected']),
  reason: z.string().optional(),
  target: z.string().optional(),
  grant: z.string().optional(),
  at: z.string(),
});
const fileSchema = z.object({ version: z.literal(1), uploads: z.record(z.string(), entry) });

export type Processed = z.infer<typeof entry>;

export interface IndexDb {
  file: string;
  get(bucket: string, key: string, sha256: string): Processed | undefined;
  set(bucket: string, key: string, sha256: string, p: Processed): void;
  save(): Promise<void>;
}

export function indexDbFile(root: string, envName: string): string {
  return path.join(root, '.releng', 'index', `${envName}.json`);
}

/** Opens (or starts) the memo; a damaged file is set aside and started afresh (it only saves downloads). */
export async function openIndexDb(file: string): Promise<IndexDb> {
  let uploads: Record<string, Processed> = {};
  try {
    const r = fileSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    if (r.success) uploads = r.data.uploads;
    else await rename(file, `${file}.damaged`);
  } catch { /* no memo yet */ }
  const id = (bucket: string, key: string, sha256: string) => `${bucket}/${key}#${sha256}`;
  return {
    file,
    get: (b, k, s) => uploads[id(b, k, s)],
    set: (b, k, s, p) => { uploads[id(b, k, s)] = p; },
    async save() {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(`${file}.tmp`, JSON.stringify({ version: 1, uploads }, null, 2) + '\n');
      await rename(`${file}.tmp`, file);
    },
  };
}
