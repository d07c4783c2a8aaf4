// The project's local state of uploads (never the truth, only time saved): docs/upload-performance.md "Local state".
import path from 'node:path';
import type { Context } from '../config/context.ts';
import { ReleaseError } from '../core/errors.ts';
import type { OpenEnvironment } from '../environment/open.ts';
import type { HashCache } from '../hashing/hash-cache.ts';
import { intentsDir, openIntentJournal, type IntentJournal } from '../s3/intents.ts';
import { openUploadRecord, type UploadRecord } from '../s3/record.ts';

/** Where upload keeps its memos (upload record, file hashes): under the project's gitignored .releng/. */
export function uploadStateDir(root: string): string {
  return path.join(root, '.releng', 'upload-state');
}

/** The memos of one upload: the record of what was uploaded, the file hashes, the intent journal. */
export interface UploadMemos {
  record: UploadRecord;
  hashCache: HashCache;
  intents: IntentJournal;
}

/**
 * Opens the memos that make a re-run cheap (issue 6, docs/upload-performance.md); never the truth.
 * The intent journal (lib/s3/intents.ts) holds what earlier runs began writing and never saw
 * acknowledged: evidence for the planners that an object there is releng's own damaged write (a
 * repair); every write of this run is recorded in it before it starts. The embedded server listens
 * on a new port each run: its memos are named by its data dir instead.
 */
export async function openUploadMemos(ctx: Context, target: OpenEnvironment, hashCache: Promise<HashCache>): Promise<UploadMemos> {
  const dir = uploadStateDir(ctx.root);
  const recordId = target.embeddedS3 ? `embedded:${target.embeddedS3.dir}` : target.endpoint;
  const intents = await openIntentJournal(intentsDir(dir), recordId);
  return { record: await openUploadRecord(dir, recordId), hashCache: await hashCache, intents };
}

/** Saves the upload record and the hash memo; a failure names the file that could not be written. */
export async function saveMemos(memo: { record: UploadRecord; hashCache: HashCache }): Promise<void> {
  for (const [file, save] of [[memo.record.file, () => memo.record.save()], [memo.hashCache.file, () => memo.hashCache.save()]] as const) {
    try { await save(); } catch (e: any) {
      if (e && typeof e === 'object') e.memoFile = file;
      throw e;
    }
  }
}


/** After every write was acknowledged: the memos saved, or an error saying the release is published and how to confirm it. */
export async function saveMemosAfterPublish(ctx: Context, target: OpenEnvironment, memo: Pick<UploadMemos, 'record' | 'hashCache'>): Promise<void> {
  try { await saveMemos(memo); } catch (e: any) {
    throw new ReleaseError(`the upload itself completed (every planned write was acknowledged), but saving the local memo ${e?.memoFile ?? uploadStateDir(ctx.root)} failed: ${e?.code ?? ''} ${e?.message ?? e}`.replace(/\s+/g, ' ').trim(),
      `free space or fix permissions in ${uploadStateDir(ctx.root)}, then run \`releng verify --environment ${target.name}\` to confirm the release (the memo only saves time; re-running upload is safe too)`, { cause: e });
  }
}
