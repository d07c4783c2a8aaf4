// Runs a releng command line in-process, as scripts/releng.ts would (flags, --json, exit code), for
// tests that run many commands: a new tsx process per run costs seconds on a loaded machine.
// Environment variables are set for the run and restored after (tests in a file run one by one).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { commandNamed, globalFlags } from '../../lib/commands.ts';
import { loadConfig } from '../../lib/config.ts';
import { makeContext } from '../../lib/context.ts';
import { describeError, UsageError } from '../../lib/errors.ts';
import { createLogger } from '../../lib/log.ts';
import { redact } from '../../lib/secrets.ts';
import type { CliResult } from './cli.ts';

export async function runCommand(args: string[], opts: { cwd: string; env?: Record<string, string | undefined> }): Promise<CliResult> {
  let stderr = '';
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(opts.env ?? {})) { saved[k] = process.env[k]; if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  const stream = { write: (s: string) => { stderr += s; return true; }, isTTY: false } as unknown as NodeJS.WritableStream;
  const log = createLogger({ plain: true, stream });
  const command = commandNamed(args[0]!)!;
  let json = false;
  try {
    const defs = [...globalFlags, ...command.flags];
    const parsed = parseArgs({ args: args.slice(1), options: Object.fromEntries(defs.map((f) => [f.name, { type: f.type }])) as any, allowPositionals: true, strict: true });
    const v = parsed.values as Record<string, string | boolean | undefined>;
    json = !!v.json;
    const known = new Set(['config', 'environment', 'dry-run', 'json', 'noconfirm', 'verbose', 'help', 'no-check-git', 'profile']);
    const extra = Object.fromEntries(Object.entries(v).filter(([k]) => !known.has(k)));
    const flags = { dryRun: !!v['dry-run'], json, noconfirm: true, verbose: false, noCheckGit: false, environment: v.environment as string | undefined, extra };
    const file = path.join(opts.cwd, 'releng.json');
    const version = { version: '', major: '', official: false, releaseName: '', file: '' };
    const loaded = command.needsConfig === false && !existsSync(file) ? { config: undefined as never, file, root: opts.cwd } : await loadConfig(file);
    const result = await command.run(makeContext(loaded, version, flags, log), parsed.positionals);
    return { code: 0, stdout: json ? redact(JSON.stringify({ ok: true, command: command.name, result })) : '', stderr: redact(stderr) };
  } catch (e) {
    stderr += `error: ${describeError(e)}\n`;
    return { code: e instanceof UsageError ? 2 : 1, stdout: json ? JSON.stringify({ ok: false, error: describeError(e) }) : '', stderr: redact(stderr) };
  } finally {
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  }
}
