// Runs releng as users run it. Three ways, one program (lib/cli/main.ts):
// - releng(args): a new process of the bundle the Nix package ships (node dist/lib/releng.mjs, built
//   by scripts/build.mjs; test/helpers/global-teardown.ts builds it when the sources are newer);
//   `from: 'source'` runs bin/releng on the TypeScript sources through tsx instead (the smoke set);
// - relengInProcess(args): the same main() in this process (no start-up per run), with stdout and
//   stderr captured, the exit status returned (never process.exit), cwd and env set for the run.
import { Writable } from 'node:stream';
import path from 'node:path';
import { execa } from 'execa';
import { main } from '../../lib/cli/main.ts';
import { relengBin, repoRoot } from './project.ts';

export interface CliResult { code: number; stdout: string; stderr: string }

/** The bundle the Nix package runs (bin/releng runs it when it is up to date). */
export const relengBundle = path.join(repoRoot, 'dist', 'lib', 'releng.mjs');

export type RelengFrom = 'bundle' | 'source';

export interface RelengOptions {
  cwd: string;
  env?: Record<string, string | undefined>;
  input?: string;
  /** Default: the bundle; 'source' runs bin/releng with RELENG_FROM_SOURCE=1 (tsx). */
  from?: RelengFrom;
}

/** The command line that starts releng the given way (for tests that spawn it themselves, e.g. to kill it). */
export function relengCommand(from: RelengFrom = 'bundle'): { file: string; args: string[]; env: Record<string, string | undefined> } {
  return from === 'source'
    ? { file: relengBin, args: [], env: { RELENG_FROM_SOURCE: '1' } }
    : { file: process.execPath, args: [relengBundle], env: { RELENG_FROM_SOURCE: undefined } };
}

export async function releng(args: string[], opts: RelengOptions): Promise<CliResult> {
  const how = relengCommand(opts.from);
  const r = await execa(how.file, [...how.args, ...args], { cwd: opts.cwd, env: { CI: 'true', ...how.env, ...opts.env }, reject: false, input: opts.input ?? '' });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** A Writable that keeps what is written (not a terminal: plain log lines, as under CI). */
function capture(): { stream: Writable & { isTTY: false }; text(): string } {
  const chunks: Buffer[] = [];
  const stream = Object.assign(new Writable({
    write(chunk, _enc, done) { chunks.push(Buffer.from(chunk)); done(); },
  }), { isTTY: false as const });
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

let running = false;

/**
 * Runs a command line through main() in this process, as bin/releng would in `cwd` with `env`
 * (CI=true unless given: plain lines, no prompt). One at a time: cwd and env are the process's.
 */
export async function relengInProcess(args: string[], opts: { cwd: string; env?: Record<string, string | undefined> }): Promise<CliResult> {
  if (running) throw new Error('relengInProcess: one run at a time (it sets the process\'s cwd and env)');
  running = true;
  const out = capture();
  const err = capture();
  const saved: Record<string, string | undefined> = {};
  const env = { CI: 'true', ...opts.env };
  for (const [k, v] of Object.entries(env)) { saved[k] = process.env[k]; if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  const cwd = process.cwd();
  try {
    process.chdir(opts.cwd);
    const code = await main(args, { stdout: out.stream, stderr: err.stream, cwd: opts.cwd });
    return { code, stdout: out.text(), stderr: err.text() };
  } finally {
    process.chdir(cwd);
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
    running = false;
  }
}
