// Retention of an APT repository (issue 30): which files no index references any more, since when,
// and which of them may go. A file leaves the indexes (a package removed, a version beyond
// keepVersions, an index generation replaced) but a client holding the previous InRelease may still
// fetch it until that Release expires (Valid-Until). So each such file is recorded in the repository's
// ledger (ROOT/releng-retention.json) with the time it was first seen unreferenced, and deleted only
// once it has stayed unreferenced for the grace period, which the config requires to be longer than
// validFor. Losing the ledger only delays deletions (every unreferenced file starts its grace again);
// a file any current index references is never a candidate.
import { z } from 'zod';

/** The ledger's key under the repository root. */
export const LEDGER = 'releng-retention.json';

const ledgerSchema = z.object({
  version: z.literal(1),
  /** Key (relative to the repository root) → when it was first seen unreferenced (ISO time). */
  unreferenced: z.record(z.string(), z.string().datetime()),
}).strict();

export type Ledger = z.infer<typeof ledgerSchema>;

/** Reads the ledger; a missing one is empty, a damaged one is empty with a reason (deletions then wait a full grace). */
export function parseLedger(text: string | undefined): { ledger: Ledger; damaged?: string } {
  if (text === undefined) return { ledger: { version: 1, unreferenced: {} } };
  try {
    const r = ledgerSchema.safeParse(JSON.parse(text));
    if (r.success) return { ledger: r.data };
    return { ledger: { version: 1, unreferenced: {} }, damaged: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
  } catch (e) {
    return { ledger: { version: 1, unreferenced: {} }, damaged: (e as Error).message };
  }
}

/** The ledger's text (keys sorted: the same state is the same bytes, so a re-run writes nothing). */
export function renderLedger(l: Ledger): string {
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(l.unreferenced).sort()) sorted[k] = l.unreferenced[k]!;
  return `${JSON.stringify({ version: 1, unreferenced: sorted }, null, 2)}\n`;
}

export interface RetentionDecision {
  /** The next ledger. */
  ledger: Ledger;
  /** Keys (relative to root) unreferenced for longer than the grace period: to delete. */
  expired: string[];
  /** Keys still within their grace period, with the time each may go. */
  waiting: { key: string; deleteAfter: Date }[];
}

/**
 * Given every key that exists (relative to root, under the swept prefixes), the keys the generation
 * being written references (`next`), those the published one references (`published`: they leave
 * the indexes with this run, so their grace starts now and they are never deleted by it), the
 * previous ledger and the time: which keys are unreferenced, since when, and which have been so for
 * longer than `graceSeconds`.
 */
export function decideRetention(existing: Iterable<string>, next: Set<string>, published: Set<string>, previous: Ledger, now: Date, graceSeconds: number): RetentionDecision {
  const ledger: Ledger = { version: 1, unreferenced: {} };
  const expired: string[] = [];
  const waiting: { key: string; deleteAfter: Date }[] = [];
  for (const key of [...existing].sort()) {
    if (next.has(key)) continue;
    const recorded = published.has(key) ? undefined : previous.unreferenced[key];
    // A time in the future (a clock gone wrong) counts from now: never sooner than a full grace.
    const since = recorded && Date.parse(recorded) <= now.getTime() ? new Date(recorded) : now;
    const deleteAfter = new Date(since.getTime() + graceSeconds * 1000);
    if (deleteAfter.getTime() <= now.getTime() && !published.has(key)) {
      expired.push(key);
      continue;
    }
    ledger.unreferenced[key] = since.toISOString();
    waiting.push({ key, deleteAfter });
  }
  return { ledger, expired, waiting };
}
