// The frozen inputs of a run: config, version, flags, the logger and stdout. Built once per command by lib/cli/main.ts.
import path from 'node:path';
import type { LoadedConfig, Config } from './config.ts';
import type { Logger } from '../core/log.ts';
import type { VersionInfo } from './version.ts';

/** A stream a command writes to (process.stdout / process.stderr, or a test's capture). */
export interface Output {
  write(s: string): boolean | void;
  isTTY?: boolean;
  columns?: number;
}

export interface Flags {
  dryRun: boolean;
  json: boolean;
  noconfirm: boolean;
  verbose: boolean;
  noCheckGit: boolean;
  /** --environment (upload, release, channel). */
  environment?: string;
  /** --profile (build). */
  profile?: string;
  /** The run's id (nanoid), set by the entry script: in the log, --json and probe keys. */
  runId?: string;
  /** Command-specific flags (e.g. --date, --force-tag), already validated by the entry script. */
  extra: Record<string, string | boolean | undefined>;
}

export interface Context {
  readonly loaded: LoadedConfig;
  readonly config: Config;
  /** The released project's root (directory of releng.json). */
  readonly root: string;
  /** `<root>/release`: build output, records of tag, gc roots. */
  readonly releaseDir: string;
  readonly version: VersionInfo;
  readonly flags: Flags;
  readonly log: Logger;
  /** Where results go (--json is printed by lib/cli/main.ts; sha256 and completion print their own). */
  readonly stdout: Output;
}

export function makeContext(loaded: LoadedConfig, version: VersionInfo, flags: Flags, log: Logger, stdout: Output = process.stdout): Context {
  return Object.freeze({
    loaded,
    config: loaded.config,
    root: loaded.root,
    releaseDir: path.join(loaded.root, 'release'),
    version,
    flags: Object.freeze({ ...flags, extra: Object.freeze({ ...flags.extra }) }),
    log,
    stdout,
  });
}

/** What a command that runs without a loaded releng.json gets (init, check, completion). */
export interface BareRun {
  flags: Flags;
  positionals: string[];
  log: Logger;
  /** --config as given (check and init resolve it themselves). */
  configFlag?: string;
  cwd: string;
  /** Where results go (sha256's lines, completion's script). */
  stdout: Output;
}

