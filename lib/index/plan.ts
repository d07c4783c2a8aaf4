// `releng index` planner (issue 12): reads the incoming prefixes, validates what is new, and plans
// moving the accepted uploads into place and regenerating the installers' checksums, latest copies
// and page and the APT repository (lib/index/apt-plan.ts: suites, retention, --refresh, --remove,
// --copy). Reads only (S3Reader, dpkg-deb, apt-ftparchive, gpg on local
// copies); every write is an action for apply.ts.
import path from 'node:path';
import type { Plan as CorePlan, Skip } from '../core/plan.ts';
import type { S3Action } from '../s3/actions.ts';
import { renderSha256Sums, sha256Text } from '../hashing/checksums.ts';
import { parseS3Url, type Environment } from '../config/config.ts';
import { ReleaseError } from '../core/errors.ts';
import type { AptUploader, InstallersUploader, UploaderConfig } from '../config/grants.ts';
import { staticHead } from '../config/grants.ts';
import { allowedName, incomingKeyRegex } from '../grants/names.ts';
import { compareVersions } from '../nix/versions.ts';
import type { S3Put } from '../s3/actions.ts';
import type { S3Reader } from '../s3/store.ts';
import { debFields, fileVersion, poolPath, stanzaOf, type Signer, type Stanza } from './apt.ts';
import { planApt, type AptChange, type AptOperation, type AptPlanOut } from './apt-plan.ts';
import type { IndexDb } from './db.ts';
import { listPublished, publishPrefix } from './verify.ts';
import { renderInstallersPage, type InstallersPageVersion } from './page.ts';
type Action = S3Action;
type Plan = CorePlan<S3Action>;

/** What happened to one upload (logged, --json, and remembered in the db after apply). */
export interface Decision {
  uploader: string;
  bucket: string;
  key: string;
  sha256: string;
  status: 'accepted' | 'rejected' | 'published-already';
  reason?: string;
  target?: string;
  grant?: string;
  /** The upload's ETag when it was validated: placing it is a copy conditional on it (an upload replaced meanwhile is not published). */
  etag?: string;
}

export interface IndexInputs {
  reader: S3Reader;
  envName: string;
  env: Environment;
  db: IndexDb;
  /** Scratch directory for downloads (the caller removes it). */
  workDir: string;
  /** The resolved APT signing key (when the environment has an APT repository). */
  signer?: Signer & { fingerprint: string };
  /** The signer's public key as a keyring (checks that a published Release is still ours; published as the repository's key). */
  keyring?: string;
  now?: Date;
  /** What the run does besides processing incoming uploads (default: only that). --refresh, --remove and --copy leave incoming alone. */
  op?: AptOperation;
  /** The APT repository's public URL (its page's .sources snippet). */
  aptUrl?: string;
}

export interface IndexPlan {
  plan: Plan;
  decisions: Decision[];
  /** What changes in the APT indexes (added, removed, copied, dropped by retention). */
  aptChanges: AptChange[];
}

interface Accepted {
  decision: Decision;
  file: string;
  /** Installers: the version; APT: the package's fields. */
  version?: string;
  deb?: { component: string; suite: string; stanza: Stanza; architecture: string };
}

const SHA_RE = /^[0-9a-f]{64}$/;

