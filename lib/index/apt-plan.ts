// The APT half of `releng index` (issues 12 and 30): reads what every suite publishes, applies the
// run's changes (accepted uploads, --remove, --copy, keepVersions), and plans the writes of the next
// generation: by-hash copies, Packages (binary-ARCH, binary-all), per-architecture Release files,
// Contents-ARCH.gz, the public key (binary and armored) and the page, the signed Release files, and
// retention (files no index has referenced for the grace period are deleted; lib/index/retention.ts).
// Or, with --refresh, only the same Release re-signed with a new Date and Valid-Until.
// Reads only (S3Reader, dpkg-deb/apt-ftparchive/gpg on local copies); every write is an action.
import { writeFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseS3Url } from '../config/config.ts';
import { aptGraceSeconds, aptSuites, parseDuration, type AptRepository } from '../config/grants.ts';
import { ReleaseError } from '../core/errors.ts';
import type { Skip } from '../core/plan.ts';
import { run } from '../core/exec.ts';
import { sha256Text } from '../hashing/checksums.ts';
import type { S3Action, S3Put } from '../s3/actions.ts';
import type { S3Reader } from '../s3/store.ts';
import { aptKeyName, clearSignedText, compressedIndexes, exportArmoredKey, parsePackages, releaseSha256, renderPackages, signRelease, type Signer, type Stanza } from './apt.ts';
import { renderAptPage } from './apt-page.ts';
import { filesOfDeb, gzipContents, parseContents, renderContents, setPackageFiles, type Contents } from './contents.ts';
import { compareDebianVersions } from './deb-version.ts';
import { redateRelease, releaseTime, releaseWithoutDates, renderArchRelease, renderRelease } from './release.ts';
import { decideRetention, LEDGER, parseLedger, renderLedger } from './retention.ts';

type Action = S3Action;

/** A .deb accepted from incoming this run, with the suite and component it goes to. */
export interface AcceptedDeb {
  suite: string;
  component: string;
  stanza: Stanza;
  /** The downloaded upload (its Contents come from it). */
  file: string;
}

/** What this run does to the repository besides publishing accepted uploads. */
export type AptOperation =
  | { kind: 'index' }
  /** Re-sign every suite's Release with a new Date and Valid-Until; nothing else changes. */
  | { kind: 'refresh' }
  /** Take PACKAGE (one VERSION, or all) out of the named suites (default: every suite). */
  | { kind: 'remove'; pkg: string; version?: string; suites?: string[] }
  /** Put PACKAGE (VERSION, default the newest in `from`) of suite `from` into suite `to`: the same pool files. */
  | { kind: 'copy'; pkg: string; version?: string; from: string; to: string };

/** One change of an index, logged and in --json. */
export interface AptChange {
  suite: string;
  component: string;
  package: string;
  version: string;
  architecture: string;
  change: 'added' | 'removed' | 'copied' | 'dropped';
  reason: string;
}

export interface AptInputs {
  reader: S3Reader;
  repo: AptRepository;
  /** The repository's public URL (apt.url, or the S3 endpoint's path-style URL of root). */
  publicUrl: string;
  workDir: string;
  now: Date;
  signer: Signer & { fingerprint: string };
  /** The signer's public key as a binary keyring file (published as NAME.gpg; gpgv checks with it). */
  keyring: string;
  accepted: AcceptedDeb[];
  op: AptOperation;
}

export interface AptPlanOut {
  byHash: Action[];
  indexes: Action[];
  keysAndPage: Action[];
  release: Action[];
  deletions: Action[];
  ledger: Action[];
  skipped: Skip[];
  changes: AptChange[];
}

const id = (s: Pick<Stanza, 'Package' | 'Version' | 'Architecture'>) => `${s.Package}\0${s.Version}\0${s.Architecture}`;
const typeOf = (name: string) => (name.endsWith('.gz') ? 'application/gzip' : name.endsWith('.xz') ? 'application/x-xz' : 'text/plain; charset=utf-8');

function textPut(bucket: string, key: string, text: string, contentType: string, reason: 'new' | 'changed', cacheControl?: string): S3Put {
  return { kind: 's3.put', bucket, key, source: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType, reason, ...(cacheControl ? { cacheControl } : {}) };
}

