// The only executor of plans. Steps run in order; the actions of a step run with p-limit
// concurrency and bounded, jittered retries on transient failures. Nothing else writes. It knows no
// kind of action: the caller passes how each is rendered, applied and sized (lib/actions/ has every
// domain's; lib/git/restore.ts only the repository's) and the writers those handlers use.
import { forEachLimited } from './each.ts';
import { renderPlan, type Action, type Plan } from './plan.ts';
import { ReleaseError } from './errors.ts';
import type { Logger } from './log.ts';
import { withRetries } from './retry.ts';

/** What a handler gets besides its action: the writers of this run (a phase passes only those its plan needs). */
export interface ApplyEnv<W extends object = object> {
  writers: W;
  log: Logger;
  /** Report transferred bytes to the progress bar. */
  onBytes: (n: number) => void;
}

/** One handler per action kind of a domain. */
export type HandlerMap<A extends Action, W extends object = object> = {
  [K in A['kind']]: (action: Extract<A, { kind: K }>, env: ApplyEnv<W>) => Promise<void>;
};

/** One line naming the exact operation, per action kind of a domain (dry-run and logs). */
export type RendererMap<A extends Action> = {
  [K in A['kind']]: (action: Extract<A, { kind: K }>) => string;
};

/** How apply treats the kinds of a plan. */
export interface ActionKinds<W extends object> {
  render(action: Action): string;
  handle(action: Action, env: ApplyEnv<W>): Promise<void>;
  /** Bytes an action sends (the progress bar's total); 0 when it sends none. */
  bytes(action: Action): number;
}

/** ActionKinds from a domain's (or several domains') renderer and handler maps. */
export function actionKinds<W extends object>(
  renderers: Record<string, (a: any) => string>,
  handlers: Record<string, (a: any, env: ApplyEnv<W>) => Promise<void>>,
  bytes: (a: Action) => number = () => 0,
): ActionKinds<W> {
  return {
    render: (a) => {
      const r = renderers[a.kind];
      if (!r) throw new Error(`internal: no renderer for action kind ${a.kind}`);
      return r(a);
    },
    handle: (a, env) => {
      const h = handlers[a.kind];
      if (!h) throw new Error(`internal: no handler for action kind ${a.kind}`);
      return h(a, env);
    },
    bytes,
  };
}

export interface ApplyOptions<W extends object> {
  log: Logger;
  kinds: ActionKinds<W>;
  writers: W;
  dryRun: boolean;
  /** Default concurrency of a step. */
  concurrency?: number;
  /** Attempts per action on retryable errors (first try included). */
  attempts?: number;
  /** Base delay of the exponential backoff, ms (jittered). */
  backoffMs?: number;
  /** Printed on failure: how to continue (e.g. "re-run `releng upload`"). */
  resumeHint?: string;
  /**
   * Let go of each action as it starts (its place in the step's array emptied): for a caller that
   * has counted and kept what it needs of the plan and reads it no more. A 100,000-page manual plans
   * 300,000 puts; let go, a step's puts are garbage once sent and the upload record that grows
   * meanwhile does not add to them (issue 31).
   */
  consume?: boolean;
}

/** The actions of `actions`, each one's place emptied as it is handed out. */
function* consumed<A>(actions: A[]): Generator<A> {
  for (let i = 0; i < actions.length; i++) {
    const a = actions[i]!;
    (actions as (A | undefined)[])[i] = undefined;
    yield a;
  }
}

export interface ApplyResult {
  applied: number;
  byKind: Record<string, number>;
  bytes: number;
}

/** Executes a plan (or, with dryRun, prints it and writes nothing). */
export async function apply<W extends object>(plan: Plan, opts: ApplyOptions<W>): Promise<ApplyResult> {
  const { log, kinds } = opts;
  const render = kinds.render;
  for (const k of plan.skipped) log.skip(k.what, k.reason);
  const result: ApplyResult = { applied: 0, byKind: {}, bytes: 0 };
  if (opts.dryRun) {
    // --dry-run --json prints every planned action, in order (lib/cli/main.ts reads log.run).
    log.run.plan.push(...plan.steps.filter((s) => s.actions.length > 0));
    log.run.skipped.push(...plan.skipped);
    const text = renderPlan({ steps: plan.steps, skipped: [] }, render);
    if (text) for (const l of text.split('\n')) log.info(l);
    else log.info('[dry-run] nothing to do');
    return result;
  }
  const attempts = opts.attempts ?? 5;
  const backoffMs = opts.backoffMs ?? 200;
  const done: string[] = [];
  for (const step of plan.steps) {
    const actions = step.actions.length;
    if (actions === 0) continue;
    const totalBytes = step.actions.reduce((n, a) => n + kinds.bytes(a), 0);
    const phase = log.phase(`${step.title} (${actions} action${actions === 1 ? '' : 's'})`, { still: totalBytes > 0 });
    const progress = totalBytes > 0 ? log.progress(step.title, totalBytes, 'bytes', actions) : undefined;
    let failure: { action: Action; error: unknown } | undefined;
    let stepDone = 0;
    // A fixed set of workers over the step's actions, not a promise and closure per action (issue 31).
    await forEachLimited(opts.consume ? consumed(step.actions) : step.actions, Math.min(actions, step.concurrency ?? opts.concurrency ?? 16), async (action) => {
      if (failure) return;
      // Bytes of the current attempt: a retried upload takes them back, so totals count each byte once.
      let sent = 0;
      const env: ApplyEnv<W> = { writers: opts.writers, log, onBytes: (n) => { sent += n; progress?.tick(n); result.bytes += n; } };
      try {
        await withRetries(() => kinds.handle(action, env), attempts, backoffMs,
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
    });
    progress?.stop();
    if (failure) {
      phase.fail();
      const doneText = [
        `${stepDone} of ${actions} actions of this step completed`,
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
