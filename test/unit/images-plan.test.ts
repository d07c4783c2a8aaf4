// The image planner, with an in-memory registry reader (no server): order, skips, tags, force.
import { describe, expect, it } from 'vitest';
import { renderPlan } from '../../lib/actions/index.ts';
import type { DockerTarget } from '../../lib/config/config.ts';
import type { OciIndex } from '../../lib/oci/actions.ts';
import type { PreparedImage } from '../../lib/oci/image.ts';
import type { ManifestHead } from '../../lib/oci/registry.ts';
import { imageIndex, planImages, tagsFor, type ImageTarget, type LocalImage } from '../../lib/upload/images.ts';

const image = (arch: string, digestChar: string): PreparedImage => ({
  dir: `/r/oci/${arch}`, digest: `sha256:${digestChar.repeat(64)}`, size: 500, mediaType: 'application/vnd.oci.image.manifest.v1+json',
  platform: { os: 'linux', architecture: arch }, labels: { 'org.opencontainers.image.version': '2.93.0', 'org.opencontainers.image.title': `lix ${arch}` },
});
const images: LocalImage[] = [{ system: 'x86_64-linux', image: image('amd64', 'a') }, { system: 'aarch64-linux', image: image('arm64', 'b') }];
const target: DockerTarget = { registry: 'ghcr.io', repository: 'lix-project/lix', tags: ['{version}', '{major}'], latest: true, tlsVerify: true };

function registry(state: Record<string, string> = {}): ImageTarget & { state: Record<string, string> } {
  return {
    target, host: 'ghcr.io', repository: 'lix-project/lix', state,
    reader: { async headManifest(_repo: string, ref: string): Promise<ManifestHead | undefined> {
      const digest = ref.startsWith('sha256:') ? (state[ref] !== undefined ? ref : undefined) : state[ref];
      return digest ? { digest, mediaType: 'x', size: 1 } : undefined;
    } },
  };
}
const opts = { version: '2.93.0', major: '2.93', maintenance: false, force: false };

describe('planImages', () => {
  it('pushes every image by digest, then PUTs the index under each tag (golden)', async () => {
    const plan = await planImages([registry()], images, opts);
    expect(renderPlan({ steps: plan.steps, skipped: plan.skipped })).toBe([
      'images to ghcr.io/lix-project/lix:',
      `  [dry-run] oci push ghcr.io/lix-project/lix@sha256:${'a'.repeat(64)} (x86_64-linux, linux/amd64, untagged)`,
      `  [dry-run] oci push ghcr.io/lix-project/lix@sha256:${'b'.repeat(64)} (aarch64-linux, linux/arm64, untagged)`,
      'image index tags on ghcr.io/lix-project/lix:',
      `  [dry-run] oci index ghcr.io/lix-project/lix:2.93.0 -> ${imageIndex(images).digest} (2 images, new)`,
      `  [dry-run] oci index ghcr.io/lix-project/lix:2.93 -> ${imageIndex(images).digest} (2 images, new)`,
      `  [dry-run] oci index ghcr.io/lix-project/lix:latest -> ${imageIndex(images).digest} (2 images, new)`,
    ].join('\n'));
  });

  it('skips images and tags already published, with reasons; moving tags move', async () => {
    const idx = imageIndex(images).digest;
    const plan = await planImages([registry({ [images[0]!.image.digest]: 'x', '2.93.0': idx, latest: 'sha256:old' })], images, opts);
    const actions = plan.steps.flatMap((s) => s.actions);
    expect(actions.map((a) => (a.kind === 'oci.push' ? a.system : (a as OciIndex).tag))).toEqual(['aarch64-linux', '2.93', 'latest']);
    expect(actions.at(-1)).toMatchObject({ reason: { moves: 'sha256:old' } });
    expect(plan.skipped.map((s) => `${s.what}: ${s.reason}`)).toEqual([
      `image ghcr.io/lix-project/lix@sha256:${'a'.repeat(64)} (x86_64-linux): already in the registry`,
      `tag ghcr.io/lix-project/lix:2.93.0: already points at this index (${idx})`,
    ]);
  });

  it('refuses to move the version tag unless forced', async () => {
    await expect(planImages([registry({ '2.93.0': 'sha256:other' })], images, opts)).rejects.toThrow(/ghcr.io\/lix-project\/lix:2.93.0 already points at sha256:other/);
    const plan = await planImages([registry({ '2.93.0': 'sha256:other' })], images, { ...opts, force: true });
    expect(plan.steps[1]!.actions[0]).toMatchObject({ tag: '2.93.0', reason: { moves: 'sha256:other' } });
  });

  it('a maintenance release does not tag latest, and says so', () => {
    const { tags, skipped } = tagsFor(target, { ...opts, maintenance: true });
    expect(tags).toEqual(['2.93.0', '2.93']);
    expect(skipped[0]!.reason).toMatch(/maintenance release/);
  });

  it('two images for one platform are an error', async () => {
    await expect(planImages([registry()], [images[0]!, { system: 'x86_64-linux-musl', image: image('amd64', 'c') }], opts)).rejects.toThrow(/both for linux\/amd64/);
  });
});

describe('imageIndex', () => {
  it('is an OCI index with platform, size, digest and label annotations (golden)', () => {
    expect(JSON.parse(imageIndex(images).body)).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 500, platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'org.opencontainers.image.title': 'lix amd64', 'org.opencontainers.image.version': '2.93.0' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'b'.repeat(64)}`, size: 500, platform: { architecture: 'arm64', os: 'linux' },
          annotations: { 'org.opencontainers.image.title': 'lix arm64', 'org.opencontainers.image.version': '2.93.0' } },
      ],
      annotations: { 'org.opencontainers.image.version': '2.93.0' },
    });
    expect(imageIndex(images).digest).toBe(imageIndex(structuredClone(images)).digest);
  });
});