/** A binary body is written to the scratch directory and uploaded from there. */
function blobPut(workDir: string, bucket: string, key: string, body: Buffer, contentType: string, reason: 'new' | 'changed', cacheControl?: string): S3Put {
  const sha256 = sha256Text(body);
  const file = path.join(workDir, `blob-${sha256}`);
  writeFileSync(file, body);
  return { kind: 's3.put', bucket, key, source: { file }, size: body.length, sha256, contentType, reason, ...(cacheControl ? { cacheControl } : {}) };
}

/** One suite as published: its Release, what that lists, the packages of each component, the Contents. */
interface PublishedSuite {
  suite: string;
  dists: string;
  release?: string;
  listed: Map<string, { sha256: string; size: number }>;
  /** component → id → stanza (every architecture, all included; deduplicated). */
  stanzas: Map<string, Map<string, Stanza>>;
  /** `COMPONENT/ARCH` → the published Contents, when the Release lists one. */
  contents: Map<string, Contents>;
}

/** Reads an index the published Release lists, as the Release says it is: its plain name, else its by-hash copy; refuses otherwise. */
async function readListed(inp: AptInputs, bucket: string, dists: string, rel: string, want: { sha256: string; size: number }): Promise<Buffer> {
  const { reader } = inp;
  const tries = [dists + rel, `${dists}${path.posix.dirname(rel)}/by-hash/SHA256/${want.sha256}`];
  const seen: string[] = [];
  for (const key of tries) {
    const local = path.join(inp.workDir, `read-${sha256Text(key)}`);
    if (!(await reader.head(bucket, key))) { seen.push(`${key}: missing`); continue; }
    const got = await reader.download!(bucket, key, local);
    if (got.sha256 === want.sha256 && got.size === want.size) return readFile(local);
    seen.push(`${key}: ${got.size} bytes, sha256 ${got.sha256}`);
  }
  throw new ReleaseError(`the published s3://${bucket}/${dists}Release lists ${rel} as ${want.size} bytes, sha256 ${want.sha256}, and no copy of it is that (${seen.join('; ')})`,
    'restore that index (from a backup or the by-hash copy of another name), or run `releng index --verify-only` to see everything that differs; index does not rebuild a suite from an index it cannot trust');
}

async function readSuite(inp: AptInputs, bucket: string, rootPrefix: string, suite: string): Promise<PublishedSuite> {
  const { reader, repo } = inp;
  const dists = `${rootPrefix}dists/${suite}/`;
  const release = await reader.getText(bucket, `${dists}Release`);
  const listed = release ? releaseSha256(release) : new Map<string, { sha256: string; size: number }>();
  const out: PublishedSuite = { suite, dists, release, listed, stanzas: new Map(), contents: new Map() };
  for (const component of repo.components) {
    const stanzas = new Map<string, Stanza>();
    for (const arch of [...repo.architectures, 'all']) {
      const rel = `${component}/binary-${arch}/Packages`;
      const want = listed.get(rel);
      // An index the Release does not list is read only where there is no Release (nothing to trust yet).
      const text = want ? (await readListed(inp, bucket, dists, rel, want)).toString('utf8') : release ? '' : (await reader.getText(bucket, dists + rel)) ?? '';
      for (const s of parsePackages(text)) if (!stanzas.has(id(s))) stanzas.set(id(s), s);
    }
    out.stanzas.set(component, stanzas);
    for (const arch of [...repo.architectures, 'all']) {
      const rel = `${component}/Contents-${arch}.gz`;
      const want = listed.get(rel);
      if (want) out.contents.set(`${component}/${arch}`, parseContents(await readListed(inp, bucket, dists, rel, want)));
    }
  }
  return out;
}

/** The newest stanza of each package among `stanzas`. */
function newestByPackage(stanzas: Iterable<Stanza>): Map<string, Stanza> {
  const out = new Map<string, Stanza>();
  for (const s of stanzas) {
    const have = out.get(s.Package);
    if (!have || compareDebianVersions(s.Version, have.Version) > 0) out.set(s.Package, s);
  }
  return out;
}

