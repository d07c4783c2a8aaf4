// Per-bucket S3 endpoints (environments.NAME.bucketS3): the config is checked where it enters, and
// the routing store sends each request to the store of its bucket.
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../lib/config/config.ts';
import { makeContext } from '../../../lib/config/context.ts';
import { openEnvironment } from '../../../lib/environment/open.ts';
import { createLogger } from '../../../lib/cli/log.ts';
import { routeByBucket } from '../../../lib/s3/route.ts';
import type { S3Store } from '../../../lib/s3/store.ts';

async function envWith(bucketS3: unknown) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-bucket-s3-'));
  const file = path.join(dir, 'releng.json');
  await writeFile(file, JSON.stringify({
    project: 'p', releaseJobs: { flake: '.#x' }, profiles: { all: { systems: ['x86_64-linux'] } }, defaultProfile: 'all',
    environments: { prod: { releasesBucket: 's3://rel', cacheBucket: 's3://rel', docsBucket: 's3://rel', channelsBucket: 's3://chan',
      s3: { endpoint: 'http://127.0.0.1:1' }, bucketS3, credentials: { source: 'env', accessKeyIdVar: 'RELENG_TEST_KEY', secretAccessKeyVar: 'RELENG_TEST_SECRET' } } },
  }));
  return file;
}

describe('bucketS3', () => {
  it('refuses a bucket the environment does not have, and fields S3 settings do not have', async () => {
    process.env.RELENG_TEST_KEY = 'k';
    process.env.RELENG_TEST_SECRET = 's';
    const loaded = await loadConfig(await envWith({ 'nix-channels': { endpoint: 'http://127.0.0.1:2' } }));
    const ctx = makeContext(loaded, { version: '', major: '', official: false, releaseName: '', file: '' },
      { dryRun: false, json: false, noconfirm: true, verbose: false, noCheckGit: false, environment: 'prod', extra: {} }, createLogger({ quiet: true }));
    await expect(openEnvironment(ctx)).rejects.toThrow('environments.prod.bucketS3.nix-channels: no bucket of this environment is called nix-channels');
    await expect(loadConfig(await envWith({ chan: { endpiont: 'http://x' } }))).rejects.toThrow(/environments\.prod\.bucketS3\.chan.*endpiont/s);
  });

  it('routes every request by bucket', async () => {
    const calls: string[] = [];
    const fake = (name: string): S3Store => new Proxy({ endpoint: name } as S3Store, {
      get: (t, prop) => prop === 'endpoint' ? name : async (...args: any[]) => { calls.push(`${name} ${String(prop)} ${typeof args[0] === 'string' ? args[0] : args[0].bucket}`); },
    });
    const s = routeByBucket(fake('eu'), { chan: fake('us') });
    await s.head('chan', 'k');
    await s.list('rel', '');
    await s.put({ bucket: 'chan', key: 'x', body: { text: '' }, size: 0, sha256: '', contentType: 'text/plain' });
    await s.checkBucket('rel');
    expect(calls).toEqual(['us head chan', 'eu list rel', 'us put chan', 'eu checkBucket rel']);
  });
});
