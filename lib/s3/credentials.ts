// Resolves an environment's S3 credentials: env vars, a command printing short-lived keys, or
// the embedded server's. Values are registered as secrets so they never reach a log.
import type { Environment } from '../config.ts';
import { ReleaseError } from '../errors.ts';
import { run } from '../exec.ts';
import { embeddedCredentials } from '../local/s3-server.ts';
import { registerSecret } from '../secrets.ts';
import type { S3Credentials } from './store.ts';

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
      const { stdout } = await run(cmd!, args);
      let parsed: any;
      try { parsed = JSON.parse(stdout); } catch {
        throw new ReleaseError(`credentials command of environment "${envName}" (${cmd}) did not print JSON`,
          `it must print an object with "${src.accessKeyIdField}" and "${src.secretAccessKeyField}"`);
      }
      const accessKeyId = parsed?.[src.accessKeyIdField];
      const secretAccessKey = parsed?.[src.secretAccessKeyField];
      registerSecret(typeof secretAccessKey === 'string' ? secretAccessKey : undefined);
      if (typeof accessKeyId !== 'string' || typeof secretAccessKey !== 'string') {
        throw new ReleaseError(`credentials command of environment "${envName}" (${cmd}) printed JSON without string fields "${src.accessKeyIdField}" and "${src.secretAccessKeyField}"`,
          `fix environments.${envName}.credentials.accessKeyIdField / secretAccessKeyField in releng.json`);
      }
      return { accessKeyId, secretAccessKey };
    }
  }
}
