// Plans the container images of each docker target: every per-system image pushed untagged (by
// digest) first, then one OCI image index per tag. A tag never points at an image not yet there.
import type { Skip, Step as CoreStep } from '../core/plan.ts';
import type { OciAction } from '../oci/actions.ts';
import type { DockerTarget } from '../config/config.ts';
import { ReleaseError } from '../core/errors.ts';
import type { OciIndex, OciPush } from '../oci/actions.ts';
import type { Platform, PreparedImage } from '../oci/image.ts';
import { ociIndexMediaType, type ManifestHead } from '../oci/registry.ts';
import { sha256Text } from '../hashing/checksums.ts';
import type { BuildResult } from '../release/build-result.ts';
import type { Context } from '../config/context.ts';
import { gitAt } from '../git/git.ts';
import { isMaintenanceRelease } from '../git/maintenance.ts';
import { prepareBuildImages } from '../oci/image.ts';
import type { OpenRegistry } from '../oci/open.ts';
type Step = CoreStep<OciAction>;

/** The reads the planner makes of one registry. */
export interface RegistryReader {
  headManifest(repository: string, reference: string): Promise<ManifestHead | undefined>;
}

/** A docker target as the planner sees it. */
export interface ImageTarget {
  target: DockerTarget;
  host: string;
  repository: string;
  reader: RegistryReader;
}

/** One per-system image, prepared locally (digest known before any push). */
export interface LocalImage {
  system: string;
  image: PreparedImage;
}

export interface ImagePlanOptions {
  version: string;
  major: string;
  /** From a maintenance branch: no `latest` (lib/git/maintenance.ts). */
  maintenance: boolean;
  /** --force-push-images: replace a version tag that points at another index. */
  force: boolean;
  /** An unofficial (rehearsal) build: only its own version tags, never MAJOR or latest (issue 26). */
  unofficial?: boolean;
}

/** The tags of a target for this release, and which of them is immutable (the version). */
export function tagsFor(target: DockerTarget, o: Pick<ImagePlanOptions, 'version' | 'major' | 'maintenance' | 'unofficial'>): { tags: string[]; skipped: Skip[] } {
  const skipped: Skip[] = [];
  const kept = o.unofficial ? target.tags.filter((t) => t.includes('{version}')) : target.tags;
  for (const t of target.tags.filter((x) => !kept.includes(x))) skipped.push({ what: `tag ${target.registry}/${target.repository}:${t.replace('{major}', o.major)}`, reason: `${o.version} is an unofficial (rehearsal) build` });
  const tags = kept.map((t) => t.replace('{version}', o.version).replace('{major}', o.major));
  if (target.latest) {
    if (o.unofficial) skipped.push({ what: `tag ${target.registry}/${target.repository}:latest`, reason: `${o.version} is an unofficial (rehearsal) build` });
    else if (o.maintenance) skipped.push({ what: `tag ${target.registry}/${target.repository}:latest`, reason: 'maintenance release (the main branch has a newer release)' });
    else tags.push('latest');
  }
  return { tags: [...new Set(tags)], skipped };
}

const platformText = (p: Platform) => [p.os, p.architecture, p.variant].filter(Boolean).join('/');

/** The OCI image index of the images, as exact bytes (stable: same images give the same digest).
 *  Each entry's annotations are its image labels; the index carries the labels all images share. */
export function imageIndex(images: LocalImage[]): { body: string; digest: string } {
  const shared = Object.entries(images[0]?.image.labels ?? {}).filter(([k, v]) => images.every((i) => i.image.labels[k] === v));
  const sorted = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const index = {
    schemaVersion: 2,
    mediaType: ociIndexMediaType,
    manifests: images.map(({ image }) => ({
      mediaType: image.mediaType,
      digest: image.digest,
      size: image.size,
      platform: { architecture: image.platform.architecture, os: image.platform.os, ...(image.platform.variant ? { variant: image.platform.variant } : {}) },
      ...(Object.keys(image.labels).length ? { annotations: sorted(image.labels) } : {}),
    })),
    ...(shared.length ? { annotations: sorted(Object.fromEntries(shared)) } : {}),
  };
  const body = JSON.stringify(index);
  return { body, digest: `sha256:${sha256Text(body)}` };
}

