// Entry point of bin/releng (bundled into dist/lib/releng.mjs): the process's argv and streams into
// the one CLI program (lib/cli/main.ts), its exit status out. Tests run the same main() in-process.
import { setFlagsFromString } from 'node:v8';
import { main } from '../lib/cli/main.ts';

// V8 lets the heap grow to about twice the live data before a full collection: most of a large
// upload's peak RSS was garbage not yet collected (issue 31: a 20,000-page no-op 295 MiB peak at
// 55 MiB live). A growing factor of 1.3 collects sooner: the same no-op peaks at 190 MiB, a first
// upload 265 -> 211 MiB, for 0-9 % more client CPU (bench/RESULTS.md). Set here, for the program
// users run (bin/releng, the Nix package); tests calling main() in-process keep node's default.
setFlagsFromString('--heap-growing-percent=30');

// `releng --help | head`: a closed pipe ends the output, not with a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw e; });
process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
