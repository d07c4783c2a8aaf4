// Entry point of bin/releng (bundled into dist/lib/releng.mjs): the process's argv and streams into
// the one CLI program (lib/cli/main.ts), its exit status out. Tests run the same main() in-process.
import { main } from '../lib/cli/main.ts';

// `releng --help | head`: a closed pipe ends the output, not with a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw e; });
process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
