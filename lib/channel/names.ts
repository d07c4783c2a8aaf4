// Names that become S3 keys and redirect targets: templates from releng.json filled with values
// from Hydra. Everything here refuses what could escape the release prefix or the releases host.
import { ReleaseError } from '../core/errors.ts';

/** Fills `{var}` placeholders; an unknown one is a config error naming the field. */
export function fillTemplate(template: string, vars: Record<string, string | undefined>, field: string): string {
  return template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const v = vars[name];
    if (v === undefined) {
      throw new ReleaseError(`${field}: unknown placeholder {${name}} in "${template}"`,
        `use one of ${Object.keys(vars).filter((k) => vars[k] !== undefined).map((k) => `{${k}}`).join(', ')}`);
    }
    return v;
  });
}

/** Why `name` cannot be one path segment of a key, or undefined when it is fine. */
export function unsafeSegment(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (name.includes('\0')) return 'it contains a NUL byte';
  if (/[\n\r]/.test(name)) return 'it contains a newline';
  if (name.includes('/') || name.includes('\\')) return 'it contains a path separator';
  if (name === '.' || name === '..') return `it is "${name}"`;
  if (/[\x00-\x1f\x7f]/.test(name)) return 'it contains a control character';
  // In a redirect URL these would end the path or be decoded: `a?b.iso` would point at `a`.
  if (/[?#%]/.test(name)) return 'it contains "?", "#" or "%", which would change the URL a redirect points at';
  return undefined;
}

/** A file name inside the release prefix (or below the channel): one safe segment, else an error. */
export function requireSegment(name: string, what: string): string {
  const why = unsafeSegment(name);
  if (why) throw new ReleaseError(`${what} ${JSON.stringify(name)} would escape the release prefix: ${why}`, 'nothing was published; fix the name in releng.json or the Hydra job');
  return name;
}

/** A release prefix like `nixos/24.11`: safe segments joined by `/`, never absolute. */
export function requireRelativePath(p: string, what: string): string {
  if (p.startsWith('/')) throw new ReleaseError(`${what} ${JSON.stringify(p)} is absolute`, 'release prefixes are relative to the releases bucket');
  for (const seg of p.split('/')) requireSegment(seg, what);
  return p;
}

/** The last path segment of a store path (a product's file name), checked. */
export function storePathBaseName(storePath: string, what: string): string {
  if (/[\0\n\r]/.test(storePath)) throw new ReleaseError(`${what}: store path ${JSON.stringify(storePath)} contains NUL or a newline`, 'nothing was published');
  const segs = storePath.split('/');
  if (segs.some((s) => s === '..' || s === '.')) throw new ReleaseError(`${what}: store path ${JSON.stringify(storePath)} contains "." or ".." segments`, 'nothing was published');
  return requireSegment(segs.at(-1)!, `${what}: file name`);
}

/** Redirect target of a file of the release, refused unless it stays under releasesUrl/prefix/. */
export function redirectTarget(releasesUrl: string, releasePrefix: string, file: string | undefined, query = ''): string {
  const base = releasesUrl.replace(/\/+$/, '');
  const target = `${base}/${releasePrefix}${file === undefined ? '' : `/${file}`}${query}`;
  checkRedirectTarget(target, releasesUrl, releasePrefix);
  return target;
}

/** The check itself: same origin as releasesUrl, path under its prefix, no dot segments, no control characters. */
export function checkRedirectTarget(target: string, releasesUrl: string, releasePrefix: string): void {
  const fail = (why: string) => { throw new ReleaseError(`redirect target ${JSON.stringify(target)} is outside the releases host ${releasesUrl}: ${why}`, 'nothing was published; fix environments.<env>.releasesUrl or the channel config'); };
  if (/[\0-\x1f\x7f\s]/.test(target)) fail('it contains whitespace or control characters');
  const dummy = 'http://releases.invalid';
  const want = new URL(releasesUrl.replace(/\/+$/, '') + '/', dummy);
  const got = new URL(target, dummy);
  if (got.origin !== want.origin) fail(`origin ${got.origin} is not ${want.origin}`);
  const rawPath = target.replace(/^[a-z]+:\/\/[^/]+/i, '').split('?')[0]!;
  if (rawPath.split('/').some((s) => s === '..' || s === '.' || /%2e%2e|%2f/i.test(s))) fail('it has dot or encoded slash segments');
  const prefixPath = `${want.pathname}${releasePrefix}`;
  if (got.pathname !== prefixPath && !got.pathname.startsWith(`${prefixPath}/`)) fail(`path ${got.pathname} is not under ${prefixPath}`);
}
