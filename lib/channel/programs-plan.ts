// The programs step of a channel plan (issue 27): download the release's packages.json.br and one
// channel tarball from the binary cache (into STATE/…/RELEASE/hydra/, never uploaded), generate
// programs.sqlite, repack every configured tarball with it (new sizes and sha256, so new .sha256
// files), and plan the debug-info entries of the evaluation's debug outputs. Reads and local files
// only; the writes are returned as actions. A crashed run's result is reused when its inputs match.
import { readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Skip } from '../core/plan.ts';
import type { Logger } from '../core/log.ts';
import { humanBytes } from '../core/log.ts';
import { ReleaseError } from '../core/errors.ts';
import { sha256File } from '../hashing/checksums.ts';
import type { BucketRef } from '../environment/open.ts';
import type { S3Put } from '../s3/actions.ts';
import type { S3Reader } from '../s3/store.ts';
import type { ProgramsIndexConfig } from '../config/channels.ts';
import { debugInfoEntries, debugOutputs, planDebugInfo, type DebugInfoPlan } from './debuginfo.ts';
import { openListingMemo } from './listing-memo.ts';
import type { ListingSource } from './listings.ts';
import { generateProgramsIndex, type Evaluate, type ProgramsIndexStats } from './programs.ts';
import { packChannelTarball, unpackChannelTarball } from './tarball.ts';
import type { DownloadRequest, FileProduct } from './products.ts';

/** A product file of the release as the planner holds it. */
export interface ProgramsFile {
  name: string;
  size: number;
  sha256: string;
  source: { text: string } | { file: string } | { product: FileProduct; job: string };
}

export interface ProgramsStepInput {
  cfg: ProgramsIndexConfig;
  /** The release's product files (tarballs and packages file among them); tarball entries are replaced by their repacked files. */
  files: ProgramsFile[];
  storePaths: string[];
  stagingDir: string;
  memoFile: string;
  source: ListingSource;
  download: (req: DownloadRequest) => Promise<'downloaded' | 'staged'>;
  binaryCacheUrl: string;
  /** The commit time: the date of programs.sqlite inside the tarballs. */
  commitDate: Date;
  reader: S3Reader;
  /** The environment's cacheBucket (debuginfo entries). */
  cache: BucketRef;
  log: Logger;
  skipped: Skip[];
  evaluate?: Evaluate;
}

export interface ProgramsStepResult {
  /** Per repacked tarball: Hydra's sha256 and the published one. */
  repacked: Array<{ name: string; hydraSha256: string; sha256: string; size: number }>;
  stats?: ProgramsIndexStats;
  reused: boolean;
  debuginfo?: DebugInfoPlan;
  /** Files downloaded from the binary cache for the index (not published). */
  downloaded: string[];
}

/** What a finished index recorded in the staging directory: reused when the inputs are the same. */
interface Manifest {
  inputs: Record<string, string>;
  systems: string[];
  outputs: Record<string, { size: number; sha256: string }>;
  stats: ProgramsIndexStats;
}

