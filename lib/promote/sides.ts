// The two sides of a promote (issue 11): how each environment is read (its verifier's target, the
// planner's reader, the run's knowledge of listings and writes), the signing keys, the upload record
// of each endpoint, and manifest.nix read by Nix. Reads only; lib/phases/promote.ts strings them together.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import type { Context } from '../config/context.ts';
import { ReleaseError } from '../core/errors.ts';
import type { OpenEnvironment } from '../environment/open.ts';
import type { Skip, Step } from '../core/plan.ts';
import { gitAt } from '../git/git.ts';
import { gitReader, planGitPush, type GitPushAction } from '../git/push.ts';
import { readBuildResult } from '../release/build-result.ts';
import { readTagRecord } from '../release/tag-record.ts';
import { hashPart, resolveSigningKey } from '../nix/cache.ts';
import { readManifestWithNix } from '../nix/manifest.ts';
import { parsePublicKey, parseSecretKey, type PublicKey, type SecretKey } from '../nix/sign.ts';
import { runKnowledge, type RunKnowledge } from '../s3/knowledge.ts';
import { normalizeEtag, openUploadRecord, type UploadRecord } from '../s3/record.ts';
import type { RemoteObject } from '../s3/store.ts';
import { uploadStateDir } from '../upload/state.ts';
import { verifyTarget, type ResolvedRelease } from '../verify/index.ts';
import type { LocalKnowledge, VerifyTarget } from '../verify/types.ts';
import { SeenObjects, TextMemo } from './knowledge.ts';
import { retryingReader, type PromoteSide } from './plan.ts';

