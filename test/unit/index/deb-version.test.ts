// Debian's version order, checked against dpkg itself (`dpkg --compare-versions`) on every pair of
// a list that covers epochs, revisions, tildes, letters against digits and leading zeros.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { compareDebianVersions } from '../../../lib/index/deb-version.ts';
import { requireTool } from '../../helpers/tools.ts';

requireTool('dpkg', 'dpkg');

const VERSIONS = [
  '1.0', '1.0-1', '1.0~rc1', '1.0~~', '1.0+b1', '1.0.1', '1.00', '1:0.9', '0:1.0', '1.0a', '1.0A',
  '1.0-1~bpo1', '10.0.0', '9.0.0', '2.91.0-rc1', '1.2.3+dfsg-4+deb12u1', 'a', '01.0',
];

describe('compareDebianVersions', () => {
  it('orders every pair as dpkg --compare-versions does', () => {
    const wrong: string[] = [];
    const dpkg = (a: string, op: string, b: string) => { try { execFileSync('dpkg', ['--compare-versions', a, op, b], { stdio: 'ignore' }); return true; } catch { return false; } };
    VERSIONS.forEach((a, i) => VERSIONS.slice(i).forEach((b) => {
      const want = dpkg(a, 'lt', b) ? -1 : dpkg(a, 'gt', b) ? 1 : 0;
      const got = compareDebianVersions(a, b);
      if (got !== want || compareDebianVersions(b, a) !== -want) wrong.push(`${a} vs ${b}: dpkg ${want}, ours ${got} (and ${compareDebianVersions(b, a)} the other way)`);
    }));
    expect(wrong).toEqual([]);
  }, 120_000);
});
