// Narinfo signatures, as Nix makes and checks them (libstore: ValidPathInfo::fingerprint, signature
// "NAME:BASE64(ed25519 over the fingerprint)"): promote checks a staging narinfo against a key and
// re-signs it for production when the environments' keys differ (issue 11). No Nix subprocess per
// path: Node's crypto does ed25519.
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { ReleaseError } from '../core/errors.ts';

/** DER prefixes that turn a raw 32-byte ed25519 key into SPKI / PKCS#8 for Node's crypto. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface NarInfoFields {
  storePath: string;
  narHash: string;
  narSize: number;
  /** Absolute store paths. */
  references: string[];
  sigs: string[];
}

/** The fields a signature covers (and the Sig lines). */
export function narInfoFields(text: string, source: string, storeDir = '/nix/store'): NarInfoFields {
  const get = (k: string) => text.split('\n').find((l) => l.startsWith(`${k}: `) || l === `${k}:`)?.slice(k.length + 1).trim();
  const storePath = get('StorePath');
  const narHash = get('NarHash');
  const narSize = get('NarSize');
  if (!storePath || !narHash || !narSize) throw new ReleaseError(`${source}: narinfo lacks StorePath, NarHash or NarSize`, 'the cache holds a damaged narinfo: run `releng verify` on that environment');
  const refs = get('References') ?? '';
  return {
    storePath, narHash, narSize: Number(narSize),
    references: refs ? refs.split(/\s+/).map((r) => `${storeDir}/${r}`) : [],
    sigs: text.split('\n').filter((l) => l.startsWith('Sig: ')).map((l) => l.slice(5).trim()),
  };
}

/** What Nix signs: `1;PATH;NARHASH;NARSIZE;REF,REF,...`. */
export function fingerprint(f: NarInfoFields): string {
  return `1;${f.storePath};${f.narHash};${f.narSize};${[...f.references].sort().join(',')}`;
}

export interface PublicKey { name: string; key: KeyObject; text: string }
export interface SecretKey { name: string; key: KeyObject }

/** Parses `NAME:BASE64` of a Nix public key (trusted-public-keys). */
export function parsePublicKey(text: string): PublicKey {
  const i = text.trim().indexOf(':');
  const raw = Buffer.from(text.trim().slice(i + 1), 'base64');
  if (i <= 0 || raw.length !== 32) throw new ReleaseError(`"${text.trim().slice(0, 40)}" is not a Nix public key (NAME:BASE64 of 32 bytes)`);
  return { name: text.trim().slice(0, i), key: createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' }), text: text.trim() };
}

/** Parses a Nix secret key file's `NAME:BASE64` (64 bytes: seed then public key). Never logged. */
export function parseSecretKey(text: string, file: string): SecretKey {
  const i = text.trim().indexOf(':');
  const raw = Buffer.from(text.trim().slice(i + 1), 'base64');
  if (i <= 0 || raw.length !== 64) throw new ReleaseError(`${file} is not a Nix secret key`, 'generate one with `nix key generate-secret --key-name NAME`');
  return { name: text.trim().slice(0, i), key: createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw.subarray(0, 32)]), format: 'der', type: 'pkcs8' }) };
}

/** Does one of the narinfo's signatures verify under `key`? */
export function signedBy(f: NarInfoFields, key: PublicKey): boolean {
  const fp = Buffer.from(fingerprint(f));
  return f.sigs.some((s) => {
    const i = s.indexOf(':');
    if (s.slice(0, i) !== key.name) return false;
    try { return verify(null, fp, key.key, Buffer.from(s.slice(i + 1), 'base64')); } catch { return false; }
  });
}

/** The narinfo text with its Sig lines replaced by one signature of `key` (the rest byte for byte). */
export function resign(text: string, f: NarInfoFields, key: SecretKey): string {
  const sig = sign(null, Buffer.from(fingerprint(f)), key.key).toString('base64');
  const lines = text.split('\n').filter((l) => !l.startsWith('Sig: '));
  const end = lines[lines.length - 1] === '' ? lines.pop() : undefined;
  lines.push(`Sig: ${key.name}:${sig}`);
  if (end !== undefined) lines.push('');
  return lines.join('\n');
}
