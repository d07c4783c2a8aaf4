// promote: copy one verified release from an environment (staging) to another (production) without
// a rebuild (issue 11). Verify the source → plan (reads only) → confirmation → apply (copies, what
// users follow last) → verify the destination → regenerate the destination's mirror file lists.
// Refuses before any write when the source release is not whole; a re-run after a failure re-plans
// against what the destination already holds and copies only the rest.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { countByKind, planSize, type Plan } from '../actions.ts';
import { apply } from '../apply.ts';
import type { Writers } from '../apply-types.ts';
import { confirmationRequired, confirmRelease } from '../confirm.ts';
import type { Context } from '../context.ts';
import { environmentName, openEnvironment, type OpenEnvironment } from '../environment.ts';
import { ReleaseError, UsageError } from '../errors.ts';
import { regenerateFileLists, type FileListResult } from '../mirror/filelist.ts';
import { readManifestWithNix } from '../nix/manifest.ts';
import { parsePublicKey, parseSecretKey, type PublicKey, type SecretKey } from '../nix/sign.ts';
import { resolveSigningKey } from '../nix/cache.ts';
import { checkRelease, type ReleaseCheck } from '../promote/check.ts';
import { planPromote, retryingReader, type PromoteSide } from '../promote/plan.ts';
import { majorOf } from '../version.ts';
import { gitAt } from '../git/git.ts';
import { gitReader, gitWriter, planGitPush } from '../git/push.ts';
import { readTagRecord } from '../tag-record.ts';
import { promoteOciWriter } from '../oci/open.ts';
import { planPromoteImages } from '../promote/images.ts';
import { verifyImages } from '../upload/images.ts';

export interface PromoteSummary {
  version: string;
  from: string;
  to: string;
  dryRun: boolean;
  planned: Record<string, number>;
  applied: Record<string, number>;
  bytes: number;
  closure: number;
  resigned: number;
  movesPointers: boolean;
  /** Every planned write, one line each (what --dry-run prints). */
  plan: string[];
  fileLists: FileListResult[];
}

/** What promote uses to read a release back; `releng verify`'s verifyRelease plugs in here. */
export type VerifyRelease = (env: OpenEnvironment, opts: { project: string; version: string; key?: PublicKey; deep: boolean }) => Promise<ReleaseCheck>;

/** Adapters a caller may inject (tests wrap writers to kill a run midway; nothing is mocked). */
export interface PromoteDeps {
  wrapWriters?: (writers: Writers) => Writers;
  verifyRelease?: VerifyRelease;
}

