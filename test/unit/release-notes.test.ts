// Release notes: golden files for what Lix's manual and website consume, plus the parsing rules.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/config.ts';
import { assembleNotes } from '../../lib/release-notes/assemble.ts';
import { parseFragment, splitFrontMatter } from '../../lib/release-notes/fragments.ts';
import { indent, insertSummaryLine, pluralList, renderNotesFile } from '../../lib/release-notes/render.ts';
import { expectGolden } from '../helpers/golden.ts';
import { repoRoot } from '../helpers/project.ts';

const fixtures = path.join(repoRoot, 'test/fixtures');
const lixSettings = async () => (await loadConfig(path.join(repoRoot, 'examples/lix/releng.json'))).config.releaseNotes;
const helloSettings = async () => (await loadConfig(path.join(repoRoot, 'examples/hello/releng.json'))).config.releaseNotes;

async function helloMajor(): Promise<string> {
  const notes = await assembleNotes(path.join(repoRoot, 'examples/hello'), await helloSettings(), 'hello');
  return renderNotesFile({ displayName: 'hello', version: '1.0.0', major: '1.0', releaseName: 'Hello World', date: '2026-11-21', body: notes.body, existing: undefined });
}

describe('rendered notes (golden)', () => {
  it('a major release: the examples/hello fragments', async () => {
    await expectGolden(await helloMajor(), 'release-notes/hello-rl-1.0.md');
  });

  it('a minor release on top of a major keeps the major heading and goes on top', async () => {
    const settings = { ...(await helloSettings()), fragmentsDir: 'rl-next', changeAuthorsFile: 'change-authors.yml' };
    const notes = await assembleNotes(path.join(fixtures, 'hello-minor'), settings, 'hello');
    const minor = renderNotesFile({ displayName: 'hello', version: '1.0.1', major: '1.0', releaseName: 'Hello World', date: '2026-12-01', body: notes.body, existing: await helloMajor() });
    await expectGolden(minor, 'release-notes/hello-rl-1.0-after-1.0.1.md');
    // And a second minor on top of that (the 5-newline gap Lix's rl-2.95.md shows between minors).
    const again = renderNotesFile({ displayName: 'hello', version: '1.0.2', major: '1.0', releaseName: 'Hello World', date: '2026-12-24', body: '', existing: minor });
    expect(again.startsWith('# hello 1.0 "Hello World" (2026-11-21)\n# hello 1.0.2 (2026-12-24)\n\n\n# hello 1.0.1 (2026-12-01)\n## Fixes\n')).toBe(true);
  });

  it('a release with no fragments', async () => {
    const major = renderNotesFile({ displayName: 'Lix', version: '2.94.0', major: '2.94', releaseName: 'Açaí', date: '2025-10-31', body: '', existing: undefined });
    await expectGolden(major, 'release-notes/no-fragments-rl-2.94.md');
    const missing = await assembleNotes(path.join(fixtures, 'nowhere'), await lixSettings(), 'lix');
    expect(missing).toMatchObject({ body: '', fragments: [], missingDir: 'doc/manual/rl-next' });
  });

  it('realistic Lix-style fragments: credits, mixed ids, significance, multi-paragraph bodies with code', async () => {
    const settings = { ...(await lixSettings()), fragmentsDir: 'rl-next', changeAuthorsFile: 'change-authors.yml' };
    const notes = await assembleNotes(path.join(fixtures, 'lix-style'), settings, 'lix');
    expect(notes.fragments.map((f) => f.name)).not.toContain('.template.md');
    const file = renderNotesFile({ displayName: 'Lix', version: '2.93.0', major: '2.93', releaseName: 'Bombe glacée', date: '2025-05-09', body: notes.body, existing: undefined });
    await expectGolden(file, 'release-notes/lix-style-rl-2.93.md');
  });
});

