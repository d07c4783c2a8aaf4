// The race of issue 23, proved absent: publishing and promoting into file:// trees, from the sources
// (RELENG_FROM_SOURCE=1 bin/releng, where tsx made the old put() lose the first chunks of a stream
// to a listener attached before its write stream was connected) and from the bundle (node
// dist/lib/releng.mjs, built here by `npm run build`), each while two CPU-bound processes run beside
// it. Afterwards no file in any tree differs from the plan (release/artifacts and SHA256SUMS, the
// FileHash a NAR's name carries, the staged .ls, release/manual), every sidecar records the size
// and sha256 its file has, and `releng verify --deep` passes.
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/project.ts';
import { busyLoops, differencesFromPlan, runReleng, treeFixture, type Runner, type TreeFixture } from '../helpers/trees.ts';

describe('file trees under load hold exactly the planned bytes (issue 23)', () => {
  let f: TreeFixture;
  beforeAll(async () => {
    await execa('npm', ['run', 'build'], { cwd: repoRoot, timeout: 300_000 });
    f = await treeFixture({ bigBytes: 8 * 1024 * 1024, envs: ['direct-source', 'prod-source', 'direct-bundle', 'prod-bundle'] });
  }, 900_000);
  afterAll(async () => { await f?.cleanup(); });

  for (const runner of ['source', 'bundle'] as Runner[]) {
    it(`${runner}: upload straight to a tree and promote staging into another, beside two busy processes`, async () => {
      const load = busyLoops(2);
      let upload, promote;
      try {
        upload = await runReleng(runner, ['upload', '--environment', `direct-${runner}`], f.p.dir, 600_000);
        promote = await runReleng(runner, ['promote', '1.0.0', '--from', 'staging', '--environment', `prod-${runner}`], f.p.dir, 600_000);
      } finally {
        await load.stop();
      }
      expect(upload.code, upload.stderr).toBe(0);
      expect(promote.code, promote.stderr).toBe(0);
      expect(await differencesFromPlan(f, `direct-${runner}`, `direct-${runner}`)).toEqual([]);
      expect(await differencesFromPlan(f, `prod-${runner}`, 'staging')).toEqual([]);
      for (const env of [`direct-${runner}`, `prod-${runner}`]) {
        const deep = await runReleng(runner, ['verify', '--environment', env, '--deep', '--published', '1.0.0'], f.p.dir);
        expect(deep.code, `${env}: ${deep.stderr}`).toBe(0);
      }
    }, 1_500_000);
  }
});
