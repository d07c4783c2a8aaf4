// build: evaluate the release jobs, realise them, and lay out release/ exactly as Lix's scripts do,
// plus SHA256SUMS and build-result.json. Local writes only (under release/); nothing is published.
import { chmod, copyFile, cp, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { writeBuildResult, type Artifact, type BuildResult } from '../release/build-result.ts';
import { renderSha256Sums, sha256File } from '../hashing/checksums.ts';
import type { Context } from '../config/context.ts';
import { DryRunStop, ReleaseError, UsageError } from '../core/errors.ts';
import { requirePrograms, run } from '../core/exec.ts';
import { gitAt, requireCleanTree, requireOnCleanTag } from '../git/git.ts';
import { resolveHydraRelease, type HydraProvenance, type HydraSource } from '../hydra/release-eval.ts';
import { realiseJobs, rootOutputs } from '../nix/eval.ts';
import { evalReleaseTests, runReleaseTests, type ReleaseTest } from '../nix/release-tests.ts';
import { dockerArchiveFromDescription } from '../oci/nix2container.ts';
import { fetchArgs, fetchFromCache } from '../nix/fetch.ts';
import { readManifestWithNix, renderManifest } from '../nix/manifest.ts';
import { makeTorrent, torrentRequest } from '../mirror/torrent.ts';
import { checkManifest, evaluateProfile, manualSource, packageVersion, profileOf, readAggregate, resolveMapping, sha256FileText, type MappedJob, type ReleaseJobs } from '../nix/release-jobs.ts';

async function filesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.relative(dir, path.join(e.parentPath ?? (e as any).path, e.name)));
  }
  return out.sort();
}

