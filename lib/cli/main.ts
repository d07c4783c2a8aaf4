// The one CLI program: argv in, exit status out, every byte of output through `io`. bin/releng runs
// it (scripts/releng.ts, bundled into dist/lib/releng.mjs) and the tests run it in-process
// (test/helpers/cli.ts): there is no second parser. Exit 0 success, 1 failure, 2 usage error, 3/4
// nothing to do (NothingToDo: already published / would go back in time), 5 not ready yet (build
// --from-hydra: a job unfinished). Only this module prints errors.
// Start-up matters (every command, `--help` included): this file imports only the command registry,
// the argument parser and small modules; config, S3, Nix and the phases load when a command runs.
import { existsSync } from 'node:fs';
import { nanoid } from 'nanoid';
import { Command, CommanderError, Option } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { commands, commandNamed, globalsOf, releasePhases, type CommandDef, type FlagDef } from './commands.ts';
import type { Context, Flags, Output } from '../config/context.ts';
import { capEchoedValues, describeError, DryRunStop, NothingToDo, ReleaseError, UsageError } from '../core/errors.ts';
import { completionScript as scriptFor } from './completion.ts';
import { createLogger, type Logger } from './log.ts';
import { redact } from '../core/secrets.ts';

/** process.stdout / process.stderr, or a test's capture (a Writable; the log draws spinners only on a TTY). */
export type CliStream = NodeJS.WritableStream & Output;

/** Where a run writes: stdout for results (--json, sha256, completion), stderr for the log and errors. */
export interface CliIo {
  stdout: CliStream;
  stderr: CliStream;
  /** The directory the command runs in (default: process.cwd()). */
  cwd?: string;
}

/** A command line as the program understood it: the command, its positionals and every flag's value. */
export interface Parsed {
  command: CommandDef;
  positionals: string[];
  flags: Flags;
  configFlag?: string;
}

const flagFields = new Set(['config', 'environment', 'dry-run', 'json', 'noconfirm', 'verbose', 'no-check-git', 'profile']);

/** The width for help text: the terminal's (at most 120), 80 without one (the same in pipes and tests). */
function helpWidth(out: Output): number {
  return out.isTTY && out.columns ? Math.min(out.columns, 120) : 80;
}

/** Word-wraps `text` after a label, continuation lines indented under the text. */
export function wrapLabelled(label: string, text: string, width: number): string {
  const indent = ' '.repeat(label.length);
  const lines: string[] = [];
  let line = label;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const candidate = line.length > indent.length && line.trim() !== label.trim() ? `${line} ${word}` : `${line}${word}`;
    if (candidate.length > width && line.trim() !== label.trim()) {
      lines.push(line);
      line = indent + word;
    } else line = candidate;
  }
  lines.push(line);
  return lines.join('\n');
}

function optionOf(f: FlagDef): Option {
  return new Option(`--${f.name}${f.type === 'string' ? ` <${f.value ?? 'VALUE'}>` : ''}`, f.description);
}

/**
 * The commander program built from lib/cli/commands.ts; `onSelect` receives the command that matched.
 * Options are positional (issue 23): `-V/--version` and `-h/--help` before the command are
 * releng's, after it the command's, so `releng grant deb --version 1.0.0` reaches `grant`.
 */
