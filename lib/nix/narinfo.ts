// Narinfo files as a binary cache serves them, read strictly (verify must not accept what Nix
// would refuse), and their ed25519 signatures checked as Nix checks them: over the fingerprint
// `1;STOREPATH;NARHASH;NARSIZE;REF,REF,...` (libstore ValidPathInfo::fingerprint: NarHash as
// sha256:nix32, references as full store paths, sorted, comma-separated), key `NAME:BASE64(32 bytes)`,
// signature `NAME:BASE64(64 bytes)`.
import { createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { nixSha256, parseSha256Hash } from './nix32.ts';

export interface ParsedNarInfo {
  storePath: string;
  url: string;
  compression: string;
  /** sha256 of the file at URL (as written, any accepted form) and its bytes. */
  fileHash?: Uint8Array;
  fileSize?: number;
  narHash: Uint8Array;
  narSize: number;
  /** Full store paths. */
  references: string[];
  deriver?: string;
  sigs: string[];
  ca?: string;
}

const storePathRe = (storeDir: string) => new RegExp(`^${storeDir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\\-._?=]+$`);

/** Parses narinfo text; returns the problems instead of throwing (verify reports them per key). */
export function parseNarInfoStrict(text: string, storeDir = '/nix/store'): { info?: ParsedNarInfo; problems: string[] } {
  const problems: string[] = [];
  const fields = new Map<string, string>();
  const sigs: string[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const i = line.indexOf(':');
    if (i <= 0) { problems.push(`line without "Key: value": ${JSON.stringify(line.slice(0, 80))}`); continue; }
    const k = line.slice(0, i);
    const v = line.slice(i + 1).replace(/^ /, '');
    if (k === 'Sig') sigs.push(v);
    else fields.set(k, v);
  }
  const isPath = storePathRe(storeDir);
  const need = (k: string) => {
    const v = fields.get(k);
    if (v === undefined) problems.push(`no ${k} field`);
    return v;
  };
  const storePath = need('StorePath');
  const url = need('URL');
  const narHashText = need('NarHash');
  const narSizeText = need('NarSize');
  const refsText = fields.get('References') ?? '';
  if (storePath !== undefined && !isPath.test(storePath)) problems.push(`StorePath ${JSON.stringify(storePath)} is not a store path in ${storeDir}`);
  const narHash = narHashText === undefined ? undefined : parseSha256Hash(narHashText);
  if (narHashText !== undefined && !narHash) problems.push(`NarHash ${JSON.stringify(narHashText)} is not a sha256`);
  const int = (k: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) { problems.push(`${k} ${JSON.stringify(v)} is not a number`); return undefined; }
    return Number(v);
  };
  const narSize = int('NarSize', narSizeText);
  const fileSize = int('FileSize', fields.get('FileSize'));
  const fileHashText = fields.get('FileHash');
  const fileHash = fileHashText === undefined ? undefined : parseSha256Hash(fileHashText);
  if (fileHashText !== undefined && !fileHash) problems.push(`FileHash ${JSON.stringify(fileHashText)} is not a sha256`);
  const references = refsText.trim() ? refsText.trim().split(/\s+/).map((r) => `${storeDir}/${r}`) : [];
  for (const r of references) if (!isPath.test(r)) problems.push(`reference ${JSON.stringify(r)} is not a store path`);
  if (url !== undefined && (url === '' || url.startsWith('/') || url.split('/').includes('..'))) problems.push(`URL ${JSON.stringify(url)} is not a relative path inside the cache`);
  if (problems.length || storePath === undefined || url === undefined || !narHash || narSize === undefined) return { problems };
  return {
    problems,
    info: {
      storePath, url, compression: fields.get('Compression') ?? 'bzip2', fileHash, fileSize, narHash, narSize, references,
      deriver: fields.get('Deriver') || undefined, sigs, ca: fields.get('CA') || undefined,
    },
  };
}

/** The text Nix signs for a path (libstore path-info.cc, ValidPathInfo::fingerprint). */
export function narInfoFingerprint(info: Pick<ParsedNarInfo, 'storePath' | 'narHash' | 'narSize' | 'references'>): string {
  return `1;${info.storePath};${nixSha256(info.narHash)};${info.narSize};${[...info.references].sort().join(',')}`;
}

/** A trusted public key, `NAME:BASE64` as in `trusted-public-keys`. */
export interface NixPublicKey {
  name: string;
  key: KeyObject;
}

/** Parses `NAME:BASE64` (32 raw ed25519 bytes); throws naming what is wrong (never the secret: this is the public half). */
export function parseNixPublicKey(text: string): NixPublicKey {
  const i = text.indexOf(':');
  const raw = i > 0 ? Buffer.from(text.slice(i + 1), 'base64') : Buffer.alloc(0);
  if (i <= 0 || raw.length !== 32) throw new Error(`"${text}" is not a Nix public key (NAME:BASE64 of 32 bytes)`);
  // SPKI DER for an ed25519 key: fixed 12-byte header (RFC 8410) + the 32 raw bytes.
  const der = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]);
  return { name: text.slice(0, i), key: createPublicKey({ key: der, format: 'der', type: 'spki' }) };
}

/** Whether one of the narinfo's `Sig` lines is a valid signature by `key`; with why not. */
export function checkNarInfoSignature(info: ParsedNarInfo, key: NixPublicKey): { ok: true } | { ok: false; why: string } {
  const mine = info.sigs.filter((s) => s.startsWith(`${key.name}:`));
  if (mine.length === 0) return { ok: false, why: info.sigs.length ? `signed only by ${info.sigs.map((s) => s.split(':')[0]).join(', ')}, not by ${key.name}` : 'not signed' };
  const data = Buffer.from(narInfoFingerprint(info));
  for (const s of mine) {
    const sig = Buffer.from(s.slice(key.name.length + 1), 'base64');
    if (sig.length === 64 && verifySignature(null, data, key.key, sig)) return { ok: true };
  }
  return { ok: false, why: `the signature by ${key.name} does not verify (the narinfo was changed after signing, or signed by another key of that name)` };
}