describe('rendering rules', () => {
  it('credits read X, X and Y, X, Y, and Z', () => {
    expect(pluralList(['A'])).toBe('A');
    expect(pluralList(['A', 'B'])).toBe('A and B');
    expect(pluralList(['A', 'B', 'C'])).toBe('A, B, and C');
    expect(pluralList(['A', 'B', 'C', 'D'])).toBe('A, B, C, and D');
  });

  it('indents like textwrap.indent: whitespace-only lines untouched', () => {
    expect(indent('a\n\n  \nb', '  ')).toBe('  a\n\n  \n  b');
  });

  it('inserts the SUMMARY line after the marker at its indentation, or says the marker is missing', () => {
    const s = '# T\n\n- [Release Notes](r.md)\n    <!-- RELENG-AUTO-INSERTION-MARKER -->\n  - [Lix 2.90](release-notes/rl-2.90.md)\n\n\n';
    expect(insertSummaryLine(s, '<!-- RELENG-AUTO-INSERTION-MARKER', '- [Lix 2.91 (2024-08-12)](release-notes/rl-2.91.md)'))
      .toBe('# T\n\n- [Release Notes](r.md)\n    <!-- RELENG-AUTO-INSERTION-MARKER -->\n    - [Lix 2.91 (2024-08-12)](release-notes/rl-2.91.md)\n  - [Lix 2.90](release-notes/rl-2.90.md)\n');
    expect(insertSummaryLine('# T\n', '<!-- RELENG', 'x')).toBeUndefined();
    // Lix's own marker constant starts with two spaces: the entry is indented by what precedes them.
    expect(insertSummaryLine('- [Release Notes](r.md)\n    <!-- RELENG-AUTO-INSERTION-MARKER -->\n', '  <!-- RELENG-AUTO-INSERTION-MARKER', '- [Lix 2.91 (2024-08-12)](release-notes/rl-2.91.md)'))
      .toBe('- [Release Notes](r.md)\n    <!-- RELENG-AUTO-INSERTION-MARKER -->\n  - [Lix 2.91 (2024-08-12)](release-notes/rl-2.91.md)\n');
  });

  it('splits front matter like python-frontmatter (stripped text, stripped body)', () => {
    expect(splitFrontMatter('\n\n---\nsynopsis: x\n---\n\nbody\n\n')).toEqual({ yaml: '\nsynopsis: x\n', yamlFirstLine: 3, body: 'body' });
    expect(splitFrontMatter('no front matter')).toBeUndefined();
  });
});

describe('bad fragments: one problem each, naming file and line', () => {
  const problems = (text: string) => {
    const r = parseFragment('doc/manual/rl-next/x.md', 'x.md', text);
    if (!Array.isArray(r)) throw new Error('expected problems');
    return r.map(String);
  };
  it('unknown category', () => {
    expect(problems('---\nsynopsis: s\ncategory: Bugs\n---\n')).toEqual([
      'doc/manual/rl-next/x.md:3: category: unknown category "Bugs"; expected one of: Breaking Changes, Features, Improvements, Fixes, Packaging, Development, Miscellany',
    ]);
  });
  it('no synopsis', () => {
    expect(problems('---\ncategory: Fixes\n---\nbody\n')).toEqual(['doc/manual/rl-next/x.md:1: synopsis: missing synopsis (the one-line summary of the change)']);
  });
  it('unknown key', () => {
    expect(problems('---\nsynopsis: s\n\nauthor: me\n---\n')).toEqual(['doc/manual/rl-next/x.md:4: unknown key "author"; the keys are synopsis, issues, prs, cls, category, significance, credits']);
  });
  it('malformed YAML', () => {
    const [p] = problems('---\nsynopsis: s\nissues: [1, 2\n---\n');
    expect(p).toMatch(/^doc\/manual\/rl-next\/x\.md:\d+: malformed YAML front matter: /);
  });
  it('bad ids and significance', () => {
    expect(problems('---\nsynopsis: s\nissues: [foo]\nsignificance: huge\n---\n')).toEqual([
      'doc/manual/rl-next/x.md:3: issues[0]: expected a number or PREFIX#N (fj#N, lix#N, gh#N, nix#N)'.replace('issues[0]', 'issues.0'),
      'doc/manual/rl-next/x.md:4: significance: expected "significant" (or leave it out)',
    ]);
  });
  it('no front matter at all', () => {
    expect(problems('just text\n')[0]).toMatch(/^doc\/manual\/rl-next\/x\.md:1: no YAML front matter/);
  });
});
