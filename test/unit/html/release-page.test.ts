// Golden test of the channel release page, and the page read back with an HTML parser.
import { readFile, writeFile } from 'node:fs/promises';
import { parse } from 'node-html-parser';
import { describe, expect, it } from 'vitest';
import { renderReleasePage } from '../../../lib/html/release-page.ts';

const page = renderReleasePage({
  channel: 'nixos-24.11',
  releaseName: 'nixos-24.11.1234.abcdef0',
  date: new Date('2026-11-21T12:00:00Z'),
  rev: 'abcdef0123456789abcdef0123456789abcdef01',
  commitUrl: 'https://github.com/NixOS/nixpkgs/commit/abcdef0123456789abcdef0123456789abcdef01',
  commitDate: new Date('2026-11-20T08:30:00Z'),
  evalId: 1809000,
  evalUrl: 'https://hydra.nixos.org/eval/1809000',
  files: [
    { name: 'nixexprs.tar.xz', size: 45123456, sha256: 'a'.repeat(64) },
    { name: 'git-revision', size: 40, sha256: 'b'.repeat(64) },
    { name: 'weird <&> "name".iso', size: 1, sha256: 'c'.repeat(64) },
  ],
});

describe('release page', () => {
  it('matches the golden file', async () => {
    const golden = new URL('../../golden/channel-release-page.html', import.meta.url);
    if (process.env.UPDATE_GOLDEN) await writeFile(golden, page);
    expect(page).toBe(await readFile(golden, 'utf8'));
  });

  it('parses: title, commit and eval links, one escaped row per file', () => {
    const root = parse(page);
    expect(root.querySelector('title')!.text).toBe('nixos-24.11 release nixos-24.11.1234.abcdef0');
    expect(root.querySelector('a.commit')!.getAttribute('href')).toBe('https://github.com/NixOS/nixpkgs/commit/abcdef0123456789abcdef0123456789abcdef01');
    expect(root.querySelector('.commit-date')!.text).toBe('2026-11-20 08:30:00 UTC');
    expect(root.querySelector('a.eval')!.getAttribute('href')).toBe('https://hydra.nixos.org/eval/1809000');
    const rows = root.querySelectorAll('tbody tr').map((tr) => tr.querySelectorAll('td').map((td) => td.text));
    expect(rows.map((r) => r[0])).toEqual(['git-revision', 'nixexprs.tar.xz', 'weird <&> "name".iso']);
    expect(rows[1]).toEqual(['nixexprs.tar.xz', '45123456', 'a'.repeat(64)]);
  });
});
