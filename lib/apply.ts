// The only executor of plans. Steps run in order; the actions of a step run with p-limit
// concurrency and bounded, jittered retries on transient failures. Nothing else writes.
import pLimit from 'p-limit';
import { render, renderPlan, type Action, type Plan } from './actions.ts';
import type { ApplyEnv, HandlerMap, Writers } from './apply-types.ts';
import { ReleaseError } from './errors.ts';
import { repoHandlers } from './git/actions.ts';
import { gitPushHandlers } from './git/push.ts';
import { grantHandlers } from './grants/actions.ts';
import type { Logger } from './log.ts';
import { ociHandlers } from './oci/actions.ts';
import { bytesOf, s3Handlers, type S3Action } from './s3/actions.ts';

const handlers: HandlerMap<Action> = {
  ...s3Handlers,
  ...repoHandlers,
  ...gitPushHandlers,
  ...ociHandlers,
  ...grantHandlers,
};

export interface ApplyOptions {
  log: Logger;
  writers: Writers;
  dryRun: boolean;
  /** Default concurrency of a step. */
  concurrency?: number;
  /** Attempts per action on retryable errors (first try included). */
  attempts?: number;
  /** Base delay of the exponential backoff, ms (jittered). */
  backoffMs?: number;
  /** Printed on failure: how to continue (e.g. "re-run `releng upload`"). */
  resumeHint?: string;
}

export interface ApplyResult {
  applied: number;
  byKind: Record<string, number>;
  bytes: number;
}

// Retries live in lib/retry.ts (reads use them too); re-exported for existing callers.
export { isRetryable, withRetries } from './retry.ts';
import { withRetries } from './retry.ts';

/** Executes a plan (or, with dryRun, prints it and writes nothing). */
export async function apply(plan: Plan, opts: ApplyOptions): Promise<ApplyResult> {
  const { log } = opts;
  for (const k of plan.skipped) log.skip(k.what, k.reason);
  const result: ApplyResult = { applied: 0, byKind: {}, bytes: 0 };
  if (opts.dryRun) {
    // --dry-run --json prints every planned action, in order (lib/cli/main.ts reads log.run).
    log.run.plan.push(...plan.steps.filter((s) => s.actions.length > 0));
    log.run.skipped.push(...plan.skipped);
    const text = renderPlan({ steps: plan.steps, skipped: [] });
    if (text) for (const l of text.split('\n')) log.info(l);
    else log.info('[dry-run] nothing to do');
    return result;
  }
  const attempts = opts.attempts ?? 5;
  const backoffMs = opts.backoffMs ?? 200;
  const done: string[] = [];
  for (const step of plan.steps) {
    if (step.actions.length === 0) continue;
    const totalBytes = step.actions.reduce((n, a) => n + (a.kind.startsWith('s3.') ? bytesOf(a as S3Action) : a.kind === 'grant.post' ? a.size : 0), 0);
    const phase = log.phase(`${step.title} (${step.actions.length} action${step.actions.length === 1 ? '' : 's'})`, { still: totalBytes > 0 });
    const progress = totalBytes > 0 ? log.progress(step.title, totalBytes, 'bytes', step.actions.length) : undefined;
    const limit = pLimit(step.concurrency ?? opts.concurrency ?? 16);
    let failure: { action: Action; error: unknown } | undefined;
    let stepDone = 0;
    await Promise.all(step.actions.map((action) => limit(async () => {
      if (failure) return;
      // Bytes of the current attempt: a retried upload takes them back, so totals count each byte once.
      let sent = 0;
      const env: ApplyEnv = { writers: opts.writers, log, onBytes: (n) => { sent += n; progress?.tick(n); result.bytes += n; } };
      try {
        await withRetries(() => (handlers[action.kind] as (a: Action, e: ApplyEnv) => Promise<void>)(action, env), attempts, backoffMs,
          (e, n) => {
            log.warn(`retrying (${n}/${attempts - 1}) ${render(action)}: ${(e as Error).message}`);
            progress?.tick(-sent); result.bytes -= sent; sent = 0;
          });
        stepDone++;
        result.applied++;
        progress?.item();
        result.byKind[action.kind] = (result.byKind[action.kind] ?? 0) + 1;
        log.debug(render(action));
      } catch (error) {
        failure ??= { action, error };
      }
    })));
    progress?.stop();
    if (failure) {
      phase.fail();
      const doneText = [
        `${stepDone} of ${step.actions.length} actions of this step completed`,
        done.length ? `steps done before it: ${done.join('; ')}` : 'no earlier step had run',
      ].join('; ');
      // The failed write's own hint (e.g. a full disk: where to free space) comes first, then how to resume.
      const causeHint = failure.error instanceof ReleaseError ? failure.error.hint : undefined;
      const resume = opts.resumeHint ?? 'fix the cause and re-run the same command: it re-plans against what is already published and only does what is missing';
      throw new ReleaseError(
        `${step.title} failed at: ${render(failure.action)}\n  ${(failure.error as Error).message}\n  ${doneText}`,
        causeHint ? `${causeHint}\n  ${resume}` : resume,
        { cause: failure.error },
      );
    }
    phase.succeed();
    done.push(step.title);
  }
  return result;
}
