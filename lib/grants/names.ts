// Names of uploads: prefix templates, allowed-name regexes, and the globs a server can enforce.
import { ReleaseError } from '../core/errors.ts';

/** A version as it may appear in a key: no slashes, no spaces, no `..`. */
export const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z.+~_-]*$/;

/** Fills {name} and {version}; refuses a template that needs a version when none is given. */
export function resolvePrefix(template: string, name: string, version: string | undefined, field: string): string {
  if (template.includes('{version}')) {
    if (version === undefined) throw new ReleaseError(`${field} ("${template}") contains {version}, and no version was given`, 'pass --version VERSION');
    if (!VERSION_RE.test(version) || version.includes('..')) throw new ReleaseError(`version "${version}" cannot be part of a key`, 'use a version like 2.91.0 (letters, digits, . + ~ _ -)');
  }
  return template.replaceAll('{name}', name).replaceAll('{version}', version ?? '');
}

/** Matches keys of an incoming prefix template; group 1 is the version ('' when there is none), group 2 the file name. */
export function incomingKeyRegex(base: string, template: string, name: string): RegExp {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let hasVersion = false;
  const parts = template.replaceAll('{name}', name).split('{version}').map(esc);
  const body = parts.join('([0-9A-Za-z][0-9A-Za-z.+~_-]*)');
  hasVersion = parts.length > 1;
  return new RegExp(`^${esc(base)}${body}${hasVersion ? '' : '()'}([^/]+)$`);
}

/** Whether a file name is allowed by one of the uploader's anchored regexes. */
export function allowedName(files: string[], fileName: string): boolean {
  return files.some((f) => new RegExp(f).test(fileName));
}

/**
 * A glob (`*` only) matching at least every name the anchored regex matches: literal runs are kept,
 * any class, group, wildcard or quantified atom becomes `*`. The server enforces the glob (STS
 * resource ARNs, POST starts-with); `index` enforces the exact regex.
 */
export function regexToGlob(re: string): string {
  let s = re;
  if (s.startsWith('^')) s = s.slice(1);
  if (s.endsWith('$') && !s.endsWith('\\$')) s = s.slice(0, -1);
  const out: string[] = [];
  let i = 0;
  const star = () => { if (out[out.length - 1] !== '*') out.push('*'); };
  // A literal followed by a quantifier that may repeat or drop it is not literal.
  const quantified = (j: number) => j < s.length && /[*+?{]/.test(s[j]!);
  const skipQuantifier = (j: number) => {
    if (s[j] === '{') { const k = s.indexOf('}', j); j = k < 0 ? s.length : k + 1; } else j++;
    if (s[j] === '?' || s[j] === '+') j++;
    return j;
  };
  while (i < s.length) {
    const c = s[i]!;
    if (c === '\\') {
      const n = s[i + 1] ?? '';
      const literal = /[^A-Za-z0-9]/.test(n); // \. \- \_ ... are literals; \d \w \s ... classes
      const next = i + 2;
      if (literal && !quantified(next)) { out.push(n); i = next; continue; }
      star(); i = quantified(next) ? skipQuantifier(next) : next; continue;
    }
    if (c === '[') {
      let j = i + 1;
      if (s[j] === '^') j++;
      if (s[j] === ']') j++;
      while (j < s.length && s[j] !== ']') j += s[j] === '\\' ? 2 : 1;
      j++;
      star(); i = quantified(j) ? skipQuantifier(j) : j; continue;
    }
    if (c === '(') {
      let depth = 0; let j = i;
      for (; j < s.length; j++) {
        if (s[j] === '\\') { j++; continue; }
        if (s[j] === '(') depth++;
        else if (s[j] === ')' && --depth === 0) break;
      }
      j++;
      star(); i = quantified(j) ? skipQuantifier(j) : j; continue;
    }
    if (c === '|') return '*'; // a top-level alternation: no literal the whole name must have
    if (c === '.' || c === '*' || c === '+' || c === '?' || c === '{') { star(); i = /[*+?{]/.test(c) ? skipQuantifier(i) : i + 1; continue; }
    if (quantified(i + 1)) {
      // `a?` / `a*`: the literal may be missing; `a+`: one a, then maybe more.
      if (s[i + 1] === '+') out.push(c);
      star(); i = skipQuantifier(i + 1); continue;
    }
    out.push(c); i++;
  }
  return out.join('');
}

/** The literal start of a glob (what a POST policy's `starts-with` can enforce). */
export function globHead(glob: string): string {
  const i = glob.indexOf('*');
  return i < 0 ? glob : glob.slice(0, i);
}

/** Whether a name matches a `*` glob. */
export function globMatches(glob: string, name: string): boolean {
  const re = new RegExp(`^${glob.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(name);
}
