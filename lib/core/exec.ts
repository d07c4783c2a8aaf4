// Subprocesses: argument arrays only, errors keep stderr and the exit code, missing tools name their package.
import { execa, type Options as ExecaOptions } from 'execa';
import { MissingToolError, ReleaseError } from './errors.ts';
import { redact } from './secrets.ts';

/** Debian package providing each program releng runs (for MissingToolError). */
export const debianPackageOf: Record<string, string> = {
  git: 'git',
  nix: 'nix-bin',
  'nix-build': 'nix-bin',
  'nix-store': 'nix-bin',
  'nix-instantiate': 'nix-bin',
  'nix-env': 'nix-bin',
  'nix-eval-jobs': 'nix-eval-jobs (from nixpkgs; releng falls back to nix-instantiate without it)',
  skopeo: 'skopeo',
  'docker-registry': 'docker-registry',
  xz: 'xz-utils',
  zstd: 'zstd',
  tar: 'tar',
  rclone: 'rclone',
  openssl: 'openssl',
  'dpkg-deb': 'dpkg',
  'apt-ftparchive': 'apt-utils',
  gpg: 'gnupg',
  gpgv: 'gpgv',
  gpgconf: 'gpgconf',
  'gpg-connect-agent': 'gpgconf',
  'ssh-keygen': 'openssh-client',
  flock: 'util-linux',
};

export interface RunResult {
  stdout: string;
  stderr: string;
}

export type RunOptions = Pick<ExecaOptions, 'cwd' | 'env' | 'input' | 'timeout'> & { stdin?: 'ignore' | 'inherit' };

/** Runs `cmd args...`; throws ReleaseError naming the command, exit code and stderr. */
export async function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  try {
    const r = await execa(cmd, args, {
      cwd: options.cwd,
      env: options.env,
      input: options.input as string | undefined,
      timeout: options.timeout,
      stdin: options.input === undefined ? (options.stdin ?? 'ignore') : undefined,
      stripFinalNewline: true,
    });
    return { stdout: String(r.stdout), stderr: String(r.stderr) };
  } catch (e: any) {
    if (e?.code === 'ENOENT') throw new MissingToolError(cmd, debianPackageOf[cmd] ?? cmd);
    const stderr = redact(String(e?.stderr ?? '').trim());
    const code = e?.exitCode ?? e?.signal ?? 'unknown';
    const shown = redact(shownCommand(cmd, args));
    if (e?.code === 'E2BIG') throw new ReleaseError(`command not started, its argument list is too long (${args.length} arguments, ${argvBytes(args)} bytes): ${shown}`, 'this is a releng bug: report it with the command above');
    throw new ReleaseError(`command failed (exit ${code}): ${shown}${stderr ? `\n${indent(lastLines(stderr, 20))}` : ''}`);
  }
}

/** True when `cmd` can be executed (used to pick nix-eval-jobs when present). */
export async function hasProgram(cmd: string): Promise<boolean> {
  try {
    await execa(cmd, ['--version'], { stdin: 'ignore' });
    return true;
  } catch (e: any) {
    return e?.code !== 'ENOENT';
  }
}

/** Fails with MissingToolError unless every program is on PATH. */
export async function requirePrograms(...cmds: string[]): Promise<void> {
  for (const c of cmds) if (!(await hasProgram(c))) throw new MissingToolError(c, debianPackageOf[c] ?? c);
}

/** Bytes the kernel counts for an argument list (each argument and its NUL). */
function argvBytes(args: readonly string[]): number {
  return args.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
}

/** Room for one command's arguments: well under Linux's ARG_MAX (2 MiB with the environment). */
export const ARGV_BATCH_BYTES = 256 * 1024;

/**
 * `items` in consecutive groups whose arguments take at most `maxBytes` together (at least one
 * item each): one command per group, so 100,000 store paths never go into one argument list.
 */
export function argvBatches<T extends string>(items: readonly T[], maxBytes = ARGV_BATCH_BYTES): T[][] {
  const out: T[][] = [];
  let group: T[] = [];
  let bytes = 0;
  for (const it of items) {
    const b = Buffer.byteLength(it) + 1;
    if (group.length && bytes + b > maxBytes) { out.push(group); group = []; bytes = 0; }
    group.push(it);
    bytes += b;
  }
  if (group.length) out.push(group);
  return out;
}

/** The command as shown in an error: its first arguments, then how many more (a list of paths can be megabytes). */
function shownCommand(cmd: string, args: readonly string[]): string {
  const parts = [cmd];
  let length = cmd.length;
  for (const [i, a] of args.entries()) {
    const q = quoteArg(a);
    if (length + q.length > 2000 && args.length - i > 1) return `${parts.join(' ')} … (${args.length - i} more arguments)`;
    parts.push(q);
    length += q.length + 1;
  }
  return parts.join(' ');
}

function quoteArg(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}
function lastLines(s: string, n: number): string {
  const lines = s.split('\n');
  return lines.slice(-n).join('\n');
}
function indent(s: string): string {
  return s.split('\n').map((l) => `  ${l}`).join('\n');
}
