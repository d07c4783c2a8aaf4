// Upload's checks before anything is staged, asked or opened (issue 9): the build output is of the
// version in version.json, the tag record agrees with it, and (unless --no-check-git) HEAD is at the
// clean tag the build was made from. Then, once the environment is open: the tag record the git push
// needs, and the cache signing key.
import path from 'node:path';
import type { Context } from '../config/context.ts';
import { ReleaseError } from '../core/errors.ts';
import type { OpenEnvironment } from '../environment/open.ts';
import { gitAt, requireCleanTree, requireOnCleanTag } from '../git/git.ts';
import { environmentName } from '../environment/open.ts';
import { environmentNamed } from '../config/config.ts';
import { resolveSigningKey, type SigningKey } from '../nix/cache.ts';
import { readBuildResult, type BuildResult } from '../release/build-result.ts';
import type { TagRecord } from '../release/tag-record.ts';
import { readTagRecordOrLix } from '../git/prev-branch.ts';

/** The build to upload and its tag record, checked against version.json and git. */
export async function readReleaseToUpload(ctx: Context): Promise<{ result: BuildResult; tagRecord?: TagRecord }> {
  const { flags } = ctx;
  const result = await readBuildResult(ctx.releaseDir);
  // A rehearsal build is named with the package's version; version.json still says its own.
  const built = result.versionJson ?? result.version;
  if (built !== ctx.version.version) {
    throw new ReleaseError(`release/build-result.json is for ${built}, but ${ctx.version.file} says ${ctx.version.version}`, 'run `releng build` again');
  }
  checkReleaseTests(ctx, result);
  if (result.rehearsal) return { result: await checkRehearsal(ctx, result) };
  const tagRecord = await readTagRecordOrLix(ctx.root, gitAt(ctx.root), result.version);
  if (tagRecord && tagRecord.version !== result.version) {
    throw new ReleaseError(`release/tag.json is for ${tagRecord.version}, but the build is ${result.version}`, 'run `releng tag` and `releng build` for the same version');
  }
  if (!flags.noCheckGit) {
    // Publish only the build of the tagged commit: HEAD at the tag, and build-result.json made there.
    const git = gitAt(ctx.root);
    await requireOnCleanTag(git, result.version, 'upload');
    const head = await git.head();
    const file = path.join(ctx.releaseDir, 'build-result.json');
    const again = `run \`releng build\` at tag ${result.version}, then upload`;
    if (result.gitRevision !== head) throw new ReleaseError(`${file} was built at ${result.gitRevision.slice(0, 12)}, not at tag ${result.version} (${head.slice(0, 12)})`, again);
    if (result.tag !== result.version || !result.official) throw new ReleaseError(`${file} is not an official build of tag ${result.version} (tag: ${result.tag ?? 'none'}, official: ${result.official})`, again);
    if (tagRecord && tagRecord.releaseCommit !== head) throw new ReleaseError(`release/tag.json records ${tagRecord.releaseCommit.slice(0, 12)} as the release commit, but tag ${result.version} is ${head.slice(0, 12)}`, 'run `releng tag` again (with --force-tag if the tag was remade)');
  }

  return { result, tagRecord };
}

/** A rehearsal build goes only where the config allows unofficial releases, from the commit it was built at. */
async function checkRehearsal(ctx: Context, result: BuildResult): Promise<BuildResult> {
  const name = environmentName(ctx);
  const env = environmentNamed(ctx.loaded, name);
  if (env.unofficial !== true) {
    const allowed = Object.entries(ctx.config.environments).filter(([, e]) => e.unofficial === true).map(([n]) => n);
    throw new ReleaseError(`release/build-result.json is a rehearsal build (${result.version}, from an untagged checkout of unofficial ${result.versionJson}), and environment "${name}" does not take unofficial releases`,
      allowed.length ? `upload it to ${allowed.join(' or ')} (environments with "unofficial": true), or tag the release (\`releng tag\`) and build again`
        : `set "unofficial": true on a rehearsal environment in ${ctx.loaded.file} (never on production), or tag the release (\`releng tag\`) and build again`);
  }
  if (!ctx.flags.noCheckGit) {
    const git = gitAt(ctx.root);
    await requireCleanTree(git, 'upload');
    const head = await git.head();
    if (result.gitRevision !== head) {
      throw new ReleaseError(`${path.join(ctx.releaseDir, 'build-result.json')} was built at ${result.gitRevision.slice(0, 12)}, not at HEAD (${head.slice(0, 12)})`, 'run `releng build` again at this commit, then upload');
    }
  }
  return result;
}

/** The build ran every release test its profile names now (a build made before they were configured does not count). */
function checkReleaseTests(ctx: Context, result: BuildResult): void {
  const wanted = ctx.config.profiles[result.profile]?.releaseTests ?? [];
  const ran = new Set((result.releaseTests ?? []).map((t) => t.attr));
  const missing = wanted.filter((t) => !ran.has(t));
  if (missing.length) {
    throw new ReleaseError(`release/build-result.json did not run the release tests of profile "${result.profile}": ${missing.join(', ')}`, 'run `releng build` again: it runs them before laying out release/');
  }
}

/** The git push needs release/tag.json (from `releng tag`) when the environment has a remote. */
export function requireTagRecordForPush(ctx: Context, target: OpenEnvironment, tagRecord: TagRecord | undefined, result?: BuildResult): void {
  if (target.env.git && !tagRecord && !ctx.flags.noCheckGit && !result?.rehearsal) {
    throw new ReleaseError(`no ${path.join(ctx.releaseDir, 'tag.json')}: upload pushes the branch and tag that \`releng tag\` recorded there`, 'run `releng tag` first (or pass --no-check-git to upload without the git push, testing only)');
  }
}

/** The key that signs the environment's cache (generated for the local environment only); none without a cache. */
export async function signingKeyFor(ctx: Context, target: OpenEnvironment): Promise<SigningKey | undefined> {
  if (!target.env.cache) return undefined;
  const { log } = ctx;
  const signingKey = await resolveSigningKey({ root: ctx.root, envName: target.name, cache: target.env.cache, project: ctx.config.project, allowGenerate: target.name === 'local' });
  if (signingKey.generated) log.info(`generated the local cache signing key ${path.relative(ctx.root, signingKey.file)}`);
  log.info(`cache signing key ${path.relative(ctx.root, signingKey.file)}; public key (trusted-public-keys): ${signingKey.publicKey}`);
  return signingKey;
}
