// build: evaluate the release jobs, realise them, and lay out release/ exactly as Lix's scripts do,
// plus SHA256SUMS and build-result.json. Local writes only (under release/); nothing is published.
import { chmod, copyFile, cp, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { writeBuildResult, type Artifact, type BuildResult } from '../build-result.ts';
import { renderSha256Sums, sha256File } from '../checksums.ts';
import type { Context } from '../context.ts';
import { DryRunStop, ReleaseError } from '../errors.ts';
import { requirePrograms, run } from '../exec.ts';
import { gitAt, requireOnCleanTag } from '../git/git.ts';
import { evalReleaseJobs, realiseJobs, type Job } from '../nix/eval.ts';
import { readManifestWithNix, renderManifest } from '../nix/manifest.ts';

/** The jobs a release needs, by role (the contract with release-jobs.nix; see README). */
export interface ReleaseJobs {
  build: Record<string, Job>;
  binaryTarball: Record<string, Job>;
  dockerImage: Record<string, Job>;
  manual: Job;
  all: Job[];
}

/** Sorts evaluated jobs into roles and checks the profile's systems are all there. */
export function classifyJobs(jobs: Job[], systems: string[], dockerSystems: string[], profileName: string): ReleaseJobs {
  const byAttr = new Map(jobs.map((j) => [j.attr, j]));
  const missing: string[] = [];
  const pick = (attr: string) => { const j = byAttr.get(attr); if (!j) missing.push(attr); return j!; };
  const build = Object.fromEntries(systems.map((s) => [s, pick(`build.${s}`)]));
  const binaryTarball = Object.fromEntries(systems.map((s) => [s, pick(`binaryTarball.${s}`)]));
  const dockerImage = Object.fromEntries(dockerSystems.map((s) => [s, pick(`dockerImage.${s}`)]));
  const manual = pick('manual');
  if (missing.length) {
    throw new ReleaseError(`release jobs of profile "${profileName}" lack ${missing.join(', ')} (have: ${[...byAttr.keys()].join(', ') || 'none'})`,
      'release jobs must provide build.SYSTEM, binaryTarball.SYSTEM, dockerImage.SYSTEM (docker systems) and manual; see the README');
  }
  return { build, binaryTarball, dockerImage, manual, all: jobs };
}

/** The manifest's check: each entry is its system's build output, never a tarball (a bug Lix once shipped). */
export function checkManifest(manifest: Record<string, string>, jobs: ReleaseJobs): void {
  const problems: string[] = [];
  for (const [system, job] of Object.entries(jobs.build)) {
    if (manifest[system] !== job.outputs.out) problems.push(`${system} = ${manifest[system] ?? '(missing)'}, expected build.${system} = ${job.outputs.out}`);
  }
  const tarballs = new Set(Object.values(jobs.binaryTarball).flatMap((j) => Object.values(j.outputs)));
  for (const [system, p] of Object.entries(manifest)) {
    if (tarballs.has(p)) problems.push(`${system} points at a binary tarball output (${p}), not at the build`);
    if (!(system in jobs.build)) problems.push(`${system} is not a system of this profile`);
  }
  if (problems.length) throw new ReleaseError(`manifest.nix is wrong:\n${problems.map((p) => `  ${p}`).join('\n')}`, 'check the build.SYSTEM jobs of the release jobs');
}

async function filesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.relative(dir, path.join(e.parentPath ?? (e as any).path, e.name)));
  }
  return out.sort();
}

/** The one file matching `re` in a job output (the output itself if it is a file). */
async function singleFile(job: Job, re: RegExp, what: string): Promise<string> {
  const out = job.outputs.out!;
  if ((await stat(out)).isFile()) return out;
  const matches = (await filesIn(out)).filter((f) => re.test(path.basename(f)) && !f.startsWith('nix-support/'));
  if (matches.length !== 1) {
    throw new ReleaseError(`${job.attr}: expected exactly one ${what} in ${out}, found ${matches.length ? matches.join(', ') : 'none'}`);
  }
  return path.join(out, matches[0]!);
}

/** Store copies are read-only; make ours writable so the next build can replace them. */
async function makeWritable(dir: string): Promise<void> {
  await run('chmod', ['-R', 'u+w', dir]);
}