/** Plans the APT repository's next generation (or, with --refresh, only new signatures). */
export async function planApt(inp: AptInputs, out: AptPlanOut): Promise<void> {
  const { reader, repo, op } = inp;
  const root = parseS3Url(repo.root);
  const suites = aptSuites(repo);
  const validFor = parseDuration(repo.validFor);
  if (op.kind === 'refresh') return planRefresh(inp, root, suites, validFor, out);

  const published = new Map<string, PublishedSuite>();
  for (const suite of suites) published.set(suite, await readSuite(inp, root.bucket, root.prefix, suite));

  // The next generation: the published stanzas, then this run's changes.
  const next = new Map<string, Map<string, Map<string, Stanza>>>();
  for (const [suite, p] of published) next.set(suite, new Map([...p.stanzas].map(([c, m]) => [c, new Map(m)])));
  const change = (suite: string, component: string, s: Stanza, kind: AptChange['change'], reason: string) =>
    out.changes.push({ suite, component, package: s.Package, version: s.Version, architecture: s.Architecture, change: kind, reason });
  const localDebs = new Map<string, string>(); // sha256 → a local copy (uploads accepted this run, pool files read for Contents)
  for (const a of inp.accepted) {
    localDebs.set(a.stanza.SHA256, a.file);
    const m = next.get(a.suite)!.get(a.component)!;
    if (m.has(id(a.stanza))) continue;
    m.set(id(a.stanza), a.stanza);
    change(a.suite, a.component, a.stanza, 'added', 'accepted upload');
  }
  if (op.kind === 'remove') applyRemove(op, next, suites, change);
  if (op.kind === 'copy') await applyCopy(inp, root, op, next, suites, change, localDebs, out.skipped);
  if (repo.retention.keepVersions !== undefined) {
    const keep = repo.retention.keepVersions;
    for (const [suite, comps] of next) {
      for (const [component, m] of comps) {
        const groups = new Map<string, Stanza[]>();
        for (const s of m.values()) groups.set(`${s.Package}\0${s.Architecture}`, [...(groups.get(`${s.Package}\0${s.Architecture}`) ?? []), s]);
        for (const g of groups.values()) {
          g.sort((a, b) => compareDebianVersions(b.Version, a.Version));
          for (const s of g.slice(keep)) {
            m.delete(id(s));
            change(suite, component, s, 'dropped', `retention: the newest ${keep} version(s) of ${s.Package} (${s.Architecture}) stay`);
          }
        }
      }
    }
  }

  const referenced = new Set<string>();
  const publishedRefs = new Set<string>();
  const rel = (key: string) => key.slice(root.prefix.length);
  const pageUpdates: { suite: string; components: string[]; architectures: string[] }[] = [];
  for (const suite of suites) {
    const p = published.get(suite)!;
    const files = await suiteFiles(inp, root, p, next.get(suite)!, localDebs);
    // What the next generation references stays; what the published one references is never deleted by this run.
    for (const key of ['Release', 'InRelease', 'Release.gpg']) referenced.add(rel(p.dists + key));
    for (const [f, want] of p.listed) { publishedRefs.add(rel(p.dists + f)); publishedRefs.add(rel(`${p.dists}${path.posix.dirname(f)}/by-hash/SHA256/${want.sha256}`)); }
    for (const comp of p.stanzas.values()) for (const s of comp.values()) publishedRefs.add(s.Filename);
    for (const comp of next.get(suite)!.values()) for (const s of comp.values()) referenced.add(s.Filename);
    for (const [f, body] of files) {
      const sha = sha256Text(body);
      const key = p.dists + f;
      const byHashKey = `${p.dists}${path.posix.dirname(f)}/by-hash/SHA256/${sha}`;
      referenced.add(rel(key));
      referenced.add(rel(byHashKey));
      const [there, hashed] = await Promise.all([reader.head(root.bucket, key), reader.head(root.bucket, byHashKey)]);
      if (!hashed || hashed.size !== body.length || (hashed.sha256 !== undefined && hashed.sha256 !== sha)) out.byHash.push(blobPut(inp.workDir, root.bucket, byHashKey, body, typeOf(f), hashed ? 'changed' : 'new'));
      if (there?.sha256 !== sha) out.indexes.push(blobPut(inp.workDir, root.bucket, key, body, typeOf(f), there ? 'changed' : 'new', 'no-cache'));
    }
    await planSuiteRelease(inp, root.bucket, p, files, validFor, out);
    pageUpdates.push({ suite, components: repo.components, architectures: repo.architectures });
  }

  await planKeysAndPage(inp, root, pageUpdates, out);
  await planRetention(inp, root, suites, referenced, publishedRefs, out);
}

