// The V8 heap for large runs (issue 31). V8 lets the old generation grow to about twice the live
// data before a full collection, so most of a large run's peak RSS is garbage awaiting one: a
// 20,000-page no-op upload peaked at 295 MiB with 55 MiB live. A growing factor of 1.3
// (`--heap-growing-percent=30`) collects sooner: measured on the real CLI (bench/RESULTS.md),
// 100,000 pages (300,006 objects) upload 672 -> 508 MiB and no-op 667 -> 467 MiB at the same CPU,
// 20,000 pages upload 351 -> 225 MiB for ~10 % more CPU. On a small run it only costs: a 1,000-path
// cache upload took 20-45 % more client CPU for 15 MiB less. So it is set once a run knows it will
// hold many objects, and left at V8's default otherwise. A process-wide setting, read at each
// collection: it takes effect from the next one.
import { setFlagsFromString } from 'node:v8';

/** Objects (files, store paths) from which a run collects its garbage sooner. */
export const LARGE_RUN_OBJECTS = 10_000;

let collectingSooner = false;

/** Sets the heap growing factor to 1.3 for the rest of the process when `objects` reaches LARGE_RUN_OBJECTS. */
export function collectSoonerIfLarge(objects: number): void {
  if (collectingSooner || objects < LARGE_RUN_OBJECTS) return;
  setFlagsFromString('--heap-growing-percent=30');
  collectingSooner = true;
}