/** manifest.nix text → { SYSTEM: STOREPATH }, read by Nix itself (as `nix upgrade-nix` would). */
async function readManifestText(text: string, where: string): Promise<Record<string, string>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-manifest-'));
  try {
    const file = path.join(dir, 'manifest.nix');
    await writeFile(file, text);
    try { return await readManifestWithNix(file); } catch (e) {
      throw new ReleaseError(`${where} is not a manifest Nix can read: ${(e as Error).message.split('\n')[0]}`, 'the release there is damaged: run `releng verify` on that environment');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The public key an environment's cache is trusted with (from its signing key file), if it has a cache. */
async function keysOf(ctx: Context, e: OpenEnvironment): Promise<{ publicKey?: PublicKey; secret?: SecretKey }> {
  if (!e.env.cache) return {};
  const k = await resolveSigningKey({ root: ctx.root, envName: e.name, cache: e.env.cache, project: ctx.config.project, allowGenerate: e.name === 'local' });
  return { publicKey: parsePublicKey(k.publicKey), secret: parseSecretKey(await readFile(k.file, 'utf8'), k.file) };
}

const defaultVerify = (ctx: Context): VerifyRelease => (env, opts) =>
  checkRelease({ name: env.name, store: retryingReader(env.s3), releases: env.releases, cache: env.cache }, { ...opts, readManifest: readManifestText });

function sideOf(e: OpenEnvironment): PromoteSide {
  return { name: e.name, store: retryingReader(e.s3), endpoint: e.endpoint, releases: e.releases, cache: e.cache, docs: e.docs };
}

export async function promote(ctx: Context, positionals: string[], deps: PromoteDeps = {}): Promise<PromoteSummary> {
  const { log, flags } = ctx;
  const version = positionals[0];
  if (!version || positionals.length > 1) throw new UsageError('usage: releng promote VERSION --from SOURCE --environment DESTINATION');
  const fromName = flags.extra.from;
  if (typeof fromName !== 'string' || !fromName) throw new UsageError('promote needs --from SOURCE (the environment the release was verified in, e.g. staging)');
  const toName = environmentName(ctx);
  if (fromName === toName) throw new UsageError(`--from and --environment are both "${toName}": promote copies between two environments`);
  const project = ctx.config.project;
  const verify = deps.verifyRelease ?? defaultVerify(ctx);

  let phase = log.phase(`opening ${fromName} and ${toName}`);
  const source = await openEnvironment(ctx, fromName);
  let dest: OpenEnvironment | undefined;
  try {
    dest = await openEnvironment(ctx, toName);
    phase.succeed(`${log.colour(source.env.colour, fromName)} (${source.endpoint}) → ${log.colour(dest.env.colour, toName)} (${dest.endpoint})`);
    const srcKeys = await keysOf(ctx, source).catch((e) => {
      log.warn(`${fromName}'s signing key is not readable here (${(e as Error).message.split('\n')[0]}): its narinfos are checked for presence, not signatures`);
      return {} as Awaited<ReturnType<typeof keysOf>>;
    });
    const dstKeys = await keysOf(ctx, dest);
    const settings = dest.env.promote ?? { resign: true, serverSideCopy: 'auto' as const };

    // 1. The release must be whole in the source, or nothing is copied.
    phase = log.phase(`verifying ${project} ${version} in ${fromName}`);
    const before = await verify(source, { project, version, key: srcKeys.publicKey, deep: !!flags.extra.deep });
    if (!before.ok) {
      phase.fail();
      throw new ReleaseError(`${project} ${version} in ${fromName} failed verification; nothing was copied:\n${before.problems.slice(0, 20).map((p) => `  ${p}`).join('\n')}${before.problems.length > 20 ? `\n  ... and ${before.problems.length - 20} more` : ''}`,
        `fix ${fromName} first (re-run \`releng upload --environment ${fromName}\` for that release), then promote again`);
    }
    phase.succeed(`${project} ${version} in ${fromName}: ${before.checked} objects and store paths verified`);

    // 2. Plan: reads only.
    phase = log.phase(`planning promote of ${version} to ${toName}`);
    const keysDiffer = !!dstKeys.publicKey && dstKeys.publicKey.text !== srcKeys.publicKey?.text;
    const planned = await planPromote({
      project, version, major: majorOf(version), source: sideOf(source), dest: sideOf(dest),
      serverSideCopy: settings.serverSideCopy, readManifest: readManifestText,
      destKey: dstKeys.publicKey, resignWith: keysDiffer && settings.resign ? dstKeys.secret : undefined,
      deleteStale: !!flags.extra.delete, replaceArtifacts: !!flags.extra['replace-artifacts'],
      latestLink: dest.env.mirror?.latestLinks ?? false,
    });
    const images = await planPromoteImages(source.registries, dest.registries, { version, major: majorOf(version), movesPointers: planned.movesPointers, force: !!flags.extra['force-push-images'] });
    // Upload's order: cache → images → release files → docs, then what users follow, images' moving tags last.
    const plan: Plan = {
      steps: [...planned.groups.cache, ...images.steps, ...planned.groups.content, ...planned.groups.pointers, ...images.pointerSteps],
      skipped: [...planned.skipped, ...images.skipped],
    };
    // The git push, last, when the destination has a remote of its own: the branch and tag recorded by `releng tag`.
    const git = dest.env.git;
    if (!git) plan.skipped.push({ what: 'git push', reason: `environment "${toName}" has no git remote` });
    else if (JSON.stringify(git) === JSON.stringify(source.env.git)) plan.skipped.push({ what: 'git push', reason: `${toName} shares ${fromName}'s git remote (pushed by upload)` });
    else {
      const record = await readTagRecord(ctx.root);
      if (record?.version !== version) plan.skipped.push({ what: `git push to ${toName}'s remote`, reason: `no release/tag.json for ${version} here: run promote in the checkout where \`releng tag\` made ${version}, or push the tag yourself` });
      else {
        const push = await planGitPush(gitReader(gitAt(ctx.root)), { envName: toName, git, record, cwd: ctx.root, forcePushTag: false });
        plan.steps.push(...push.steps);
        plan.skipped.push(...push.skipped);
      }
    }
    phase.succeed(`planned ${planSize(plan)} writes (${planned.closure.length} store paths in the closure${planned.resigned ? `, ${planned.resigned} narinfos re-signed for ${toName}` : ''})`);
    await confirmRelease(toName, { noconfirm: flags.noconfirm || flags.dryRun, required: confirmationRequired(toName, dest.env) });

    // 3 + 4. Copy, what users follow last (the plan's step order).
    const writers: Writers = { s3: dest.s3, s3Source: source.s3, oci: promoteOciWriter(source.registries, dest.registries), git: gitWriter };
    const applied = await apply(plan, {
      log, dryRun: flags.dryRun, writers: deps.wrapWriters ? deps.wrapWriters(writers) : writers,
      resumeHint: `fix the cause and re-run \`releng promote ${version} --from ${fromName} --environment ${toName}\`: it copies only what ${toName} still lacks`,
    });

    // 5. The destination, read back with the key its users trust; then its mirror file lists.
    let fileLists: FileListResult[] = [];
    if (!flags.dryRun) {
      phase = log.phase(`verifying ${project} ${version} in ${toName}`);
      const after = await verify(dest, { project, version, key: dstKeys.publicKey, deep: false });
      if (!after.ok) {
        phase.fail();
        throw new ReleaseError(`${project} ${version} in ${toName} failed verification after promote:\n${after.problems.slice(0, 20).map((p) => `  ${p}`).join('\n')}`, 're-run promote: it copies what is missing or different');
      }
      await verifyImages(dest.registries, plan);
      phase.succeed(`${project} ${version} in ${toName}: ${after.checked} objects and store paths verified${applied.byKind['oci.index'] ? `, ${applied.byKind['oci.index']} image tags` : ''}`);
    }
    const lists = await regenerateFileLists(dest.s3, dest.env.mirror, { log, dryRun: flags.dryRun });
    fileLists = lists.results;
    for (const k of lists.skipped) log.skip(k.what, k.reason);
    if (!flags.dryRun) log.info(`promoted ${project} ${version} from ${fromName} to ${toName}: ${applied.applied} writes, ${applied.bytes} bytes`);
    const { renderPlan } = await import('../actions.ts');
    return {
      version, from: fromName, to: toName, dryRun: flags.dryRun, planned: countByKind(plan), applied: applied.byKind, bytes: applied.bytes,
      closure: planned.closure.length, resigned: planned.resigned, movesPointers: planned.movesPointers,
      plan: renderPlan({ steps: plan.steps, skipped: [] }, '').split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim()),
      fileLists,
    };
  } finally {
    await dest?.close();
    await source.close();
  }
}
