// promote: copy one verified release from an environment (staging) to another (production) without
// a rebuild (issue 11). Verify the source → plan (reads only) → confirmation → apply (copies, what
// users follow last) → verify the destination → regenerate the destination's mirror file lists.
// Both verifications are `releng verify`'s own (lib/verify/: every destination verifier, from
// scratch); the destination is checked against the source's SHA256SUMS and manifest, with the key
// the destination's users trust. Refuses before any write when the source release is not whole; a
// re-run after a failure re-plans against what the destination already holds and copies only the rest.
import path from 'node:path';
import { apply, countByKind, planSize, renderPlan, type Plan, type Writers } from '../actions/index.ts';
import type { Context } from '../config/context.ts';
import { majorOf } from '../config/version.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { confirmationRequired, confirmRelease } from '../environment/confirm.ts';
import { environmentName, openEnvironment, type OpenEnvironment } from '../environment/open.ts';
import { gitWriter } from '../git/push.ts';
import { planFileListsAfterPublish, type FileListResult } from '../mirror/filelist.ts';
import { parsePublicKey } from '../nix/sign.ts';
import { promoteOciWriter } from '../oci/open.ts';
import { planPromoteImages } from '../promote/images.ts';
import { copyExpectation, SeenObjects, TextMemo } from '../promote/knowledge.ts';
import { planPromote } from '../promote/plan.ts';
import { buildRootsIn, expectedIn, keysOf, knowledgeOf, memoizedBytes, planPromoteGitPush, readManifestText, readSide, recordOf, sideOf, storeIdOf } from '../promote/sides.ts';
import { intentsDir, journalingWriter, openIntentJournal, type IntentJournal } from '../s3/intents.ts';
import { recordingWriter } from '../s3/record.ts';
import { stagedCacheKnowledge } from '../upload/cache.ts';
import { uploadStateDir } from '../upload/state.ts';
import {
  environmentPublicKey, releaseFromPublished, renderChecked, VerificationFailed, verifyRelease,
  type ResolvedRelease, type ReleaseSpec, type VerifyOptions, type VerifyReport,
} from '../verify/index.ts';
import type { VerifyTarget } from '../verify/types.ts';

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
  /** `releng verify`'s reports: the source before any copy, the destination after (absent on --dry-run). */
  verified: { source: VerifyReport; destination?: VerifyReport };
}

/** What promote reads a release back with: `releng verify`'s verifyRelease (the default). */
export type VerifyRelease = (ctx: Context, target: VerifyTarget, opts: VerifyOptions) => Promise<VerifyReport>;

/** Adapters a caller may inject (tests wrap writers to kill a run midway; nothing is mocked). */
export interface PromoteDeps {
  wrapWriters?: (writers: Writers) => Writers;
  verifyRelease?: VerifyRelease;
}

