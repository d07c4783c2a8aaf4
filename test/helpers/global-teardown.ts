// vitest globalSetup: at the end of a run, kill the RGW clusters whose test process died without
// stopping them (a worker SIGKILLed at its timeout runs no exit hook): test/helpers/rgw.ts.
import { reapOrphanClusters } from './rgw.ts';

export function teardown(): void {
  const reaped = reapOrphanClusters();
  if (reaped.length) console.warn(`releng tests: killed ${reaped.length} RGW cluster(s) left by dead test processes: ${reaped.join(', ')}`);
}
