// Release-note fragments (doc/manual/rl-next/*.md): YAML front matter + a Markdown body, read the
// way Lix's build-release-notes reads them (python-frontmatter, PyYAML), validated with zod.
import { LineCounter, parseDocument, isMap, isScalar } from 'yaml';
import { z } from 'zod';

/** The categories, in the order the notes list them (Lix's CATEGORIES; anything else is an error). */
export const categories = ['Breaking Changes', 'Features', 'Improvements', 'Fixes', 'Packaging', 'Development', 'Miscellany'] as const;
export type Category = (typeof categories)[number];

/** An issue or PR id: a bare number (the project's forge) or PREFIX#N (fj#, lix#, PROJECT#: forge; gh#, nix#: GitHub). */
export const referencePattern = /^(\d+|[a-z][a-z0-9-]*#\d+)$/;

/** One value or a list of them, always a list afterwards (Lix's `listify`). */
function oneOrMany<T extends z.ZodType>(item: T) {
  return z.union([item, z.array(item)]).transform((v) => (Array.isArray(v) ? v : [v]) as z.infer<T>[]);
}

const reference = z.union([z.string(), z.number().int().nonnegative()])
  .transform((v) => String(v))
  .refine((v) => referencePattern.test(v), { message: 'expected a number or PREFIX#N (fj#N, lix#N, gh#N, nix#N)' });
const changeNumber = z.union([z.number().int().positive(), z.string().regex(/^\d+$/, 'expected a Gerrit change number')])
  .transform((v) => Number(v));

/** The front matter's keys: exactly Lix's KNOWN_KEYS; any other key is an error. */
export const frontMatterSchema = z.object({
  synopsis: z.string({ error: (i) => (i.input === undefined ? 'missing synopsis (the one-line summary of the change)' : 'expected a string') })
    .refine((s) => s.trim() !== '', 'must not be empty'),
  issues: oneOrMany(reference).optional(),
  prs: oneOrMany(reference).optional(),
  cls: oneOrMany(changeNumber).optional(),
  category: z.enum(categories, { error: (i) => `unknown category ${JSON.stringify(i.input)}; expected one of: ${categories.join(', ')}` }).optional(),
  significance: z.literal('significant', { error: () => 'expected "significant" (or leave it out)' }).nullable().optional(),
  credits: oneOrMany(z.string().min(1, 'must not be empty')).optional(),
}).strict();

/** Validated front matter (lists normalised). */
export type FrontMatter = z.infer<typeof frontMatterSchema>;

/** A parsed fragment, ready to render. */
export interface Fragment {
  /** File name (sorting key, as Lix sorts by path within one directory). */
  name: string;
  /** Path as shown in errors (relative to the project root). */
  file: string;
  synopsis: string;
  issues: string[];
  prs: string[];
  cls: number[];
  category: Category;
  significant: boolean;
  credits: string[];
  /** The body, stripped (python-frontmatter strips the content). */
  body: string;
  /** 1-based line of each front-matter key in the file (for errors found later, e.g. unknown authors). */
  keyLines: Record<string, number>;
}

/** A problem in one input file, with the line when known; prepare collects them into one error. */
export class InputProblem {
  constructor(readonly file: string, readonly line: number | undefined, readonly message: string) {}
  toString(): string {
    return `${this.file}${this.line ? `:${this.line}` : ''}: ${this.message}`;
  }
}

// python-frontmatter's YAML boundary: a line of three or more dashes.
const boundary = /^-{3,}[^\S\n]*$/m;

/** Splits `---\nYAML\n---\nbody` like python-frontmatter: the text is stripped first, the body after. */
export function splitFrontMatter(text: string): { yaml: string; yamlFirstLine: number; body: string } | undefined {
  const leading = text.length - text.trimStart().length;
  const stripped = text.trim();
  const first = boundary.exec(stripped);
  if (!first || first.index !== 0) return undefined;
  const afterFirst = first[0].length;
  const rest = stripped.slice(afterFirst);
  const second = boundary.exec(rest);
  if (!second) return undefined;
  const yaml = rest.slice(0, second.index);
  const body = rest.slice(second.index + second[0].length);
  // Line of the YAML's first character in the original file (1-based).
  const yamlFirstLine = text.slice(0, leading + afterFirst).split('\n').length;
  return { yaml, yamlFirstLine, body: body.trim() };
}

/**
 * A fragment's bytes as text, or the problem: invalid UTF-8 or a NUL byte would be committed into
 * the release notes (issue 9), so each is refused with its line. CRLF becomes LF.
 */
export function decodeFragment(file: string, bytes: Buffer): string | InputProblem {
  const lineAt = (offset: number) => bytes.subarray(0, offset).filter((b) => b === 0x0a).length + 1;
  const nul = bytes.indexOf(0);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // Find the first offending byte: decode growing prefixes at line boundaries.
    let good = 0;
    for (let i = bytes.indexOf(0x0a); ; i = bytes.indexOf(0x0a, i + 1)) {
      const end = i < 0 ? bytes.length : i + 1;
      try { new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, end)); good = end; } catch { break; }
      if (i < 0) break;
    }
    if (nul >= 0 && nul < good) return new InputProblem(file, lineAt(nul), 'contains a NUL byte; release notes are text: remove it');
    return new InputProblem(file, lineAt(good), 'is not valid UTF-8; save the fragment as UTF-8');
  }
  if (nul >= 0) return new InputProblem(file, lineAt(nul), 'contains a NUL byte; release notes are text: remove it');
  return text.replace(/\r\n?/g, '\n');
}

