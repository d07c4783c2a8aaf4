// Release tests (issue 26): derivations a profile names (Lix's flake: releaseTests.SYSTEM.nativeBuild,
// staticBuild, crossBuild; releng/release-tests.sh builds them all) that `build` realises after the
// release jobs. A failure stops the build before release/ is laid out, so nothing can be uploaded.
import path from 'node:path';
import { ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import { nixFeatureArgs } from './eval.ts';

export interface ReleaseTest { attr: string; drvPath: string; outPath: string }

/** Evaluates each test attribute (a flake reference, `.#releaseTests.x86_64-linux.nativeBuild`) to its derivation. */
export async function evalReleaseTests(attrs: string[], cwd: string, profileName: string): Promise<ReleaseTest[]> {
  const tests: ReleaseTest[] = [];
  const problems: string[] = [];
  for (const attr of attrs) {
    try {
      const { stdout } = await run('nix', [...nixFeatureArgs, 'eval', '--json', '--impure', attr, '--apply', 'd: { drv = d.drvPath; out = d.outPath; }'], { cwd });
      const j = JSON.parse(stdout) as { drv: string; out: string };
      if (typeof j?.drv !== 'string' || !j.drv.endsWith('.drv')) throw new Error(`error: not a derivation`);
      tests.push({ attr, drvPath: j.drv, outPath: j.out });
    } catch (e) {
      problems.push(`${attr}: ${(e as Error).message.split('\n').filter((l) => /error/i.test(l)).slice(0, 2).join(' ') || (e as Error).message.split('\n')[0]}`);
    }
  }
  if (problems.length) {
    throw new ReleaseError(`release tests of profile "${profileName}" do not evaluate:\n${problems.map((p) => `  ${p}`).join('\n')}`,
      `fix profiles.${profileName}.releaseTests in releng.json (flake attributes of derivations, e.g. .#releaseTests.x86_64-linux.nativeBuild); nothing was laid out`);
  }
  return tests;
}

/** Realises every test (each on its own, so every failure is named), rooted under gcrootDir. */
export async function runReleaseTests(tests: ReleaseTest[], gcrootDir: string, cwd: string, nixArgs: string[]): Promise<void> {
  const failed: string[] = [];
  for (const [i, t] of tests.entries()) {
    try {
      await run('nix-store', ['--realise', ...nixArgs, t.drvPath, '--add-root', path.join(gcrootDir, `release-test-${i + 1}`), '--indirect'], { cwd });
    } catch (e) {
      const lines = (e as Error).message.split('\n').filter((l) => l.trim());
      failed.push(`${t.attr} (${t.drvPath}):\n      ${lines.slice(-4).join('\n      ')}`);
    }
  }
  if (failed.length) {
    throw new ReleaseError(`${failed.length} release test${failed.length === 1 ? '' : 's'} failed; the release stops here (release/ was not laid out, nothing can be uploaded):\n${failed.map((f) => `  ${f}`).join('\n')}`,
      'fix what the test found (nix log DRV shows the whole log), commit, and build again');
  }
}