/** --remove: every stanza of the package (of the version) leaves the named suites; nothing to remove is an error. */
function applyRemove(op: Extract<AptOperation, { kind: 'remove' }>, next: Map<string, Map<string, Map<string, Stanza>>>, suites: string[], change: (suite: string, component: string, s: Stanza, kind: AptChange['change'], reason: string) => void): void {
  const from = op.suites ?? suites;
  for (const s of from) if (!suites.includes(s)) throw new ReleaseError(`--from ${s}: the repository has no suite "${s}" (its suites: ${suites.join(', ')})`, 'name one of apt.suites');
  let removed = 0;
  const versions = new Set<string>();
  for (const suite of from) {
    for (const [component, m] of next.get(suite)!) {
      for (const s of [...m.values()]) {
        if (s.Package !== op.pkg) continue;
        versions.add(`${suite}: ${s.Version} (${s.Architecture})`);
        if (op.version !== undefined && s.Version !== op.version) continue;
        m.delete(id(s));
        removed++;
        change(suite, component, s, 'removed', '--remove');
      }
    }
  }
  if (removed === 0) {
    throw new ReleaseError(`--remove ${op.pkg}${op.version ? ` ${op.version}` : ''}: no such package in ${from.length === 1 ? `suite ${from[0]}` : `the suites ${from.join(', ')}`}${versions.size ? ` (it has: ${[...versions].join(', ')})` : ''}`,
      versions.size ? 'name one of the versions listed' : 'check the package name (the Package field, as in `apt-cache policy NAME`); nothing was changed');
  }
}

/** --copy: the stanzas of one version of a package in `from`, each pool file read back and checked, into the same component of `to`. */
async function applyCopy(inp: AptInputs, root: { bucket: string; prefix: string }, op: Extract<AptOperation, { kind: 'copy' }>, next: Map<string, Map<string, Map<string, Stanza>>>, suites: string[],
  change: (suite: string, component: string, s: Stanza, kind: AptChange['change'], reason: string) => void, localDebs: Map<string, string>, skipped: Skip[]): Promise<void> {
  for (const [flag, s] of [['--from', op.from], ['--to', op.to]] as const) {
    if (!suites.includes(s)) throw new ReleaseError(`${flag} ${s}: the repository has no suite "${s}" (its suites: ${suites.join(', ')})`, 'name one of apt.suites');
  }
  if (op.from === op.to) throw new ReleaseError(`--copy from ${op.from} to itself`, 'name another suite with --to');
  const found: { component: string; s: Stanza }[] = [];
  for (const [component, m] of next.get(op.from)!) for (const s of m.values()) if (s.Package === op.pkg) found.push({ component, s });
  if (!found.length) throw new ReleaseError(`--copy ${op.pkg}: suite ${op.from} has no package ${op.pkg}`, 'check the name (the Package field); nothing was changed');
  const versions = [...new Set(found.map((f) => f.s.Version))].sort((a, b) => compareDebianVersions(b, a));
  const version = op.version ?? versions[0]!;
  const chosen = found.filter((f) => f.s.Version === version);
  if (!chosen.length) throw new ReleaseError(`--copy ${op.pkg} ${version}: suite ${op.from} has ${op.pkg} only in version(s) ${versions.join(', ')}`, 'name one of them, or none for the newest');
  for (const { component, s } of chosen) {
    // The copy is of the verified pool file: its bytes are read back and must be what the stanza says.
    const key = root.prefix + s.Filename;
    const local = path.join(inp.workDir, `copy-${s.SHA256}.deb`);
    let got;
    try { got = await inp.reader.download!(root.bucket, key, local); } catch (e) {
      throw new ReleaseError(`--copy ${op.pkg} ${version}: cannot read its pool file s3://${root.bucket}/${key}: ${(e as Error).message}`, 'run `releng index --verify-only`: the repository is missing a file its index lists');
    }
    if (got.sha256 !== s.SHA256 || got.size !== s.Size) {
      throw new ReleaseError(`--copy ${op.pkg} ${version}: the pool file s3://${root.bucket}/${key} is ${got.size} bytes, sha256 ${got.sha256}; ${op.from}'s index says ${s.Size} bytes, sha256 ${s.SHA256}`, 'nothing was copied: find out who changed the pool file (`releng index --verify-only` lists every difference)');
    }
    localDebs.set(s.SHA256, local);
    const target = next.get(op.to)!.get(component)!;
    const there = target.get(id(s));
    if (there && there.SHA256 === s.SHA256) { skipped.push({ what: `--copy ${op.pkg} ${version} (${s.Architecture}) to ${op.to}`, reason: `${op.to} has it already` }); continue; }
    if (there) throw new ReleaseError(`--copy ${op.pkg} ${version} (${s.Architecture}): ${op.to} already has that version with other content (sha256 ${there.SHA256}, ${op.from}'s is ${s.SHA256})`, `remove it from ${op.to} first (releng index --remove ${op.pkg} ${version} --from ${op.to})`);
    target.set(id(s), s);
    change(op.to, component, s, 'copied', `--copy from ${op.from} (the same pool file, read back: sha256 ${s.SHA256.slice(0, 12)})`);
  }
}