export async function promote(ctx: Context, positionals: string[], deps: PromoteDeps = {}): Promise<PromoteSummary> {
  const { log, flags } = ctx;
  const version = positionals[0];
  if (!version || positionals.length > 1) throw new UsageError('usage: releng promote VERSION --from SOURCE --environment DESTINATION');
  const fromName = flags.extra.from;
  if (typeof fromName !== 'string' || !fromName) throw new UsageError('promote needs --from SOURCE (the environment the release was verified in, e.g. staging)');
  const toName = environmentName(ctx);
  if (fromName === toName) throw new UsageError(`--from and --environment are both "${toName}": promote copies between two environments`);
  // A rehearsal environment's releases are unofficial builds (issue 26): they never become another environment's release.
  const fromEnv = ctx.config.environments[fromName];
  const toEnv = ctx.config.environments[toName];
  if (fromEnv?.unofficial === true && toEnv && toEnv.unofficial !== true) {
    throw new ReleaseError(`environment "${fromName}" takes unofficial (rehearsal) releases, and "${toName}" does not: promote copies nothing from it there`,
      `tag the release (\`releng tag\`), build it and upload it to a release environment, then promote from there; nothing was copied`);
  }
  const project = ctx.config.project;
  const verify = deps.verifyRelease ?? verifyRelease;
  const deep = !!flags.extra.deep;

  let phase = log.phase(`opening ${fromName} and ${toName}`);
  // Both environments at once (each checks its buckets); the source's failure is reported first, as before.
  const [srcOpen, dstOpen] = await Promise.allSettled([openEnvironment(ctx, fromName), openEnvironment(ctx, toName)]);
  if (srcOpen.status === 'rejected') {
    if (dstOpen.status === 'fulfilled') await dstOpen.value.close();
    throw srcOpen.reason;
  }
  const source = srcOpen.value;
  let dest: OpenEnvironment | undefined;
  let intents: IntentJournal | undefined;
  try {
    if (dstOpen.status === 'rejected') throw dstOpen.reason;
    dest = dstOpen.value;
    phase.succeed(`${log.colour(source.env.colour, fromName)} (${source.endpoint}) → ${log.colour(dest.env.colour, toName)} (${dest.endpoint})`);
    // Source signatures are checked against the key the source's users trust (--from-public-key, its
    // KEYFILE.pub, or derived from its secret key); the destination's with its own key.
    const fromKeyFlag = flags.extra['from-public-key'];
    // Both keys at once (each may run Nix); a failure of the source's is reported first, as before.
    const [srcKey, dstKeyResult] = await Promise.allSettled([
      environmentPublicKey(ctx, source, typeof fromKeyFlag === 'string' ? fromKeyFlag : undefined).catch((e) => {
        throw new ReleaseError(`${fromName}'s cache public key is not readable here: ${(e as Error).message.split('\n')[0]}`,
          `pass it: releng promote ${version} --from ${fromName} --from-public-key NAME:BASE64 (what ${fromName}'s users put in trusted-public-keys); nothing was copied`);
      }),
      keysOf(ctx, dest),
    ]);
    if (srcKey.status === 'rejected') throw srcKey.reason;
    if (dstKeyResult.status === 'rejected') throw dstKeyResult.reason;
    const srcPublic = srcKey.value;
    const dstKeys = dstKeyResult.value;
    const dstMemo = knowledgeOf(dest);
    const settings = dest.env.promote ?? { resign: true, serverSideCopy: 'auto' as const };

    // 1. `releng verify` of the source: the release must be whole there, or nothing is copied.
    phase = log.phase(`verifying ${project} ${version} in ${fromName}${deep ? ' (deep: every object read and hashed)' : ''}`);
    let sourceRelease: ResolvedRelease | undefined;
    // The upload record of staging's endpoint as `known` (issue 16). Sound here as in upload's
    // closing verification: an entry vouches only for an object a verification's HEAD read back
    // (size, our sha256 metadata, ETag) with its Last-Modified 2 s in the server's past, and only
    // while the fresh listing of this run shows that same size, ETag and Last-Modified. Any rewrite
    // of the object since (other bytes: another ETag; same bytes or metadata only: another
    // Last-Modified) fails that match and is HEADed, and a rewrite with other bytes under our
    // metadata is then read whole (objects.ts: "rewritten since verified"). The record is a memo
    // of this machine's own reads, never of what anyone claims: what it cannot vouch for is read
    // as `releng verify` reads it, and --deep never uses it. What the source check finds wrong
    // leaves the record, so the next run HEADs it.
    const srcRecord = await recordOf(ctx, source);
    const seen = new SeenObjects(srcRecord);
    const srcMemo = knowledgeOf(source, (b, objects) => seen.listed(b, objects));
    const texts = new TextMemo();
    // The cache this machine staged for the source (release/cache/SOURCE, when upload ran here):
    // a listed narinfo or .ls whose single-part ETag is a staged file's MD5 is those bytes, parsed
    // and checked (signature, references) from the local file instead of a GET each; anything else
    // is read from the server as before. --deep reads every object.
    const staged = deep ? undefined : memoizedBytes(await stagedCacheKnowledge(path.join(ctx.releaseDir, 'cache', fromName), source.cache));
    // The checkout's build of this version, when the source holds all of it (issue 25): its drvs and
    // outPaths are what upload published besides the manifest's closure; they are verified in the
    // source, copied, and verified in the destination too.
    const extraRoots = await buildRootsIn(ctx, source, project, version);
    const before = await verify(ctx, readSide(ctx, source, srcPublic, srcMemo, seen, texts), {
      deep, release: { ...releaseFromPublished(project, version), cacheRoots: extraRoots }, repair: `releng upload --environment ${fromName}`,
      onResolved: (r) => { sourceRelease = r; seen.expectedSha256 = expectedIn(source, r); },
      ...(srcRecord && !deep ? { known: srcRecord } : {}), ...(staged ? { local: staged } : {}), list: (b, p) => srcMemo.listCompact(b, p),
    });
    for (const n of before.notChecked) log.skip(`${fromName}: ${n.destination}: ${n.what}`, n.reason);
    if (srcRecord) {
      for (const p of before.problems) if (p.bucket && p.key) srcRecord.forget(p.bucket, p.key);
      await srcRecord.save().catch((e: any) => log.warn(`could not save ${srcRecord.file}: ${e?.code ?? e?.message ?? e} (the next promote HEADs every object of ${fromName} again)`));
    }
    if (!before.ok || !sourceRelease) {
      phase.fail();
      throw new VerificationFailed(before, `${project} ${version} in ${fromName} failed verification; nothing was copied`);
    }
    phase.succeed(`${project} ${version} in ${fromName}: ${renderChecked(before)}`);
    // What the verification proved by listing against the staged bytes: the plan reads the closure
    // from them, and the copies must hold them (the listing is the verification's own, memoized).
    if (staged) await texts.provenLocally(source.cache.bucket, await srcMemo.list(source.cache.bucket, source.cache.prefix), staged, seen);

    // 2. Plan: reads only.
    phase = log.phase(`planning promote of ${version} to ${toName}`);
    // What this machine knows of its own writes to the destination (issue 23): writes earlier runs
    // began and never saw acknowledged (the intent journal, which records this run's writes too) and
    // the upload record. An object there that is not the source's is repaired only on this evidence.
    const dstRecord = dest.endpoint === source.endpoint && srcRecord ? srcRecord : await recordOf(ctx, dest);
    intents = await openIntentJournal(intentsDir(uploadStateDir(ctx.root)), storeIdOf(dest));
    const keysDiffer = !!dstKeys.publicKey && dstKeys.publicKey.text !== (srcPublic ? parsePublicKey(srcPublic).text : undefined);
    const planned = await planPromote({
      // The plan lists the source from the verification's listings (it copies what was verified) and
      // skips the HEAD of a new object the verification read back with the listed ETag and size.
      project, version, major: majorOf(version), source: sideOf(source, srcMemo, seen, srcRecord, texts), dest: sideOf(dest, dstMemo),
      sourceVerified: (b, k) => seen.get(b, k),
      serverSideCopy: settings.serverSideCopy, readManifest: (text, where) => readManifestText(text, where, uploadStateDir(ctx.root)),
      destKey: dstKeys.publicKey, resignWith: keysDiffer && settings.resign ? dstKeys.secret : undefined,
      deleteStale: !!flags.extra.delete, replaceArtifacts: !!flags.extra['replace-artifacts'],
      latestLink: dest.env.mirror?.latestLinks ?? false,
      destEvidence: { record: dstRecord, intents },
      extraRoots,
    });
    await srcRecord?.save().catch(() => undefined); // the plan's read-backs (warned about above if unwritable)
    const images = await planPromoteImages(source.registries, dest.registries, { version, major: majorOf(version), movesPointers: planned.movesPointers, force: !!flags.extra['force-push-images'] });
    // Upload's order: cache → images → release files → docs, then what users follow, images' moving tags last.
    const plan: Plan = {
      steps: [...planned.groups.cache, ...images.steps, ...planned.groups.content, ...planned.groups.pointers, ...images.pointerSteps],
      skipped: [...planned.skipped, ...images.skipped],
    };
    // The git push, last, when the destination has a remote of its own (lib/promote/sides.ts).
    const { gitCommit, gitSkip, ...push } = await planPromoteGitPush(ctx, source, dest, version);
    plan.steps.push(...push.steps);
    plan.skipped.push(...push.skipped);
    phase.succeed(`planned ${planSize(plan)} writes (${planned.closure.length} store paths in the closure${planned.resigned ? `, ${planned.resigned} narinfos re-signed for ${toName}` : ''})`);
    await confirmRelease(toName, { noconfirm: flags.noconfirm || flags.dryRun, required: confirmationRequired(toName, dest.env) });

    // 3 + 4. Copy, what users follow last (the plan's step order).
    // Destination writes noted: the MD5 each copy must have (the verified source ETag; a streamed
    // or re-signed object's own MD5) and whether the server acknowledged it (VerifyScope.local).
    const dstWriter = recordingWriter(journalingWriter(dest.s3, intents), { knowledge: dstMemo, record: dstRecord, hashPuts: true, copied: copyExpectation(seen, texts, planned.copiedNarinfos) });
    const writers: Writers = { s3: dstWriter, s3Source: source.s3, oci: promoteOciWriter(source.registries, dest.registries), git: gitWriter };
    const applied = await apply(plan, {
      log, dryRun: flags.dryRun, writers: deps.wrapWriters ? deps.wrapWriters(writers) : writers,
      resumeHint: `fix the cause and re-run \`releng promote ${version} --from ${fromName} --environment ${toName}\`: it copies only what ${toName} still lacks`,
    });

    // 5. `releng verify` of the destination, against the source's SHA256SUMS and manifest, with the
    // key the destination's users trust; then its mirror file lists.
    let fileLists: FileListResult[] = [];
    let after: VerifyReport | undefined;
    if (!flags.dryRun) {
      phase = log.phase(`verifying ${project} ${version} in ${toName}${deep ? ' (deep: every object read and hashed)' : ''}`);
      const expected: ReleaseSpec = {
        ...sourceRelease, source: 'published',
        keep: planned.movesPointers ? undefined : `${toName} keeps what users follow (root manifest.nix, stable/ docs, moving image tags): see the plan's skip`,
        releaseCommit: gitCommit, gitSkip,
      };
      // The destination's listings prove the copies (a single-part copy keeps the MD5 of the same
      // bytes as its ETag); prefixes promote wrote nothing under are served from the plan's listing.
      after = await verify(ctx, readSide(ctx, dest, dstKeys.publicKey?.text, dstMemo, undefined, new TextMemo()), {
        deep, release: expected, repair: `releng promote ${version} --from ${fromName} --environment ${toName}`,
        repairStale: `releng promote ${version} --from ${fromName} --environment ${toName} --delete (it deletes the docs pages ${fromName} no longer has)`,
        local: dstMemo, list: (b, p) => dstMemo.listCompact(b, p), ...(dstRecord && !deep ? { known: dstRecord } : {}),
      });
      if (dstRecord) {
        for (const p of after.problems) if (p.bucket && p.key) dstRecord.forget(p.bucket, p.key);
        await dstRecord.save().catch((e: any) => log.warn(`could not save ${dstRecord.file}: ${e?.code ?? e?.message ?? e}`));
      }
      for (const n of after.notChecked) log.skip(`${toName}: ${n.destination}: ${n.what}`, n.reason);
      if (!after.ok) {
        phase.fail();
        throw new VerificationFailed(after, `${project} ${version} in ${toName} failed verification after promote`);
      }
      phase.succeed(`${project} ${version} in ${toName}: ${renderChecked(after)}`);
    }
    // The destination's mirror file lists, from the tree as the copies and deletions left it (issues 11, 28).
    const lists = await planFileListsAfterPublish(dest.s3, dest.env.mirror, { log, envName: toName, dryRun: flags.dryRun, noMirrorLists: !!flags.extra['no-mirror-lists'], batch: 'promoted' });
    if (lists) {
      await apply(lists.plan, { log, dryRun: false, writers: { s3: dest.s3 } });
      fileLists = lists.results;
    }
    if (!flags.dryRun) log.info(`promoted ${project} ${version} from ${fromName} to ${toName}: ${applied.applied} writes, ${applied.bytes} bytes`);
    return {
      version, from: fromName, to: toName, dryRun: flags.dryRun, planned: countByKind(plan), applied: applied.byKind, bytes: applied.bytes,
      closure: planned.closure.length, resigned: planned.resigned, movesPointers: planned.movesPointers,
      plan: renderPlan({ steps: plan.steps, skipped: [] }, '').split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim()),
      fileLists, verified: { source: before, destination: after },
    };
  } finally {
    // A dry run wrote nothing and leaves the journal as it found it.
    if (intents && !flags.dryRun) await intents.close().catch((e: any) => log.warn(`could not tidy ${intents!.file}: ${e?.code ?? e?.message ?? e} (harmless: it only keeps intents a later run settles)`));
    await dest?.close();
    await source.close();
  }
}
