// Runs the real CLI (bin/releng) as a user would, capturing stdout, stderr and the exit code.
import { execa } from 'execa';
import { relengBin } from './project.ts';

export interface CliResult { code: number; stdout: string; stderr: string }

export async function releng(args: string[], opts: { cwd: string; env?: Record<string, string | undefined>; input?: string }): Promise<CliResult> {
  const r = await execa(relengBin, args, { cwd: opts.cwd, env: { CI: 'true', RELENG_FROM_SOURCE: '1', ...opts.env }, reject: false, input: opts.input ?? '' });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
