// The listing of published installers shared by `index`'s planner and its verifier (lib/index/verify.ts
// listPublished), on the filesystem store (the S3 reader contract on a directory).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderSha256Sums, sha256Text } from '../../../lib/hashing/checksums.ts';
import { fsStore } from '../../../lib/fs/store.ts';
import type { InstallersUploader } from '../../../lib/config/grants.ts';
import { listPublished, publishPrefix, verifyInstallers } from '../../../lib/index/verify.ts';

describe('listPublished', () => {
  let root: string;
  const store = fsStore();
  beforeEach(async () => { root = await mkdtemp(path.join(os.tmpdir(), 'releng-published-')); });
  afterEach(async () => { await rm(root, { recursive: true, force: true }); });
  const put = (key: string, text: string) => store.put({ bucket: root, key, body: { text }, size: Buffer.byteLength(text), sha256: sha256Text(text), contentType: 'text/plain' });
  const u = (): InstallersUploader => ({
    kind: 'installers', bucket: `file://${root}/rel`, prefix: 'incoming/{name}/{version}/', files: ['^hello-installer-[a-z0-9_-]+$'],
    publish: 'installers/hello-{version}/', latest: 'installers/', sumsFile: 'SHA256SUMS', indexPage: 'installers/index.html',
  } as InstallersUploader);

  it('names each key\'s version and file; a deeper key only its version; keys outside any version are left out', async () => {
    await put('rel/installers/hello-1.0/hello-installer-x86_64', 'a');
    await put('rel/installers/hello-1.0/SHA256SUMS', 'sums');
    await put('rel/installers/hello-2.0/sub/readme', 'deeper');
    await put('rel/installers/index.html', 'page');
    const got = await listPublished(store, { bucket: root, prefix: 'rel/' }, u(), 'installers');
    expect(got.sort((a, b) => (a.key < b.key ? -1 : 1))).toEqual([
      { key: 'rel/installers/hello-1.0/SHA256SUMS', version: '1.0', file: 'SHA256SUMS' },
      { key: 'rel/installers/hello-1.0/hello-installer-x86_64', version: '1.0', file: 'hello-installer-x86_64' },
      { key: 'rel/installers/hello-2.0/sub/readme', version: '2.0' },
    ]);
    expect(publishPrefix({ prefix: 'rel/' }, u(), 'installers', '1.0')).toBe('rel/installers/hello-1.0/');
  });

  it('verifyInstallers reads that listing: a file that differs from SHA256SUMS is named', async () => {
    await put('rel/installers/hello-1.0/hello-installer-x86_64', 'a');
    await put('rel/installers/hello-1.0/SHA256SUMS', renderSha256Sums([{ name: 'hello-installer-x86_64', sha256: sha256Text('a') }]));
    await put('rel/installers/hello-installer-x86_64', 'a');
    expect(await verifyInstallers(store, 'installers', u())).toEqual([]);
    await put('rel/installers/hello-1.0/hello-installer-x86_64', 'b');
    const problems = await verifyInstallers(store, 'installers', u());
    expect(problems.map((p) => p.where)).toContain(`s3://${root}/rel/installers/hello-1.0/hello-installer-x86_64`);
  });
});
