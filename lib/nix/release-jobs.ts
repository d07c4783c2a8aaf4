// The release-jobs mapping (issue 17): which evaluated attribute holds each kind of job, which of
// its outputs releng reads, and whether an aggregate job (Lix's `tarballs`) is unpacked into the
// per-system files instead of separate binaryTarball/dockerImage jobs. build.ts calls this module;
// it knows nothing of S3 or git.
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { sha256File } from '../hashing/checksums.ts';
import { ReleaseError } from '../core/errors.ts';
import type { Context } from '../config/context.ts';
import type { Profile } from '../config/config.ts';
import { evalReleaseJobs, type Job } from './eval.ts';

import type { ReleaseJobsMapping } from '../config/release-jobs.ts';
export type { ReleaseJobsMapping } from '../config/release-jobs.ts';

export interface JobRef { attr: string; output: string }

/** The mapping with the contract's defaults filled in. */
export interface ResolvedMapping {
  build: JobRef;
  manual: JobRef & { path: string };
  /** Separate per-system jobs, or one aggregate job. */
  files: { binaryTarball: JobRef; dockerImage: JobRef & { image: 'tarball' | 'nix2container' } } | { aggregate: JobRef };
}

export function resolveMapping(m: ReleaseJobsMapping | undefined, project: string, manualPath: string | undefined): ResolvedMapping {
  const ref = (r: { attr: string; output?: string } | undefined, attr: string): JobRef => ({ attr: r?.attr ?? attr, output: r?.output ?? 'out' });
  return {
    build: ref(m?.build, 'build.{system}'),
    manual: { ...ref(m?.manual, 'manual'), path: m?.manual?.path ?? manualPath ?? `share/doc/${project}/manual` },
    files: m?.aggregate
      ? { aggregate: ref(m.aggregate, '') }
      : { binaryTarball: ref(m?.binaryTarball, 'binaryTarball.{system}'), dockerImage: { ...ref(m?.dockerImage, 'dockerImage.{system}'), image: m?.dockerImage?.image ?? 'tarball' } },
  };
}

/** A job and the one output of it releng reads. */
export interface MappedJob { job: Job; output: string; path: string }

/** The jobs of a release, by role, after the mapping. */
export interface ReleaseJobs {
  build: Record<string, MappedJob>;
  manual: MappedJob & { manualPath: string };
  binaryTarball: Record<string, MappedJob>;
  dockerImage: Record<string, MappedJob>;
  aggregate?: MappedJob;
  /** What a dockerImage job's output is: a docker-archive, or a nix2container image description. */
  dockerImageKind: 'tarball' | 'nix2container';
  all: Job[];
}

const attrFor = (ref: JobRef, system?: string) => system ? ref.attr.replaceAll('{system}', system) : ref.attr;

/** Sorts evaluated jobs into roles by the mapping; every problem (missing job, missing output) at once. */
export function classifyJobs(jobs: Job[], mapping: ResolvedMapping, systems: string[], dockerSystems: string[], profileName: string): ReleaseJobs {
  const byAttr = new Map(jobs.map((j) => [j.attr, j]));
  const problems: string[] = [];
  const pick = (ref: JobRef, role: string, system?: string): MappedJob => {
    const attr = attrFor(ref, system);
    const job = byAttr.get(attr);
    if (!job) { problems.push(`no job ${attr} (${role}${system ? ` for ${system}` : ''})`); return undefined as never; }
    const p = job.outputs[ref.output];
    if (!p) { problems.push(`${attr} has no output "${ref.output}" (outputs: ${Object.keys(job.outputs).join(', ')})`); return undefined as never; }
    return { job, output: ref.output, path: p };
  };
  const per = (ref: JobRef, role: string, list: string[]) => Object.fromEntries(list.map((s) => [s, pick(ref, role, s)]));
  const build = per(mapping.build, 'build', systems);
  const manual = pick(mapping.manual, 'manual');
  let binaryTarball: Record<string, MappedJob> = {};
  let dockerImage: Record<string, MappedJob> = {};
  let aggregate: MappedJob | undefined;
  if ('aggregate' in mapping.files) aggregate = pick(mapping.files.aggregate, 'aggregate');
  else {
    binaryTarball = per(mapping.files.binaryTarball, 'binary tarball', systems);
    dockerImage = per(mapping.files.dockerImage, 'docker image', dockerSystems);
  }
  if (problems.length) {
    throw new ReleaseError(`release jobs of profile "${profileName}" do not fit releaseJobs.jobs:\n${problems.map((p) => `  ${p}`).join('\n')}\n  (evaluated: ${[...byAttr.keys()].join(', ') || 'none'})`,
      'fix releaseJobs.jobs in releng.json (attr, output, aggregate) or the release jobs; see docs/adopting.md');
  }
  const dockerImageKind = 'dockerImage' in mapping.files ? mapping.files.dockerImage.image : 'tarball';
  return { build, manual: { ...manual, manualPath: mapping.manual.path }, binaryTarball, dockerImage, aggregate, dockerImageKind, all: jobs };
}

