// The installers' HTML page: every version with its files, sha256 and checksum file (golden-tested).

export interface InstallersPageVersion {
  version: string;
  /** Key prefix of the version (relative to the bucket URL), ending with '/'. */
  prefix: string;
  sumsFile: string;
  files: Array<{ name: string; sha256: string }>;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]!));
const href = (s: string) => s.split('/').map(encodeURIComponent).join('/');

/** The page; `root` is the relative path from the page to the bucket URL's root, `latest` the latest prefix. */
export function renderInstallersPage(uploader: string, versions: InstallersPageVersion[], root: string, latest?: string): string {
  const r = root === '.' ? '' : `${root}/`;
  const lines = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${esc(uploader)}: installers</title>`,
    '<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}code{font-size:.85em}td{padding:.2em .6em}</style>',
    '</head>',
    '<body>',
    `<h1>${esc(uploader)}: installers</h1>`,
  ];
  if (latest !== undefined && versions.length) {
    lines.push(`<p>Latest (${esc(versions[0]!.version)}): ${versions[0]!.files.map((f) => `<a href="${esc(r + href(latest + f.name))}">${esc(f.name)}</a>`).join(', ')}</p>`);
  }
  for (const v of versions) {
    lines.push(`<h2 id="${esc(v.version)}">${esc(v.version)}</h2>`, '<table>');
    for (const f of v.files) lines.push(`<tr><td><a href="${esc(r + href(v.prefix + f.name))}">${esc(f.name)}</a></td><td><code>${esc(f.sha256)}</code></td></tr>`);
    lines.push('</table>', `<p><a href="${esc(r + href(v.prefix + v.sumsFile))}">${esc(v.sumsFile)}</a></p>`);
  }
  lines.push('</body>', '</html>', '');
  return lines.join('\n');
}
