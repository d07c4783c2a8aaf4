// Entry point: parse argv, build the context, run the command, print errors, set the exit code.
// Exit 0 success, 1 failure, 2 usage error, 3/4 nothing to do (NothingToDo: already published /
// would go back in time), 5 not ready yet (build --from-hydra: a job unfinished). Only this file prints errors.
import { parseArgs } from 'node:util';
import { commandHelp, commandNamed, globalFlags, mainHelp, releasePhases, type CommandDef } from '../lib/commands.ts';
import { configPath, environmentNamed, loadConfig } from '../lib/config.ts';
import { confirmationRequired, isUnattended, unattendedError } from '../lib/confirm.ts';
import { makeContext, type Context, type Flags } from '../lib/context.ts';
import { environmentName } from '../lib/environment.ts';
import { describeError, DryRunStop, NothingToDo, ReleaseError, UsageError } from '../lib/errors.ts';
import { createLogger, type Logger } from '../lib/log.ts';
import { redact } from '../lib/secrets.ts';
import { loadVersion, type VersionInfo } from '../lib/version.ts';

interface Parsed {
  command: CommandDef;
  positionals: string[];
  flags: Flags;
  configFlag?: string;
  help: boolean;
}

function parse(argv: string[]): Parsed | { help: true; command?: undefined } {
  const name = argv[0];
  if (!name || name === '--help' || name === '-h' || name === 'help') return { help: true };
  const command = commandNamed(name);
  if (!command) throw new UsageError(`unknown command "${name}"; run \`releng --help\` for the list`);
  const defs = [...globalFlags, ...command.flags];
  const options = Object.fromEntries(defs.map((f) => [f.name, { type: f.type }])) as Record<string, { type: 'boolean' | 'string' }>;
  let parsed;
  try {
    parsed = parseArgs({ args: argv.slice(1), options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.replace(/\. To specify.*$/s, '')} (see \`releng ${name} --help\`)`);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const known = new Set(['config', 'environment', 'dry-run', 'json', 'noconfirm', 'verbose', 'help', 'no-check-git', 'profile']);
  const extra: Flags['extra'] = {};
  for (const [k, val] of Object.entries(v)) if (!known.has(k)) extra[k] = val;
  return {
    command,
    positionals: parsed.positionals,
    configFlag: v.config as string | undefined,
    help: !!v.help,
    flags: {
      dryRun: !!v['dry-run'], json: !!v.json, noconfirm: !!v.noconfirm, verbose: !!v.verbose,
      noCheckGit: !!v['no-check-git'], environment: v.environment as string | undefined,
      profile: v.profile as string | undefined, extra,
    },
  };
}

async function contextFor(p: Parsed, log: Logger): Promise<Context> {
  const loaded = await loadConfig(configPath(p.configFlag));
  const version: VersionInfo = p.command.needsVersion
    ? await loadVersion(loaded.root, loaded.config.versionFile)
    : { version: '', major: '', official: false, releaseName: '', file: '' };
  return makeContext(loaded, version, p.flags, log);
}

async function runCommand(p: Parsed, log: Logger): Promise<unknown> {
  if (p.command.name !== 'release') {
    return p.command.run(await contextFor(p, log), p.positionals);
  }
  // release under CI or Hydra: refuse before prepare and tag change anything, unless --noconfirm
  // was given explicitly for an environment that asks for confirmation (issue 4).
  const first = await contextFor(p, log);
  const target = environmentName(first);
  if (confirmationRequired(target, environmentNamed(first.loaded, target)) && !p.flags.noconfirm && !p.flags.dryRun && isUnattended()) {
    throw unattendedError(target);
  }
  // release: each phase gets a fresh context, since tag rewrites version.json.
  const results: Record<string, unknown> = {};
  for (const name of releasePhases) {
    const phase = commandNamed(name)!;
    log.info(log.colour('cyan', `── ${name} ──`));
    const ctx = await contextFor({ ...p, command: phase }, log);
    try {
      results[name] = await phase.run(ctx, p.positionals);
    } catch (e) {
      if (e instanceof DryRunStop) {
        log.info(`[dry-run] later phases need ${name}'s output; stopping the dry run here`);
        return results;
      }
      throw e;
    }
  }
  return results;
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    process.stderr.write(`releng: ${describeError(e)}\n`);
    return 2;
  }
  if (!parsed.command) { process.stdout.write(mainHelp() + '\n'); return 0; }
  const p = parsed as Parsed;
  if (p.help) { process.stdout.write(commandHelp(p.command) + '\n'); return 0; }
  const log = createLogger({ verbose: p.flags.verbose });
  try {
    const result = await runCommand(p, log);
    if (p.flags.json) process.stdout.write(redact(JSON.stringify({ ok: true, command: p.command.name, result }, null, 2)) + '\n');
    return 0;
  } catch (e) {
    if (e instanceof DryRunStop) {
      if (p.flags.json) process.stdout.write(JSON.stringify({ ok: true, command: p.command.name, dryRun: true }) + '\n');
      return 0;
    }
    if (e instanceof NothingToDo) {
      log.info(redact(describeError(e)));
      if (p.flags.json) process.stdout.write(redact(JSON.stringify({ ok: true, command: p.command.name, nothingToDo: e.message, exitStatus: e.exitStatus, result: e.result }, null, 2)) + '\n');
      return e.exitStatus;
    }
    const message = redact(describeError(e));
    process.stderr.write(`${log.colour('red', 'error:')} ${message}\n`);
    if (p.flags.verbose && !(e instanceof ReleaseError) && e instanceof Error && e.stack) process.stderr.write(redact(e.stack) + '\n');
    if (p.flags.json) process.stdout.write(JSON.stringify({ ok: false, command: p.command.name, error: message }) + '\n');
    return e instanceof UsageError ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
