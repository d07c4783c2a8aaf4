// tag's pure parts: the version.json edit keeps the file's formatting; messages; rendered git actions.
import { describe, expect, it } from 'vitest';
import { render } from '../../lib/actions/index.ts';
import { gitArgs, shellQuote } from '../../lib/git/actions.ts';
import { planRestore } from '../../lib/git/restore.ts';
import { releaseDate } from '../../lib/phases/prepare.ts';
import { setOfficialRelease, tagMessages } from '../../lib/phases/tag.ts';
import { renderTagRecord, tagRecordSchema } from '../../lib/release/tag-record.ts';

describe('official_release: true, formatting kept', () => {
  it('changes only the value, whatever the style', () => {
    const styles = [
      '{\n  "version": "2.93.0",\n  "official_release": false,\n  "release_name": "Bombe glacée"\n}\n',
      '{\n    "version": "2.93.0",\n    "official_release": false,\n    "release_name": "Bombe glacée"\n}',
      '{\n\t"version": "2.93.0",\n\t"official_release":false,\n\t"release_name": "Bombe glacée",\n\t"extra": [1, 2]\n}\n',
      '{"version":"2.93.0","official_release" : false,"release_name":"Bombe glacée"}\n',
    ];
    for (const s of styles) {
      const out = setOfficialRelease(s, 'version.json');
      expect(out).toBe(s.replace(/false/, 'true'));
      expect(JSON.parse(out).official_release).toBe(true);
    }
  });
  it('refuses a file that is already official, or invalid', () => {
    expect(() => setOfficialRelease('{"version":"1.0.0","official_release":true,"release_name":"x"}', 'version.json')).toThrow('already says "official_release": true');
    expect(() => setOfficialRelease('{"version":"1.0.0"}', 'version.json')).toThrow('version.json is invalid');
    expect(() => setOfficialRelease('{nope', 'version.json')).toThrow('version.json is not valid JSON');
  });
});

describe('messages and rendering', () => {
  it('uses Lix\'s wording', () => {
    const m = tagMessages('2.93.0', 'Bombe glacée');
    expect(m.release).toBe('release: 2.93.0 "Bombe glacée"\n\nRelease created with releng');
    expect(m.merge.split('\n')[0]).toBe('release: merge release 2.93.0 back to mainline');
  });
  it('renders git actions as pasteable commands', () => {
    expect(render({ kind: 'git.tag', name: '2.93.0', message: 'a\nb', force: true })).toBe("git tag -f -a 2.93.0 -m $'a\\nb'");
    expect(render({ kind: 'git.checkout', detach: true, ref: '2.93.0' })).toBe('git checkout -q --detach 2.93.0');
    expect(render({ kind: 'git.update-ref', ref: 'refs/tags/2.93.0', value: null })).toBe('git update-ref -d refs/tags/2.93.0');
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(gitArgs({ kind: 'git.commit', message: 'm', paths: ['a b'] })).toEqual(['commit', '-q', '-m', 'm', '--', 'a b']);
  });
  it('plans a restore that puts back the branch, HEAD, the tag and the files', () => {
    const plan = planRestore({ branch: 'main', head: 'a'.repeat(40), refs: { 'refs/tags/1.0.0': null }, files: { 'version.json': '{}\n', 'release/tag.json': null } });
    expect(plan.steps[0]!.actions.map(render)).toEqual([
      'git merge --quit',
      `git update-ref refs/heads/main ${'a'.repeat(40)}`,
      'git symbolic-ref HEAD refs/heads/main',
      'git update-ref -d refs/tags/1.0.0',
      'git reset -q -- version.json release/tag.json',
      'write version.json (restore, 3 bytes)',
      'rm release/tag.json',
    ]);
  });
  it('release/tag.json has exactly four keys', () => {
    const r = { version: '1.0.0', branch: 'main', releaseCommit: 'b'.repeat(40), mergeCommit: 'c'.repeat(40) };
    expect(JSON.parse(renderTagRecord(r))).toEqual(r);
    expect(tagRecordSchema.safeParse({ ...r, extra: 1 }).success).toBe(false);
  });
  it('--date is YYYY-MM-DD and a real date; default today in UTC', () => {
    expect(releaseDate('2024-07-10')).toBe('2024-07-10');
    expect(() => releaseDate('2024-02-30')).toThrow('--date 2024-02-30 is not a date');
    expect(() => releaseDate('10/07/2024')).toThrow('is not a date');
    expect(releaseDate(undefined, new Date('2025-01-01T23:30:00-05:00'))).toBe('2025-01-02');
  });
});
