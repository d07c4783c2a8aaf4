// The frozen inputs of a run: config, version, flags and the logger. Built once by the entry script.
import path from 'node:path';
import type { LoadedConfig, Config } from './config.ts';
import type { Logger } from './log.ts';
import type { VersionInfo } from './version.ts';

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
}

export function makeContext(loaded: LoadedConfig, version: VersionInfo, flags: Flags, log: Logger): Context {
  return Object.freeze({
    loaded,
    config: loaded.config,
    root: loaded.root,
    releaseDir: path.join(loaded.root, 'release'),
    version,
    flags: Object.freeze({ ...flags, extra: Object.freeze({ ...flags.extra }) }),
    log,
  });
}
