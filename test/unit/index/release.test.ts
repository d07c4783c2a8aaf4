// The Release files releng writes (lib/index/release.ts): the checksum sections are what
// apt-ftparchive writes for the same files (the tool Debian's own repositories are built with), the
// dates are Date and Date + validFor, and --refresh's re-dating changes nothing else.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { redateRelease, releaseTime, releaseWithoutDates, renderArchRelease, renderRelease, type ReleaseFields } from '../../../lib/index/release.ts';
import { releaseSha256 } from '../../../lib/index/apt.ts';
import { expectGolden } from '../../helpers/golden.ts';
import { requireTool } from '../../helpers/tools.ts';

requireTool('apt-ftparchive', 'apt-utils');

const files = new Map<string, Buffer>([
  ['main/binary-amd64/Packages', Buffer.from('Package: hello\nVersion: 1.0\n')],
  ['main/binary-amd64/Release', Buffer.from('Archive: stable\n')],
  ['main/Contents-amd64.gz', Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
  ['main/binary-all/Packages', Buffer.alloc(0)],
]);
const fields: ReleaseFields = {
  origin: 'Lix', label: 'Lix', suite: 'stable', codename: 'stable', date: new Date('2026-12-07T16:53:49.750Z'), validFor: 7 * 86400,
  noSupportForArchitectureAll: true, architectures: ['amd64', 'arm64', 'all'], components: ['main'], description: 'Lix packages',
};
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** A section (MD5Sum:, SHA256:) as "hash size path" triples, whatever the spacing. */
const section = (text: string, name: string) => (new RegExp(`^${name}:\\n((?: .*\\n?)*)`, 'm').exec(text)?.[1] ?? '').trim().split('\n').map((l) => l.trim().split(/\s+/).join(' ')).sort();

describe('Release', () => {
  it('lists MD5Sum and SHA256 of every file as apt-ftparchive does', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'releng-release-'));
    dirs.push(dir);
    for (const [rel, body] of files) { mkdirSync(path.join(dir, path.dirname(rel)), { recursive: true }); writeFileSync(path.join(dir, rel), body); }
    const theirs = execFileSync('apt-ftparchive', ['release', '.'], { cwd: dir, encoding: 'utf8' });
    const ours = renderRelease(fields, files);
    for (const s of ['MD5Sum', 'SHA256']) expect(section(ours, s), s).toEqual(section(theirs, s));
    expect([...releaseSha256(ours).keys()].sort()).toEqual([...files.keys()].sort());
    expect(ours).not.toMatch(/^SHA512:/m); // apt fetches by-hash under the strongest hash listed: only SHA256 copies exist
  });

  it('dates: Date to the second, Valid-Until validFor later; the fields in Debian\'s order (golden)', async () => {
    const text = renderRelease(fields, files);
    expect(releaseTime(text, 'Date')!.toISOString()).toBe('2026-12-07T16:53:49.000Z');
    expect(releaseTime(text, 'Valid-Until')!.toISOString()).toBe('2026-12-14T16:53:49.000Z');
    await expectGolden(text, 'apt/Release');
    expect(renderArchRelease({ suite: 'stable', origin: 'Lix', label: 'Lix', component: 'main', architecture: 'arm64' }))
      .toBe('Archive: stable\nOrigin: Lix\nLabel: Lix\nAcquire-By-Hash: yes\nComponent: main\nArchitecture: arm64\n');
    expect(renderRelease({ ...fields, noSupportForArchitectureAll: false }, files)).not.toContain('No-Support-for-Architecture-all');
  });

  it('--refresh re-dates a Release and changes nothing else, even one without Valid-Until', () => {
    const text = renderRelease(fields, files);
    const later = redateRelease(text, new Date('2026-12-12T00:00:00Z'), 86400);
    expect(releaseWithoutDates(later)).toBe(releaseWithoutDates(text));
    expect(releaseTime(later, 'Valid-Until')!.toISOString()).toBe('2026-12-13T00:00:00.000Z');
    const legacy = text.replace(/^Valid-Until:.*\n/m, '');
    const fixed = redateRelease(legacy, new Date('2026-12-12T00:00:00Z'), 3600);
    expect(releaseTime(fixed, 'Valid-Until')!.toISOString()).toBe('2026-12-12T01:00:00.000Z');
    expect(releaseWithoutDates(fixed)).toBe(releaseWithoutDates(text));
  });
});
