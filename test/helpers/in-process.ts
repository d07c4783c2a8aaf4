// The Context lib/cli/main.ts would build in `dir` (releng.json + version.json, through its own
// contextFor), for tests that call a phase with injected adapters (faults, fakes of Hydra). Command
// lines go through the real program instead: test/helpers/cli.ts (releng, relengInProcess).
import path from 'node:path';
import { Writable } from 'node:stream';
import { commandNamed } from '../../lib/cli/commands.ts';
import { contextFor } from '../../lib/cli/main.ts';
import type { Context, Flags } from '../../lib/config/context.ts';
import { createLogger } from '../../lib/cli/log.ts';

/** The Context of command `command` in `dir`, with `flags` over the defaults, logging into `sink`. */
export async function contextIn(dir: string, flags: Partial<Flags> = {}, sink: (s: string) => void = () => {}, command = 'upload'): Promise<Context> {
  const stream = Object.assign(new Writable({ write(c, _e, done) { sink(String(c)); done(); } }), { isTTY: false });
  const log = createLogger({ plain: true, stream });
  const all: Flags = { dryRun: false, json: false, noconfirm: true, verbose: false, noCheckGit: false, extra: {}, ...flags };
  return contextFor({ command: commandNamed(command)!, positionals: [], flags: all, configFlag: path.join(dir, 'releng.json') }, log, { stdout: stream, cwd: dir });
}
