// The Action union: everything releng publishes is one of these, planned first, applied by apply.ts.
import { repoRenderers, type RepoAction } from './git/actions.ts';
import { gitPushRenderers, type GitPushAction } from './git/push.ts';
import { grantRenderers, type GrantAction } from './grants/actions.ts';
import { ociRenderers, type OciAction } from './oci/actions.ts';
import { s3Renderers, type S3Action } from './s3/actions.ts';

export type Action = S3Action | RepoAction | GitPushAction | OciAction | GrantAction;

/** A group of actions that may run concurrently; steps run one after another (the barrier is the order). */
export interface Step {
  title: string;
  actions: Action[];
  /** Concurrency for this step (default: apply's). 1 for ordered writes such as git. */
  concurrency?: number;
}

/** Work not planned, with the reason (logged; nothing is skipped silently). */
export interface Skip {
  what: string;
  reason: string;
}

export interface Plan {
  steps: Step[];
  skipped: Skip[];
}

const renderers: { [K in Action['kind']]: (a: Extract<Action, { kind: K }>) => string } = {
  ...s3Renderers,
  ...repoRenderers,
  ...gitPushRenderers,
  ...ociRenderers,
  ...grantRenderers,
};

/** One line naming the exact operation (dry-run and logs). */
export function render(action: Action): string {
  return (renderers[action.kind] as (a: Action) => string)(action);
}

/** Counts actions per kind (for summaries and --json). */
export function countByKind(plan: Plan): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of plan.steps) for (const a of s.actions) out[a.kind] = (out[a.kind] ?? 0) + 1;
  return out;
}

export function emptyPlan(): Plan {
  return { steps: [], skipped: [] };
}

/** Total number of actions in a plan. */
export function planSize(plan: Plan): number {
  return plan.steps.reduce((n, s) => n + s.actions.length, 0);
}

/** The plan as text, one line per action, steps in order (dry-run output, golden tests). */
export function renderPlan(plan: Plan, prefix = '[dry-run] '): string {
  const lines: string[] = [];
  for (const s of plan.steps) {
    if (s.actions.length === 0) continue;
    lines.push(`${s.title}:`);
    for (const a of s.actions) lines.push(`  ${prefix}${render(a)}`);
  }
  for (const k of plan.skipped) lines.push(`skip ${k.what}: ${k.reason}`);
  return lines.join('\n');
}
