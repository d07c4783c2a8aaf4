// NAR listings as Nix writes them (write-nar-listing=true on a file:// cache, a real `nix copy`):
// lib/verify/listing.ts accepts them plain and as their Content-Encoding says, and names a listing
// that does not decode, does not parse, or is not this NAR's.
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listingProblem } from '../../../lib/verify/listing.ts';
import { requireTool } from '../../helpers/tools.ts';
import '../../helpers/setup.ts';

let work: string;
let ls: Buffer;
let narSize: number;

beforeAll(async () => {
  requireTool('nix-store', 'nix-bin');
  requireTool('zstd', 'zstd');
  work = await mkdtemp(path.join(os.tmpdir(), 'releng-listing-'));
  const tree = path.join(work, 'tree');
  await mkdir(path.join(tree, 'bin'), { recursive: true });
  await writeFile(path.join(tree, 'bin', 'hello'), '#!/bin/sh\necho hello\n');
  await chmod(path.join(tree, 'bin', 'hello'), 0o755);
  await writeFile(path.join(tree, 'README'), 'a file\n'.repeat(100));
  await symlink('bin/hello', path.join(tree, 'link'));
  const storePath = execFileSync('nix-store', ['--add', tree], { encoding: 'utf8' }).trim();
  const cache = path.join(work, 'cache');
  execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'copy', '--to', `file://${cache}?write-nar-listing=true&compression=none`, storePath]);
  const hash = path.basename(storePath).slice(0, 32);
  ls = await readFile(path.join(cache, `${hash}.ls`));
  narSize = Number(/^NarSize: (\d+)$/m.exec(await readFile(path.join(cache, `${hash}.narinfo`), 'utf8'))![1]);
});
afterAll(async () => { if (work) await rm(work, { recursive: true, force: true }); });

describe('listingProblem', () => {
  it('accepts the listing Nix wrote, plain and as its Content-Encoding (zstd, gzip) says', () => {
    expect(JSON.parse(ls.toString('utf8')).root.type).toBe('directory');
    expect(listingProblem(ls, undefined, narSize)).toBeUndefined();
    expect(listingProblem(execFileSync('zstd', ['-c', '-q'], { input: ls }), 'zstd', narSize)).toBeUndefined();
    expect(listingProblem(gzipSync(ls), 'gzip', narSize)).toBeUndefined();
  });

  it('names compressed bytes served without their Content-Encoding, and an encoding that is not the bytes\'', () => {
    expect(listingProblem(execFileSync('zstd', ['-c', '-q'], { input: ls }), undefined, narSize)).toMatch(/^is not JSON/);
    expect(listingProblem(ls, 'zstd', narSize)).toMatch(/does not decode as its Content-Encoding "zstd"/);
  });

  it('names a flipped byte (not JSON, or not a listing) and the listing of another NAR', () => {
    const flipped = Buffer.from(ls);
    flipped[ls.indexOf('"type"') + 1]! ^= 0x01;
    expect(listingProblem(flipped, undefined, narSize)).toMatch(/^is not (JSON|a Nix NAR listing)/);
    expect(listingProblem(Buffer.from('{"version":1,"root":{"type":"regular"}}'), undefined, narSize)).toMatch(/^is not a Nix NAR listing: root/);
    expect(listingProblem(ls, undefined, 100)).toMatch(/beyond the NAR's 100 bytes/);
  });
});
