// The HTML page of a channel release (what the NixOS mirror puts at the release prefix): title,
// release date, git commit (link and commit date), Hydra evaluation link, and a table of every
// file with its size and sha256. Its upload marks the release prefix complete.

export interface ReleasePageFile {
  name: string;
  size: number;
  sha256: string;
}

export interface ReleasePage {
  channel: string;
  releaseName: string;
  /** When the page is made (UTC). */
  date: Date;
  rev: string;
  commitUrl: string;
  /** Commit time (UTC). */
  commitDate: Date;
  evalId: number;
  evalUrl: string;
  /** Files of the release (no .sha256 companions), linked relative to the page. */
  files: ReleasePageFile[];
}

const escapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Escapes text and attribute values (all of them are double-quoted). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => escapes[c]!);
}

function utc(d: Date): string {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** Renders the page; files sorted by name; links are relative (`RELEASE/FILE`) so the page works on any host. */
export function renderReleasePage(p: ReleasePage): string {
  const title = `${p.channel} release ${p.releaseName}`;
  const rows = [...p.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((f) => [
    '<tr>',
    `<td><a href="${escapeHtml(encodeURIComponent(p.releaseName))}/${escapeHtml(encodeURIComponent(f.name))}">${escapeHtml(f.name)}</a></td>`,
    `<td align="right">${f.size}</td>`,
    `<td><tt>${escapeHtml(f.sha256)}</tt></td>`,
    '</tr>',
  ].join(''));
  return [
    '<!DOCTYPE html>',
    '<html><head><meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title></head>`,
    `<body><h1>${escapeHtml(title)}</h1>`,
    `<p>Released on <span class="release-date">${utc(p.date)}</span> from <a class="commit" href="${escapeHtml(p.commitUrl)}">Git commit <tt>${escapeHtml(p.rev)}</tt></a>`,
    ` (committed <span class="commit-date">${utc(p.commitDate)}</span>)`,
    ` via <a class="eval" href="${escapeHtml(p.evalUrl)}">Hydra evaluation ${p.evalId}</a>.</p>`,
    '<table><thead><tr><th>File name</th><th>Size</th><th>SHA-256 hash</th></tr></thead><tbody>',
    ...rows,
    '</tbody></table></body></html>',
    '',
  ].join('\n');
}