/** Parses one fragment; problems are returned, never thrown, so prepare can report them all at once. */
export function parseFragment(file: string, name: string, text: string): Fragment | InputProblem[] {
  const split = splitFrontMatter(text);
  if (!split) {
    return [new InputProblem(file, 1, 'no YAML front matter: start the file with a `---` line, the keys (at least `synopsis:`), and a closing `---` line')];
  }
  const lineCounter = new LineCounter();
  // YAML 1.1, as PyYAML reads it (Lix parses fragments with PyYAML).
  const doc = parseDocument(split.yaml, { lineCounter, version: '1.1', prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number) => lineCounter.linePos(offset).line + split.yamlFirstLine - 1;
  if (doc.errors.length) {
    return doc.errors.map((e) => new InputProblem(file, lineOf(e.pos[0]), `malformed YAML front matter: ${e.message.split('\n')[0]}`));
  }
  const keyLines: Record<string, number> = {};
  if (isMap(doc.contents)) {
    for (const item of doc.contents.items) {
      if (isScalar(item.key) && item.key.range) keyLines[String(item.key.value)] = lineOf(item.key.range[0]);
    }
  }
  const data = doc.toJS() ?? {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    return [new InputProblem(file, split.yamlFirstLine, 'the front matter must be a mapping of keys (synopsis:, category:, ...)')];
  }
  const parsed = frontMatterSchema.safeParse(data);
  if (!parsed.success) {
    return parsed.error.issues.map((i) => {
      if (i.code === 'unrecognized_keys') {
        return i.keys.map((k) => new InputProblem(file, keyLines[k], `unknown key "${k}"; the keys are synopsis, issues, prs, cls, category, significance, credits`));
      }
      const key = String(i.path[0] ?? '');
      return [new InputProblem(file, keyLines[key] ?? split.yamlFirstLine, `${key ? `${i.path.join('.')}: ` : ''}${i.message}`)];
    }).flat();
  }
  const m = parsed.data;
  return {
    name, file,
    synopsis: m.synopsis,
    issues: m.issues ?? [],
    prs: m.prs ?? [],
    cls: m.cls ?? [],
    category: m.category ?? 'Miscellany',
    significant: m.significance === 'significant',
    credits: m.credits ?? [],
    body: split.body,
    keyLines,
  };
}
