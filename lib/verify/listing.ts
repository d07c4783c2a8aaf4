// NAR listings (`HASH.ls`, Nix's write-nar-listing): what `nix ls-store`/`nix store ls` and
// nix-index read instead of the NAR. Decoded by the object's Content-Encoding (as Nix's HTTP
// binary cache store does), parsed as Nix's listing JSON (nar-accessor.cc listNar:
// {"version":1,"root":MEMBER}, MEMBER = regular {size, executable?, narOffset?} | directory
// {entries} | symlink {target}), and held against the narinfo of that NAR: every file lies
// inside NarSize bytes.
import { spawnSync } from 'node:child_process';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { z } from 'zod';

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
  try {
    if (enc === '' || enc === 'identity') return bytes.toString('utf8');
    if (enc === 'gzip') return gunzipSync(bytes).toString('utf8');
    if (enc === 'br') return brotliDecompressSync(bytes).toString('utf8');
    if (enc === 'zstd' || enc === 'xz') {
      const r = spawnSync(enc, ['-dc'], { input: bytes });
      return r.status === 0 ? r.stdout.toString('utf8') : undefined;
    }
  } catch { return undefined; }
  return undefined;
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
