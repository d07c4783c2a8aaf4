// Torrents (issue 28): BitTorrent v1 metainfo (BEP 3) with web seeds (BEP 19). The bencoding is
// checked against bytes written out by hand from the spec (keys sorted, `length:bytes` strings,
// `iINTe` integers), the piece hashes against SHA1 of the file's slices, the piece length against
// the documented rule, and which release files get one (and with which seeds) from the config.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../../lib/config/config.ts';
import { makeTorrent, parseTorrent, pieceHashes, pieceLengthFor, renderTorrent, torrentRequest } from '../../../lib/mirror/torrent.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('torrents', () => {
  let dir: string;
  beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'releng-torrent-')); });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  it('chooses the piece length by size: the smallest power of two giving at most 1,500 pieces, 32 KiB to 16 MiB', () => {
    expect(pieceLengthFor(0)).toBe(32 * KiB);
    expect(pieceLengthFor(1 * MiB)).toBe(32 * KiB);
    expect(pieceLengthFor(1500 * 32 * KiB)).toBe(32 * KiB);
    expect(pieceLengthFor(1500 * 32 * KiB + 1)).toBe(64 * KiB);
    expect(pieceLengthFor(100 * MiB)).toBe(128 * KiB);
    expect(pieceLengthFor(700 * MiB)).toBe(512 * KiB);
    expect(pieceLengthFor(4096 * MiB)).toBe(4 * MiB);
    expect(pieceLengthFor(1024 * 1024 * MiB)).toBe(16 * MiB); // 1 TiB: capped, more pieces
  });

  it('hashes every piece, the last one short, with SHA1', async () => {
    const file = path.join(dir, 'f.bin');
    const bytes = Buffer.alloc(100 * KiB + 7);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
    await writeFile(file, bytes);
    const { length, pieces } = await pieceHashes(file, 32 * KiB);
    expect(length).toBe(bytes.length);
    const want = [0, 1, 2, 3].map((i) => createHash('sha1').update(bytes.subarray(i * 32 * KiB, (i + 1) * 32 * KiB)).digest());
    expect(pieces).toEqual(Buffer.concat(want));
  });

  it('bencodes the metainfo canonically, as BEP 3 spells it (byte for byte), with url-list and no creation date', () => {
    const pieces = Buffer.alloc(20, 0xab);
    const { bytes, infoHash } = renderTorrent({ name: 'a.iso', length: 5, pieceLength: 32768, pieces, webSeeds: ['http://h/x/a.iso'], trackers: [] });
    const info = Buffer.concat([Buffer.from('d6:lengthi5e4:name5:a.iso12:piece lengthi32768e6:pieces20:'), pieces, Buffer.from('e')]);
    const want = Buffer.concat([Buffer.from('d10:created by6:releng4:info'), info, Buffer.from('8:url-listl16:http://h/x/a.isoee')]);
    expect(bytes).toEqual(want);
    expect(infoHash).toBe(createHash('sha1').update(info).digest('hex'));
    const withTrackers = renderTorrent({ name: 'a.iso', length: 5, pieceLength: 32768, pieces, webSeeds: [], trackers: ['udp://t1:1/announce', 'http://t2/announce'], comment: 'notes' });
    expect(withTrackers.infoHash).toBe(infoHash); // trackers and seeds are outside info
    expect(parseTorrent(withTrackers.bytes)).toMatchObject({ trackers: ['udp://t1:1/announce', 'http://t2/announce'], comment: 'notes', webSeeds: [] });
    expect(withTrackers.bytes.toString('latin1')).toContain('8:announce19:udp://t1:1/announce13:announce-listll19:udp://t1:1/announceel18:http://t2/announceee');
  });

  it('makes the torrent of a file and reads it back', async () => {
    const file = path.join(dir, 'g.iso');
    await writeFile(file, Buffer.alloc(3 * MiB + 1, 7));
    const t = await makeTorrent(file, 'g.iso', { webSeeds: ['http://a/g.iso', 'http://b/g.iso'], trackers: [] });
    expect(t).toMatchObject({ pieceLength: 32 * KiB, pieces: 97 });
    expect(parseTorrent(t.bytes)).toMatchObject({ name: 'g.iso', length: 3 * MiB + 1, pieceLength: 32 * KiB, webSeeds: ['http://a/g.iso', 'http://b/g.iso'], infoHash: t.infoHash });
  });

  it('gives a release file a torrent when an environment asks, its web seeds every asking environment\'s URL of the file', () => {
    const config = configSchema.parse({
      project: 'lix', releaseJobs: { file: 'release.nix' }, profiles: { p: { systems: ['x86_64-linux'] } }, defaultProfile: 'p',
      environments: {
        staging: { releasesBucket: 'file:///s/r', cacheBucket: 'file:///s/c', docsBucket: 'file:///s/d', releasesUrl: 'https://releases.staging.example/',
          mirror: { torrents: { match: ['*.iso'] } } },
        production: { releasesBucket: 'file:///p/r', cacheBucket: 'file:///p/c', docsBucket: 'file:///p/d', releasesUrl: 'https://releases.example',
          mirror: { torrents: { match: ['*.iso', '*.tar.xz'], minSize: 1000, webSeeds: ['https://mirror.example/lix/'], trackers: ['udp://tracker.example:1337/announce'], comment: 'https://docs.example/rl-2.93' } } },
        local: { releasesBucket: 'file:///l/r', cacheBucket: 'file:///l/c', docsBucket: 'file:///l/d' },
      },
    });
    expect(torrentRequest(config, 'lix/lix-2.93.0', 'lix-2.93.0-installer.iso', 5000)).toEqual({
      webSeeds: [
        'https://releases.staging.example/lix/lix-2.93.0/lix-2.93.0-installer.iso',
        'https://releases.example/lix/lix-2.93.0/lix-2.93.0-installer.iso',
        'https://mirror.example/lix/lix/lix-2.93.0/lix-2.93.0-installer.iso',
      ],
      trackers: ['udp://tracker.example:1337/announce'], comment: 'https://docs.example/rl-2.93',
    });
    expect(torrentRequest(config, 'lix/lix-2.93.0', 'lix-2.93.0-x86_64-linux.tar.xz', 5000)!.webSeeds).toEqual([
      'https://releases.example/lix/lix-2.93.0/lix-2.93.0-x86_64-linux.tar.xz', 'https://mirror.example/lix/lix/lix-2.93.0/lix-2.93.0-x86_64-linux.tar.xz',
    ]);
    expect(torrentRequest(config, 'lix/lix-2.93.0', 'lix-2.93.0-x86_64-linux.tar.xz', 999)).toBeUndefined(); // under minSize
    expect(torrentRequest(config, 'lix/lix-2.93.0', 'SHA256SUMS', 5000)).toBeUndefined();
    expect(torrentRequest(config, 'lix/lix-2.93.0', 'x.iso.torrent', 5000)).toBeUndefined();
  });

  it('refuses torrents for an environment without an http(s) releasesUrl (the web seed), naming the field', () => {
    const r = configSchema.safeParse({
      project: 'lix', releaseJobs: { file: 'release.nix' }, profiles: { p: { systems: ['x86_64-linux'] } }, defaultProfile: 'p',
      environments: { production: { releasesBucket: 'file:///p/r', cacheBucket: 'file:///p/c', docsBucket: 'file:///p/d', releasesUrl: '/releases', mirror: { torrents: { match: ['*.iso'] } } } },
    });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error!.issues)).toContain('required as an http(s):// URL when mirror.torrents is set');
    expect(r.error!.issues[0]!.path).toEqual(['environments', 'production', 'releasesUrl']);
  });
});
