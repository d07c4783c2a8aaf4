// Index pages of `releng serve`: the buckets of the local environment, and the folders and files
// under a prefix, so a local release can be browsed in a web browser instead of S3's XML.
import { escapeHtml } from './release-page.ts';
import { humanBytes } from '../core/log.ts';

export interface ListingEntry {
  /** Name relative to the listed prefix; folders end with '/'. */
  name: string;
  size?: number;
}

/** The folders (next path segment) and files directly under `prefix`, from a flat listing of keys. */
export function entriesUnder(prefix: string, objects: { key: string; size: number }[]): ListingEntry[] {
  const folders = new Set<string>();
  const files: ListingEntry[] = [];
  for (const o of objects) {
    if (!o.key.startsWith(prefix)) continue;
    const rest = o.key.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash >= 0) folders.add(rest.slice(0, slash + 1));
    else if (rest) files.push({ name: rest, size: o.size });
  }
  return [...[...folders].sort().map((name) => ({ name })), ...files.sort((a, b) => (a.name < b.name ? -1 : 1))];
}

/** An HTML index page; `path` is the URL path listed ("/" or "/BUCKET/PREFIX/"). */
export function renderListing(path: string, entries: ListingEntry[]): string {
  const rows = entries.map((e) => {
    const href = encodeURIComponent(e.name.replace(/\/$/, '')) + (e.name.endsWith('/') ? '/' : '');
    return `<tr><td><a href="${escapeHtml(href)}">${escapeHtml(e.name)}</a></td><td>${e.size === undefined ? '' : escapeHtml(humanBytes(e.size))}</td></tr>`;
  });
  return [
    '<!DOCTYPE html>',
    '<html><head><meta charset="utf-8">',
    `<title>Index of ${escapeHtml(path)}</title>`,
    '<style>body{font-family:sans-serif;margin:2em}td{padding:0 1em 0 0}</style>',
    '</head><body>',
    `<h1>Index of ${escapeHtml(path)}</h1>`,
    '<table>',
    ...(path === '/' ? [] : ['<tr><td><a href="../">../</a></td><td></td></tr>']),
    ...rows,
    '</table>',
    '<p>served by <code>releng serve</code> (the local environment)</p>',
    '</body></html>',
    '',
  ].join('\n');
}