/** Every index file of one suite (paths relative to dists/SUITE/) for the next generation. */
async function suiteFiles(inp: AptInputs, root: { bucket: string; prefix: string }, p: PublishedSuite, comps: Map<string, Map<string, Stanza>>, localDebs: Map<string, string>): Promise<Map<string, Buffer>> {
  const { repo } = inp;
  const files = new Map<string, Buffer>();
  const addIndex = async (component: string, arch: string, list: Stanza[]) => {
    const dir = `${component}/binary-${arch}`;
    for (const f of await compressedIndexes(renderPackages(list))) files.set(`${dir}/${f.name}`, f.body);
    files.set(`${dir}/Release`, Buffer.from(renderArchRelease({ suite: p.suite, origin: repo.origin, label: repo.label, component, architecture: arch })));
  };
  for (const component of repo.components) {
    const all = [...comps.get(component)!.values()];
    const allArch = all.filter((s) => s.Architecture === 'all');
    for (const arch of repo.architectures) {
      const list = [...all.filter((s) => s.Architecture === arch), ...(repo.architectureAll === 'also-in-each' ? allArch : [])];
      if (list.length || repo.emptyIndexes) await addIndex(component, arch, list);
    }
    if (allArch.length) await addIndex(component, 'all', allArch);
    // Contents-ARCH: the files of the newest version of each package of that architecture (arch:all ones in Contents-all).
    for (const arch of [...repo.architectures, 'all']) {
      const pkgs = all.filter((s) => s.Architecture === arch);
      if (!pkgs.length && !(repo.emptyIndexes && arch !== 'all')) continue;
      const newest = newestByPackage(pkgs);
      const base = p.contents.get(`${component}/${arch}`);
      const before = newestByPackage([...(p.stanzas.get(component)?.values() ?? [])].filter((s) => s.Architecture === arch));
      const c: Contents = base ? new Map([...base].map(([k, v]) => [k, new Set(v)])) : new Map();
      for (const name of new Set([...newest.keys(), ...(base ? before.keys() : [])])) {
        const n = newest.get(name);
        const o = before.get(name);
        if (base && n && o && n.Version === o.Version && n.SHA256 === o.SHA256) continue; // unchanged: its lines stay
        setPackageFiles(c, name, n ? await filesOfDeb(await localDeb(inp, root, n, localDebs)) : []);
      }
      // apt looks an index target up by its uncompressed name in Release (metaIndex::Exists), then
      // fetches the compressed one it lists: both are published (Contents of a few packages are small).
      files.set(`${component}/Contents-${arch}`, Buffer.from(renderContents(c), 'utf8'));
      files.set(`${component}/Contents-${arch}.gz`, gzipContents(c));
    }
  }
  // A suite with no package at all still lists empty indexes: apt refuses a Release without checksums.
  if (files.size === 0) for (const component of repo.components) for (const arch of repo.architectures) await addIndex(component, arch, []);
  return files;
}

/** A local copy of a pool file (downloaded and checked against its stanza) for its Contents. */
async function localDeb(inp: AptInputs, root: { bucket: string; prefix: string }, s: Stanza, localDebs: Map<string, string>): Promise<string> {
  const have = localDebs.get(s.SHA256);
  if (have) return have;
  const key = root.prefix + s.Filename;
  const local = path.join(inp.workDir, `pool-${s.SHA256}.deb`);
  const got = await inp.reader.download!(root.bucket, key, local);
  if (got.sha256 !== s.SHA256) throw new ReleaseError(`s3://${root.bucket}/${key} is sha256 ${got.sha256}, its index says ${s.SHA256}`, 'run `releng index --verify-only`: the pool file was changed after it was published');
  localDebs.set(s.SHA256, local);
  return local;
}