export async function build(ctx: Context): Promise<BuildResult> {
  const { config, log, root, releaseDir, version, flags } = ctx;
  await requirePrograms('git', 'nix-instantiate', 'nix-store', 'tar', 'gzip');
  const git = gitAt(root);
  if (!flags.noCheckGit) await requireOnCleanTag(git, version.version, 'build');
  else await git.topLevel();
  const profileName = flags.profile ?? config.defaultProfile;
  const profile = config.profiles[profileName];
  if (!profile) throw new ReleaseError(`no profile "${profileName}" in ${ctx.loaded.file}`, `use --profile with one of: ${Object.keys(config.profiles).join(', ')}`);

  let phase = log.phase(`evaluating release jobs (profile ${profileName})`);
  const jobs = classifyJobs(await evalReleaseJobs({ root, config, profileName, profile }), profile.systems, profile.dockerSystems, profileName);
  phase.succeed(`evaluated ${jobs.all.length} release jobs (profile ${profileName})`);

  if (flags.dryRun) {
    for (const j of jobs.all) log.info(`[dry-run] nix-store --realise ${j.drvPath} (${j.attr})`);
    log.info(`[dry-run] lay out ${path.join(releaseDir, 'artifacts', config.project, `${config.project}-${version.version}`)}`);
    throw new DryRunStop();
  }

  const gcroots = path.join(releaseDir, 'gcroots');
  for (const d of ['artifacts', 'manual', 'gcroots', 'build-result.json', 'drvs.txt']) {
    await rm(path.join(releaseDir, d), { recursive: true, force: true });
  }
  await mkdir(gcroots, { recursive: true });
  phase = log.phase(`building ${jobs.all.length} derivations`);
  await realiseJobs(jobs.all, gcroots, root);
  phase.succeed(`built ${jobs.all.length} derivations`);

  phase = log.phase('laying out release/artifacts');
  const p = config.project;
  const v = version.version;
  const relDir = `${p}/${p}-${v}`;
  const artifactsDir = path.join(releaseDir, 'artifacts');
  const versionDir = path.join(artifactsDir, relDir);
  await mkdir(versionDir, { recursive: true });
  const kinds = new Map<string, { kind: Artifact['kind']; system?: string }>();
  const put = async (name: string, from: string, kind: Artifact['kind'], system?: string) => {
    if (kinds.has(name)) throw new ReleaseError(`two release artifacts are both named ${name} (${kinds.get(name)!.system ?? kinds.get(name)!.kind} and ${system ?? kind})`, 'give each system\'s binary tarball its own name (e.g. PROJECT-VERSION-SYSTEM.tar.xz) in the release jobs');
    await copyFile(from, path.join(versionDir, name));
    await chmod(path.join(versionDir, name), 0o644);
    kinds.set(name, { kind, system });
  };

  for (const s of profile.systems) {
    const file = await singleFile(jobs.binaryTarball[s]!, /\.tar\.xz$/, 'binary tarball (*.tar.xz)');
    await put(path.basename(file), file, 'binary-tarball', s);
  }
  const dockerImages: BuildResult['dockerImages'] = [];
  for (const s of profile.dockerSystems) {
    const file = await singleFile(jobs.dockerImage[s]!, /\.tar(\.gz)?$/, 'image tarball (*.tar.gz)');
    const name = `${p}-${v}-docker-image-${s}.tar.gz`;
    await put(name, file, 'docker-image', s);
    dockerImages.push({ system: s, path: `${relDir}/${name}` });
  }

  // The manual: release/manual/ (docs bucket), VERSION/manual/ and a tarball (release bucket).
  const manualSrc = path.join(jobs.manual.outputs.out!, config.manualPath ?? `share/doc/${p}/manual`);
  try { await stat(manualSrc); } catch {
    throw new ReleaseError(`the manual job's output has no ${config.manualPath ?? `share/doc/${p}/manual`} (${manualSrc})`, 'set "manualPath" in releng.json to where the HTML manual is inside the manual output');
  }
  const manualDir = path.join(releaseDir, 'manual');
  await cp(manualSrc, manualDir, { recursive: true, dereference: true });
  await makeWritable(manualDir);
  await cp(manualSrc, path.join(versionDir, 'manual'), { recursive: true, dereference: true });
  await makeWritable(path.join(versionDir, 'manual'));
  const manualTar = `${p}-${v}-manual.tar.gz`;
  await run('tar', ['--sort=name', '--mtime=@1', '--owner=0', '--group=0', '--numeric-owner', '-C', path.dirname(manualDir),
    '--transform', `s,^manual,${p}-${v}-manual,`, '-czf', path.join(versionDir, manualTar), 'manual'], { env: { ...process.env, GZIP: '-n' } });
  kinds.set(manualTar, { kind: 'manual-tarball' });

  // The source tarball, from git (the example's own history, never releng's).
  const srcTar = `${p}-${v}.tar.gz`;
  await run('git', ['archive', '--format=tar.gz', `--prefix=${p}-${v}/`, '-o', path.join(versionDir, srcTar), 'HEAD'], { cwd: root });
  kinds.set(srcTar, { kind: 'source-tarball' });

  // .sha256 beside each tarball (hex digest only, as Lix's scripts write).
  const limit = pLimit(4);
  const tarballs = [...kinds.keys()];
  const hashes = new Map<string, string>();
  await Promise.all(tarballs.map((n) => limit(async () => hashes.set(n, await sha256File(path.join(versionDir, n))))));
  for (const n of tarballs) {
    await writeFile(path.join(versionDir, `${n}.sha256`), hashes.get(n)!);
    kinds.set(`${n}.sha256`, { kind: 'checksum' });
  }

  const manifest = Object.fromEntries(profile.systems.map((s) => [s, jobs.build[s]!.outputs.out!]));
  const manifestText = renderManifest(manifest);
  await writeFile(path.join(versionDir, 'manifest.nix'), manifestText);
  await writeFile(path.join(artifactsDir, 'manifest.nix'), manifestText);
  kinds.set('manifest.nix', { kind: 'manifest' });
  checkManifest(await readManifestWithNix(path.join(artifactsDir, 'manifest.nix')), jobs);

  // SHA256SUMS covers every file of the version directory.
  const files = (await filesIn(versionDir)).filter((f) => f !== 'SHA256SUMS');
  const artifacts: Artifact[] = await Promise.all(files.map((f) => limit(async () => {
    const abs = path.join(versionDir, f);
    const k = kinds.get(f) ?? { kind: 'manual' as const };
    return { path: `${relDir}/${f}`, size: (await stat(abs)).size, sha256: hashes.get(f) ?? await sha256File(abs), kind: k.kind, ...(k.system ? { system: k.system } : {}) };
  })));
  const sums = renderSha256Sums(artifacts.map((a) => ({ name: a.path.slice(relDir.length + 1), sha256: a.sha256 })));
  await writeFile(path.join(versionDir, 'SHA256SUMS'), sums);
  artifacts.push({ path: `${relDir}/SHA256SUMS`, size: Buffer.byteLength(sums), sha256: (await sha256File(path.join(versionDir, 'SHA256SUMS'))), kind: 'sums' });
  artifacts.push({ path: 'manifest.nix', size: Buffer.byteLength(manifestText), sha256: await sha256File(path.join(artifactsDir, 'manifest.nix')), kind: 'manifest' });

  const drvs = jobs.all.map((j) => j.drvPath);
  await writeFile(path.join(releaseDir, 'drvs.txt'), drvs.join('\n') + '\n');
  const tags = await git.tagsAtHead();
  const result: BuildResult = {
    schemaVersion: 1,
    project: p,
    version: v,
    major: version.major,
    official: version.official,
    releaseName: version.releaseName,
    profile: profileName,
    systems: profile.systems,
    dockerSystems: profile.dockerSystems,
    gitRevision: await git.head(),
    tag: tags.includes(v) ? v : null,
    createdAt: new Date().toISOString(),
    releaseDir: relDir,
    artifacts: artifacts.sort((a, b) => a.path.localeCompare(b.path)),
    manifest,
    dockerImages,
    drvs,
    outPaths: jobs.all.flatMap((j) => Object.values(j.outputs)),
  };
  await writeBuildResult(releaseDir, result);
  phase.succeed(`laid out ${artifacts.length} artifacts in ${path.relative(process.cwd(), versionDir) || versionDir}`);
  return result;
}
