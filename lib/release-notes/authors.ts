// change-authors.yml: who gets credited and how they are linked (`handle: {display_name?, forgejo?, github?}`).
import { LineCounter, isMap, isScalar, parseDocument } from 'yaml';
import { z } from 'zod';
import { InputProblem } from './fragments.ts';

const author = z.object({
  display_name: z.string().min(1).optional(),
  forgejo: z.string().min(1).optional(),
  github: z.string().min(1).optional(),
}).strict();

/** The file's schema: handles to (possibly empty) author records; any other field is an error. */
export const changeAuthorsSchema = z.record(z.string(), z.union([author, z.null().transform(() => ({}))]));

export type Author = z.infer<typeof author>;
export type ChangeAuthors = Map<string, Author>;

/** Parses change-authors.yml; problems (with lines) are returned, never thrown. */
export function parseChangeAuthors(file: string, text: string): ChangeAuthors | InputProblem[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, version: '1.1', prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number) => lineCounter.linePos(offset).line;
  if (doc.errors.length) return doc.errors.map((e) => new InputProblem(file, lineOf(e.pos[0]), `malformed YAML: ${e.message.split('\n')[0]}`));
  const keyLines: Record<string, number> = {};
  if (isMap(doc.contents)) {
    for (const item of doc.contents.items) if (isScalar(item.key) && item.key.range) keyLines[String(item.key.value)] = lineOf(item.key.range[0]);
  }
  const parsed = changeAuthorsSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    return parsed.error.issues.map((i) => new InputProblem(file, keyLines[String(i.path[0])], `${i.path.join('.') || '(top level)'}: ${i.message}`));
  }
  return new Map(Object.entries(parsed.data));
}
