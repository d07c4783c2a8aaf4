// release/build-result.json: what `build` produced and `upload` publishes (they may run on two machines).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ReleaseError } from '../core/errors.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a hex sha256');
const storePath = z.string().regex(/^\/nix\/store\/[0-9a-z]{32}-[^/]+$/, 'expected a /nix/store path');
const relPath = z.string().min(1).refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), 'must be a relative path inside release/artifacts');

export const artifactKinds = ['binary-tarball', 'docker-image', 'manual-tarball', 'source-tarball', 'checksum', 'manifest', 'sums', 'manual', 'torrent'] as const;

export const buildResultSchema = z.object({
  schemaVersion: z.literal(1),
  project: z.string(),
  version: z.string(),
  major: z.string(),
  official: z.boolean(),
  releaseName: z.string(),
  profile: z.string(),
  systems: z.array(z.string()).min(1),
  dockerSystems: z.array(z.string()),
  gitRevision: z.string().regex(/^[0-9a-f]{40}$/),
  /** Tag at HEAD when built (null with --no-check-git on an untagged tree). */
  tag: z.string().nullable(),
  createdAt: z.string(),
  /** `<project>/<project>-VERSION`, relative to release/artifacts. */
  releaseDir: relPath,
  artifacts: z.array(z.object({ path: relPath, size: z.number().int().nonnegative(), sha256, kind: z.enum(artifactKinds), system: z.string().optional() })),
  /** System → store path of that system's build job: the content of manifest.nix. */
  manifest: z.record(z.string(), storePath),
  dockerImages: z.array(z.object({ system: z.string(), path: relPath })),
  /** Derivations whose closures (and outputs) go to the binary cache. */
  drvs: z.array(storePath),
  outPaths: z.array(storePath),
  /** A rehearsal build (issue 26): an untagged checkout of an unofficial version.json, named with the
   *  package's own version (`version`); `versionJson` is version.json's. Only environments with
   *  `unofficial: true` take it. */
  rehearsal: z.boolean().optional(),
  versionJson: z.string().optional(),
  /** The profile's release tests, realised before the layout (issue 26). */
  releaseTests: z.array(z.object({ attr: z.string(), drvPath: storePath, outPath: storePath })).optional(),
  /** Set when `build --from-hydra` took the outputs from a Hydra (issue 15): where from, which builds, which cache. */
  hydra: z.object({
    url: z.string(),
    evalId: z.number().int().positive(),
    evalUrl: z.string(),
    builds: z.record(z.string(), z.number().int().positive()),
    cache: z.string(),
    revision: z.string().regex(/^[0-9a-f]{40}$/),
  }).optional(),
});

export type BuildResult = z.infer<typeof buildResultSchema>;
export type Artifact = BuildResult['artifacts'][number];

export function buildResultPath(releaseDir: string): string {
  return path.join(releaseDir, 'build-result.json');
}

export async function writeBuildResult(releaseDir: string, result: BuildResult): Promise<void> {
  const checked = parseWith(buildResultSchema, result, 'build-result.json (about to be written)');
  await writeFile(buildResultPath(releaseDir), JSON.stringify(checked, null, 2) + '\n');
}

/** Reads and validates build-result.json, with a hint to run build when it is missing. */
export async function readBuildResult(releaseDir: string): Promise<BuildResult> {
  const file = buildResultPath(releaseDir);
  let text: string;
  try { text = await readFile(file, 'utf8'); } catch {
    throw new ReleaseError(`no build result at ${file}`, 'run `releng build` first (upload publishes what build laid out)');
  }
  return parseWith(buildResultSchema, parseJsonText(text, file), file, 'rebuild with `releng build`');
}
