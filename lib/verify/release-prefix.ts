// The release prefix (PROJECT/PROJECT-VERSION/): every file SHA256SUMS lists is there with its size
// and sha256, and nothing else is. SHA256SUMS and manifest.nix are always downloaded and hashed.
// Listed once (upload hands in its plan's listing when it wrote nothing under the prefix since).
import { forEachLimited } from '../core/each.ts';
import { checkObject, CHECKS_IN_FLIGHT, metadataNote } from './objects.ts';
import { count, emptyReport, listForVerify, type DestinationVerifier } from './types.ts';

export const releasePrefixVerifier: DestinationVerifier = {
  name: 'release prefix',
  async verify(t, release, scope) {
    const report = emptyReport();
    const prefix = `${t.releases.prefix}${release.releaseDir}/`;
    const listing = await listForVerify(t, scope, t.releases.bucket, prefix);
    const listed = listing.lookup();
    scope.progress.addTotal(release.files.size);
    // Workers over the files, not a promise per file (issue 31); requests stay bounded by scope.limit.
    await forEachLimited(release.files, CHECKS_IN_FLIGHT, ([rel, expected]) => {
      const key = prefix + rel;
      return checkObject(t, scope, {
        destination: this.name, bucket: t.releases.bucket, key, expected,
        always: rel === 'SHA256SUMS' || rel === 'manifest.nix', listed: listed.claim(key),
      }, report);
    });
    for (const o of listed.unclaimed()) {
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
