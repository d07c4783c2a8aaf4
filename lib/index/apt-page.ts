// The APT repository's HTML page (ROOT/index.html by default; golden-tested): how to add the
// repository as a deb822 `.sources` file (sources.list(5), "DEB822-STYLE FORMAT") with the key in
// Signed-By, the one-line form, each suite's components and architectures, and the key's links.

export interface AptPage {
  title: string;
  /** The repository's public URL (no trailing slash). */
  url: string;
  /** Base name of the published key: NAME.gpg and NAME.asc beside the page. */
  keyName: string;
  fingerprint: string;
  /** Where the key goes on a user's machine (the .sources Signed-By). */
  keyringPath: string;
  suites: Array<{ suite: string; components: string[]; architectures: string[] }>;
  /** Relative path from the page to the repository root ('' when the page is at the root). */
  toRoot: string;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]!));

/** The deb822 `.sources` stanza of one suite. */
export function sourcesSnippet(url: string, suite: string, components: string[], keyringPath: string): string {
  return ['Types: deb', `URIs: ${url}`, `Suites: ${suite}`, `Components: ${components.join(' ')}`, `Signed-By: ${keyringPath}`, ''].join('\n');
}

export function renderAptPage(p: AptPage): string {
  const first = p.suites[0]!;
  const lines = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${esc(p.title)}</title>`,
    '<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;padding:.6em}td{padding:.2em .6em}</style>',
    '</head>',
    '<body>',
    `<h1>${esc(p.title)}</h1>`,
    `<p>Signed with OpenPGP key <code>${esc(p.fingerprint)}</code>: <a href="${esc(p.toRoot + p.keyName)}.gpg">${esc(p.keyName)}.gpg</a> (binary), <a href="${esc(p.toRoot + p.keyName)}.asc">${esc(p.keyName)}.asc</a> (armored).</p>`,
    '<h2>Add it</h2>',
    `<pre>sudo curl -fsSL -o ${esc(p.keyringPath)} ${esc(p.url)}/${esc(p.keyName)}.gpg</pre>`,
    `<p>then, as <code>/etc/apt/sources.list.d/${esc(p.keyName.replace(/-archive-keyring$/, ''))}.sources</code>:</p>`,
    `<pre id="sources-${esc(first.suite)}">${esc(sourcesSnippet(p.url, first.suite, first.components, p.keyringPath))}</pre>`,
    `<p>or, as one line of <code>sources.list</code>: <code>deb [signed-by=${esc(p.keyringPath)}] ${esc(p.url)} ${esc(first.suite)} ${esc(first.components.join(' '))}</code></p>`,
    '<h2>Suites</h2>',
    '<table>',
    '<tr><th>suite</th><th>components</th><th>architectures</th></tr>',
  ];
  for (const s of p.suites) lines.push(`<tr><td>${esc(s.suite)}</td><td>${esc(s.components.join(' '))}</td><td>${esc(s.architectures.join(' '))}</td></tr>`);
  lines.push('</table>');
  for (const s of p.suites.slice(1)) {
    lines.push(`<p>${esc(s.suite)}:</p>`, `<pre id="sources-${esc(s.suite)}">${esc(sourcesSnippet(p.url, s.suite, s.components, p.keyringPath))}</pre>`);
  }
  lines.push('</body>', '</html>', '');
  return lines.join('\n');
}