/** The one file matching `re` in a job output (the output itself if it is a file). */
async function singleFile(mapped: MappedJob, re: RegExp, what: string): Promise<string> {
  const { job, path: out } = mapped;
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

/** `build` (--target all): every release job; `--target manual` is phases/build-manual.ts. */
export async function build(ctx: Context): Promise<BuildResult> {
  const { config, log, root, releaseDir, version, flags } = ctx;
  await requirePrograms('git', 'nix-instantiate', 'nix-store', 'tar', 'gzip');
  const git = gitAt(root);
  // A rehearsal (issue 26): an unofficial version.json on an untagged checkout builds as Lix's
  // scripts do, its files named with the version the package was built as (lix-2.96.0-dev-abc1234).
  const rehearsal = !version.official && !flags.noCheckGit;
  if (flags.noCheckGit) await git.topLevel();
  else if (rehearsal) await requireCleanTree(git, 'build');
  else await requireOnCleanTag(git, version.version, 'build');
  const selected = profileOf(ctx);
  const { profileName, profile } = selected;
  const p = config.project;
  let v = version.version;

  const hydraSource = hydraSourceOf(ctx);
  const nixArgs = remoteBuildArgs(ctx);
  const flagged = ['builders', 'max-jobs', 'cores', 'workers'].filter((f) => ctx.flags.extra[f] !== undefined);
  if (hydraSource && flagged.length) throw new UsageError(`${flagged.map((f) => `--${f}`).join(' / ')} ${flagged.length === 1 ? 'is' : 'are'} for local builds; --from-hydra builds nothing`);
  const gcroots = path.join(releaseDir, 'gcroots');

  let phase: ReturnType<typeof log.phase>;
  let jobs: ReleaseJobs;
  let provenance: HydraProvenance | undefined;
  if (hydraSource) {
    // Every refusal (revision, missing/failed/unfinished job, cache) comes before release/ is touched.
    const hc = config.hydra;
    if (!hc) throw new ReleaseError(`${ctx.loaded.file} has no "hydra" section: build --from-hydra needs the Hydra's binary cache and its public key`, 'add "hydra": { "cache": "https://…", "trustedPublicKeys": ["name-1:…"] } (docs/hydra.md)');
    const expectedRevision = rehearsal ? await git.head() : await tagCommit(git, v);
    // The jobset's own job names (Lix's Hydra evaluates release.nix), else the local mapping.
    const mapping = hc.jobs ? resolveMapping(hc.jobs, p, config.manualPath) : selected.mapping;
    phase = log.phase(`reading the Hydra evaluation (profile ${profileName})`);
    const r = await resolveHydraRelease({
      source: hydraSource, hydraUrl: hc.url, input: hc.input, expectedRevision, version: rehearsal ? `${v} (rehearsal at HEAD)` : v, mapping,
      systems: profile.systems, dockerSystems: profile.dockerSystems, profileName,
      retry: { onRetry: (m) => log.info(m) },
    });
    jobs = r.jobs;
    provenance = { url: r.hydra.base, evalId: r.evalId, evalUrl: r.evalUrl, builds: r.builds, cache: hc.cache, revision: r.revision };
    phase.succeed(`evaluation ${r.evalUrl} of ${r.revision}: ${jobs.all.length} release jobs, all succeeded`);
    if (rehearsal) v = packageVersion(jobs, p);
    const outs = jobs.all.flatMap((j) => Object.values(j.outputs));
    if (flags.dryRun) {
      for (const t of profile.releaseTests) log.info(`[dry-run] release test ${t}`);
      log.info(`[dry-run] nix ${fetchArgs(hc.cache, hc.trustedPublicKeys, outs).join(' ')}`);
      log.info(`[dry-run] lay out ${path.join(releaseDir, 'artifacts', p, `${p}-${v}`)}`);
      throw new DryRunStop();
    }
    phase = log.phase(`fetching ${outs.length} outputs from ${hc.cache}`);
    await fetchFromCache(hc.cache, hc.trustedPublicKeys, outs);
    phase.succeed(`fetched ${outs.length} outputs (and their closures) from ${hc.cache}`);
  } else {
    phase = log.phase(`evaluating release jobs (profile ${profileName})`);
    // The derivations are rooted as they are evaluated (Lix: nix-eval-jobs --gc-roots-dir release/gcroots).
    if (!flags.dryRun) await rm(gcroots, { recursive: true, force: true });
    jobs = await evaluateProfile(ctx, selected, { workers: evalWorkers(ctx), gcRootsDir: flags.dryRun ? undefined : gcroots });
    phase.succeed(`evaluated ${jobs.all.length} release jobs (profile ${profileName})`);
    if (rehearsal) v = packageVersion(jobs, p);

    if (flags.dryRun) {
      for (const j of jobs.all) log.info(`[dry-run] nix-store --realise ${nixArgs.length ? `${nixArgs.join(' ')} ` : ''}${j.drvPath} (${j.attr})`);
      for (const t of profile.releaseTests) log.info(`[dry-run] release test ${t}`);
      log.info(`[dry-run] lay out ${path.join(releaseDir, 'artifacts', p, `${p}-${v}`)}`);
      throw new DryRunStop();
    }
  }

  for (const d of ['artifacts', 'manual', ...(provenance ? ['gcroots'] : []), 'build-result.json', 'drvs.txt', 'manual-build.json']) {
    await rm(path.join(releaseDir, d), { recursive: true, force: true });
  }
  await mkdir(gcroots, { recursive: true });
  if (provenance) {
    await rootOutputs(jobs.all, gcroots, root);
  } else {
    phase = log.phase(`building ${jobs.all.length} derivations`);
    await realiseJobs(jobs.all, gcroots, root, nixArgs);
    phase.succeed(`built ${jobs.all.length} derivations`);
  }

  // Release tests, before anything is laid out: a failure leaves no build-result.json, so no upload.
  let tests: ReleaseTest[] | undefined;
  if (profile.releaseTests.length) {
    phase = log.phase(`running ${profile.releaseTests.length} release tests (profile ${profileName})`);
    tests = await evalReleaseTests(profile.releaseTests, root, profileName);
    await runReleaseTests(tests, gcroots, root, nixArgs);
    phase.succeed(`${tests.length} release tests passed`);
  }

  phase = log.phase('laying out release/artifacts');
  const relDir = `${p}/${p}-${v}`;
  const artifactsDir = path.join(releaseDir, 'artifacts');
  const versionDir = path.join(artifactsDir, relDir);
  await mkdir(versionDir, { recursive: true });
  const kinds = new Map<string, { kind: Artifact['kind']; system?: string }>();
  const put = async (name: string, from: string, kind: Artifact['kind'], system?: string) => {
    if (kinds.has(name)) throw new ReleaseError(`two release artifacts are both named ${name} (${kinds.get(name)!.system ?? kinds.get(name)!.kind} and ${system ?? kind})`, 'give each system\'s binary tarball its own name (e.g. PROJECT-VERSION-SYSTEM.tar.xz) in the release jobs');
    await mkdir(path.dirname(path.join(versionDir, name)), { recursive: true });
    await copyFile(from, path.join(versionDir, name));
    await chmod(path.join(versionDir, name), 0o644);
    if (kind !== 'manual') kinds.set(name, { kind, system });
  };
  const dockerImages: BuildResult['dockerImages'] = [];
  // .sha256 files releng writes itself (the aggregate brings its own, kept byte for byte).
  const needSha256: { name: string; kind: 'binary-tarball' | 'docker-image' | 'manual-tarball' | 'source-tarball' }[] = [];

  // The manual for the docs bucket: release/manual/, from the manual job (Lix: build.x86_64-linux's doc output).
  const manualSrc = await manualSource(jobs.manual);
  const manualDir = path.join(releaseDir, 'manual');
  await cp(manualSrc, manualDir, { recursive: true, dereference: true });
  await makeWritable(manualDir);

  if (jobs.aggregate) {
    // Lix's `tarballs`: the per-system files already named and checksummed; copied as they are.
    const files = await readAggregate(jobs.aggregate.path, { project: p, version: v, systems: profile.systems, dockerSystems: profile.dockerSystems, attr: jobs.aggregate.job.attr });
    for (const f of files) {
      await put(f.rel, f.abs, f.kind, f.system);
      if (f.kind === 'docker-image') dockerImages.push({ system: f.system!, path: `${relDir}/${f.rel}` });
    }
  } else {
    for (const s of profile.systems) {
      const file = await singleFile(jobs.binaryTarball[s]!, /\.tar\.xz$/, 'binary tarball (*.tar.xz)');
      await put(path.basename(file), file, 'binary-tarball', s);
      needSha256.push({ name: path.basename(file), kind: 'binary-tarball' });
    }
    for (const s of profile.dockerSystems) {
      const name = `${p}-${v}-docker-image-${s}.tar.gz`;
      let file: string;
      if (jobs.dockerImageKind === 'nix2container') {
        // An image description (Lix's dockerImage.SYSTEM on Hydra): the image assembled from it.
        const description = await singleFile(jobs.dockerImage[s]!, /\.json$/, 'image description (*.json)');
        file = path.join(releaseDir, `.${name}.partial`);
        await dockerArchiveFromDescription(description, file, `${p}:${v}`);
      } else {
        file = await singleFile(jobs.dockerImage[s]!, /\.tar(\.gz)?$/, 'image tarball (*.tar.gz)');
      }
      await put(name, file, 'docker-image', s);
      if (jobs.dockerImageKind === 'nix2container') await rm(file, { force: true });
      needSha256.push({ name, kind: 'docker-image' });
      dockerImages.push({ system: s, path: `${relDir}/${name}` });
    }
    // The manual in the release prefix: VERSION/manual/ and a tarball.
    await cp(manualSrc, path.join(versionDir, 'manual'), { recursive: true, dereference: true });
    await makeWritable(path.join(versionDir, 'manual'));
    const manualTar = `${p}-${v}-manual.tar.gz`;
    await run('tar', ['--sort=name', '--mtime=@1', '--owner=0', '--group=0', '--numeric-owner', '-C', path.dirname(manualDir),
      '--transform', `s,^manual,${p}-${v}-manual,`, '-czf', path.join(versionDir, manualTar), 'manual'], { env: { ...process.env, GZIP: '-n' } });
    kinds.set(manualTar, { kind: 'manual-tarball' });
    needSha256.push({ name: manualTar, kind: 'manual-tarball' });
  }

  // The source tarball, from git (the example's own history, never releng's).
  const srcTar = `${p}-${v}.tar.gz`;
  await run('git', ['archive', '--format=tar.gz', `--prefix=${p}-${v}/`, '-o', path.join(versionDir, srcTar), 'HEAD'], { cwd: root });
  kinds.set(srcTar, { kind: 'source-tarball' });
  needSha256.push({ name: srcTar, kind: 'source-tarball' });

  // .sha256 beside each tarball, byte for byte as Lix's scripts write them (lib/nix/release-jobs.ts).
  const limit = pLimit(4);
  const hashes = new Map<string, string>();
  await Promise.all([...kinds.keys()].map((n) => limit(async () => hashes.set(n, await sha256File(path.join(versionDir, n))))));
  for (const { name, kind } of needSha256) {
    await writeFile(path.join(versionDir, `${name}.sha256`), sha256FileText(kind, hashes.get(name)!));
    kinds.set(`${name}.sha256`, { kind: 'checksum' });
  }

  // Torrents of the files an environment asks for (mirror.torrents: web seeds at its releasesUrl),
  // beside each file and, like every file, in SHA256SUMS (lib/mirror/torrent.ts; issue 28).
  const torrented: string[] = [];
  for (const name of [...kinds.keys()].sort()) {
    const abs = path.join(versionDir, name);
    const req = torrentRequest(config, relDir, name, (await stat(abs)).size);
    if (!req) continue;
    const t = await makeTorrent(abs, path.basename(name), req);
    await writeFile(`${abs}.torrent`, t.bytes);
    kinds.set(`${name}.torrent`, { kind: 'torrent' });
    torrented.push(`${name}.torrent (${t.pieces} pieces of ${t.pieceLength / 1024} KiB, ${req.webSeeds.length} web seed${req.webSeeds.length === 1 ? '' : 's'})`);
  }
  if (torrented.length) log.info(`torrents: ${torrented.join(', ')}`);

  const manifest = Object.fromEntries(profile.systems.map((s) => [s, jobs.build[s]!.path]));
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

  // The aggregate is not cached: its files are the release bucket's, duplicate and large (the intent
  // of Lix's drvs.txt filter, whose attribute name never matched; docs/adopting.md).
  const cached = jobs.all.filter((j) => j !== jobs.aggregate?.job);
  // From Hydra there are no derivations here (Hydra's cache serves outputs): the cache gets the outputs' closures.
  const drvs = provenance ? [] : cached.map((j) => j.drvPath);
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
    outPaths: cached.flatMap((j) => Object.values(j.outputs)),
    ...(rehearsal ? { rehearsal: true, versionJson: version.version } : {}),
    ...(tests ? { releaseTests: tests } : {}),
    ...(provenance ? { hydra: provenance } : {}),
  };
  await writeBuildResult(releaseDir, result);
  phase.succeed(`laid out ${artifacts.length} artifacts in ${path.relative(process.cwd(), versionDir) || versionDir}`);
  return result;
}