/** manifest.nix text → { SYSTEM: STOREPATH }, read by Nix itself (as `nix upgrade-nix` would). */
export async function readManifestText(text: string, where: string, memoDir?: string): Promise<Record<string, string>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-manifest-'));
  try {
    const file = path.join(dir, 'manifest.nix');
    await writeFile(file, text);
    try { return await readManifestWithNix(file, { memoDir }); } catch (e) {
      throw new ReleaseError(`${where} is not a manifest Nix can read: ${(e as Error).message.split('\n')[0]}`, 'the release there is damaged: run `releng verify` on that environment');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The public key an environment's cache is trusted with (from its signing key file), if it has a cache. */
export async function keysOf(ctx: Context, e: OpenEnvironment): Promise<{ publicKey?: PublicKey; secret?: SecretKey }> {
  if (!e.env.cache) return {};
  const k = await resolveSigningKey({ root: ctx.root, envName: e.name, cache: e.env.cache, project: ctx.config.project, allowGenerate: e.name === 'local' });
  return { publicKey: parsePublicKey(k.publicKey), secret: parseSecretKey(await readFile(k.file, 'utf8'), k.file) };
}

/**
 * The read side verify gets, its reads retried on transient failures (a promote reads thousands of
 * objects), its listings from the run's memo, and (for the source) its reads noted in `seen`.
 */
export function readSide(ctx: Context, e: OpenEnvironment, publicKey: string | undefined, memo: RunKnowledge, seen?: SeenObjects, texts?: TextMemo): VerifyTarget {
  const t = verifyTarget(ctx, e, publicKey);
  const s3 = { ...retryingReader(e.s3), list: memo.list, getStream: (b: string, k: string) => e.s3.getStream(b, k), ...(e.s3.getWithHead ? { getWithHead: (b: string, k: string) => e.s3.getWithHead!(b, k) } : {}) };
  const read = texts ? texts.keep(s3) : s3;
  return { ...t, s3: seen ? seen.wrap(read) : read };
}

export function sideOf(e: OpenEnvironment, memo: RunKnowledge, seen?: SeenObjects, record?: UploadRecord, texts?: TextMemo): PromoteSide {
  const r = texts ? texts.serve(retryingReader(e.s3)) : retryingReader(e.s3);
  // The plan's HEADs of the source (stable/ docs, which the source check leaves to the plan): one
  // that finds the sha256 the release expects there is a read-back like the verification's, noted
  // for the destination check and (2 s after its Last-Modified, as objects.ts notes) in the record.
  const head = seen ? async (b: string, k: string) => {
    const h = await r.head(b, k);
    const expected = seen.expectedSha256(b, k);
    const etag = normalizeEtag(h?.etag);
    if (h && expected && h.sha256 === expected && etag) {
      seen.head(b, k, h);
      if (record && h.mtime !== undefined && h.serverTime !== undefined && h.serverTime - h.mtime >= 2) record.markVerified(b, k, { sha256: expected, size: h.size, etag, verified: h.mtime });
    }
    return h;
  } : r.head;
  return { name: e.name, store: { ...r, head, list: memo.list }, endpoint: e.endpoint, releases: e.releases, cache: e.cache, docs: e.docs };
}

/** The run's knowledge of one environment (lib/s3/knowledge.ts): its listings taken through the store's retried reads. */
export function knowledgeOf(e: OpenEnvironment, onListed?: (bucket: string, objects: RemoteObject[]) => void): RunKnowledge {
  const r = retryingReader(e.s3);
  return runKnowledge({ lister: (b, p) => r.list(b, p), onListed });
}

/** The staged cache's knowledge with each file read once (the verification, then the plan's memo). */
export function memoizedBytes(k: LocalKnowledge | undefined): LocalKnowledge | undefined {
  if (!k?.bytes) return k;
  const read = k.bytes.bind(k);
  const got = new Map<string, Promise<Buffer | undefined>>();
  return {
    md5: (b, key) => k.md5(b, key),
    written: () => false,
    bytes: (b, key) => {
      const id = `${b}\u0000${key}`;
      let p = got.get(id);
      if (!p) { p = read(b, key); got.set(id, p); }
      return p;
    },
  };
}

/** Never a sha256: an object the release does not have (a stale page) is never vouched for. */
export const NOT_EXPECTED = 'not part of the release';

/**
 * The sha256 the release expects at a key of the environment's release prefix or manual (major and
 * stable/: the release's manual/ files; NOT_EXPECTED for other objects there); undefined elsewhere.
 */
export function expectedIn(e: OpenEnvironment, r: ResolvedRelease): (bucket: string, key: string) => string | undefined {
  const release = `${e.releases.prefix}${r.releaseDir}/`;
  const manual = `${e.docs.prefix}manual/${r.project}/`;
  return (bucket, key) => {
    if (bucket === e.releases.bucket && key.startsWith(release)) return r.files.get(key.slice(release.length))?.sha256 ?? NOT_EXPECTED;
    if (bucket === e.docs.bucket && key.startsWith(manual)) {
      const rest = key.slice(manual.length);
      const slash = rest.indexOf('/');
      return slash < 0 ? NOT_EXPECTED : r.files.get(`manual/${rest.slice(slash + 1)}`)?.sha256 ?? NOT_EXPECTED;
    }
    return undefined;
  };
}

/**
 * The upload record of an environment's endpoint, as upload keys it (lib/phases/upload.ts); none for
 * file trees (no ETags there). Promote usually runs where staging was uploaded from.
 */
export async function recordOf(ctx: Context, e: OpenEnvironment): Promise<UploadRecord | undefined> {
  if (e.releases.bucket.startsWith('/') && e.cache.bucket.startsWith('/') && e.docs.bucket.startsWith('/')) return undefined;
  return openUploadRecord(uploadStateDir(ctx.root), storeIdOf(e));
}

/** The name upload's memos key an environment's endpoint by (the embedded server's port changes every run). */
export function storeIdOf(e: OpenEnvironment): string {
  return e.embeddedS3 ? `embedded:${e.embeddedS3.dir}` : e.endpoint;
}

/**
 * The git push of a promote, last, when the destination has a remote of its own: the branch and tag
 * `releng tag` recorded here. Skipped (with the reason) when the destination shares the source's
 * remote (upload pushed it) or this checkout has no release/tag.json for the version.
 */
export async function planPromoteGitPush(ctx: Context, source: OpenEnvironment, dest: OpenEnvironment, version: string): Promise<{ steps: Step<GitPushAction>[]; skipped: Skip[]; gitCommit?: string; gitSkip?: string }> {
  const git = dest.env.git;
  if (!git) return { steps: [], skipped: [{ what: 'git push', reason: `environment "${dest.name}" has no git remote` }] };
  if (JSON.stringify(git) === JSON.stringify(source.env.git)) return { steps: [], skipped: [{ what: 'git push', reason: `${dest.name} shares ${source.name}'s git remote (pushed by upload)` }] };
  const record = await readTagRecord(ctx.root);
  if (record?.version !== version) {
    const gitSkip = `no release/tag.json for ${version} here: run promote in the checkout where \`releng tag\` made ${version}, or push the tag yourself`;
    return { steps: [], skipped: [{ what: `git push to ${dest.name}'s remote`, reason: gitSkip }], gitSkip };
  }
  const push = await planGitPush(gitReader(gitAt(ctx.root)), { envName: dest.name, git, record, cwd: ctx.root, forcePushTag: false });
  return { ...push, gitCommit: record.releaseCommit };
}

/**
 * The store paths of release/build-result.json (drvs and outPaths) when it is this project's build of
 * `version` and the source cache holds a narinfo for every one; else none (the published release's
 * closure alone is copied, as before), with a note when the build is another.
 */
export async function buildRootsIn(ctx: Context, source: OpenEnvironment, project: string, version: string): Promise<string[]> {
  const result = await readBuildResult(ctx.releaseDir).catch(() => undefined);
  if (!result || result.project !== project || result.version !== version) return [];
  const roots = [...new Set([...result.drvs, ...result.outPaths])];
  const limit = pLimit(16);
  const missing = (await Promise.all(roots.map((p) => limit(async () => ((await source.s3.head(source.cache.bucket, `${source.cache.prefix}${hashPart(p)}.narinfo`)) ? undefined : p))))).filter(Boolean);
  if (missing.length) {
    ctx.log.skip(`the drvs and outputs of release/build-result.json`, `${missing.length} of ${roots.length} are not in ${source.name}'s cache (this checkout's build is not the one published there): only the published release's closure is copied`);
    return [];
  }
  return roots;
}
