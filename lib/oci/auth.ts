// Registry credentials from the places podman, skopeo and docker keep them (containers-auth.json(5)),
// so a `skopeo login` or `docker login` done before the release is what releng uses.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ReleaseError } from '../core/errors.ts';
import { registerSecret } from '../core/secrets.ts';

export interface RegistryCredentials {
  username: string;
  password: string;
  /** The file they came from: also handed to skopeo with --authfile, so both use the same login. */
  authFile: string;
}

/** Auth files in lookup order: $REGISTRY_AUTH_FILE, then containers-auth.json(5)'s, then docker's. */
export function authFileCandidates(vars: NodeJS.ProcessEnv = process.env, home = os.homedir()): string[] {
  const out: string[] = [];
  if (vars.REGISTRY_AUTH_FILE) out.push(vars.REGISTRY_AUTH_FILE);
  if (vars.XDG_RUNTIME_DIR) out.push(path.join(vars.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  out.push(path.join(vars.XDG_CONFIG_HOME || path.join(home, '.config'), 'containers', 'auth.json'));
  out.push(path.join(vars.DOCKER_CONFIG || path.join(home, '.docker'), 'config.json'));
  return out;
}

/** Keys an auths entry may have for HOST/REPO: most specific namespace first, then the host (with or without scheme). */
function keysFor(host: string, repository: string): string[] {
  const parts = repository.split('/');
  const keys: string[] = [];
  for (let n = parts.length; n >= 1; n--) keys.push(`${host}/${parts.slice(0, n).join('/')}`);
  keys.push(host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`);
  if (host === 'docker.io') keys.push('https://index.docker.io/v1/');
  return keys;
}

/** Finds credentials for HOST/REPO in the first auth file that has an entry for it; undefined when none does. */
export async function findCredentials(host: string, repository: string, files = authFileCandidates()): Promise<RegistryCredentials | undefined> {
  for (const file of files) {
    let text: string;
    try { text = await readFile(file, 'utf8'); } catch { continue; }
    let json: any;
    try { json = JSON.parse(text); } catch {
      throw new ReleaseError(`registry auth file ${file} is not valid JSON`, `fix or remove it, then log in again: skopeo login ${host}`);
    }
    const auths = json?.auths ?? {};
    for (const key of keysFor(host, repository)) {
      const entry = auths[key];
      if (!entry) continue;
      if (typeof entry.auth !== 'string' || !entry.auth) {
        throw new ReleaseError(`registry auth file ${file}: the entry "${key}" has no "auth" field (identity tokens are not supported)`,
          `log in with a username and password: skopeo login ${host}`);
      }
      registerSecret(entry.auth);
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new ReleaseError(`registry auth file ${file}: the "auth" of "${key}" is not base64 of USER:PASSWORD`, `log in again: skopeo login ${host}`);
      const password = decoded.slice(colon + 1);
      registerSecret(password);
      registerSecret(decoded);
      return { username: decoded.slice(0, colon), password, authFile: file };
    }
    const helper = json?.credHelpers?.[host] ?? json?.credsStore;
    if (helper) {
      throw new ReleaseError(`registry auth file ${file} uses a credential helper ("${helper}") for ${host}, which releng does not run`,
        `log in so the password lands in an auth file: skopeo login --authfile \${XDG_RUNTIME_DIR}/containers/auth.json ${host}`);
    }
  }
  return undefined;
}