/** Whether a published Release is signed by our key, both ways, and InRelease signs exactly it. */
async function signedByUs(inp: AptInputs, bucket: string, dists: string, release: string): Promise<string | undefined> {
  const [inRelease, releaseGpg] = await Promise.all([inp.reader.getText(bucket, `${dists}InRelease`), inp.reader.getText(bucket, `${dists}Release.gpg`)]);
  if (!inRelease || !releaseGpg) return `${!inRelease ? 'InRelease' : 'Release.gpg'} is missing`;
  if (clearSignedText(inRelease) !== release) return 'InRelease signs another text than Release';
  const dir = path.join(inp.workDir, `sig-${sha256Text(dists)}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'InRelease'), inRelease);
  await writeFile(path.join(dir, 'Release'), release);
  await writeFile(path.join(dir, 'Release.gpg'), releaseGpg);
  for (const files of [['InRelease'], ['Release.gpg', 'Release']]) {
    try { await run('gpgv', ['--keyring', inp.keyring, ...files.map((f) => path.join(dir, f))]); } catch (e: any) {
      if (e?.name === 'MissingToolError') throw e;
      return `${files[0]} is not signed by ${inp.signer.fingerprint}`;
    }
  }
  return undefined;
}

/** The suite's Release: kept when it already lists these files, is ours and has more than half its validity left; else written and signed. */
async function planSuiteRelease(inp: AptInputs, bucket: string, p: PublishedSuite, files: Map<string, Buffer>, validFor: number, out: AptPlanOut): Promise<void> {
  const { repo } = inp;
  const text = renderRelease({
    origin: repo.origin, label: repo.label, suite: p.suite, codename: p.suite === repo.suite ? repo.codename ?? p.suite : p.suite,
    date: inp.now, validFor, noSupportForArchitectureAll: repo.architectureAll === 'also-in-each',
    architectures: [...repo.architectures, 'all'], components: repo.components, description: repo.description,
  }, files);
  if (p.release) {
    const why = await whyNotKept(inp, bucket, p, text, validFor);
    if (!why) {
      out.skipped.push({ what: `APT suite ${p.suite} Release`, reason: `no new packages: indexes unchanged, Release signed and valid until ${releaseTime(p.release, 'Valid-Until')!.toISOString()}` });
      return;
    }
    out.skipped.push({ what: `keeping the published Release of ${p.suite}`, reason: `${why}: writing and signing a new one` });
  }
  await pushSigned(inp, bucket, p.dists, text, p.release !== undefined, out);
}

/** Why a published Release is not kept as it is (undefined: keep it). */
async function whyNotKept(inp: AptInputs, bucket: string, p: PublishedSuite, text: string, validFor: number): Promise<string | undefined> {
  const release = p.release!;
  if (releaseWithoutDates(release) !== releaseWithoutDates(text)) return 'the indexes changed';
  const until = releaseTime(release, 'Valid-Until');
  const date = releaseTime(release, 'Date');
  if (!until || !date) return 'it has no Valid-Until';
  if (until.getTime() - inp.now.getTime() < (validFor * 1000) / 2) return `it is valid only until ${until.toISOString()} (re-signed when less than half of apt.validFor ${inp.repo.validFor} is left)`;
  if (until.getTime() - date.getTime() !== validFor * 1000) return `its validity is not apt.validFor ${inp.repo.validFor}`;
  return signedByUs(inp, bucket, p.dists, release);
}

/** Release, then its detached signature, then InRelease (what apt reads first) last. */
async function pushSigned(inp: AptInputs, bucket: string, dists: string, text: string, existed: boolean, out: AptPlanOut): Promise<void> {
  const signed = await signRelease(text, inp.signer);
  const reason = existed ? 'changed' : 'new';
  out.release.push(textPut(bucket, `${dists}Release`, text, 'text/plain; charset=utf-8', reason, 'no-cache'));
  out.release.push(textPut(bucket, `${dists}Release.gpg`, signed.releaseGpg, 'application/pgp-signature', reason, 'no-cache'));
  out.release.push(textPut(bucket, `${dists}InRelease`, signed.inRelease, 'text/plain; charset=utf-8', reason, 'no-cache'));
}

/** --refresh: each suite's published Release, if it is ours, with a new Date and Valid-Until, signed again. */
async function planRefresh(inp: AptInputs, root: { bucket: string; prefix: string }, suites: string[], validFor: number, out: AptPlanOut): Promise<void> {
  for (const suite of suites) {
    const dists = `${root.prefix}dists/${suite}/`;
    const release = await inp.reader.getText(root.bucket, `${dists}Release`);
    if (!release) {
      out.skipped.push({ what: `refreshing suite ${suite}`, reason: 'nothing published yet: `releng index` publishes it first' });
      continue;
    }
    const bad = await signedByUs(inp, root.bucket, dists, release);
    if (bad) {
      throw new ReleaseError(`--refresh: the published s3://${root.bucket}/${dists}Release is not one to re-sign as it is (${bad})`,
        'run `releng index` (without --refresh): it regenerates the indexes and signs a Release of its own');
    }
    await pushSigned(inp, root.bucket, dists, redateRelease(release, inp.now, validFor), true, out);
  }
}

