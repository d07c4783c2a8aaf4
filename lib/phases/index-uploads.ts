// `releng index`: the repository manager's side of grants (issue 12). Plans with lib/index/plan.ts,
// applies through apply.ts, remembers what it processed, then reads the result back (verify.ts).
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { countByKind, planSize } from '../actions/index.ts';
import { apply } from '../actions/index.ts';
import type { Context } from '../config/context.ts';
import { openEnvironment } from '../environment/open.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { defaultServePorts } from '../local/ports.ts';
import type { AptChange, AptOperation } from '../index/apt-plan.ts';
import { exportPublicKey, generateLocalKey, gpgAgentRunning, resolveSigner, stopGpgAgent } from '../index/apt.ts';
import { indexDbFile, openIndexDb } from '../index/db.ts';
import { planIndex, type Decision } from '../index/plan.ts';
import { verifyIndexesOf, verifyPublishedIndexes, type IndexProblem } from '../index/verify.ts';

export interface IndexResult {
  environment: string;
  dryRun: boolean;
  accepted: Decision[];
  rejected: Decision[];
  skipped: number;
  planned: Record<string, number>;
  applied: Record<string, number>;
  problems: IndexProblem[];
  aptSigningKey?: string;
  /** What changed in the APT indexes: packages added, removed, copied, dropped by retention. */
  aptChanges: AptChange[];
}

/** --refresh, --remove PACKAGE [VERSION] [--from SUITE], --copy PACKAGE [VERSION] --from SUITE --to SUITE: one at a time. */
export function aptOperationOf(extra: Record<string, unknown>, positionals: string[]): AptOperation {
  const str = (k: string) => (typeof extra[k] === 'string' ? (extra[k] as string) : undefined);
  const chosen = (['refresh', 'remove', 'copy', 'verify-only'] as const).filter((k) => extra[k] !== undefined && extra[k] !== false);
  if (chosen.length > 1) throw new UsageError(`--${chosen.join(' and --')} cannot be combined: run them one after another`);
  const version = positionals[0];
  if (positionals.length > 1) throw new UsageError(`index takes at most one VERSION (after --remove or --copy), got: ${positionals.join(' ')}`);
  if (version !== undefined && !str('remove') && !str('copy')) throw new UsageError(`unexpected argument "${version}": a VERSION goes with --remove PACKAGE or --copy PACKAGE`);
  if (str('to') !== undefined && !str('copy')) throw new UsageError('--to goes with --copy PACKAGE --from SUITE');
  if (str('from') !== undefined && !str('copy') && !str('remove')) throw new UsageError('--from goes with --copy or --remove');
  if (str('remove')) return { kind: 'remove', pkg: str('remove')!, ...(version ? { version } : {}), ...(str('from') ? { suites: [str('from')!] } : {}) };
  if (str('copy')) {
    if (!str('from') || !str('to')) throw new UsageError('--copy PACKAGE needs --from SUITE and --to SUITE (e.g. releng index --copy hello --from testing --to stable)');
    return { kind: 'copy', pkg: str('copy')!, ...(version ? { version } : {}), from: str('from')!, to: str('to')! };
  }
  if (extra.refresh) return { kind: 'refresh' };
  return { kind: 'index' };
}