/** Plans pushes and index PUTs for every target. Reads only (HEAD manifests by digest and tag). */
export async function planImages(targets: ImageTarget[], images: LocalImage[], o: ImagePlanOptions): Promise<{ steps: Step[]; skipped: Skip[] }> {
  const steps: Step[] = [];
  const skipped: Skip[] = [];
  if (images.length === 0) {
    for (const t of targets) skipped.push({ what: `images to ${t.host}/${t.repository}`, reason: 'the build has no docker images (profile dockerSystems is empty)' });
    return { steps, skipped };
  }
  const platforms = new Map<string, string>();
  for (const i of images) {
    const p = platformText(i.image.platform);
    if (platforms.has(p)) throw new ReleaseError(`the images of ${platforms.get(p)} and ${i.system} are both for ${p}`, 'one image per platform: check the os/architecture in the image configs of the dockerImage jobs');
    platforms.set(p, i.system);
  }
  const index = imageIndex(images);
  for (const t of targets) {
    const ref = `${t.host}/${t.repository}`;
    const pushes: OciPush[] = [];
    for (const { system, image } of images) {
      const there = await t.reader.headManifest(t.repository, image.digest);
      if (there) { skipped.push({ what: `image ${ref}@${image.digest} (${system})`, reason: 'already in the registry' }); continue; }
      pushes.push({ kind: 'oci.push', registry: t.host, repository: t.repository, digest: image.digest, dir: image.dir, system, platform: platformText(image.platform) });
    }
    const { tags, skipped: tagSkips } = tagsFor(t.target, o);
    skipped.push(...tagSkips);
    const puts: OciIndex[] = [];
    for (const tag of tags) {
      const current = await t.reader.headManifest(t.repository, tag);
      if (current?.digest === index.digest) { skipped.push({ what: `tag ${ref}:${tag}`, reason: `already points at this index (${index.digest})` }); continue; }
      if (current && tag === o.version && !o.force) {
        throw new ReleaseError(`${ref}:${tag} already points at ${current.digest}, not at this release's image index ${index.digest}`,
          'a version tag is never moved silently: check what was published under it; pass --force-push-images to replace it');
      }
      puts.push({ kind: 'oci.index', registry: t.host, repository: t.repository, tag, digest: index.digest, mediaType: ociIndexMediaType, body: index.body,
        entries: images.length, reason: current ? { moves: current.digest } : 'new' });
    }
    steps.push({ title: `images to ${ref}`, actions: pushes, concurrency: 2 });
    steps.push({ title: `image index tags on ${ref}`, actions: puts });
  }
  return { steps, skipped };
}

/** The images stage of `upload`: prepares the build's images locally (their digests), then plans every target. */
export async function planUploadImages(ctx: Context, registries: OpenRegistry[], result: BuildResult, maintenance?: boolean): Promise<{ steps: Step[]; skipped: Skip[] }> {
  if (registries.length === 0) return { steps: [], skipped: [] };
  return planImages(registries.map((r) => ({ target: r.target, host: r.host, repository: r.repository, reader: r.client })),
    await prepareBuildImages(result, ctx.releaseDir), {
      version: result.version, major: result.major, force: !!ctx.flags.extra['force-push-images'], unofficial: !!result.rehearsal,
      maintenance: maintenance ?? await isMaintenanceRelease(gitAt(ctx.root), result.version, ctx.config.mainBranch),
    });
}

/** After a copy (promote): every pushed manifest and index tag is there with its planned digest. */
export async function verifyImages(registries: { host: string; repository: string; client: RegistryReader }[], plan: { steps: Step[] }): Promise<void> {
  const targets = registries.map((r) => ({ host: r.host, repository: r.repository, reader: r.client }));
  const bad: string[] = [];
  for (const a of plan.steps.flatMap((s) => s.actions)) {
    if (a.kind !== 'oci.index' && a.kind !== 'oci.push') continue;
    const t = targets.find((x) => x.host === a.registry && x.repository === a.repository);
    if (!t) continue;
    const ref = a.kind === 'oci.index' ? a.tag : a.digest;
    const head = await t.reader.headManifest(a.repository, ref);
    if (head?.digest !== a.digest) bad.push(`${a.registry}/${a.repository}:${ref}: ${head ? head.digest : 'missing'}; expected ${a.digest}`);
  }
  if (bad.length) throw new ReleaseError(`image verification after upload failed:\n${bad.map((b) => `  ${b}`).join('\n')}`, 're-run upload: it re-plans and pushes what is missing');
}