/** A file of the aggregate's output and what it is. */
export interface AggregateFile {
  /** Path relative to the aggregate output (and to the release's version directory). */
  rel: string;
  abs: string;
  kind: 'binary-tarball' | 'docker-image' | 'manual-tarball' | 'checksum' | 'manual';
  system?: string;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() || e.isSymbolicLink()) out.push(path.relative(dir, path.join(e.parentPath ?? (e as any).path, e.name)));
  }
  return out.sort();
}

/**
 * Reads an aggregate output laid out as Lix's releng/release-jobs.nix lays out `tarballs`:
 * `P-V-SYSTEM.tar.xz`, `P-V-docker-image-SYSTEM.tar.gz`, `P-V-manual.tar.gz`, each with a
 * `.sha256` (kept byte for byte: Lix's are `sha256sum | cut` output, newline included), and
 * `manual/`. Refuses a missing file, a file it cannot name, and a .sha256 that does not match.
 */
export async function readAggregate(out: string, o: { project: string; version: string; systems: string[]; dockerSystems: string[]; attr: string }): Promise<AggregateFile[]> {
  const base = `${o.project}-${o.version}`;
  const expected = new Map<string, Omit<AggregateFile, 'rel' | 'abs'>>();
  for (const s of o.systems) expected.set(`${base}-${s}.tar.xz`, { kind: 'binary-tarball', system: s });
  for (const s of o.dockerSystems) expected.set(`${base}-docker-image-${s}.tar.gz`, { kind: 'docker-image', system: s });
  expected.set(`${base}-manual.tar.gz`, { kind: 'manual-tarball' });
  if (!(await stat(out).catch(() => undefined))?.isDirectory()) throw new ReleaseError(`${o.attr}: output ${out} is not a directory`, 'the aggregate job must output a directory of release files');
  const files = (await walk(out)).filter((f) => !f.startsWith('nix-support/'));
  const result: AggregateFile[] = [];
  const unknown: string[] = [];
  const problems: string[] = [];
  for (const rel of files) {
    const abs = path.join(out, rel);
    if (rel.startsWith('manual/')) { result.push({ rel, abs, kind: 'manual' }); continue; }
    const k = expected.get(rel);
    if (k) { result.push({ rel, abs, ...k }); continue; }
    if (rel.endsWith('.sha256') && expected.has(rel.slice(0, -'.sha256'.length))) { result.push({ rel, abs, kind: 'checksum' }); continue; }
    unknown.push(rel);
  }
  const have = new Set(files);
  for (const name of expected.keys()) {
    if (!have.has(name)) problems.push(`missing ${name}`);
    else if (!have.has(`${name}.sha256`)) problems.push(`missing ${name}.sha256`);
    else {
      const text = await readFile(path.join(out, `${name}.sha256`), 'utf8');
      const actual = await sha256File(path.join(out, name));
      if (!/^[0-9a-f]{64}\n?$/.test(text)) problems.push(`${name}.sha256 is not a hex sha256 (optionally with one newline)`);
      else if (text.trim() !== actual) problems.push(`${name}.sha256 says ${text.trim()}, but ${name} hashes to ${actual}`);
    }
  }
  if (!files.some((f) => f.startsWith('manual/'))) problems.push('missing manual/ (the HTML manual)');
  if (unknown.length) problems.push(`files releng cannot name: ${unknown.join(', ')} (expected ${[...expected.keys()].join(', ')}, their .sha256 and manual/)`);
  if (problems.length) {
    throw new ReleaseError(`aggregate job ${o.attr} (${out}) is not a release layout:\n${problems.map((p) => `  ${p}`).join('\n')}`,
      'the aggregate must hold exactly the profile\'s files, named PROJECT-VERSION-SYSTEM.tar.xz, PROJECT-VERSION-docker-image-SYSTEM.tar.gz, PROJECT-VERSION-manual.tar.gz (each with .sha256) and manual/, as Lix\'s releng/release-jobs.nix makes them');
  }
  return result;
}

/**
 * The `.sha256` bytes releng writes, as Lix's scripts write them: the tarballs of release-jobs.nix
 * are `sha256sum --binary F | cut -f1 -d' '` (hex and a newline); the source tarball is written by
 * create_release.xsh with `h.write(file_hash)` (hex, no newline).
 */
export function sha256FileText(kind: 'binary-tarball' | 'docker-image' | 'manual-tarball' | 'source-tarball', hex: string): string {
  return kind === 'source-tarball' ? hex : `${hex}\n`;
}

