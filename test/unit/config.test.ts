import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseS3Url } from '../../lib/config/config.ts';
import { repoRoot } from '../helpers/project.ts';

async function configFile(data: unknown): Promise<string> {
  const f = path.join(await mkdtemp(path.join(os.tmpdir(), 'releng-cfg-')), 'releng.json');
  await writeFile(f, typeof data === 'string' ? data : JSON.stringify(data));
  return f;
}

describe('releng.json', () => {
  it('loads the shipped examples', async () => {
    const hello = await loadConfig(path.join(repoRoot, 'examples/hello/releng.json'));
    expect(hello.config.environments.local!.s3!.endpoint).toBe('embedded');
    const lix = await loadConfig(path.join(repoRoot, 'examples/lix/releng.json'));
    expect(Object.keys(lix.config.environments)).toEqual(['local', 'staging', 'production']);
    expect(lix.config.environments.production!.releasesBucket).toBe('s3://releases.lix.systems');
    expect(lix.config.environments.staging!.s3!.checksums).toBe('WHEN_REQUIRED');
  });

  it('names the file and the field of every problem', async () => {
    const lix = JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(path.join(repoRoot, 'examples/lix/releng.json'), 'utf8')));
    lix.environments.staging.releasesBucket = 'https://not-s3';
    lix.environments.staging.s3.checksums = 'SOMETIMES';
    lix.bogus = 1;
    const f = await configFile(lix);
    const err = await loadConfig(f).catch((e) => e);
    expect(err.message).toContain(f);
    expect(err.message).toContain('environments.staging.releasesBucket: expected s3:// URL');
    expect(err.message).toContain('environments.staging.s3.checksums');
    expect(err.message).toMatch(/bogus/);
  });

  it('accepts file:// trees (no s3 section needed), and names what is missing or malformed (issue 11)', async () => {
    const lix = JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(path.join(repoRoot, 'examples/lix/releng.json'), 'utf8')));
    lix.environments.mirror = { releasesBucket: 'file:///srv/mirror/lix/releases', cacheBucket: 'file:///srv/mirror/lix/cache', docsBucket: 'file:///srv/mirror/lix/docs',
      mirror: { fileLists: { lix: { root: 'file:///srv/mirror/lix' } } } };
    const ok = await loadConfig(await configFile(lix));
    expect(ok.config.environments.mirror!.mirror!.fileLists.lix!.checksums).toEqual(['SHA256SUMS', 'manifest.nix']);
    expect(ok.config.environments.mirror!.mirror!.latestLinks).toBe(true);
    // create-filelist's four checksum sections by default (issue 28); a wrong or repeated one is named.
    expect(ok.config.environments.mirror!.mirror!.fileLists.lix!.checksumAlgorithms).toEqual(['SHA1', 'MD5', 'SHA256', 'SHA512']);
    const algos = structuredClone(lix);
    algos.environments.mirror.mirror.fileLists.lix.checksumAlgorithms = ['SHA1', 'CRC32'];
    const badAlgo = await loadConfig(await configFile(algos)).catch((e) => e);
    expect(badAlgo.message).toContain('environments.mirror.mirror.fileLists.lix.checksumAlgorithms[1]: Invalid option: expected one of "SHA1"|"MD5"|"SHA256"|"SHA512"');
    algos.environments.mirror.mirror.fileLists.lix.checksumAlgorithms = ['SHA1', 'SHA1'];
    expect((await loadConfig(await configFile(algos)).catch((e) => e)).message).toContain('environments.mirror.mirror.fileLists.lix.checksumAlgorithms: an algorithm is named twice');
    algos.environments.mirror.mirror.fileLists.lix.checksumAlgorithms = ['SHA1'];
    algos.environments.mirror.mirror.torrents = { match: [] };
    expect((await loadConfig(await configFile(algos)).catch((e) => e)).message).toContain('environments.mirror.mirror.torrents.match: name the files that get a torrent');
    lix.environments.mirror.cacheBucket = 's3://cache';
    const noS3 = await loadConfig(await configFile(lix)).catch((e) => e);
    expect(noS3.message).toContain('environments.mirror.s3: required: cacheBucket is on S3 (set s3.endpoint, or use file:// URLs)');
    lix.environments.mirror.docsBucket = 'file://relative/docs';
    lix.environments.mirror.mirror.fileLists['bad name'] = { root: 'file:///x' };
    const f = await configFile(lix);
    const err = await loadConfig(f).catch((e) => e);
    expect(err.message).toContain('environments.mirror.docsBucket: expected s3:// URL (s3://BUCKET or s3://BUCKET/PREFIX) or file:///ABSOLUTE/DIR');
    expect(err.message).toContain('environments.mirror.mirror.fileLists');
  });

  it('says which file is not JSON, and which is missing', async () => {
    const f = await configFile('{ nope');
    await expect(loadConfig(f)).rejects.toThrow(`${f} is not valid JSON`);
    await expect(loadConfig('/nonexistent/releng.json')).rejects.toThrow('cannot read config /nonexistent/releng.json: no such file');
  });

  it('rejects a defaultProfile that is not a profile', async () => {
    const f = await configFile({ project: 'x', releaseJobs: { file: 'r.nix' }, profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'most', environments: { local: { releasesBucket: 's3://a-b', cacheBucket: 's3://a-c', docsBucket: 's3://a-d', s3: { endpoint: 'embedded' } } } });
    await expect(loadConfig(f)).rejects.toThrow('defaultProfile: "most" is not one of the profiles (all)');
  });

  it('splits s3 URLs into bucket and prefix', () => {
    expect(parseS3Url('s3://releases.lix.systems')).toEqual({ bucket: 'releases.lix.systems', prefix: '' });
    expect(parseS3Url('s3://bucket/some/prefix/')).toEqual({ bucket: 'bucket', prefix: 'some/prefix/' });
  });
});