export async function indexUploads(ctx: Context, positionals: string[] = []): Promise<IndexResult> {
  const { log, flags } = ctx;
  const op = aptOperationOf(flags.extra, positionals);
  let phase = log.phase('connecting to environment');
  const target = await openEnvironment(ctx, undefined, { registries: false });
  phase.succeed(`environment ${log.colour(target.env.colour, target.name)}: S3 ${target.endpoint}`);
  const env = target.env;
  const reader = target.s3; // its reads (download included) are retried by lib/core/retry.ts: no second layer here
  const work = await mkdtemp(path.join(os.tmpdir(), 'releng-index-'));
  // gpg's agent, if this run is the one that starts it, is stopped at the end (lib/index/apt.ts).
  const gnupgHomeOf = env.apt?.signingKey.gnupgHome ? path.resolve(ctx.root, env.apt.signingKey.gnupgHome) : undefined;
  const agentBefore = env.apt ? await gpgAgentRunning(gnupgHomeOf) : true;
  try {
    if (Object.keys(env.uploaders).length === 0 && !env.apt) {
      throw new ReleaseError(`${ctx.loaded.file}: environment "${target.name}" has no uploaders`, `define environments.${target.name}.uploaders (see docs/grants-and-index.md)`);
    }
    if (op.kind === 'index' && flags.extra['verify-only']) {
      phase = log.phase('verifying what is published');
      const problems = await verifyIndexesOf(reader, env, ctx.root, { deep: true });
      if (problems.length) {
        phase.fail();
        throw new ReleaseError(`the published indexes of ${target.name} are wrong:\n${problems.map((p) => `  ${p.where}: ${p.problem}`).join('\n')}`, 'run `releng index` to regenerate them (it re-signs and re-uploads what differs)');
      }
      phase.succeed('published indexes verified');
      return { environment: target.name, dryRun: flags.dryRun, accepted: [], rejected: [], skipped: 0, planned: {}, applied: {}, problems, aptChanges: [] };
    }
    let signer;
    let keyring: string | undefined;
    if (env.apt) {
      const field = `environments.${target.name}.apt.signingKey`;
      const gnupgHome = env.apt.signingKey.gnupgHome ? path.resolve(ctx.root, env.apt.signingKey.gnupgHome) : undefined;
      if (target.name === 'local' && gnupgHome && !existsSync(gnupgHome)) {
        // Only the local environment: a throwaway key, so the quick start signs its repository too.
        await generateLocalKey(gnupgHome, `${ctx.config.project} local APT repository <local@example.invalid>`);
        log.info(`generated the local APT signing key in ${path.relative(ctx.root, gnupgHome)}`);
      }
      signer = await resolveSigner({ keyId: env.apt.signingKey.keyId, gnupgHome }, field);
      keyring = path.join(work, 'repository-key.gpg');
      await exportPublicKey(signer, keyring);
      log.info(`APT signing key ${signer.fingerprint}`);
      if (target.name === 'local' && gnupgHome) {
        await copyFile(keyring, path.join(path.dirname(gnupgHome), 'apt-repository-key.gpg'));
        log.info(`its public key (for apt's signed-by): ${path.relative(ctx.root, path.join(path.dirname(gnupgHome), 'apt-repository-key.gpg'))}`);
      }
    }
    const db = await openIndexDb(indexDbFile(ctx.root, target.name));
    phase = log.phase('reading uploads and planning the indexes');
    // The page's .sources snippet names the repository's URL: apt.url, else the endpoint's path-style
    // URL (the embedded server's as `releng serve` runs it, so the page does not change with its port).
    const aptUrl = env.s3?.endpoint === 'embedded' ? `http://127.0.0.1:${defaultServePorts.s3}` : target.endpoint;
    const { plan, decisions, aptChanges } = await planIndex({ reader, envName: target.name, env, db, workDir: work, signer, keyring, op, aptUrl });
    phase.succeed(`${op.kind === 'index' ? `${decisions.filter((d) => d.status !== 'rejected').length} upload(s) accepted, ${decisions.filter((d) => d.status === 'rejected').length} rejected; ` : ''}${planSize(plan)} writes planned`);
    for (const c of aptChanges) log.info(`${c.suite}/${c.component}: ${c.package} ${c.version} (${c.architecture}) ${c.change}: ${c.reason}`);
    for (const d of decisions) {
      const grant = d.grant ? ` (grant ${d.grant})` : '';
      if (d.status === 'rejected') log.warn(`rejected s3://${d.bucket}/${d.key}${grant}: ${d.reason}`);
      else log.info(`accepted s3://${d.bucket}/${d.key}${grant} -> ${d.target}${d.status === 'published-already' ? ' (already published)' : ''}`);
    }
    const applied = await apply(plan, {
      log, dryRun: flags.dryRun, writers: { s3: target.s3 },
      resumeHint: 'fix the cause and re-run `releng index`: it re-reads the incoming uploads and the published indexes and does only what is missing',
    });
    let problems: IndexProblem[] = [];
    if (!flags.dryRun) {
      const at = new Date().toISOString();
      for (const d of decisions) db.set(d.bucket, d.key, d.sha256, { status: d.status === 'rejected' ? 'rejected' : 'accepted', at, ...(d.reason ? { reason: d.reason } : {}), ...(d.target ? { target: d.target } : {}), ...(d.grant ? { grant: d.grant } : {}) });
      await db.save();
      phase = log.phase('verifying the published indexes');
      problems = await verifyPublishedIndexes(reader, env, keyring ? { keyring } : undefined);
      if (problems.length) {
        phase.fail();
        throw new ReleaseError(`after indexing, the published indexes of ${target.name} are wrong:\n${problems.map((p) => `  ${p.where}: ${p.problem}`).join('\n')}`, 're-run `releng index`; if it persists, something else writes there');
      }
      phase.succeed('published indexes verified (signatures, index hashes, pool files, SHA256SUMS, latest copies)');
    }
    return {
      environment: target.name, dryRun: flags.dryRun,
      accepted: decisions.filter((d) => d.status !== 'rejected'), rejected: decisions.filter((d) => d.status === 'rejected'),
      skipped: plan.skipped.length, planned: countByKind(plan), applied: applied.byKind, problems,
      ...(signer ? { aptSigningKey: signer.fingerprint } : {}),
      aptChanges,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
    if (!agentBefore) await stopGpgAgent(gnupgHomeOf);
    await target.close();
  }
}
