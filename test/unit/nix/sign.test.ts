// Narinfo signatures made and checked as Nix does (keys from `nix key generate-secret`): re-signed
// with one key a narinfo verifies under it only. That Nix itself accepts the re-signed narinfos is
// proved in test/integration/promote.test.ts (nix copy trusting only production's key).
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fingerprint, narInfoFields, parsePublicKey, parseSecretKey, resign, signedBy } from '../../../lib/nix/sign.ts';

const nix = (args: string[], input?: string) => execFileSync('nix', ['--extra-experimental-features', 'nix-command', ...args], { input, encoding: 'utf8' }).trim();

describe('narinfo signatures', () => {
  const a = nix(['key', 'generate-secret', '--key-name', 'a-1']);
  const b = nix(['key', 'generate-secret', '--key-name', 'b-1']);
  const aPub = parsePublicKey(nix(['key', 'convert-secret-to-public'], a));
  const bPub = parsePublicKey(nix(['key', 'convert-secret-to-public'], b));
  const text = [
    'StorePath: /nix/store/6ip47dnf5vlwvh28kzqrgrqicka5c76m-hello-1.0.0',
    'URL: nar/0bl89l5azq9iz3s8jl6hnrk9w7l7c0nb776xg1hywdnjq8vgmpxk.nar.zst',
    'Compression: zstd',
    'FileHash: sha256:0bl89l5azq9iz3s8jl6hnrk9w7l7c0nb776xg1hywdnjq8vgmpxk',
    'FileSize: 253',
    'NarHash: sha256:1d5bd8ynl4xkp0jmz3fmv1amiz6f96k4k3y3d1ckanr9s6ssfdi2',
    'NarSize: 472',
    'References: 6ip47dnf5vlwvh28kzqrgrqicka5c76m-hello-1.0.0 m1flhl92ynwrmj4v2pdjw9ms6midmr5l-other',
    '',
  ].join('\n');

  it('fingerprints as Nix: 1;PATH;NARHASH;NARSIZE;sorted refs', () => {
    expect(fingerprint(narInfoFields(text, 't'))).toBe('1;/nix/store/6ip47dnf5vlwvh28kzqrgrqicka5c76m-hello-1.0.0;sha256:1d5bd8ynl4xkp0jmz3fmv1amiz6f96k4k3y3d1ckanr9s6ssfdi2;472;/nix/store/6ip47dnf5vlwvh28kzqrgrqicka5c76m-hello-1.0.0,/nix/store/m1flhl92ynwrmj4v2pdjw9ms6midmr5l-other');
  });

  it('re-signs with another key: verifies under it and no longer under the first', () => {
    const signedA = resign(text, narInfoFields(text, 't'), parseSecretKey(a, 'a'));
    expect(signedBy(narInfoFields(signedA, 't'), aPub)).toBe(true);
    expect(signedBy(narInfoFields(signedA, 't'), bPub)).toBe(false);
    const signedB = resign(signedA, narInfoFields(signedA, 't'), parseSecretKey(b, 'b'));
    expect(signedB.match(/^Sig: /gm)).toHaveLength(1);
    expect(signedBy(narInfoFields(signedB, 't'), bPub)).toBe(true);
    expect(signedB.replace(/^Sig: .*\n/m, '')).toBe(text);
  });

  it('refuses what is not a key', () => {
    expect(() => parsePublicKey('nope')).toThrow(/is not a Nix public key/);
    expect(() => parseSecretKey('x:AAAA', 'keys/prod.key')).toThrow(/keys\/prod.key is not a Nix secret key/);
  });
});
