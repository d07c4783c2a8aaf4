// The manual in the docs bucket: under MAJOR/ (and stable/ when this release moved it, or nightly/
// for an unofficial build) exactly the files of the release's manual/ — the same files SHA256SUMS
// lists under manual/ in the release prefix — with the same sha256, and nothing else.
import { manualPrefixes } from '../upload/docs.ts';
import { forEachLimited } from '../core/each.ts';
import { checkObject, CHECKS_IN_FLIGHT, metadataNote } from './objects.ts';
import { count, emptyReport, listForVerify, type DestinationVerifier } from './types.ts';

export const docsVerifier: DestinationVerifier = {
  name: 'docs',
  async verify(t, release, scope) {
    const report = emptyReport();
    // The manual's files, read from release.files as they are needed (no array of them: issue 31).
    const manual = function* () { for (const [rel, e] of release.files) if (rel.startsWith('manual/')) yield [rel.slice('manual/'.length), e] as const; };
    let pages = 0;
    for (const _ of manual()) pages++;
    if (pages === 0) {
      report.notChecked.push({ destination: this.name, what: `s3://${t.docs.bucket}/${t.docs.prefix}`, reason: 'the release has no manual/ files' });
      return report;
    }
    const prefixes = manualPrefixes({ project: release.project, major: release.major, official: release.official } as any, release.keep);
    if (release.keep && release.official) report.notChecked.push({ destination: this.name, what: `s3://${t.docs.bucket}/${t.docs.prefix}manual/${release.project}/stable/`, reason: release.keep });
    for (const p of prefixes) {
      const prefix = t.docs.prefix + p;
      const listing = await listForVerify(t, scope, t.docs.bucket, prefix);
      count(report, 'listed', listing.length);
      // A listed key a page claims is claimed: what is left is no page of this manual.
      const listed = listing.lookup();
      scope.progress.addTotal(pages);
      await forEachLimited(manual(), CHECKS_IN_FLIGHT, ([rel, expected]) => {
        const key = prefix + rel;
        return checkObject(t, scope, { destination: this.name, bucket: t.docs.bucket, key, expected, listed: listed.claim(key) }, report);
      });
      for (const o of listed.unclaimed()) {
        report.problems.push({ destination: this.name, where: `s3://${t.docs.bucket}/${o.key}`, what: 'not a page of this release\'s manual (stale)', repair: scope.repairStale ?? `${scope.repair} (it deletes stale pages)`, bucket: t.docs.bucket, key: o.key });
      }
    }
    metadataNote(report, this.name, `s3://${t.docs.bucket}/${t.docs.prefix}manual/${release.project}/`);
    return report;
  },
};
