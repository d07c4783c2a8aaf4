// `.torrent` files for large release files (issue 28), as Rocky's release tooling makes for its
// images (gen-torrents.sh), web-seeded so a client needs no peer and no tracker: BitTorrent v1
// metainfo (BEP 3) of one file, its `url-list` (BEP 19) the file's public URLs, `announce` and
// `announce-list` (BEP 12) only when trackers are configured. `build` writes one beside each file an
// environment asks for (mirror.torrents), before SHA256SUMS, so the torrent is part of the immutable
// release: the same bytes in every environment (promote copies, never rebuilds), hence its web seeds
// are those of every environment that asks for torrents of that file. No `creation date`: a rebuild
// of the same release gives the same torrent. Bencoding is webtorrent's `bencode` package.
import bencode from 'bencode';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Config, TorrentSettings } from '../config/config.ts';

/** Piece sizes: a power of two from 32 KiB to 16 MiB. */
export const minPieceLength = 32 * 1024;
export const maxPieceLength = 16 * 1024 * 1024;
/** The number of pieces aimed at: at most this many, unless the file needs 16 MiB pieces. */
export const targetPieces = 1500;

/**
 * The piece length for a file of `size` bytes: the smallest power of two that cuts it into at most
 * 1,500 pieces, within 32 KiB … 16 MiB (a 700 MiB ISO: 512 KiB pieces; 4 GiB: 4 MiB; 100 MiB: 128 KiB).
 * Fewer, larger pieces keep the metainfo small (20 bytes a piece); smaller ones let a client verify
 * and share sooner. Tools choose alike (mktorrent, torrenttools); no client depends on the choice.
 */
export function pieceLengthFor(size: number): number {
  let p = minPieceLength;
  while (p < maxPieceLength && Math.ceil(size / p) > targetPieces) p *= 2;
  return p;
}

/** The SHA1 of each piece of a file, concatenated (the `pieces` string), read once as a stream. */
export async function pieceHashes(file: string, pieceLength: number): Promise<{ length: number; pieces: Buffer }> {
  const out: Buffer[] = [];
  let hash = createHash('sha1');
  let inPiece = 0;
  let length = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    let buf = chunk as Buffer;
    length += buf.length;
    while (buf.length) {
      const take = Math.min(buf.length, pieceLength - inPiece);
      hash.update(buf.subarray(0, take));
      inPiece += take;
      buf = buf.subarray(take);
      if (inPiece === pieceLength) { out.push(hash.digest()); hash = createHash('sha1'); inPiece = 0; }
    }
  }
  if (inPiece > 0 || length === 0) out.push(hash.digest());
  return { length, pieces: Buffer.concat(out) };
}

export interface TorrentFields {
  /** The file's name (`info.name`): what the client saves it as. */
  name: string;
  length: number;
  pieceLength: number;
  /** Concatenated SHA1 digests, 20 bytes a piece. */
  pieces: Buffer;
  /** Full URLs of the file (BEP 19 url-list). */
  webSeeds: string[];
  trackers: string[];
  comment?: string;
}

/** The metainfo bytes (canonical bencoding: keys sorted), and the info hash clients name it by. */
export function renderTorrent(t: TorrentFields): { bytes: Buffer; infoHash: string } {
  const info = { length: t.length, name: t.name, 'piece length': t.pieceLength, pieces: t.pieces };
  const meta: Record<string, any> = {
    info,
    'url-list': t.webSeeds,
    'created by': 'releng',
    ...(t.comment ? { comment: t.comment } : {}),
    ...(t.trackers.length ? { announce: t.trackers[0], 'announce-list': t.trackers.map((u) => [u]) } : {}),
  };
  return { bytes: Buffer.from(bencode.encode(meta)), infoHash: createHash('sha1').update(bencode.encode(info)).digest('hex') };
}

/** A torrent read back (tests, and anyone checking one): the fields above and the info hash. */
export function parseTorrent(bytes: Uint8Array): TorrentFields & { infoHash: string } {
  const meta = bencode.decode(bytes);
  const text = (v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : undefined);
  const info = meta?.info;
  if (!info || typeof info.length !== 'number' || typeof info['piece length'] !== 'number' || !(info.pieces instanceof Uint8Array)) throw new Error('not a single-file BitTorrent v1 metainfo (info.length, info.piece length, info.pieces)');
  const urlList = meta['url-list'];
  const webSeeds = urlList instanceof Uint8Array ? [text(urlList)!] : Array.isArray(urlList) ? urlList.map((u: Uint8Array) => text(u)!) : [];
  const trackers = Array.isArray(meta['announce-list']) ? meta['announce-list'].flat().map((u: Uint8Array) => text(u)!) : meta.announce ? [text(meta.announce)!] : [];
  return {
    name: text(info.name)!, length: info.length, pieceLength: info['piece length'], pieces: Buffer.from(info.pieces), webSeeds, trackers,
    ...(meta.comment ? { comment: text(meta.comment) } : {}),
    infoHash: createHash('sha1').update(bencode.encode(info)).digest('hex'),
  };
}

/** Shell-style glob on a file name (`*` and `?`), or an exact name. */
function globMatches(name: string, globs: string[]): boolean {
  return globs.some((g) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(name));
}

/** What one release file's torrent says besides its pieces: its web seeds, trackers and comment. */
export interface TorrentRequest { webSeeds: string[]; trackers: string[]; comment?: string }

/**
 * Whether `name` (a file of the release prefix, `size` bytes) gets a torrent, and with which web
 * seeds: for every environment whose mirror.torrents matches it, its releasesUrl and extra webSeeds
 * followed by the file's key (`PROJECT/PROJECT-VERSION/NAME`), in the config's order; trackers
 * likewise; the first comment. Undefined when no environment asks. A torrent never gets a torrent.
 */
export function torrentRequest(config: Config, releaseDir: string, name: string, size: number): TorrentRequest | undefined {
  if (name.endsWith('.torrent')) return undefined;
  const asking = Object.values(config.environments)
    .map((e) => ({ e, t: e.mirror?.torrents as TorrentSettings | undefined }))
    .filter((x): x is { e: typeof x.e; t: TorrentSettings } => !!x.t && size >= x.t.minSize && globMatches(name.split('/').pop()!, x.t.match));
  if (!asking.length) return undefined;
  const key = `${releaseDir}/${name}`.split('/').map(encodeURIComponent).join('/');
  const seed = (base: string) => `${base.replace(/\/+$/, '')}/${key}`;
  const uniq = (l: string[]) => [...new Set(l)];
  return {
    webSeeds: uniq(asking.flatMap(({ e, t }) => [...(e.releasesUrl ? [seed(e.releasesUrl)] : []), ...t.webSeeds.map(seed)])),
    trackers: uniq(asking.flatMap(({ t }) => t.trackers)),
    comment: asking.find(({ t }) => t.comment)?.t.comment,
  };
}

/** Makes the torrent of one local file: pieces read once, the piece length chosen by its size. */
export async function makeTorrent(file: string, name: string, req: TorrentRequest): Promise<{ bytes: Buffer; infoHash: string; pieceLength: number; pieces: number }> {
  const { size } = await stat(file);
  const pieceLength = pieceLengthFor(size);
  const { length, pieces } = await pieceHashes(file, pieceLength);
  if (length !== size) throw new Error(`${file} changed while its torrent was made (${size} bytes, then ${length} read)`);
  const r = renderTorrent({ name, length, pieceLength, pieces, ...req });
  return { ...r, pieceLength, pieces: pieces.length / 20 };
}
