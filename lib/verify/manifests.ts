// manifest.nix, root and release: Nix itself evaluates what is published (nix-instantiate --eval,
// as `nix upgrade-nix` would read it) and it must name exactly the release's store paths.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readManifestWithNix } from '../nix/manifest.ts';
import { readAll } from './objects.ts';
import { checkObject } from './objects.ts';
import { count, emptyReport, type DestinationReport, type DestinationVerifier, type ResolvedRelease, type VerifyScope, type VerifyTarget } from './types.ts';

/** Downloads KEY and evaluates it with Nix; a string describing the failure otherwise. */
export async function evaluatePublishedManifest(t: VerifyTarget, scope: VerifyScope, key: string): Promise<Record<string, string> | string> {
  const stream = await scope.limit(() => t.s3.getStream(t.releases.bucket, key));
  if (!stream) return 'missing';
  const file = path.join(scope.tmpDir, `${key.replace(/[^A-Za-z0-9.-]/g, '_')}`);
  await writeFile(file, await readAll(stream));
  try {
    // The evaluation is memoised by the bytes (lib/nix/manifest.ts); the download above is never skipped.
    const value = await readManifestWithNix(file, { memoDir: path.join(t.root, '.releng', 'upload-state') });
    const bad = Object.entries(value).filter(([, v]) => typeof v !== 'string' || !/^\/nix\/store\/[0-9a-z]{32}-[^/]+$/.test(v));
    if (bad.length) return `does not map systems to store paths (${bad.map(([k]) => k).join(', ')})`;
    return value;
  } catch (e) {
    return `does not evaluate with nix-instantiate --eval: ${(e as Error).message.split('\n').slice(-3).join(' ').slice(0, 300)}`;
  }
}

function compare(got: Record<string, string>, want: Record<string, string>): string | undefined {
  const systems = [...new Set([...Object.keys(got), ...Object.keys(want)])].sort();
  const diffs = systems.filter((s) => got[s] !== want[s]).map((s) => `${s}: ${got[s] ?? 'absent'}, expected ${want[s] ?? 'absent'}`);
  return diffs.length ? `evaluates to other store paths (${diffs.join('; ')})` : undefined;
}

async function checkManifest(t: VerifyTarget, scope: VerifyScope, release: ResolvedRelease, key: string, report: DestinationReport, destination: string): Promise<void> {
  const value = await evaluatePublishedManifest(t, scope, key);
  count(report, 'manifests evaluated');
  const where = `s3://${t.releases.bucket}/${key}`;
  const what = typeof value === 'string' ? value : compare(value, release.manifest);
  if (what) report.problems.push({ destination, where, what, repair: scope.repair, bucket: t.releases.bucket, key });
}

export const manifestVerifier: DestinationVerifier = {
  name: 'manifest',
  async verify(t, release, scope) {
    const report = emptyReport();
    const rootKey = `${t.releases.prefix}manifest.nix`;
    if (release.keep) {
      await checkManifest(t, scope, release, `${t.releases.prefix}${release.releaseDir}/manifest.nix`, report, this.name);
      report.notChecked.push({ destination: 'root manifest', what: `s3://${t.releases.bucket}/${rootKey}`, reason: release.keep });
      return report;
    }
    // The root object is the release's manifest.nix byte for byte, and evaluates to its paths.
    // The three reads run at the same time (equal bytes are evaluated once: lib/nix/manifest.ts);
    // their findings are listed in this order whatever finishes first.
    const expected = release.files.get('manifest.nix')!;
    scope.progress.addTotal(1);
    const parts = [emptyReport(), emptyReport(), emptyReport()];
    await Promise.all([
      checkManifest(t, scope, release, `${t.releases.prefix}${release.releaseDir}/manifest.nix`, parts[0], this.name),
      checkObject(t, scope, { destination: 'root manifest', bucket: t.releases.bucket, key: rootKey, expected, always: true }, parts[1]),
      checkManifest(t, scope, release, rootKey, parts[2], 'root manifest'),
    ]);
    for (const part of parts) {
      report.problems.push(...part.problems);
      report.notChecked.push(...part.notChecked);
      for (const [what, n] of Object.entries(part.checked)) count(report, what, n);
    }
    return report;
  },
};
