// vitest globalSetup. Before the run: the bundle the integration tests run (dist/lib/releng.mjs) is
// brought up to date the way a checkout's bin/releng does it (rebuilt when the sources are newer),
// so `npx vitest run` alone never tests an old bundle. After the run: kill the RGW clusters whose
// test process died without stopping them (a worker SIGKILLed at its timeout runs no exit hook):
// test/helpers/rgw.ts.
import { execFileSync } from 'node:child_process';
import { relengBin } from './project.ts';
import { reapOrphanClusters } from './rgw.ts';

export function setup(): void {
  const env = { ...process.env };
  delete env.RELENG_FROM_SOURCE;
  execFileSync(relengBin, ['--version'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
}

export function teardown(): void {
  const reaped = reapOrphanClusters();
  if (reaped.length) console.warn(`releng tests: killed ${reaped.length} RGW cluster(s) left by dead test processes: ${reaped.join(', ')}`);
}
