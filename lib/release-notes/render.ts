// Rendering the notes exactly as Lix's maintainers/build-release-notes.py and releng/release_notes.py
// do, byte for byte (Lix's manual and website consume the result). Pure functions; golden-tested.
import type { ReleaseNotesSettings } from '../config/config.ts';
import type { ChangeAuthors } from './authors.ts';
import { categories, InputProblem, type Fragment } from './fragments.ts';

type Links = ReleaseNotesSettings['links'];

function join(base: string, tail: string | number): string {
  return `${base.replace(/\/+$/, '')}/${tail}`;
}

function need(links: Links, key: keyof Links, what: string): string {
  const v = links[key];
  if (!v) throw new Error(`releaseNotes.links.${key} is not set in releng.json, but a fragment has ${what}`);
  return v;
}

/**
 * One issue/PR reference as a Markdown link, as Lix's format_link makes it since e00ee5954
 * (`normalized`: gh#N → nix#N, fj#N → lix#N, a bare number → lix#N): `[nix#123](https://github.com/NixOS/nix/pull/123)`.
 * `as-written` shows the id as the fragment wrote it, as format_link did before e00ee5954.
 */
export function formatReference(id: string, kind: 'issue' | 'pr', links: Links, forgeWord = 'lix', style: 'normalized' | 'as-written' = 'normalized'): string {
  const ident = /^\d+$/.test(id) ? `${forgeWord}#${id}` : id;
  const [prefix, num] = ident.split('#') as [string, string];
  const n = Number(num);
  const forge = prefix === 'fj' || prefix === 'lix' || prefix === forgeWord;
  const github = prefix === 'gh' || prefix === 'nix';
  if (!forge && !github) throw new Error(`unrecognized reference ${id}: use a number, fj#N or ${forgeWord}#N (the project's forge), gh#N or nix#N (GitHub)`);
  const key: keyof Links = forge ? (kind === 'issue' ? 'forgeIssues' : 'forgePulls') : (kind === 'issue' ? 'githubIssues' : 'githubPulls');
  // fj#N is written FORGE#N and gh#N nix#N (Lix since e00ee5954); `as-written` keeps the id (Lix before it).
  const shown = style === 'as-written' ? ident : `${forge ? forgeWord : 'nix'}#${n}`;
  return `[${shown}](${join(need(links, key, `${kind === 'issue' ? 'issue' : 'PR'} ${id}`), n)})`;
}

/** A Gerrit change: `[cl/N](GERRIT/N)`. */
export function formatChange(n: number, links: Links): string {
  return `[cl/${n}](${join(need(links, 'gerritChanges', `cls: ${n}`), n)})`;
}

/** `X`, `X and Y`, `X, Y, and Z` (Lix's plural_list, Oxford comma from three on). */
export function pluralList(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')}${items.length >= 3 ? ',' : ''} and ${items.at(-1)}`;
}

/** Python's textwrap.indent: prefix every line that is not whitespace-only; keep line ends. */
export function indent(text: string, prefix: string): string {
  return text.split(/(?<=\n)/).map((l) => (l.trim() ? prefix + l : l)).join('');
}

/** An author as credited: display name (or handle), linked to the forge profile, else GitHub, else plain. */
export function formatAuthor(handle: string, authors: ChangeAuthors, links: Links): string {
  const a = authors.get(handle);
  if (!a) throw new Error(`Missing author info for author ${handle}`);
  const name = a.display_name || handle;
  if (a.forgejo) return `[${name}](${need(links, 'forgeProfiles', `a credit for ${handle} (forgejo: ${a.forgejo})`).replace(/\/*$/, '/')}${a.forgejo})`;
  if (a.github) return `[${name}](${links.githubProfiles.replace(/\/*$/, '/')}${a.github})`;
  return name;
}

/**
 * The notes body: per category in Lix's order, `## Category`, a blank line, the entries
 * (significant first, then by file name), and a blank line after the category.
 * Unknown authors and unset link bases become problems naming the fragment's line.
 */
