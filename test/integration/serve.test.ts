// `releng serve` (issue 14): HTML index pages of buckets and prefixes in front of the embedded S3
// server (objects, S3 listings and PUTs pass through), and the embedded registry on --registry-port.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedCredentials } from '../../lib/local/s3-server.ts';
import { freePort } from '../../lib/local/registry-server.ts';
import { createS3Client, s3Store } from '../../lib/s3/store.ts';
import { relengBin, scratchProject, type ScratchProject } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

describe('releng serve', () => {
  let p: ScratchProject;
  let proc: ChildProcess;
  let base: string;
  let registryPort: number;

  beforeAll(async () => {
    requireTool('docker-registry', 'docker-registry');
    p = await scratchProject();
    const port = await freePort();
    registryPort = await freePort();
    proc = spawn(relengBin, ['serve', '--port', String(port), '--registry-port', String(registryPort)], {
      cwd: p.dir, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    // Serving once the registry line is printed (bounded: the test's hook timeout).
    await new Promise<void>((resolve, reject) => {
      const rl = createInterface({ input: proc.stderr! });
      rl.on('line', (l) => { log += `${l}\n`; if (l.includes('serving the local registry')) resolve(); });
      proc.once('exit', (code) => reject(new Error(`serve exited ${code}:\n${log}`)));
    });
    base = `http://127.0.0.1:${port}`;
    // Objects go in through serve itself (PUTs pass through to the embedded S3 server).
    const store = s3Store(createS3Client({ endpoint: base, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, { ...embeddedCredentials }), base);
    for (const [key, text] of [['manifest.nix', '{ }\n'], ['hello/hello-1.0.0/SHA256SUMS', 'abc  x\n'], ['hello/hello-1.0.0/a <b>.txt', 'a\n']]) {
      await store.put({ bucket: 'local-releases', key: key!, body: { text: text! }, size: text!.length, sha256: '0'.repeat(64), contentType: 'text/plain' });
    }
  });
  afterAll(async () => {
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    await p?.cleanup();
  });

  it('/ lists the buckets as an HTML page', async () => {
    const r = await fetch(`${base}/`);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await r.text();
    for (const b of ['local-releases', 'local-cache', 'local-docs']) expect(html).toContain(`<a href="${b}/">${b}/</a>`);
  });

  it('a prefix lists its folders and files, escaped, with sizes', async () => {
    const top = await (await fetch(`${base}/local-releases/`)).text();
    expect(top).toContain('<h1>Index of /local-releases/</h1>');
    expect(top).toContain('<a href="hello/">hello/</a>');
    expect(top).toContain('<a href="manifest.nix">manifest.nix</a></td><td>4 B</td>');
    const inner = await (await fetch(`${base}/local-releases/hello/hello-1.0.0/`)).text();
    expect(inner).toContain('<a href="a%20%3Cb%3E.txt">a &lt;b&gt;.txt</a>');
    expect(inner).toContain('<a href="../">../</a>');
    expect(inner).not.toContain('manifest.nix');
  });

  it('objects and S3 listings pass through to S3', async () => {
    const obj = await fetch(`${base}/local-releases/hello/hello-1.0.0/SHA256SUMS`);
    expect(obj.status).toBe(200);
    expect(await obj.text()).toBe('abc  x\n');
    const xml = await (await fetch(`${base}/local-releases?list-type=2`)).text();
    expect(xml).toContain('<Key>manifest.nix</Key>');
    expect((await fetch(`${base}/local-releases/missing`)).status).toBe(404);
  });

  it('the embedded registry answers on --registry-port', async () => {
    const r = await fetch(`http://127.0.0.1:${registryPort}/v2/`);
    expect(r.status).toBe(200);
  });
});
