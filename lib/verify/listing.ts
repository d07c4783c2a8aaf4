// NAR listings (`HASH.ls`, Nix's write-nar-listing): what `nix ls-store`/`nix store ls` and
// nix-index read instead of the NAR. Decoded by the object's Content-Encoding (as Nix's HTTP
// binary cache store does), parsed as Nix's listing JSON (nar-accessor.cc listNar:
// {"version":1,"root":MEMBER}, MEMBER = regular {size, executable?, narOffset?} | directory
// {entries} | symlink {target}), and held against the narinfo of that NAR: every file lies
// inside NarSize bytes.
import { z } from 'zod';
import { decodeSmall } from './decompress.ts';

type Member = { type: 'regular'; size: number; executable?: boolean; narOffset?: number } | { type: 'directory'; entries: Record<string, Member> } | { type: 'symlink'; target: string };

const member: z.ZodType<Member> = z.lazy(() => z.discriminatedUnion('type', [
  z.object({ type: z.literal('regular'), size: z.number().int().nonnegative(), executable: z.boolean().optional(), narOffset: z.number().int().nonnegative().optional() }),
  z.object({ type: z.literal('directory'), entries: z.record(z.string().regex(/^[^/]+$/).refine((n) => n !== '.' && n !== '..'), member) }),
  z.object({ type: z.literal('symlink'), target: z.string().min(1) }),
]));
const listingSchema = z.object({ version: z.literal(1), root: member });

/** Decodes the bytes as served with this Content-Encoding; undefined: an encoding Nix does not decode, or bytes that are not in it. */
export function decodeListing(bytes: Buffer, contentEncoding: string | undefined): string | undefined {
  const enc = (contentEncoding ?? '').trim().toLowerCase();
  if (enc === '' || enc === 'identity') return bytes.toString('utf8');
  if (enc === 'gzip' || enc === 'br' || enc === 'zstd' || enc === 'xz') return decodeSmall(bytes, enc)?.toString('utf8');
  return undefined;
}

/**
 * The Content-Encoding of a listing's bytes as this run holds them (upload's staged .ls files):
 * JSON is plain, else the compression whose magic they start with (what ls-compression writes).
 */
export function sniffListingEncoding(bytes: Buffer): string | undefined {
  if (bytes.length >= 4 && bytes.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (bytes.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return 'gzip';
  if (/^\s*\{/.test(bytes.subarray(0, 16).toString('latin1'))) return undefined;
  return 'br';
}

/** What is wrong with a .ls for a NAR of `narSize` bytes (undefined: nothing). */
export function listingProblem(bytes: Buffer, contentEncoding: string | undefined, narSize: number): string | undefined {
  const text = decodeListing(bytes, contentEncoding);
  if (text === undefined) return `does not decode as its Content-Encoding ${contentEncoding ? `"${contentEncoding}"` : '(none: plain JSON)'} says (Nix cannot read it)`;
  let json: unknown;
  try { json = JSON.parse(text); } catch (e) { return `is not JSON (${(e as Error).message})`; }
  const parsed = listingSchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    return `is not a Nix NAR listing: ${i.path.join('.') || '(top)'}: ${i.message}`;
  }
  // Every regular file's bytes lie inside the NAR the narinfo describes.
  const outside: string[] = [];
  const walk = (m: Member, at: string) => {
    if (m.type === 'directory') { for (const [n, c] of Object.entries(m.entries)) walk(c, `${at}/${n}`); return; }
    if (m.type === 'regular' && m.narOffset !== undefined && m.narOffset + m.size > narSize) outside.push(at || '/');
  };
  walk(parsed.data.root, '');
  if (outside.length) return `lists ${outside.slice(0, 3).join(', ')}${outside.length > 3 ? ` and ${outside.length - 3} more` : ''} beyond the NAR's ${narSize} bytes (NarSize): it is the listing of another NAR`;
  return undefined;
}
