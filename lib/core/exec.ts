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
    const shown = redact([cmd, ...args].map(quoteArg).join(' '));
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
