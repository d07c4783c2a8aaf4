// Runs a command in-process (as scripts/releng.ts does, without a new tsx process per run), for
// tests that run a command many times; errors come back as the text the entry script would print.
import path from 'node:path';
import { commandNamed } from '../../lib/commands.ts';
import { loadConfig } from '../../lib/config.ts';
import { makeContext, type Context, type Flags } from '../../lib/context.ts';
import { describeError } from '../../lib/errors.ts';
import { createLogger } from '../../lib/log.ts';
import { loadVersion } from '../../lib/version.ts';

export interface InProcessResult { ok: boolean; result?: unknown; error?: string; log: string }

/** The Context the entry script would build in `dir` (releng.json + version.json), logging into `sink`. */
export async function contextIn(dir: string, flags: Partial<Flags> = {}, sink: (s: string) => void = () => {}): Promise<Context> {
  const stream = { write: (s: string) => { sink(s); return true; }, isTTY: false } as unknown as NodeJS.WritableStream;
  const logger = createLogger({ plain: true, stream });
  const loaded = await loadConfig(path.join(dir, 'releng.json'));
  const version = await loadVersion(loaded.root, loaded.config.versionFile);
  return makeContext(loaded, version, { dryRun: false, json: false, noconfirm: true, verbose: false, noCheckGit: false, extra: {}, ...flags }, logger);
}

export async function runInProcess(dir: string, command: string, flags: Partial<Flags> = {}): Promise<InProcessResult> {
  let log = '';
  try {
    const ctx = await contextIn(dir, flags, (s) => { log += s; });
    const result = await commandNamed(command)!.run(ctx, []);
    return { ok: true, result, log };
  } catch (e) {
    return { ok: false, error: describeError(e), log };
  }
}
