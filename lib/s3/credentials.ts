// Resolves an environment's S3 credentials: env vars, a command printing short-lived keys, or
// the embedded server's. Values are registered as secrets so they never reach a log.
import type { Environment } from '../config/config.ts';
import { execa } from 'execa';
import { MissingToolError, ReleaseError } from '../core/errors.ts';
import { embeddedCredentials } from '../local/s3-server.ts';
import { redact, registerSecret } from '../core/secrets.ts';

/** An access key (and session token, for short-lived keys); registered as secrets when resolved. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export async function resolveCredentials(envName: string, env: Environment, vars: NodeJS.ProcessEnv = process.env): Promise<S3Credentials> {
  const src = env.credentials;
  switch (src.source) {
    case 'embedded':
      return { ...embeddedCredentials };
    case 'env': {
      const accessKeyId = vars[src.accessKeyIdVar];
      const secretAccessKey = vars[src.secretAccessKeyVar];
      const missing = [!accessKeyId && src.accessKeyIdVar, !secretAccessKey && src.secretAccessKeyVar].filter(Boolean);
      if (missing.length) {
        throw new ReleaseError(`environment "${envName}" takes S3 credentials from ${missing.join(' and ')}, which ${missing.length > 1 ? 'are' : 'is'} not set`,
          `export ${missing.join(' and ')}, or set environments.${envName}.credentials in releng.json`);
      }
      const sessionToken = src.sessionTokenVar ? vars[src.sessionTokenVar] : undefined;
      registerSecret(secretAccessKey);
      registerSecret(sessionToken);
      return { accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey!, sessionToken };
    }
    case 'command': {
      const [cmd, ...args] = src.command;
      const r = await execa(cmd!, args, { reject: false, stdin: 'ignore', stripFinalNewline: true, timeout: 120_000 });
      if ((r as any).code === 'ENOENT' || (r.failed && /ENOENT/.test(String((r as any).message ?? '')) && r.exitCode === undefined)) {
        throw new MissingToolError(cmd!, cmd!);
      }
      const stdout = String(r.stdout ?? '');
      let parsed: any;
      try { parsed = JSON.parse(stdout); } catch { parsed = undefined; }
      // Whatever the command printed in the secret fields is a secret, even when it failed.
      for (const field of [src.secretAccessKeyField, src.sessionTokenField]) {
        if (field && typeof parsed?.[field] === 'string') registerSecret(parsed[field]);
      }
      if (r.failed || r.exitCode !== 0) {
        const stderr = maskTokens(redact(String(r.stderr ?? '').trim()));
        throw new ReleaseError(`credentials command of environment "${envName}" (${cmd}) failed (exit ${r.exitCode ?? r.signal ?? 'unknown'})${stderr ? `; its stderr, with anything that looks like a key masked:\n${stderr.split('\n').slice(-10).map((l) => `  ${l}`).join('\n')}` : ''}`,
          `run it yourself to see its full output; fix environments.${envName}.credentials.command in releng.json`);
      }
      if (parsed === undefined) {
        throw new ReleaseError(`credentials command of environment "${envName}" (${cmd}) did not print JSON (its output is not shown: it may hold secrets)`,
          `it must print an object with "${src.accessKeyIdField}" and "${src.secretAccessKeyField}"`);
      }
      const accessKeyId = parsed?.[src.accessKeyIdField];
      const secretAccessKey = parsed?.[src.secretAccessKeyField];
      if (typeof accessKeyId !== 'string' || typeof secretAccessKey !== 'string') {
        throw new ReleaseError(`credentials command of environment "${envName}" (${cmd}) printed JSON without string fields "${src.accessKeyIdField}" and "${src.secretAccessKeyField}"`,
          `fix environments.${envName}.credentials.accessKeyIdField / secretAccessKeyField in releng.json`);
      }
      let sessionToken: string | undefined;
      if (src.sessionTokenField) {
        sessionToken = parsed?.[src.sessionTokenField];
        if (typeof sessionToken !== 'string' || !sessionToken) {
          throw new ReleaseError(`credentials command of environment "${envName}" (${cmd}) printed JSON without a string field "${src.sessionTokenField}" (sessionTokenField)`,
            `remove environments.${envName}.credentials.sessionTokenField if the command prints no session token, or fix its name`);
        }
      }
      return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
    }
  }
}

/**
 * Masks words that look like keys or tokens (16+ characters of key alphabet with letters and
 * digits) in a failing command's stderr: the secret it may echo is not known to us (issue 9).
 */
export function maskTokens(text: string): string {
  return text.replace(/[A-Za-z0-9+/=_-]{16,}/g, (w) => (/[A-Za-z]/.test(w) && /[0-9]/.test(w) ? '***' : w));
}
