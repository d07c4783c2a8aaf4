// A process that starts an RGW cluster through test/helpers/rgw.ts, prints its dir and daemon pids
// as one JSON line, and waits (bounded) to be killed: test/integration/rgw-leak.test.ts kills it.
import { clusterPids, startTestRgw } from './rgw.ts';

const rgw = await startTestRgw();
process.stdout.write(JSON.stringify({ dir: rgw.dir, pids: clusterPids(rgw.dir) }) + '\n');
// Never stops the cluster itself: only the exit hook or the reaper may. Gives up after 5 minutes.
setTimeout(() => process.exit(3), 300_000);