/** Lists an uploader's incoming area and validates each upload not processed before. */
async function scanUploader(inp: IndexInputs, name: string, u: UploaderConfig, skipped: Skip[]): Promise<{ decisions: Decision[]; accepted: Accepted[] }> {
  const { reader } = inp;
  const ref = parseS3Url(u.bucket);
  const listPrefix = ref.prefix + staticHead(u.prefix, name);
  const keyRe = incomingKeyRegex(ref.prefix, u.prefix, name);
  const decisions: Decision[] = [];
  const accepted: Accepted[] = [];
  const objects = await reader.list(ref.bucket, listPrefix);
  for (const obj of objects) {
    if (obj.key.endsWith('.rejected')) continue; // our own notes
    const head = await reader.head(ref.bucket, obj.key);
    if (!head) continue; // removed meanwhile
    const sha256 = head.metadata.sha256 ?? '';
    const grant = head.metadata['releng-grant'];
    const memo = inp.db.get(ref.bucket, obj.key, sha256 || `size:${head.size}`);
    if (memo) {
      skipped.push({ what: `s3://${ref.bucket}/${obj.key}`, reason: `processed already (${memo.status} ${memo.at}${memo.reason ? `: ${memo.reason}` : ''})` });
      continue;
    }
    const base: Decision = { uploader: name, bucket: ref.bucket, key: obj.key, sha256: sha256 || `size:${head.size}`, status: 'rejected', ...(grant ? { grant } : {}), ...(head.etag ? { etag: head.etag } : {}) };
    const reject = (reason: string) => { decisions.push({ ...base, reason }); };
    const m = keyRe.exec(obj.key);
    if (!m) { reject(`not where uploads of ${name} go (${u.prefix})`); continue; }
    const version = m[1] || undefined;
    const fileName = m[2]!;
    if (!allowedName(u.files, fileName)) { reject(`name "${fileName}" is not allowed (${u.files.join(', ')})`); continue; }
    if (head.size > u.maxSize) { reject(`${head.size} bytes, more than maxSize ${u.maxSize}`); continue; }
    if (!SHA_RE.test(sha256)) { reject('no sha256 in its metadata (x-amz-meta-sha256): upload it with releng contribute'); continue; }
    const local = path.join(inp.workDir, `${decisions.length + accepted.length}-${fileName}`);
    if (!reader.download) throw new ReleaseError('internal: this S3 reader cannot download objects');
    const got = await reader.download(ref.bucket, obj.key, local);
    if (got.sha256 !== sha256) { reject(`content sha256 ${got.sha256} does not match its metadata ${sha256}`); continue; }
    if (got.size !== head.size) { reject(`read ${got.size} bytes, the listing said ${head.size}`); continue; }
    if (u.kind === 'installers') {
      if (u.publish.includes('{version}') && !version) { reject('uploaded without a version in its key'); continue; }
      const target = ref.prefix + u.publish.replaceAll('{name}', name).replaceAll('{version}', version ?? '') + fileName;
      const there = await reader.head(ref.bucket, target);
      if (there && there.sha256 !== sha256) { reject(`would replace the published s3://${ref.bucket}/${target} (sha256 ${there.sha256 ?? 'unknown'})`); continue; }
      const decision: Decision = { ...base, status: there ? 'published-already' : 'accepted', target };
      decisions.push(decision);
      accepted.push({ decision, file: local, version });
    } else {
      const repo = inp.env.apt!;
      let f;
      try { f = await debFields(local); } catch (e) { reject((e as Error).message); continue; }
      const expected = `${f.Package}_${fileVersion(f.Version)}_${f.Architecture}.deb`;
      if (fileName !== expected) { reject(`uploaded as ${fileName}, but its control fields say ${expected} (Package ${f.Package}, Version ${f.Version}, Architecture ${f.Architecture})`); continue; }
      if (version && fileVersion(f.Version) !== version) { reject(`uploaded under version ${version}, but its Version is ${f.Version}`); continue; }
      if (f.Architecture !== 'all' && !repo.architectures.includes(f.Architecture)) { reject(`Architecture ${f.Architecture} is not one of the repository's (${repo.architectures.join(', ')})`); continue; }
      const aptRoot = parseS3Url(repo.root);
      const pool = poolPath(u.component, f);
      const target = aptRoot.prefix + pool;
      const there = await reader.head(aptRoot.bucket, target);
      if (there && there.sha256 !== sha256) { reject(`would replace the published s3://${aptRoot.bucket}/${target} (sha256 ${there.sha256 ?? 'unknown'})`); continue; }
      const stanza = await stanzaOf(local, pool);
      const decision: Decision = { ...base, status: there ? 'published-already' : 'accepted', target };
      decisions.push(decision);
      accepted.push({ decision, file: local, deb: { component: u.component, suite: u.suite ?? repo.suite, stanza, architecture: f.Architecture } });
    }
  }
  return { decisions, accepted };
}

function textPut(bucket: string, key: string, text: string, contentType: string, reason: 'new' | 'changed', cacheControl?: string): S3Put {
  return {
    kind: 's3.put', bucket, key, source: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text),
    contentType, reason, ...(cacheControl ? { cacheControl } : {}),
  };
}

