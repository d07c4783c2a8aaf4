// Plans the docs bucket: the manual synced (with delete of stale pages) to manual/PROJECT/MAJOR/
// and stable/ for an official release, or to nightly/ otherwise (as Lix's scripts do).
import type { Step as CoreStep, Skip } from '../core/plan.ts';
import type { S3Action } from '../s3/actions.ts';
import type { BuildResult } from '../release/build-result.ts';
import type { BucketRef } from '../environment/open.ts';
import type { S3Reader } from '../s3/store.ts';
import type { RunKnowledge } from '../s3/knowledge.ts';
import type { UploadRecord } from '../s3/record.ts';
import type { WriteIntents } from '../s3/intents.ts';
import { planSync, type LocalFile } from '../s3/sync.ts';
type Step = CoreStep<S3Action>;

/** The docs prefixes a build goes to (stable/ only when the release may move what users see). */
export function manualPrefixes(result: Pick<BuildResult, 'project' | 'official' | 'major'>, keepStable?: string): string[] {
  const base = `manual/${result.project}`;
  if (!result.official) return [`${base}/nightly/`];
  return keepStable ? [`${base}/${result.major}/`] : [`${base}/${result.major}/`, `${base}/stable/`];
}

export async function planDocs(reader: S3Reader, docs: BucketRef, result: Pick<BuildResult, 'project' | 'official' | 'major'>, manual: LocalFile[], opts: { record?: UploadRecord; intents?: WriteIntents; deep?: boolean; knowledge?: RunKnowledge; keepStable?: string } = {}): Promise<{ steps: Step[]; skipped: Skip[] }> {
  const steps: Step[] = [];
  const skipped: Skip[] = [];
  if (result.official && opts.keepStable) skipped.push({ what: `manual/${result.project}/stable/ in s3://${docs.bucket}/${docs.prefix}`, reason: opts.keepStable });
  for (const p of manualPrefixes(result, opts.keepStable)) {
    const prefix = docs.prefix + p;
    const plan = await planSync(reader, { bucket: docs.bucket, prefix, files: manual, deleteStale: true, record: opts.record, intents: opts.intents, deep: opts.deep, knowledge: opts.knowledge });
    steps.push({ title: `manual to s3://${docs.bucket}/${prefix}`, actions: [...plan.puts, ...plan.deletes] });
    skipped.push(...plan.skipped);
  }
  return { steps, skipped };
}
