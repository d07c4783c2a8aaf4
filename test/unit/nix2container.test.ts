// A docker-archive from a nix2container image description (issue 26, lib/oci/nix2container.ts):
// real store paths (nix-store --add), descriptions written as nix2container writes them, and the
// refusals: another format version, a path not in the store, a layer-path that is not its diff_ids,
// a compressed layer media type. Each names the file and what to do.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerArchiveFromDescription, isImageDescription } from '../../lib/oci/nix2container.ts';
import { packageVersion, type ReleaseJobs } from '../../lib/nix/release-jobs.ts';
import { tagsFor } from '../../lib/upload/images.ts';
import { requireTool } from '../helpers/tools.ts';

describe('nix2container image descriptions', () => {
  let work: string;
  let storePath: string;
  let layerTar: string;
  const layer = (o: Record<string, unknown>) => ({ digest: 'sha256:' + '0'.repeat(64), size: 0, diff_ids: 'sha256:' + '0'.repeat(64), mediatype: 'application/vnd.oci.image.layer.v1.tar', ...o });
  const describe_ = async (name: string, d: Record<string, unknown>) => {
    const f = path.join(work, name);
    await writeFile(f, JSON.stringify({ version: 1, 'image-config': { Cmd: ['/bin/hello'] }, arch: 'amd64', created: '1970-01-01T00:00:01Z', ...d }));
    return f;
  };

  beforeAll(async () => {
    requireTool('nix-store', 'nix-bin');
    work = await mkdtemp(path.join(os.tmpdir(), 'releng-n2c-test-'));
    const src = path.join(work, `n2c-root-${process.pid}-${Date.now()}`);
    await mkdir(path.join(src, 'bin'), { recursive: true });
    await mkdir(path.join(src, 'tmp'));
    await writeFile(path.join(src, 'bin/hello'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
    storePath = execFileSync('nix-store', ['--add', src], { encoding: 'utf8' }).trim();
    layerTar = path.join(work, 'layer.tar');
    execFileSync('tar', ['-cf', layerTar, '-C', src, 'bin']);
  });
  afterAll(async () => { if (work) await rm(work, { recursive: true, force: true }); });

  it('assembles a docker-archive: config from image-config, one layer per description layer, rewrite and perms applied', async () => {
    const lp = execFileSync('nix-store', ['--add', layerTar], { encoding: 'utf8' }).trim();
    const diff = `sha256:${createHash('sha256').update(await readFile(lp)).digest('hex')}`;
    const f = await describe_('image.json', { layers: [
      layer({ paths: [{ path: storePath, options: { rewrite: { regex: `^${storePath}`, repl: '' }, perms: [{ regex: '/tmp$', mode: '1777' }] } }] }),
      layer({ paths: [{ path: storePath }] }),
      layer({ 'layer-path': lp, diff_ids: diff }),
    ] });
    expect(await isImageDescription(f)).toBe(true);
    const out = path.join(work, 'image.tar.gz');
    const r = await dockerArchiveFromDescription(f, out, 'hello:1.0.0');
    expect(r.layers).toBe(3);
    expect(r.diffIds[2]).toBe(diff);
    const x = path.join(work, 'x');
    await mkdir(x);
    execFileSync('tar', ['-xzf', out, '-C', x]);
    const manifest = JSON.parse(await readFile(path.join(x, 'manifest.json'), 'utf8'));
    expect(manifest[0].RepoTags).toEqual(['hello:1.0.0']);
    const config = JSON.parse(await readFile(path.join(x, manifest[0].Config), 'utf8'));
    expect(config).toMatchObject({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/hello'] }, rootfs: { type: 'layers', diff_ids: r.diffIds } });
    const root = execFileSync('tar', ['-tvf', path.join(x, manifest[0].Layers[0])], { encoding: 'utf8' });
    expect(root).toMatch(/^drwxrwxrwt root\/root .* tmp\/$/m);
    expect(root).toMatch(/^-r-xr-xr-x root\/root .* bin\/hello$/m);
    const store = execFileSync('tar', ['-tf', path.join(x, manifest[0].Layers[1])], { encoding: 'utf8' }).split('\n');
    expect(store.slice(0, 3)).toEqual(['nix/', 'nix/store/', `${storePath.slice(1)}/`]);
    // The same description gives the same bytes (stable digests across runs).
    const again = path.join(work, 'again.tar.gz');
    await dockerArchiveFromDescription(f, again, 'hello:1.0.0');
    expect(await readFile(again)).toEqual(await readFile(out));
  });

  it('refuses what it cannot assemble, naming the file and the layer', async () => {
    const out = path.join(work, 'refused.tar.gz');
    await expect(dockerArchiveFromDescription(await describe_('v2.json', { version: 2, layers: [] }), out, 'x:1')).rejects.toThrow(/v2\.json[\s\S]*version: expected nix2container image format version 1/);
    const gone = '/nix/store/' + 'a'.repeat(32) + '-not-here';
    await expect(dockerArchiveFromDescription(await describe_('gone.json', { layers: [layer({ paths: [{ path: gone }] })] }), out, 'x:1')).rejects.toThrow(`gone.json layers[0]: ${gone} is not in the Nix store here`);
    const lp = execFileSync('nix-store', ['--add', layerTar], { encoding: 'utf8' }).trim();
    await expect(dockerArchiveFromDescription(await describe_('bad-layer.json', { layers: [layer({ 'layer-path': lp })] }), out, 'x:1')).rejects.toThrow(/bad-layer\.json layers\[0\]: layer-path .* hashes to sha256:[0-9a-f]{64}, not its diff_ids sha256:0{64}/);
    await expect(dockerArchiveFromDescription(await describe_('gz.json', { layers: [layer({ mediatype: 'application/vnd.oci.image.layer.v1.tar+gzip', paths: [{ path: storePath }] })] }), out, 'x:1')).rejects.toThrow('gz.json layers[0]: media type application/vnd.oci.image.layer.v1.tar+gzip is not one releng assembles');
  });
});

describe('rehearsal builds', () => {
  const jobs = (names: Record<string, string | undefined>) => ({
    build: Object.fromEntries(Object.entries(names).map(([s, name]) => [s, { job: { attr: `build.${s}`, drvPath: '/nix/store/x.drv', system: s, name, outputs: {} }, output: 'out', path: '/nix/store/x' }])),
  }) as unknown as ReleaseJobs;

  it('read the version from the build jobs\' names, and refuse names that are not PROJECT-VERSION or disagree', () => {
    expect(packageVersion(jobs({ 'x86_64-linux': 'lix-2.96.0-dev-abc1234', 'aarch64-darwin': 'lix-2.96.0-dev-abc1234' }), 'lix')).toBe('2.96.0-dev-abc1234');
    expect(() => packageVersion(jobs({ 'x86_64-linux': 'nix-2.96.0' }), 'lix')).toThrow('build.x86_64-linux (x86_64-linux) is named nix-2.96.0, not lix-VERSION');
    expect(() => packageVersion(jobs({ 'x86_64-linux': 'lix-2.96.0-dev-abc1234', 'aarch64-linux': 'lix-2.96.0-dev-def5678' }), 'lix')).toThrow('the build jobs were built as different versions');
  });

  it('never move MAJOR or latest image tags', () => {
    const target = { registry: 'ghcr.io', repository: 'lix-project/lix', tags: ['{version}', '{major}'], latest: true } as any;
    const t = tagsFor(target, { version: '2.96.0-dev-abc1234', major: '2.96', maintenance: true, unofficial: true });
    expect(t.tags).toEqual(['2.96.0-dev-abc1234']);
    expect(t.skipped.map((s) => s.what)).toEqual(['tag ghcr.io/lix-project/lix:2.96', 'tag ghcr.io/lix-project/lix:latest']);
    expect(tagsFor(target, { version: '2.96.0', major: '2.96', maintenance: false }).tags).toEqual(['2.96.0', '2.96', 'latest']);
  });
});