/** Regenerates one installers uploader's published side: SHA256SUMS per version, latest copies, page. */
async function planInstallers(inp: IndexInputs, name: string, u: InstallersUploader, accepted: Accepted[], out: { sums: Action[]; latest: Action[]; page: Action[]; skipped: Skip[] }) {
  const { reader } = inp;
  const ref = parseS3Url(u.bucket);
  // Every published file of every version (the release prefixes too, when publish is the release prefix).
  const byVersion = new Map<string, Map<string, string>>();
  const versions = new Set<string>();
  for (const o of await listPublished(reader, ref, u, name)) {
    versions.add(o.version);
    if (o.file === undefined || !allowedName(u.files, o.file)) continue;
    const h = await reader.head(ref.bucket, o.key);
    if (!byVersion.has(o.version)) byVersion.set(o.version, new Map());
    byVersion.get(o.version)!.set(o.file, h?.sha256 ?? '');
  }
  const changed = new Set<string>();
  for (const a of accepted) {
    const v = a.version ?? '';
    versions.add(v);
    if (!byVersion.has(v)) byVersion.set(v, new Map());
    byVersion.get(v)!.set(path.posix.basename(a.decision.target!), a.decision.sha256);
    if (a.decision.status === 'accepted') changed.add(v);
  }
  // SHA256SUMS of each version that has installers: replaced only when its content differs.
  for (const [v, files] of byVersion) {
    if (files.size === 0) continue;
    const prefix = publishPrefix(ref, u, name, v);
    const text = renderSha256Sums([...files].map(([n, sha]) => ({ name: n, sha256: sha })));
    const key = prefix + u.sumsFile;
    const current = await reader.getText(ref.bucket, key);
    if (current !== text) out.sums.push(textPut(ref.bucket, key, text, 'text/plain; charset=utf-8', current === undefined ? 'new' : 'changed'));
  }
  // Latest copies: only of the newest version of all (a maintenance release never moves them back).
  if (u.latest !== undefined) {
    const all = [...versions].filter(Boolean).sort((a, b) => compareVersions(b, a));
    const newest = all[0];
    const files = newest ? byVersion.get(newest) : undefined;
    for (const v of changed) {
      if (v !== newest) out.skipped.push({ what: `latest ${name} installers from ${v}`, reason: `${newest} is newer: the top-level copies never move back` });
    }
    if (newest && (!files || files.size === 0)) out.skipped.push({ what: `latest ${name} installers`, reason: `the newest release ${newest} has no installers yet; the top-level copies stay as they are` });
    if (newest && files) {
      for (const [n, sha] of files) {
        const key = ref.prefix + u.latest.replaceAll('{name}', name) + n;
        const there = await reader.head(ref.bucket, key);
        if (there?.sha256 === sha) continue;
        const from = publishPrefix(ref, u, name, newest) + n;
        out.latest.push({ kind: 's3.copy', from: { bucket: ref.bucket, key: from }, bucket: ref.bucket, key });
      }
    }
  }
  // The page: every version with installers, newest first.
  const pageVersions: InstallersPageVersion[] = [...byVersion].filter(([, f]) => f.size > 0)
    .sort(([a], [b]) => compareVersions(b, a))
    .map(([v, f]) => ({ version: v, prefix: u.publish.replaceAll('{name}', name).replaceAll('{version}', v), sumsFile: u.sumsFile, files: [...f].map(([n, sha]) => ({ name: n, sha256: sha })).sort((a, b) => (a.name < b.name ? -1 : 1)) }));
  const pageKey = ref.prefix + u.indexPage;
  const relRoot = path.posix.relative(path.posix.dirname(`/${u.indexPage}`), '/') || '.';
  const html = renderInstallersPage(name, pageVersions, relRoot, u.latest !== undefined && pageVersions.length ? u.latest.replaceAll('{name}', name) : undefined);
  const current = await reader.getText(ref.bucket, pageKey);
  if (pageVersions.length === 0 && current === undefined) return; // no installers yet: no page
  if (current !== html) out.page.push(textPut(ref.bucket, pageKey, html, 'text/html; charset=utf-8', current === undefined ? 'new' : 'changed', 'no-cache'));
}

/**
 * The whole index run as one ordered plan. Order, so no reader sees a dangling reference: accepted
 * files into place (pool/, release prefixes) → APT by-hash → APT indexes → SHA256SUMS → latest
 * copies → the page → Release, Release.gpg, InRelease → incoming clean-up (notes, moved uploads).
 */
