// Nix's base-32 ("nix32"): its own alphabet (no e, o, u, t), and the bytes read from the END, as
// libutil's Hash::to_string(Base32) does (printHash32). Every narinfo NarHash/FileHash is
// `sha256:` + this encoding of the 32-byte digest (52 characters). Tested against `nix-hash --to-base32`.
export const nix32Alphabet = '0123456789abcdfghijklmnpqrsvwxyz';

/** Length of the nix32 text of `bytes` bytes (52 for sha256). */
export function nix32Length(bytes: number): number {
  return Math.floor((bytes * 8 - 1) / 5) + 1;
}

/** Encodes bytes as Nix prints them: character n (from the right) holds bits 5n..5n+4. */
export function nix32Encode(bytes: Uint8Array): string {
  const len = nix32Length(bytes.length);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    const c = (bytes[i]! >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0);
    out += nix32Alphabet[c & 0x1f];
  }
  return out;
}

/** Decodes nix32 text of a `size`-byte hash; undefined when a character is foreign or bits overflow. */
export function nix32Decode(text: string, size: number): Uint8Array | undefined {
  if (text.length !== nix32Length(size)) return undefined;
  const out = new Uint8Array(size);
  for (let n = 0; n < text.length; n++) {
    const digit = nix32Alphabet.indexOf(text[text.length - n - 1]!);
    if (digit < 0) return undefined;
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    out[i]! |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1]! |= carry;
    else if (carry) return undefined;
  }
  return out;
}

/**
 * Parses a sha256 as narinfos and Nix print it — `sha256:NIX32`, `sha256:HEX` or SRI
 * `sha256-BASE64` — into its 32 bytes; undefined for anything else (another algorithm included).
 */
export function parseSha256Hash(text: string): Uint8Array | undefined {
  const sri = /^sha256-([A-Za-z0-9+/]{43}=)$/.exec(text);
  if (sri) return new Uint8Array(Buffer.from(sri[1]!, 'base64'));
  const m = /^sha256:(.+)$/.exec(text);
  if (!m) return undefined;
  const v = m[1]!;
  if (/^[0-9a-f]{64}$/.test(v)) return new Uint8Array(Buffer.from(v, 'hex'));
  return nix32Decode(v, 32);
}

/** `sha256:NIX32` of a digest: the form Nix signs (fingerprints) and writes in narinfos. */
export function nixSha256(digest: Uint8Array): string {
  return `sha256:${nix32Encode(digest)}`;
}