export function buildProgram(onSelect: (p: Parsed) => void, out: Output = process.stdout): Command {
  const width = helpWidth(out);
  const program = new Command('releng')
    .description('release engineering for Nix projects: plan every publish, then apply it')
    .version(pkg.version, '-V, --version', 'print the version of releng')
    .enablePositionalOptions()
    .helpOption('-h, --help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    .showSuggestionAfterError(true)
    .configureHelp({ helpWidth: width })
    .addHelpText('after', [
      '',
      'Run `releng help COMMAND` (or `releng COMMAND --help`) for what a command reads and changes.',
      'A release: releng prepare → tag → build → upload --environment NAME (or `releng release`).',
      'Exit status: 0 success, 1 failure, 2 usage error; `channel` also 3 (already at that release) and 4 (would go back in time), `build --from-hydra` 5 (not ready yet): nothing to do.',
    ].join('\n'));
  for (const def of commands) {
    const cmd = program.command(def.name)
      .summary(def.summary)
      .description(def.summary)
      .helpOption('-h, --help', 'show help for this command')
      .configureHelp({ helpWidth: width })
      .allowExcessArguments(!!def.usage)
      .showSuggestionAfterError(true);
    if (def.usage) cmd.usage(def.usage.replace(/^releng \S+\s*/, '') || '[flags]');
    // A command's own flag wins over a shared one of the same name (commands are added in parallel).
    const all = [...def.flags, ...globalsOf(def).filter((g) => !def.flags.some((f) => f.name === g.name))];
    const options = all.map((f) => ({ f, o: optionOf(f) }));
    for (const { o } of options) cmd.addOption(o);
    const after = [
      '',
      wrapLabelled('Reads:   ', def.reads, width),
      wrapLabelled('Changes: ', def.changes, width),
      ...(def.examples?.length ? ['', 'Examples:', ...def.examples.map((e) => `  ${e}`)] : []),
    ];
    cmd.addHelpText('after', after.join('\n'));
    cmd.action((...args: unknown[]) => {
      const self = args[args.length - 1] as Command;
      const opts = self.opts();
      const v: Record<string, string | boolean | undefined> = {};
      for (const { f, o } of options) {
        const raw = opts[o.attributeName()];
        v[f.name] = o.negate ? raw === false : raw;
      }
      const extra: Flags['extra'] = {};
      for (const [k, val] of Object.entries(v)) if (!flagFields.has(k) && val !== undefined) extra[k] = val;
      onSelect({
        command: def,
        positionals: self.args,
        configFlag: v.config as string | undefined,
        flags: {
          dryRun: !!v['dry-run'], json: !!v.json, noconfirm: !!v.noconfirm, verbose: !!v.verbose,
          noCheckGit: !!v['no-check-git'], environment: v.environment as string | undefined,
          profile: v.profile as string | undefined, extra,
        },
      });
    });
  }
  return program;
}

/** The Context a command runs with: releng.json (from --config or the directory) and version.json when the command needs it. */
export async function contextFor(p: Parsed, log: Logger, io: Pick<CliIo, 'stdout' | 'cwd'>): Promise<Context> {
  const [{ configPath, loadConfig }, { makeContext }, { loadVersion }] = await Promise.all([
    import('../config/config.ts'), import('../config/context.ts'), import('../config/version.ts'),
  ]);
  const cwd = io.cwd ?? process.cwd();
  const file = configPath(p.configFlag, cwd);
  if (p.command.needsConfig === false && !p.configFlag && !existsSync(file)) {
    // contribute runs on the uploader's machine, where there may be no releng.json at all.
    const version = { version: '', major: '', official: false, releaseName: '', file: '' };
    return makeContext({ config: undefined as never, file, root: cwd }, version, p.flags, log, io.stdout);
  }
  const loaded = await loadConfig(file);
  const version = p.command.needsVersion
    ? await loadVersion(loaded.root, loaded.config.versionFile)
    : { version: '', major: '', official: false, releaseName: '', file: '' };
  return makeContext(loaded, version, p.flags, log, io.stdout);
}

async function runCommand(p: Parsed, log: Logger, io: CliIo): Promise<unknown> {
  if (p.command.runBare) {
    return p.command.runBare({ flags: p.flags, positionals: p.positionals, log, configFlag: p.configFlag, cwd: io.cwd ?? process.cwd(), stdout: io.stdout });
  }
  if (p.command.name !== 'release') {
    const ctx = await contextFor(p, log, io);
    const lock = p.command.locksCheckout ? await (await import('../release/checkout-lock.ts')).lockCheckout(ctx.root, p.command.name, log) : undefined;
    try {
      return await p.command.run(ctx, p.positionals);
    } finally {
      await lock?.release();
    }
  }
  // release under CI or Hydra: refuse before prepare and tag change anything, unless --noconfirm
  // was given explicitly for an environment that asks for confirmation (issue 4).
  const [{ environmentNamed }, { confirmationRequired, isUnattended, unattendedError }, { environmentName }] = await Promise.all([
    import('../config/config.ts'), import('../environment/confirm.ts'), import('../environment/open.ts'),
  ]);
  const first = await contextFor(p, log, io);
  const target = environmentName(first);
  if (confirmationRequired(target, environmentNamed(first.loaded, target)) && !p.flags.noconfirm && !p.flags.dryRun && isUnattended()) {
    throw unattendedError(target);
  }
  // release: each phase gets a fresh context, since tag rewrites version.json; one checkout lock for all of them.
  const lock = await (await import('../release/checkout-lock.ts')).lockCheckout(first.root, 'release', log);
  try {
    // Upload's environment checks before prepare writes anything (issue 25).
    await (await import('../phases/upload.ts')).checkUploadEnvironment(first);
    return await runReleasePhases(p, log, io);
  } finally {
    await lock.release();
  }
}

async function runReleasePhases(p: Parsed, log: Logger, io: CliIo): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  for (const name of releasePhases) {
    const phase = commandNamed(name)!;
    log.info(log.colour('cyan', `── ${name} ──`));
    const ctx = await contextFor({ ...p, command: phase }, log, io);
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

/** What parsing a command line gives: a command to run, or an exit status when commander answered (help, version, usage error). */
export type ParseOutcome = { parsed: Parsed } | { exit: number };

/** Parses argv with the program bin/releng runs; help, version and usage errors are written to `io`. */
export function parseCommandLine(argv: string[], io: Pick<CliIo, 'stdout' | 'stderr'>): ParseOutcome {
  let selected: Parsed | undefined;
  const program = buildProgram((p) => { selected = p; }, io.stdout);
  const output = {
    writeOut: (s: string) => { io.stdout.write(s); },
    writeErr: (s: string) => { io.stderr.write(s); },
  };
  program.exitOverride();
  program.configureOutput({ ...output, outputError: (s, write) => write(`releng: ${s.replace(/^error: /, '')}`) });
  for (const c of program.commands) {
    c.exitOverride();
    c.configureOutput({ ...output, outputError: (s, write) => write(`releng: ${s.replace(/^error: /, '')}${s.includes('--help') ? '' : `(see \`releng ${c.name()} --help\`)\n`}`) });
  }
  if (argv.length === 0) { program.outputHelp(); return { exit: 0 }; }
  // `releng help biuld`: the same "unknown command ... Did you mean build?" as `releng biuld`.
  if (argv[0] === 'help' && argv[1] && !argv[1].startsWith('-') && !commandNamed(argv[1])) argv = [argv[1]];
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return { exit: 0 };
      return { exit: 2 };
    }
    throw e;
  }
  return selected ? { parsed: selected } : { exit: 2 };
}

/** Runs one command line to its exit status; never calls process.exit, never writes outside `io`. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const outcome = parseCommandLine(argv, io);
  if ('exit' in outcome) return outcome.exit;
  const p = outcome.parsed;
  // Each run has an id: in its log, its --json output, and the probe keys of `check`.
  const runId = nanoid(12);
  const log = createLogger({ verbose: p.flags.verbose, runId, stream: io.stderr });
  // In a log file (no terminal) every run names its id; on a terminal only with --verbose.
  if (!log.interactive && p.command.name !== 'completion') log.info(`releng ${pkg.version} ${p.command.name}: run ${runId}`);
  else log.debug(`releng ${pkg.version} ${p.command.name}: run ${runId}`);
  const flags = { ...p.flags, runId };
  const json = (body: Record<string, unknown>) => { io.stdout.write(redact(JSON.stringify({ command: p.command.name, runId, ...body }, null, 2)) + '\n'); };
  try {
    const result = await runCommand({ ...p, flags }, log, io);
    log.close();
    if (p.flags.json) json({ ok: true, ...planOf(log), result });
    return 0;
  } catch (e) {
    if (e instanceof DryRunStop) {
      log.close();
      if (p.flags.json) json({ ok: true, dryRun: true, ...planOf(log) });
      return 0;
    }
    log.close();
    if (e instanceof NothingToDo) {
      log.info(capEchoedValues(redact(describeError(e))));
      if (p.flags.json) json({ ok: true, nothingToDo: e.message, exitStatus: e.exitStatus, result: e.result });
      return e.exitStatus;
    }
    const message = capEchoedValues(redact(describeError(e)));
    io.stderr.write(`${log.colour('red', 'error:')} ${message}\n`);
    if (p.flags.verbose && !(e instanceof ReleaseError) && e instanceof Error && e.stack) io.stderr.write(redact(e.stack) + '\n');
    if (p.flags.json) json({ ok: false, error: message, ...planOf(log), ...resultOf(e) });
    return e instanceof UsageError ? 2 : 1;
  }
}

/** A failure that carries a result (check: every line) shows it in --json too. */
function resultOf(e: unknown): { result?: unknown } {
  if (e && typeof e === 'object' && 'result' in e) return { result: (e as { result: unknown }).result };
  // verify's problems and what was checked
  return e && typeof e === 'object' && 'report' in e ? { result: (e as { report: unknown }).report } : {};
}

/** The plan a dry run printed (every action, in order), for --json. */
function planOf(log: Logger): { plan?: unknown } {
  const steps = log.run.plan;
  return steps.length || log.run.skipped.length ? { plan: { steps, skipped: log.run.skipped } } : {};
}

/** The completion script `releng completion SHELL` prints, for every command of this program. */
export function completionScript(shell: string): string {
  return scriptFor(shell, commands);
}