export async function preparePrograms(input: ProgramsStepInput): Promise<ProgramsStepResult> {
  const { cfg, files, log } = input;
  const byName = new Map(files.map((f) => [f.name, f]));
  const packages = byName.get(cfg.packages);
  const where = 'channels.kinds[].programs';
  if (!packages || !('product' in packages.source)) {
    throw new ReleaseError(`${where}.packages is ${cfg.packages}, which is not a product of this release (products: ${files.map((f) => f.name).join(', ') || 'none'})`,
      'name the release file holding nixpkgs\' packages.json.br; nothing was published');
  }
  const tarballs = cfg.tarballs.map((n) => byName.get(n)).filter((f): f is ProgramsFile => !!f && 'product' in f.source);
  if (!tarballs.length) {
    throw new ReleaseError(`none of ${where}.tarballs (${cfg.tarballs.join(', ')}) is a product of this release (products: ${files.map((f) => f.name).join(', ')})`,
      'name the channel tarballs to put programs.sqlite into; nothing was published');
  }
  const hydraDir = path.join(input.stagingDir, 'hydra');
  const manifestFile = path.join(input.stagingDir, 'programs.json');
  const inputs: Record<string, string> = Object.fromEntries([packages, ...tarballs].map((f) => [f.name, f.sha256]));
  const result: ProgramsStepResult = { repacked: [], reused: false, downloaded: [] };

  // A finished index of the same inputs (a crashed or dry run of this release): reuse it.
  const old: Manifest | undefined = await readFile(manifestFile, 'utf8').then((t) => JSON.parse(t) as Manifest, () => undefined);
  let reusable = !!old && JSON.stringify(old.inputs) === JSON.stringify(inputs) && JSON.stringify(old.systems) === JSON.stringify(cfg.systems)
    && tarballs.every((t) => old.outputs[t.name]);
  if (reusable) {
    for (const t of tarballs) {
      const f = path.join(input.stagingDir, t.name);
      const st = await stat(f).catch(() => undefined);
      if (st?.size !== old!.outputs[t.name]!.size || (await sha256File(f)) !== old!.outputs[t.name]!.sha256) { reusable = false; break; }
    }
  }

  const memo = await openListingMemo(input.memoFile);
  try {
    if (reusable) {
      result.reused = true;
      result.stats = old!.stats;
      log.info(`programs.sqlite: reusing the index staged for these inputs (${old!.stats.rows} programs)`);
    } else {
      await rm(manifestFile, { force: true });
      await mkdir(hydraDir, { recursive: true });
      // The originals, checked against Hydra's sha256 (nix store cat, as every product).
      for (const f of [packages, tarballs[0]!]) {
        const src = f.source as { product: FileProduct; job: string };
        const how = await input.download({ store: input.binaryCacheUrl, storePath: src.product.path, dest: path.join(hydraDir, f.name), sha256: src.product.sha256hash, size: src.product.filesize });
        if (how === 'downloaded') result.downloaded.push(`hydra/${f.name}`);
      }
      const unpackDir = path.join(input.stagingDir, 'unpack');
      const topDir = await unpackChannelTarball(path.join(hydraDir, tarballs[0]!.name), unpackDir, `${tarballs[0]!.name} (${(tarballs[0]!.source as { job: string }).job})`);
      const programsDb = path.join(input.stagingDir, 'programs.sqlite');
      const progress = log.progress(`programs.sqlite: listing the packages' outputs in ${input.source.url}`, 0, 'files');
      let total = 0;
      let stats: ProgramsIndexStats;
      try {
        stats = await generateProgramsIndex({
          exprDir: topDir, packagesFile: path.join(hydraDir, packages.name), systems: cfg.systems, source: input.source, memo, output: programsDb,
          concurrency: cfg.listingConcurrency, evaluate: input.evaluate,
          onPath: (done, all) => { if (all !== total) { progress.addTotal(all - total); total = all; } progress.tick(1); },
        });
      } finally {
        progress.stop();
      }
      log.info(`programs.sqlite: ${stats.rows} programs of ${stats.packages} packages on ${cfg.systems.join(', ')}; ${stats.paths} output paths (${stats.fetched} listings fetched, ${stats.remembered} remembered from earlier releases, ${stats.missing} not in the cache)`);
      if (stats.missing) input.skipped.push({ what: `${stats.missing} output paths of the channel's packages`, reason: `${input.source.url} has no listing for them (not built or not uploaded): their programs are not in programs.sqlite` });
      const outputs: Manifest['outputs'] = {};
      for (const t of tarballs) {
        const dest = path.join(input.stagingDir, t.name);
        await packChannelTarball({ topDir, programsDb, dest, mtime: input.commitDate });
        outputs[t.name] = { size: (await stat(dest)).size, sha256: await sha256File(dest) };
      }
      await rm(unpackDir, { recursive: true, force: true });
      result.stats = stats;
      const manifest: Manifest = { inputs, systems: cfg.systems, outputs, stats };
      await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
    }
    const manifest: Manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
    for (const t of tarballs) {
      const out = manifest.outputs[t.name]!;
      result.repacked.push({ name: t.name, hydraSha256: t.sha256, sha256: out.sha256, size: out.size });
      t.size = out.size;
      t.sha256 = out.sha256;
      t.source = { file: path.join(input.stagingDir, t.name) };
      log.info(`${t.name}: Hydra's ${t.name} with programs.sqlite added (${humanBytes(out.size)}, sha256 ${out.sha256}); Hydra's own stays out of the release`);
    }

    if (cfg.debuginfo) {
      const debug = debugOutputs(input.storePaths);
      const entries = await debugInfoEntries({ storePaths: debug, source: input.source, memo, cache: input.cache, concurrency: cfg.listingConcurrency, skipped: input.skipped });
      result.debuginfo = await planDebugInfo({ entries, reader: input.reader, cache: input.cache });
      const d = result.debuginfo;
      log.info(`debuginfo: ${debug.length} debug outputs, ${entries.length} debug files; ${d.puts.length} new entries, ${d.present} already there`);
      if (d.present) input.skipped.push({ what: `${d.present} debuginfo entries in s3://${input.cache.bucket}/${input.cache.prefix}debuginfo/`, reason: 'already there with the same content' });
      for (const k of d.kept.slice(0, 20)) log.warn(`s3://${input.cache.bucket}/${k.key} belongs to another build (${k.existing.slice(0, 200)}); kept, not replaced by ${k.wanted}`);
      if (d.kept.length) input.skipped.push({ what: `${d.kept.length} debuginfo entries of other builds`, reason: 'an entry is never replaced (dwarffs may be using it); the same build id from another store path' });
    } else {
      input.skipped.push({ what: 'debuginfo entries', reason: `${where}.debuginfo is false` });
    }
    // Only after a complete index: forget the paths this release did not use.
    if (!reusable) memo.prune();
  } finally {
    memo.close();
  }
  return result;
}

export type { S3Put };
