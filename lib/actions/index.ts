// Every kind of write releng makes, put together: the Action union, how each kind is rendered
// (dry-run, logs) and applied, and the writers the handlers use. Each domain defines its own kinds
// (lib/s3/actions.ts, lib/git/actions.ts, lib/git/push.ts, lib/oci/actions.ts,
// lib/grants/actions.ts); this registry sits above them, so lib/core/ knows none of them.
// Phases plan with the domains and apply here. A new kind: define it in its domain, add it below.
import { actionKinds, apply as applyKinds, type ApplyOptions, type ApplyResult } from '../core/apply.ts';
import { emptyPlan as emptyOf, renderPlan as renderWith, type Plan as CorePlan, type Step as CoreStep } from '../core/plan.ts';
import { repoHandlers, repoRenderers, type RepoAction, type RepoWriters } from '../git/actions.ts';
import { gitPushHandlers, gitPushRenderers, type GitPushAction, type GitWriters } from '../git/push.ts';
import { grantHandlers, grantRenderers, type GrantAction, type PostWriters } from '../grants/actions.ts';
import { ociHandlers, ociRenderers, type OciAction, type OciWriters } from '../oci/actions.ts';
import { bytesOf, s3Handlers, s3Renderers, type S3Action, type S3Writers } from '../s3/actions.ts';

export { countByKind, planSize, type Skip } from '../core/plan.ts';
export type { ApplyResult } from '../core/apply.ts';

/** Everything releng publishes is one of these, planned first, applied by lib/core/apply.ts. */
export type Action = S3Action | RepoAction | GitPushAction | OciAction | GrantAction;
export type Plan = CorePlan<Action>;
export type Step = CoreStep<Action>;

/** The write interfaces apply may use. A phase passes only those its plan needs. */
export type Writers = S3Writers & RepoWriters & GitWriters & OciWriters & PostWriters;

const kinds = actionKinds<Writers>(
  { ...s3Renderers, ...repoRenderers, ...gitPushRenderers, ...ociRenderers, ...grantRenderers },
  { ...s3Handlers, ...repoHandlers, ...gitPushHandlers, ...ociHandlers, ...grantHandlers },
  (a) => (a.kind.startsWith('s3.') ? bytesOf(a as S3Action) : a.kind === 'grant.post' ? (a as GrantAction).size : 0),
);

/** A plan with no steps yet, of any kind of action. */
export function emptyPlan(): Plan {
  return emptyOf<Action>();
}

/** One line naming the exact operation (dry-run and logs). */
export function render(action: Action): string {
  return kinds.render(action);
}

/** The plan as text, one line per action, steps in order (dry-run output, golden tests). */
export function renderPlan(plan: Plan, prefix = '[dry-run] '): string {
  return renderWith(plan, kinds.render, prefix);
}

/** Executes a plan of any kinds with lib/core/apply.ts (or, with dryRun, prints it and writes nothing). */
export function apply(plan: Plan, opts: Omit<ApplyOptions<Writers>, 'kinds'>): Promise<ApplyResult> {
  return applyKinds(plan, { ...opts, kinds });
}
