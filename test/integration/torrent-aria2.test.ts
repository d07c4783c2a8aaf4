// A real BitTorrent client downloads a torrent releng made from its web seed alone (issue 28):
// Debian's aria2c, with no tracker, DHT or peer, fetches a 3 MiB file (97 pieces) from a web server
// on 127.0.0.1 by HTTP ranges and checks every piece against the metainfo; the file is byte for byte
// the original. A web seed serving one flipped byte fails the piece hash of that piece: aria2c never
// completes the download, and names the piece. (The release flow's torrent, from `releng build` to a
// promoted mirror tree, is downloaded in test/integration/mirror-rsync.test.ts.)
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTorrent, pieceLengthFor } from '../../lib/mirror/torrent.ts';
import { aria2Download } from '../helpers/aria2.ts';
import { startStaticServer, type StaticServer } from '../helpers/http-static.ts';

describe('a torrent downloaded from its web seed alone (aria2c)', () => {
  let dir: string;
  let server: StaticServer;
  let original: Buffer;
  let torrent: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'releng-aria2-'));
    await mkdir(path.join(dir, 'srv', 'lix', 'lix-2.93.0'), { recursive: true });
    original = randomBytes(3 * 1024 * 1024 + 12345);
    const file = path.join(dir, 'srv', 'lix', 'lix-2.93.0', 'lix-2.93.0-installer.iso');
    await writeFile(file, original);
    server = await startStaticServer(path.join(dir, 'srv'));
    const t = await makeTorrent(file, 'lix-2.93.0-installer.iso', { webSeeds: [`${server.url}/lix/lix-2.93.0/lix-2.93.0-installer.iso`], trackers: [] });
    expect(t.pieceLength).toBe(pieceLengthFor(original.length));
    expect(t.pieces).toBe(Math.ceil(original.length / t.pieceLength));
    torrent = path.join(dir, 'lix-2.93.0-installer.iso.torrent');
    await writeFile(torrent, t.bytes);
  });
  afterAll(async () => { await server?.close(); await rm(dir, { recursive: true, force: true }); });

  it('downloads every piece from the web seed and verifies it: the same bytes', async () => {
    const out = path.join(dir, 'good');
    const run = await aria2Download(torrent, out);
    expect(run.ok, run.output).toBe(true);
    expect(run.output).toMatch(/\|OK\s*\|/);
    expect((await readFile(path.join(out, 'lix-2.93.0-installer.iso'))).equals(original)).toBe(true);
    expect(server.requests.filter((r) => r.path.endsWith('.iso')).every((r) => r.status === 206 && r.range)).toBe(true);
  });

  it('refuses a web seed that serves other bytes: the bad piece fails its hash, the download never completes', async () => {
    const bad = Buffer.from(original);
    bad[1_000_000] ^= 0x01; // in piece floor(1e6 / 32 KiB) = 30
    server.tamper('/lix/lix-2.93.0/lix-2.93.0-installer.iso', bad);
    const out = path.join(dir, 'bad');
    const run = await aria2Download(torrent, out, 4);
    server.tamper('/lix/lix-2.93.0/lix-2.93.0-installer.iso', undefined);
    expect(run.ok).toBe(false);
    expect(run.output).toContain(`Invalid checksum index=${Math.floor(1_000_000 / pieceLengthFor(original.length))}`);
    const got = await stat(path.join(out, 'lix-2.93.0-installer.iso')).catch(() => undefined);
    if (got?.size === original.length) expect((await readFile(path.join(out, 'lix-2.93.0-installer.iso'))).equals(bad)).toBe(false);
  }, 90_000);
});