/** The public key (binary and armored) and the page, at the repository root. */
async function planKeysAndPage(inp: AptInputs, root: { bucket: string; prefix: string }, suites: { suite: string; components: string[]; architectures: string[] }[], out: AptPlanOut): Promise<void> {
  const { reader, repo } = inp;
  const name = aptKeyName(repo);
  const binary = await readFile(inp.keyring);
  const armored = await exportArmoredKey(inp.signer);
  const page = renderAptPage({
    title: `${repo.label ?? repo.origin ?? 'APT'} repository`, url: inp.publicUrl.replace(/\/+$/, ''), keyName: name, fingerprint: inp.signer.fingerprint,
    keyringPath: `/usr/share/keyrings/${name}.gpg`, suites: suites.map((s) => ({ ...s, architectures: [...s.architectures, 'all'] })),
    toRoot: path.posix.relative(path.posix.dirname(`/${repo.indexPage}`), '/') ? `${path.posix.relative(path.posix.dirname(`/${repo.indexPage}`), '/')}/` : '',
  });
  const wants: [string, Buffer, string][] = [
    [`${name}.gpg`, binary, 'application/pgp-keys'],
    [`${name}.asc`, Buffer.from(armored), 'application/pgp-keys'],
    [repo.indexPage, Buffer.from(page), 'text/html; charset=utf-8'],
  ];
  for (const [rel, body, type] of wants) {
    const key = root.prefix + rel;
    const there = await reader.head(root.bucket, key);
    if (there?.sha256 === sha256Text(body)) continue;
    out.keysAndPage.push(blobPut(inp.workDir, root.bucket, key, body, type, there ? 'changed' : 'new', 'no-cache'));
  }
}

/** Files under pool/ and each suite's dists/ that no index references: recorded, and deleted after the grace period. */
async function planRetention(inp: AptInputs, root: { bucket: string; prefix: string }, suites: string[], referenced: Set<string>, publishedRefs: Set<string>, out: AptPlanOut): Promise<void> {
  const { reader, repo } = inp;
  const existing = new Set<string>();
  for (const prefix of ['pool/', ...suites.map((s) => `dists/${s}/`)]) {
    for (const o of await reader.list(root.bucket, root.prefix + prefix)) existing.add(o.key.slice(root.prefix.length));
  }
  const ledgerKey = root.prefix + LEDGER;
  const currentText = await reader.getText(root.bucket, ledgerKey);
  const { ledger, damaged } = parseLedger(currentText);
  if (damaged) out.skipped.push({ what: `the retention ledger s3://${root.bucket}/${ledgerKey}`, reason: `unreadable (${damaged}): every unreferenced file starts its grace period again now` });
  const grace = aptGraceSeconds(repo);
  const d = decideRetention(existing, referenced, publishedRefs, ledger, inp.now, grace);
  for (const key of d.expired) out.deletions.push({ kind: 's3.delete', bucket: root.bucket, key: root.prefix + key });
  if (d.waiting.length) {
    const first = d.waiting.reduce((a, b) => (a.deleteAfter < b.deleteAfter ? a : b));
    out.skipped.push({ what: `deleting ${d.waiting.length} file(s) no index references (e.g. ${first.key})`, reason: `each is kept for the grace period (${repo.retention.grace ?? `2 × validFor ${repo.validFor}`}) after it left the indexes; the first may go after ${first.deleteAfter.toISOString()}` });
  }
  const text = renderLedger(d.ledger);
  const empty = Object.keys(d.ledger.unreferenced).length === 0;
  if (text !== currentText && !(currentText === undefined && empty)) {
    out.ledger.push(textPut(root.bucket, ledgerKey, text, 'application/json', currentText === undefined ? 'new' : 'changed', 'no-cache'));
  }
}
