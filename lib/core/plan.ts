// A plan: everything a command will write, as plain data, in order. Planners (the domain folders)
// return Steps of Actions; lib/core/apply.ts is the only executor. The kinds of action, how each is
// rendered and applied, belong to their domains (s3/actions.ts, git/actions.ts, ...) and are put
// together in lib/actions/, above them: this module knows no kind.

/** One write, tagged by its kind (`s3.put`, `git.push`, ...); the rest of its fields are its domain's. */
export interface Action {
  readonly kind: string;
}

/** A group of actions that may run concurrently; steps run one after another (the barrier is the order). */
export interface Step<A extends Action = Action> {
  title: string;
  actions: A[];
  /** Concurrency for this step (default: apply's). 1 for ordered writes such as git. */
  concurrency?: number;
}

/** Work not planned, with the reason (logged; nothing is skipped silently). */
export interface Skip {
  what: string;
  reason: string;
}

export interface Plan<A extends Action = Action> {
  steps: Step<A>[];
  skipped: Skip[];
}

/** Counts actions per kind (for summaries and --json). */
export function countByKind(plan: Plan): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of plan.steps) for (const a of s.actions) out[a.kind] = (out[a.kind] ?? 0) + 1;
  return out;
}

export function emptyPlan<A extends Action = Action>(): Plan<A> {
  return { steps: [], skipped: [] };
}

/** Total number of actions in a plan. */
export function planSize(plan: Plan): number {
  return plan.steps.reduce((n, s) => n + s.actions.length, 0);
}

/** The plan as text, one line per action (`render` names the exact operation), steps in order: dry-run output, golden tests. */
export function renderPlan(plan: Plan, render: (a: Action) => string, prefix = '[dry-run] '): string {
  const lines: string[] = [];
  for (const s of plan.steps) {
    if (s.actions.length === 0) continue;
    lines.push(`${s.title}:`);
    for (const a of s.actions) lines.push(`  ${prefix}${render(a)}`);
  }
  for (const k of plan.skipped) lines.push(`skip ${k.what}: ${k.reason}`);
  return lines.join('\n');
}
