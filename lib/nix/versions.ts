// Exact ports of Nix's builtins.parseDrvName and builtins.compareVersions (src/libexpr/names.cc):
// the channel guard must order releases the way Nix (and the NixOS mirror script) does.

/** `{name, version}` as builtins.parseDrvName returns it. */
export interface DrvName {
  name: string;
  version: string;
}

/** builtins.parseDrvName: split at the first `-` not followed by an ASCII letter (C-locale isalpha). */
export function parseDrvName(s: string): DrvName {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '-' && i + 1 < s.length && !isAlpha(s.charCodeAt(i + 1))) {
      return { name: s.slice(0, i), version: s.slice(i + 1) };
    }
  }
  return { name: s, version: '' };
}

function isAlpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

const INT_MAX = 2147483647;

/** Nix's string2Int<int>: digits that fit a 32-bit int, else not a number (then compared as text). */
function toInt(c: string): number | undefined {
  if (!/^[0-9]+$/.test(c)) return undefined;
  const n = Number(c);
  return n <= INT_MAX ? n : undefined;
}

/** Byte-wise comparison (std::string_view operator<), not UTF-16 code units. */
function bytesLess(a: string, b: string): boolean {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')) < 0;
}

function componentsLT(c1: string, c2: string): boolean {
  const n1 = toInt(c1);
  const n2 = toInt(c2);
  if (n1 !== undefined && n2 !== undefined) return n1 < n2;
  if (c1 === '' && n2 !== undefined) return true;
  if (c1 === 'pre' && c2 !== 'pre') return true;
  if (c2 === 'pre') return false;
  // Nix assumes `2.3a' < `2.3.1'.
  if (n2 !== undefined) return true;
  if (n1 !== undefined) return false;
  return bytesLess(c1, c2);
}

/** builtins.compareVersions: -1, 0 or 1. Missing components compare as "". */
export function compareVersions(v1: string, v2: string): -1 | 0 | 1 {
  let p1 = 0;
  let p2 = 0;
  const next = (v: string, p: number): [string, number] => {
    while (p < v.length && (v[p] === '.' || v[p] === '-')) p++;
    if (p >= v.length) return ['', p];
    const start = p;
    if (isDigit(v.charCodeAt(p))) while (p < v.length && isDigit(v.charCodeAt(p))) p++;
    else while (p < v.length && !isDigit(v.charCodeAt(p)) && v[p] !== '.' && v[p] !== '-') p++;
    return [v.slice(start, p), p];
  };
  while (p1 < v1.length || p2 < v2.length) {
    let c1: string;
    let c2: string;
    [c1, p1] = next(v1, p1);
    [c2, p2] = next(v2, p2);
    if (componentsLT(c1, c2)) return -1;
    if (componentsLT(c2, c1)) return 1;
  }
  return 0;
}