/** The manifest's check: each entry is its system's build output, never a tarball (a bug Lix once shipped). */
export function checkManifest(manifest: Record<string, string>, jobs: ReleaseJobs): void {
  const problems: string[] = [];
  for (const [system, b] of Object.entries(jobs.build)) {
    if (manifest[system] !== b.path) problems.push(`${system} = ${manifest[system] ?? '(missing)'}, expected ${b.job.attr} (${b.output}) = ${b.path}`);
  }
  const tarballJobs = [...Object.values(jobs.binaryTarball), ...(jobs.aggregate ? [jobs.aggregate] : [])];
  const tarballs = new Set(tarballJobs.flatMap((j) => Object.values(j.job.outputs)));
  for (const [system, p] of Object.entries(manifest)) {
    if (tarballs.has(p)) problems.push(`${system} points at a tarball output (${p}), not at the build`);
    if (!(system in jobs.build)) problems.push(`${system} is not a system of this profile`);
  }
  if (problems.length) throw new ReleaseError(`manifest.nix is wrong:\n${problems.map((p) => `  ${p}`).join('\n')}`, 'check the build jobs of the release jobs (releaseJobs.jobs.build)');
}

/** Where the HTML manual is in the manual job's output; a clear error when it is not there. */
export async function manualSource(manual: MappedJob & { manualPath: string }): Promise<string> {
  const src = path.join(manual.path, manual.manualPath);
  try { await stat(src); } catch {
    throw new ReleaseError(`the manual job ${manual.job.attr} (output ${manual.output}) has no ${manual.manualPath} (${src})`,
      'set releaseJobs.jobs.manual.path (or manualPath) in releng.json to where the HTML manual is inside that output');
  }
  return src;
}

/** The profile a build covers (--profile, else releng.json's defaultProfile) and the resolved job mapping. */
export function profileOf(ctx: Context): { profileName: string; profile: Profile; mapping: ResolvedMapping } {
  const { config, flags } = ctx;
  const profileName = flags.profile ?? config.defaultProfile;
  const profile = config.profiles[profileName];
  if (!profile) throw new ReleaseError(`no profile "${profileName}" in ${ctx.loaded.file}`, `use --profile with one of: ${Object.keys(config.profiles).join(', ')}`);
  return { profileName, profile, mapping: resolveMapping(config.releaseJobs.jobs, config.project, config.manualPath) };
}

/** Evaluates the release jobs locally and classifies them for the profile. */
export async function evaluateProfile(ctx: Context, p: ReturnType<typeof profileOf>, o: { workers?: number; gcRootsDir?: string } = {}): Promise<ReleaseJobs> {
  const jobs = await evalReleaseJobs({ root: ctx.root, config: ctx.config, profileName: p.profileName, profile: p.profile, ...o });
  return classifyJobs(jobs, p.mapping, p.profile.systems, p.profile.dockerSystems, p.profileName);
}

/**
 * The version the build jobs were built as, read from the evaluated package (its derivation name,
 * `PROJECT-VERSION`), for a rehearsal build (issue 26): an untagged Lix checkout builds
 * `lix-2.96.0-dev-abc1234` (package.nix: version.json's version and "-" versionSuffix, the short
 * revision). Every system's build must agree.
 */
export function packageVersion(jobs: ReleaseJobs, project: string): string {
  const versions = new Map<string, string[]>();
  const problems: string[] = [];
  for (const [system, b] of Object.entries(jobs.build)) {
    const name = b.job.name;
    if (!name || !name.startsWith(`${project}-`) || name.length === project.length + 1) {
      problems.push(`${b.job.attr} (${system}) is named ${name ?? '(no name)'}, not ${project}-VERSION`);
      continue;
    }
    // Some projects name each system's package PROJECT-VERSION-SYSTEM (examples/hello): not part of the version.
    const full = name.slice(project.length + 1);
    const v = full.endsWith(`-${system}`) && full.length > system.length + 1 ? full.slice(0, -(system.length + 1)) : full;
    versions.set(v, [...(versions.get(v) ?? []), b.job.attr]);
  }
  if (problems.length) {
    throw new ReleaseError(`cannot read the package's version from the build jobs:\n${problems.map((p) => `  ${p}`).join('\n')}`,
      'a rehearsal build names its files with the version the package was built as: the build jobs must be derivations named PROJECT-VERSION (pname and version)');
  }
  if (versions.size !== 1) {
    throw new ReleaseError(`the build jobs were built as different versions: ${[...versions].map(([v, a]) => `${v} (${a.join(', ')})`).join('; ')}`, 'every system must build the same source');
  }
  return [...versions.keys()][0]!;
}
