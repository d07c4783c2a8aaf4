// Plans the images of a promote: for every docker target of the destination, the source target of
// the same repository (else the same position) is read; every platform manifest of the release's
// index is copied by digest (skopeo --preserve-digests: the bytes, hence the digests, stay), then the
// index is PUT under the version tag, and only then — with what users follow — the {major} and
// `latest` tags (never when the destination's root manifest stays, issue 11). Reads only.
import type { Skip, Step as CoreStep } from '../core/plan.ts';
import type { OciAction } from '../oci/actions.ts';
import { ReleaseError } from '../core/errors.ts';
import type { OciCopy, OciIndex } from '../oci/actions.ts';
import type { OpenRegistry } from '../oci/open.ts';
import { tagsFor } from '../upload/images.ts';
type Step = CoreStep<OciAction>;

export interface ImagePromoteOptions {
  version: string;
  major: string;
  /** Whether the major and latest tags move (the release moved what users follow). */
  movesPointers: boolean;
  force: boolean;
}

export async function planPromoteImages(source: OpenRegistry[], dest: OpenRegistry[], o: ImagePromoteOptions): Promise<{ steps: Step[]; pointerSteps: Step[]; skipped: Skip[] }> {
  const steps: Step[] = [];
  const pointerSteps: Step[] = [];
  const skipped: Skip[] = [];
  for (const [i, d] of dest.entries()) {
    const s = source.find((x) => x.repository === d.repository) ?? source[i];
    const ref = `${d.host}/${d.repository}`;
    if (!s) { skipped.push({ what: `images to ${ref}`, reason: 'the source environment has no docker target to copy from' }); continue; }
    const got = await s.client.getManifest(s.repository, o.version);
    if (!got) throw new ReleaseError(`${s.host}/${s.repository}:${o.version} is not in the source registry`, 'upload the release with its images to the source environment first; nothing was copied');
    const index = JSON.parse(got.body.toString('utf8'));
    const children: { digest: string; platform?: { os: string; architecture: string } }[] = index.manifests ?? [];
    if (!Array.isArray(index.manifests)) throw new ReleaseError(`${s.host}/${s.repository}:${o.version} is not an image index`, 'promote copies the multi-platform index releng uploads');
    const copies: OciCopy[] = [];
    for (const c of children) {
      if (await d.client.headManifest(d.repository, c.digest)) { skipped.push({ what: `image ${ref}@${c.digest}`, reason: 'already in the registry' }); continue; }
      copies.push({ kind: 'oci.copy', fromRegistry: s.host, fromRepository: s.repository, registry: d.host, repository: d.repository, digest: c.digest, platform: c.platform ? `${c.platform.os}/${c.platform.architecture}` : 'unknown' });
    }
    const { tags, skipped: tagSkips } = tagsFor(d.target, { version: o.version, major: o.major, maintenance: !o.movesPointers });
    skipped.push(...tagSkips);
    const body = got.body.toString('utf8');
    const now: OciIndex[] = [];
    const later: OciIndex[] = [];
    for (const tag of tags) {
      const current = await d.client.headManifest(d.repository, tag);
      if (current?.digest === got.head.digest) { skipped.push({ what: `tag ${ref}:${tag}`, reason: `already points at this index (${got.head.digest})` }); continue; }
      if (current && tag === o.version && !o.force) {
        throw new ReleaseError(`${ref}:${tag} already points at ${current.digest}, not at ${o.version}'s index ${got.head.digest} in the source`, 'a version tag is never moved silently; pass --force-push-images to replace it; nothing was copied');
      }
      const put: OciIndex = { kind: 'oci.index', registry: d.host, repository: d.repository, tag, digest: got.head.digest, mediaType: got.head.mediaType, body, entries: children.length, reason: current ? { moves: current.digest } : 'new' };
      if (tag === o.version) now.push(put);
      else if (o.movesPointers) later.push(put);
      else skipped.push({ what: `tag ${ref}:${tag}`, reason: 'the destination keeps what users follow (see the root manifest.nix skip)' });
    }
    steps.push({ title: `images to ${ref}`, actions: copies, concurrency: 2 });
    steps.push({ title: `image index ${ref}:${o.version}`, actions: now });
    pointerSteps.push({ title: `image tags users follow on ${ref}`, actions: later });
  }
  return { steps, pointerSteps, skipped };
}
