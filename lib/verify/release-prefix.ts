// The release prefix (PROJECT/PROJECT-VERSION/): every file SHA256SUMS lists is there with its size
// and sha256, and nothing else is. SHA256SUMS and manifest.nix are always downloaded and hashed.
// Listed once (upload hands in its plan's listing when it wrote nothing under the prefix since).
import { checkObject, metadataNote } from './objects.ts';
import { count, emptyReport, type DestinationVerifier } from './types.ts';

export const releasePrefixVerifier: DestinationVerifier = {
  name: 'release prefix',
  async verify(t, release, scope) {
    const report = emptyReport();
    const prefix = `${t.releases.prefix}${release.releaseDir}/`;
    const listing = await scope.limit(() => (scope.list ?? t.s3.list.bind(t.s3))(t.releases.bucket, prefix));
    const listed = new Map(listing.map((o) => [o.key, o]));
    scope.progress.addTotal(release.files.size);
    await Promise.all([...release.files].map(([rel, expected]) => checkObject(t, scope, {
      destination: this.name, bucket: t.releases.bucket, key: prefix + rel, expected,
      always: rel === 'SHA256SUMS' || rel === 'manifest.nix', listed: listed.get(prefix + rel),
    }, report)));
    for (const o of listing) {
      const rel = o.key.slice(prefix.length);
      if (release.files.has(rel)) continue;
      report.problems.push({
        destination: this.name, where: `s3://${t.releases.bucket}/${o.key}`, what: `not part of the release (SHA256SUMS does not list it; ${o.size} bytes)`,
        repair: `delete it (the release prefix holds exactly what SHA256SUMS lists), e.g. aws s3 rm s3://${t.releases.bucket}/${o.key}`, bucket: t.releases.bucket, key: o.key,
      });
    }
    count(report, 'listed', listing.length);
    metadataNote(report, this.name, `s3://${t.releases.bucket}/${prefix}`);
    return report;
  },
};