export function renderNotesBody(fragments: Fragment[], authors: ChangeAuthors, links: Links, forgeWord = 'lix', style: 'normalized' | 'as-written' = 'normalized'): { text: string; problems: InputProblem[] } {
  const problems: InputProblem[] = [];
  let out = '';
  for (const category of categories) {
    const entries = fragments.filter((f) => f.category === category)
      .sort((a, b) => (Number(b.significant) - Number(a.significant)) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (!entries.length) continue;
    out += `## ${category}\n\n`;
    for (const f of entries) {
      const attempt = <T>(key: string, fn: () => T): T | undefined => {
        try { return fn(); } catch (e) { problems.push(new InputProblem(f.file, f.keyLines[key], (e as Error).message)); return undefined; }
      };
      const links_ = [
        ...f.issues.map((i) => attempt('issues', () => formatReference(i, 'issue', links, forgeWord, style))),
        ...f.prs.map((p) => attempt('prs', () => formatReference(p, 'pr', links, forgeWord, style))),
        ...f.cls.map((c) => attempt('cls', () => formatChange(c, links))),
      ];
      const header = links_.length ? `${f.synopsis} ${links_.join(' ')}` : f.synopsis;
      out += `- ${header}\n\n`;
      out += `${indent(f.body, '  ')}\n`;
      if (f.credits.length) {
        const names = f.credits.map((c) => attempt('credits', () => {
          try { return formatAuthor(c, authors, links); } catch (e) {
            if (/^Missing author/.test((e as Error).message)) throw new Error(`credits: "${c}" is not in the change authors file; add \`${c}: {display_name: ..., forgejo: ..., github: ...}\` there`);
            throw e;
          }
        }) ?? c);
        out += `\n${indent(`Many thanks to ${pluralList(names)} for this.`, '  ')}\n`;
      }
      out += '\n';
    }
    out += '\n';
  }
  return { text: out, problems };
}

/** Everything the rl-MAJOR.md heading logic needs. */
export interface NotesFileInput {
  displayName: string;
  version: string;
  major: string;
  releaseName: string;
  date: string;
  body: string;
  /** Current rl-MAJOR.md, or undefined when it does not exist yet. */
  existing: string | undefined;
}

/**
 * The new rl-MAJOR.md, as Lix's build_release_notes_to_file makes it: a new major gets
 * `# Lix MAJOR "NAME" (DATE)`, two blank lines, `# Lix VERSION (DATE)`; a minor keeps the existing
 * major heading line and puts its section directly under it, on top of the older content.
 */
export function renderNotesFile(i: NotesFileInput): string {
  let existing = i.existing ?? '';
  let header = `# ${i.displayName} ${i.major} "${i.releaseName}"`;
  if (existing.startsWith(header)) {
    const lines = existing.split(/\r\n|\n|\r/);
    // Python's splitlines() drops the final empty piece after a trailing newline.
    if (existing.endsWith('\n')) lines.pop();
    header = lines[0]!;
    existing = lines.slice(1).join('\n');
  } else {
    header += ` (${i.date})\n\n`;
  }
  header += `\n# ${i.displayName} ${i.version} (${i.date})\n`;
  const notes = `${header}${i.body}\n\n${existing}`;
  return `${notes.trimEnd()}\n`;
}

/** True when rl-MAJOR.md already has VERSION's section (a re-run of prepare has nothing to do). */
export function hasVersionSection(existing: string | undefined, displayName: string, version: string): boolean {
  return !!existing && existing.split('\n').some((l) => l.startsWith(`# ${displayName} ${version} (`));
}

/**
 * SUMMARY.md with `- [Lix MAJOR (DATE)](LINK)` inserted after the marker line, indented by the text
 * before the marker on that line (Python's `line.partition(MARKER)`: with Lix's marker, which starts
 * with two spaces, that is two less than the comment's); undefined when the marker is missing.
 * Lines and the single final newline as Lix writes them.
 */
export function insertSummaryLine(summary: string, marker: string, line: string): string | undefined {
  const lines = summary.split(/\r\n|\n|\r/);
  if (summary.endsWith('\n')) lines.pop();
  const at = lines.findIndex((l) => l.includes(marker));
  if (at < 0) return undefined;
  const indentation = lines[at]!.slice(0, lines[at]!.indexOf(marker));
  lines.splice(at + 1, 0, `${indentation}${line}`);
  return `${lines.join('\n').trimEnd()}\n`;
}
