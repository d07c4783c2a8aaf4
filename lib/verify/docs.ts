// The manual in the docs bucket: under MAJOR/ (and stable/ when this release moved it, or nightly/
// for an unofficial build) exactly the files of the release's manual/ — the same files SHA256SUMS
// lists under manual/ in the release prefix — with the same sha256, and nothing else.
import { manualPrefixes } from '../upload/docs.ts';
import { checkObject, metadataNote } from './objects.ts';
import { count, emptyReport, type DestinationVerifier } from './types.ts';

export const docsVerifier: DestinationVerifier = {
  name: 'docs',
  async verify(t, release, scope) {
    const report = emptyReport();
    const manual = [...release.files].filter(([rel]) => rel.startsWith('manual/')).map(([rel, e]) => [rel.slice('manual/'.length), e] as const);
    if (manual.length === 0) {
      report.notChecked.push({ destination: this.name, what: `s3://${t.docs.bucket}/${t.docs.prefix}`, reason: 'the release has no manual/ files' });
      return report;
    }
    const prefixes = manualPrefixes({ project: release.project, major: release.major, official: release.official } as any, release.keep);
    if (release.keep && release.official) report.notChecked.push({ destination: this.name, what: `s3://${t.docs.bucket}/${t.docs.prefix}manual/${release.project}/stable/`, reason: release.keep });
    for (const p of prefixes) {
      const prefix = t.docs.prefix + p;
      const listing = await scope.limit(() => (scope.list ?? t.s3.list.bind(t.s3))(t.docs.bucket, prefix));
      count(report, 'listed', listing.length);
      const wanted = new Set(manual.map(([rel]) => prefix + rel));
      const listed = new Map(listing.map((o) => [o.key, o]));
      scope.progress.addTotal(manual.length);
      await Promise.all(manual.map(([rel, expected]) => checkObject(t, scope, { destination: this.name, bucket: t.docs.bucket, key: prefix + rel, expected, listed: listed.get(prefix + rel) }, report)));
      for (const o of listing) {
        if (wanted.has(o.key)) continue;
        report.problems.push({ destination: this.name, where: `s3://${t.docs.bucket}/${o.key}`, what: 'not a page of this release\'s manual (stale)', repair: scope.repairStale ?? `${scope.repair} (it deletes stale pages)`, bucket: t.docs.bucket, key: o.key });
      }
    }
    metadataNote(report, this.name, `s3://${t.docs.bucket}/${t.docs.prefix}manual/${release.project}/`);
    return report;
  },
};