export async function planIndex(inp: IndexInputs): Promise<IndexPlan> {
  const op = inp.op ?? { kind: 'index' };
  const skipped: Skip[] = [];
  const decisions: Decision[] = [];
  const byUploader = new Map<string, Accepted[]>();
  for (const [name, u] of Object.entries(inp.env.uploaders)) {
    if (op.kind !== 'index') {
      byUploader.set(name, []);
      continue;
    }
    const r = await scanUploader(inp, name, u, skipped);
    decisions.push(...r.decisions);
    byUploader.set(name, r.accepted);
  }
  if (op.kind !== 'index' && Object.keys(inp.env.uploaders).length) skipped.push({ what: 'incoming uploads', reason: `not read with --${op.kind} (a run without it processes them)` });
  const place: Action[] = [];
  const cleanup: Action[] = [];
  for (const d of decisions) {
    if (d.status === 'accepted') {
      const aptRoot = inp.env.uploaders[d.uploader]!.kind === 'apt' ? parseS3Url(inp.env.apt!.root).bucket : d.bucket;
      place.push({ kind: 's3.copy', from: { bucket: d.bucket, key: d.key }, bucket: aptRoot, key: d.target!, ...(d.etag ? { sourceEtag: d.etag } : {}) });
    }
    if (d.status === 'rejected') cleanup.push(textPut(d.bucket, `${d.key}.rejected`, `rejected by releng index at ${(inp.now ?? new Date()).toISOString()}: ${d.reason}\n`, 'text/plain; charset=utf-8', 'new'));
    else cleanup.push({ kind: 's3.delete', bucket: d.bucket, key: d.key });
  }
  const inst = { sums: [] as Action[], latest: [] as Action[], page: [] as Action[], skipped };
  for (const [name, u] of Object.entries(inp.env.uploaders)) {
    if (u.kind === 'installers' && op.kind === 'index') await planInstallers(inp, name, u, byUploader.get(name)!, inst);
  }
  const apt: AptPlanOut = { byHash: [], indexes: [], keysAndPage: [], release: [], deletions: [], ledger: [], skipped, changes: [] };
  const aptUploaders = Object.entries(inp.env.uploaders).filter((e): e is [string, AptUploader] => e[1].kind === 'apt');
  if (inp.env.apt && (aptUploaders.length || op.kind !== 'index')) {
    if (!inp.signer || !inp.keyring) throw new ReleaseError('internal: APT repository without a resolved signing key');
    const repo = inp.env.apt;
    const accepted = aptUploaders.flatMap(([n]) => byUploader.get(n)!).filter((a) => a.deb).map((a) => ({ suite: a.deb!.suite, component: a.deb!.component, stanza: a.deb!.stanza, file: a.file }));
    const root = parseS3Url(repo.root);
    await planApt({
      reader: inp.reader, repo, workDir: inp.workDir, now: inp.now ?? new Date(), signer: inp.signer, keyring: inp.keyring, accepted, op,
      publicUrl: repo.url ?? `${(inp.aptUrl ?? inp.reader.endpoint).replace(/\/+$/, '')}/${root.bucket}/${root.prefix}`.replace(/\/+$/, ''),
    }, apt);
  } else if (op.kind !== 'index') {
    throw new ReleaseError(`--${op.kind} works on an APT repository, and environment "${inp.envName}" has none`, `define environments.${inp.envName}.apt (docs/grants-and-index.md)`);
  }
  return {
    decisions,
    aptChanges: apt.changes,
    plan: {
      steps: [
        { title: 'accepted uploads into place', actions: place },
        { title: 'APT by-hash indexes', actions: apt.byHash },
        { title: 'APT indexes (Packages, binary-ARCH/Release, Contents)', actions: apt.indexes },
        { title: 'installers SHA256SUMS', actions: inst.sums },
        { title: 'latest installers', actions: inst.latest },
        { title: 'installers page', actions: inst.page },
        { title: 'APT public key (binary, armored) and page', actions: apt.keysAndPage },
        { title: 'APT Release, Release.gpg, InRelease', actions: apt.release, concurrency: 1 },
        { title: 'APT retention: files no index has referenced for the grace period deleted', actions: apt.deletions },
        { title: 'APT retention ledger', actions: apt.ledger },
        { title: 'incoming: rejection notes, moved uploads removed', actions: cleanup },
      ],
      skipped,
    },
  };
}
