// The APT repository's page (golden) and the command-line forms of index's APT operations.
import { describe, expect, it } from 'vitest';
import { renderAptPage, sourcesSnippet } from '../../../lib/index/apt-page.ts';
import { aptKeyName } from '../../../lib/index/apt.ts';
import { aptOperationOf } from '../../../lib/phases/index-uploads.ts';
import { expectGolden } from '../../helpers/golden.ts';

describe('the APT page', () => {
  it('shows the deb822 .sources of each suite, the one-line form and both key files (golden)', async () => {
    const page = renderAptPage({
      title: 'Lix repository', url: 'https://releases.lix.systems/apt', keyName: aptKeyName({ origin: 'Lix' }), fingerprint: 'F'.repeat(40),
      keyringPath: '/usr/share/keyrings/lix-archive-keyring.gpg', toRoot: '',
      suites: [{ suite: 'stable', components: ['main'], architectures: ['amd64', 'arm64', 'all'] }, { suite: 'testing', components: ['main'], architectures: ['amd64', 'arm64', 'all'] }],
    });
    await expectGolden(page, 'apt/index.html');
    expect(page).toContain(sourcesSnippet('https://releases.lix.systems/apt', 'testing', ['main'], '/usr/share/keyrings/lix-archive-keyring.gpg'));
    expect(aptKeyName({ label: 'Hello World!' })).toBe('hello-world-archive-keyring');
    expect(aptKeyName({ keyName: 'custom' })).toBe('custom');
  });
});

describe('index --refresh, --remove, --copy on the command line', () => {
  it('reads one operation, and refuses combinations and strays as usage errors', () => {
    expect(aptOperationOf({}, [])).toEqual({ kind: 'index' });
    expect(aptOperationOf({ refresh: true }, [])).toEqual({ kind: 'refresh' });
    expect(aptOperationOf({ remove: 'hello' }, ['1.0'])).toEqual({ kind: 'remove', pkg: 'hello', version: '1.0' });
    expect(aptOperationOf({ remove: 'hello', from: 'testing' }, [])).toEqual({ kind: 'remove', pkg: 'hello', suites: ['testing'] });
    expect(aptOperationOf({ copy: 'hello', from: 'testing', to: 'stable' }, [])).toEqual({ kind: 'copy', pkg: 'hello', from: 'testing', to: 'stable' });
    const usage = (extra: Record<string, unknown>, pos: string[] = []) => { try { aptOperationOf(extra, pos); return 'ok'; } catch (e) { return `${(e as Error).name}: ${(e as Error).message}`; } };
    expect(usage({ refresh: true, remove: 'x' })).toBe('UsageError: --refresh and --remove cannot be combined: run them one after another');
    expect(usage({ copy: 'x', from: 'a' })).toMatch(/^UsageError: --copy PACKAGE needs --from SUITE and --to SUITE/);
    expect(usage({}, ['1.0'])).toMatch(/^UsageError: unexpected argument "1.0"/);
    expect(usage({ remove: 'x', to: 'stable' })).toMatch(/^UsageError: --to goes with --copy/);
    expect(usage({ remove: 'x' }, ['1', '2'])).toMatch(/^UsageError: index takes at most one VERSION/);
  });
});
