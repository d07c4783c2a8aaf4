// What a command of the CLI is (its --help, flags, how it runs) and the flags commands share. The
// table of commands is lib/cli/commands.ts; the parser (main.ts) and the completions (completion.ts)
// are built from it.
import type { BareRun, Context } from '../config/context.ts';

export interface FlagDef {
  name: string;
  type: 'boolean' | 'string';
  description: string;
  /** Value shown in help, e.g. FILE. */
  value?: string;
}

/** The flags shared by commands; each command names the ones it uses (`globals`). */
export type GlobalFlagName = 'config' | 'environment' | 'dry-run' | 'json' | 'noconfirm' | 'verbose';

export interface CommandDef {
  name: string;
  summary: string;
  reads: string;
  changes: string;
  /** Usage line for commands with positional arguments, e.g. `releng channel CHANNEL (--build URL | --hydra-json FILE)`. */
  usage?: string;
  flags: FlagDef[];
  /** Which global flags apply (shown in its help, accepted on its command line). Default: all of them. */
  globals?: GlobalFlagName[];
  /** A command line or two shown under "Examples" in its help. */
  examples?: string[];
  /** Whether it loads releng.json + version.json into a Context (serve/channel may not need a version). */
  needsVersion: boolean;
  /** False when the command runs without releng.json (contribute: the uploader's machine). */
  needsConfig?: boolean;
  /** It writes release/ or .releng/ of the checkout: the run holds the checkout lock (lib/release/checkout-lock.ts, issue 25). */
  locksCheckout?: boolean;
  run(ctx: Context, positionals: string[]): Promise<unknown>;
  /** When set, the entry script calls this instead of building a Context (the command loads what it needs, or nothing). */
  runBare?(io: BareRun): Promise<unknown>;
}

export const globalFlags: (FlagDef & { name: GlobalFlagName })[] = [
  { name: 'config', type: 'string', value: 'FILE', description: 'releng.json to use (default: ./releng.json)' },
  { name: 'environment', type: 'string', value: 'NAME', description: 'the environment to use (default: local when releng.json defines it)' },
  { name: 'dry-run', type: 'boolean', description: 'run every read and check, print the exact writes, publish nothing (local staging under release/ may be written)' },
  { name: 'json', type: 'boolean', description: 'print the result as JSON on stdout (logs stay on stderr)' },
  { name: 'noconfirm', type: 'boolean', description: 'do not ask for the confirmation phrase (required without a terminal)' },
  { name: 'verbose', type: 'boolean', description: 'log every action and subprocess' },
];

/** The global flags a command accepts. */
export function globalsOf(c: CommandDef): FlagDef[] {
  return c.globals ? globalFlags.filter((f) => c.globals!.includes(f.name)) : globalFlags;
}

