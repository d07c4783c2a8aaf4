// The embedded S3 server of the local environment (and of the tests): s3rver on 127.0.0.1.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ReleaseError } from '../core/errors.ts';

export const embeddedCredentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface LocalS3 {
  endpoint: string;
  port: number;
  dir: string;
  /** The server process (bench/ sums its CPU time per run). */
  pid?: number;
  stop(): Promise<void>;
}

export interface LocalS3Options {
  dir: string;
  buckets?: string[];
  /** Append `METHOD URL` per request to this file (tests count PUTs here). */
  requestLog?: string;
}

const child = fileURLToPath(new URL('./s3rver-child.mjs', import.meta.url));

/** Starts s3rver in a child process; resolves once it listens. */
export async function startLocalS3(opts: LocalS3Options): Promise<LocalS3> {
  const args = ['--openssl-legacy-provider', child, opts.dir, (opts.buckets ?? []).join(',')];
  if (opts.requestLog) args.push(opts.requestLog);
  const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout });
    rl.once('line', (l) => {
      try { resolve(JSON.parse(l).port); } catch { reject(new Error(l)); }
    });
    proc.once('exit', (code) => reject(new ReleaseError(`embedded S3 server exited (${code}): ${stderr.trim()}`)));
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    dir: opts.dir,
    pid: proc.pid,
    async stop() {
      proc.stdin.end();
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
