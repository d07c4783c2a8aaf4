// Reads the fragments and change-authors.yml of a project and renders the notes body (reads only).
// Every problem of every file is collected into one ReleaseError naming file:line and what to do.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ReleaseNotesSettings } from '../config/config.ts';
import { ReleaseError } from '../core/errors.ts';
import { parseChangeAuthors, type ChangeAuthors } from './authors.ts';
import { decodeFragment, InputProblem, parseFragment, type Fragment } from './fragments.ts';
import { renderNotesBody } from './render.ts';

/** The rendered notes body and the fragments it came from (prepare removes them). */
export interface AssembledNotes {
  /** Fragments rendered, in directory order (absolute paths in `abs`). */
  fragments: (Fragment & { abs: string })[];
  body: string;
  /** Set when the fragments directory does not exist (Lix warns and releases without notes). */
  missingDir?: string;
}

/** A text file with normalised line ends, or undefined when it does not exist. */
export async function readIfExists(file: string): Promise<string | undefined> {
  try { return (await readFile(file, 'utf8')).replace(/\r\n?/g, '\n'); } catch (e: any) { if (e.code === 'ENOENT') return undefined; throw e; }
}

/** Fragment files of a directory: `*.md`, not dot-files, sorted by name (Lix's glob `[!.]*.md`). */
export async function fragmentFiles(dir: string): Promise<string[] | undefined> {
  let entries;
  try { entries = await readdir(dir, { withFileTypes: true }); } catch (e: any) { if (e.code === 'ENOENT') return undefined; throw e; }
  return entries.filter((e) => e.isFile() && e.name.endsWith('.md') && !e.name.startsWith('.')).map((e) => e.name).sort();
}

/** Reads, validates and renders; throws one ReleaseError listing every problem. */
export async function assembleNotes(root: string, settings: ReleaseNotesSettings, forgeWord: string): Promise<AssembledNotes> {
  const dir = path.resolve(root, settings.fragmentsDir);
  const rel = (abs: string) => path.relative(root, abs) || abs;
  const names = await fragmentFiles(dir);
  if (!names) return { fragments: [], body: '', missingDir: rel(dir) };
  const problems: InputProblem[] = [];
  const fragments: AssembledNotes['fragments'] = [];
  for (const name of names) {
    const abs = path.join(dir, name);
    const text = decodeFragment(rel(abs), await readFile(abs));
    const parsed = typeof text === 'string' ? parseFragment(rel(abs), name, text) : [text];
    if (Array.isArray(parsed)) problems.push(...parsed);
    else fragments.push({ ...parsed, abs });
  }
  let authors: ChangeAuthors = new Map();
  const authorsFile = path.resolve(root, settings.changeAuthorsFile);
  const needsAuthors = fragments.some((f) => f.credits.length > 0);
  const authorsText = await readIfExists(authorsFile);
  if (authorsText === undefined) {
    if (needsAuthors) problems.push(new InputProblem(rel(authorsFile), undefined, 'no such file, but fragments have credits; create it (`handle: {display_name: ..., forgejo: ..., github: ...}`) or set releaseNotes.changeAuthorsFile in releng.json'));
  } else {
    const parsed = parseChangeAuthors(rel(authorsFile), authorsText);
    if (Array.isArray(parsed)) problems.push(...parsed);
    else authors = parsed;
  }
  if (problems.length) throw notesError(problems);
  const rendered = renderNotesBody(fragments, authors, settings.links, forgeWord, settings.referenceStyle);
  if (rendered.problems.length) throw notesError(rendered.problems);
  return { fragments, body: rendered.text };
}

function notesError(problems: InputProblem[]): ReleaseError {
  const lines = problems.map((p) => `  ${p}`);
  return new ReleaseError(`the release notes cannot be assembled (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`,
    'fix the files named above and run prepare again; nothing was changed');
}