/** `--from-hydra URL` or `--hydra-json FILE` (RunCommand's $HYDRA_JSON), when given. */
function hydraSourceOf(ctx: Context): HydraSource | undefined {
  const url = ctx.flags.extra['from-hydra'];
  const file = ctx.flags.extra['hydra-json'];
  if (url !== undefined && file !== undefined) throw new UsageError('give either --from-hydra URL or --hydra-json FILE, not both');
  if (typeof url === 'string') return { url };
  if (typeof file === 'string') return { hydraJsonFile: file };
  if (url !== undefined || file !== undefined) throw new UsageError('--from-hydra takes a URL and --hydra-json a FILE');
  return undefined;
}

/** nix-eval-jobs --workers: the flag, else releng.json's build.workers. */
function evalWorkers(ctx: Context): number | undefined {
  const w = ctx.flags.extra['workers'];
  if (w === undefined) return ctx.config.build?.workers;
  if (typeof w !== 'string' || !/^[1-9]\d*$/.test(w)) throw new UsageError(`--workers ${String(w)}: expected a number of nix-eval-jobs workers (1 or more)`);
  return Number(w);
}

/** `--builders SPEC` / `--max-jobs N` / `--cores N` for nix-store --realise (flags first, then releng.json's build). */
export function remoteBuildArgs(ctx: Context): string[] {
  const args: string[] = [];
  const builders = ctx.flags.extra['builders'];
  const maxJobs = ctx.flags.extra['max-jobs'] ?? (ctx.config.build?.maxJobs !== undefined ? String(ctx.config.build.maxJobs) : undefined);
  const cores = ctx.flags.extra['cores'] ?? (ctx.config.build?.cores !== undefined ? String(ctx.config.build.cores) : undefined);
  if (builders !== undefined) {
    if (typeof builders !== 'string') throw new UsageError('--builders takes a SPEC (nix.conf `builders` syntax, e.g. "ssh://builder aarch64-linux /root/.ssh/id 4 1 big-parallel")');
    args.push('--option', 'builders', builders);
  }
  if (maxJobs !== undefined) {
    if (typeof maxJobs !== 'string' || !/^(\d+|auto)$/.test(maxJobs)) throw new UsageError(`--max-jobs ${String(maxJobs)}: expected a number of local build jobs (0: only remote builders) or auto`);
    args.push('--max-jobs', maxJobs);
  }
  if (cores !== undefined) {
    if (typeof cores !== 'string' || !/^\d+$/.test(cores)) throw new UsageError(`--cores ${String(cores)}: expected the number of cores each build may use (0: all)`);
    args.push('--cores', cores);
  }
  return args;
}

/** The commit of tag VERSION (what an evaluation must have built); HEAD when there is no such tag (--no-check-git). */
async function tagCommit(git: ReturnType<typeof gitAt>, version: string): Promise<string> {
  try {
    return (await run('git', ['rev-parse', '--verify', '--quiet', `refs/tags/${version}^{commit}`], { cwd: await git.topLevel() })).stdout.trim();
  } catch {
    return git.head();
  }
}
