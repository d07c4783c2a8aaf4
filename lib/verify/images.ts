// Container images: every tag this release owns resolves to the release's image index, the index
// is what its digest says, and every child manifest and blob it names is in the registry (--deep:
// every blob's bytes hash to the digest its manifest names it by).
import { sha256Text } from '../hashing/checksums.ts';
import { tagsFor } from '../upload/images.ts';
import { count, emptyReport, type DestinationVerifier } from './types.ts';

export const imagesVerifier: DestinationVerifier = {
  name: 'images',
  async verify(t, release, scope) {
    const report = emptyReport();
    for (const r of t.registries) {
      const ref = `${r.host}/${r.repository}`;
      const problem = (where: string, what: string, repair = scope.repair) => report.problems.push({ destination: this.name, where, what, repair });
      // The version tag is immutable; moving tags ({major}, latest) are this release's only when it
      // is what users follow (not a maintenance or partial release: then they may point elsewhere).
      const all = tagsFor(r.target, { version: release.version, major: release.major, maintenance: !!release.keep, unofficial: !!release.rehearsal }).tags;
      const tags = all.filter((tag) => tag === release.version || !release.keep);
      if (tags.length < all.length) report.notChecked.push({ destination: this.name, what: `${ref}:${all.filter((x) => !tags.includes(x)).join(',')}`, reason: release.keep! });
      let index = release.imageIndex;
      const heads = await Promise.all(tags.map((tag) => scope.limit(() => r.client.headManifest(r.repository, tag))));
      count(report, 'tags', tags.length);
      if (!index) index = heads[tags.indexOf(release.version)]?.digest;
      tags.forEach((tag, i) => {
        const h = heads[i];
        if (!h) problem(`${ref}:${tag}`, `missing${index ? ` (expected ${index})` : ''}`);
        else if (index && h.digest !== index) {
          problem(`${ref}:${tag}`, `points at ${h.digest}, expected this release's image index ${index}`,
            tag === release.version ? `${scope.repair} --force-push-images (only if ${h.digest} was never announced)` : scope.repair);
        }
      });
      if (!index) continue;
      const got = await scope.limit(() => r.client.getManifest(r.repository, index!));
      count(report, 'manifests');
      if (!got) { problem(`${ref}@${index}`, 'the image index is missing'); continue; }
      if (`sha256:${sha256Text(got.body)}` !== index) { problem(`${ref}@${index}`, `the registry serves an index whose bytes hash to sha256:${sha256Text(got.body)}`); continue; }
      let children: { digest: string; size?: number }[] = [];
      try { children = JSON.parse(got.body.toString('utf8')).manifests ?? []; } catch { problem(`${ref}@${index}`, 'the image index is not JSON'); continue; }
      if (children.length === 0) problem(`${ref}@${index}`, 'the image index lists no images');
      await Promise.all(children.map(async (c) => {
        const m = await scope.limit(() => r.client.getManifest(r.repository, c.digest));
        count(report, 'manifests');
        if (!m) { problem(`${ref}@${c.digest}`, `missing: an image of index ${index}`); return; }
        if (`sha256:${sha256Text(m.body)}` !== c.digest) { problem(`${ref}@${c.digest}`, `the registry serves a manifest hashing to sha256:${sha256Text(m.body)}`); return; }
        let blobs: { digest: string; size: number }[] = [];
        try {
          const json = JSON.parse(m.body.toString('utf8'));
          blobs = [json.config, ...(json.layers ?? [])].filter(Boolean);
        } catch { problem(`${ref}@${c.digest}`, 'the image manifest is not JSON'); return; }
        await Promise.all(blobs.map(async (b) => {
          const size = await scope.limit(() => r.client.headBlob(r.repository, b.digest));
          count(report, 'blobs');
          if (size === undefined) { problem(`${ref}@${b.digest}`, `missing: a blob of image ${c.digest}`); return; }
          if (typeof b.size === 'number' && size !== b.size) problem(`${ref}@${b.digest}`, `size ${size}, the manifest says ${b.size}`);
          if (!scope.deep) return;
          // --deep: the bytes themselves, against the digest the manifest names them by.
          const got = await scope.limit(() => r.client.blobSha256(r.repository, b.digest));
          count(report, 'blobs hashed');
          count(report, 'bytes read', got?.size ?? 0);
          if (!got) problem(`${ref}@${b.digest}`, `missing (HEAD saw it, GET did not): a blob of image ${c.digest}`);
          else if (!b.digest.startsWith('sha256:')) report.notChecked.push({ destination: this.name, what: `${ref}@${b.digest}`, reason: 'not a sha256 digest' });
          else if (`sha256:${got.sha256}` !== b.digest) {
            problem(`${ref}@${b.digest}`, `content sha256:${got.sha256} (${got.size} bytes) is not the digest image ${c.digest} names it by`,
              `delete the blob ${b.digest} from ${ref} (its bytes are corrupt), then ${scope.repair} --force-push-images`);
          }
        }));
      }));
    }
    return report;
  },
};
