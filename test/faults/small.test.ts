// Issue 25, case 7 (the smaller faults), each with the real program: a version too long for the
// paths releng makes from it; a tag that fails half-way is restored and says so once; a 200 KB value
// is not echoed whole into an error; a clock off by an hour is explained as a clock, by Ceph RGW's
// real refusal; the embedded registry and S3 server die with a releng killed by SIGKILL. (`verify`
// of a checkout vs `--published` after a promote: test/integration/from-source.test.ts; `upload
// --deep`: test/faults/checkout.test.ts.)
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freePort } from '../../lib/local/registry-server.ts';
import { relengCommand, relengInProcess } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { startTestRgw, type TestRgw } from '../helpers/rgw.ts';
import { requireTool } from '../helpers/tools.ts';

let p: ScratchProject;

beforeAll(async () => {
  for (const [tool, pkg] of [['git', 'git'], ['docker-registry', 'docker-registry'], ['flock', 'util-linux']]) requireTool(tool!, pkg!);
  p = await scratchProject();
});
afterAll(async () => { await p?.cleanup(); });

const setVersion = async (version: string) => {
  const file = path.join(p.dir, 'version.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), version }, null, 2) + '\n');
  p.git('commit', '-q', '-am', `version ${version.slice(0, 20)}`);
};

describe('versions and restores', () => {
  it('a 302-character version is refused when version.json is read, naming the limit and why; nothing is committed', async () => {
    const original = await readFile(path.join(p.dir, 'version.json'), 'utf8');
    await setVersion(`1.0.0-${'a'.repeat(296)}`);
    try {
      const head = p.git('rev-parse', 'HEAD');
      for (const command of ['prepare', 'tag', 'build']) {
        const r = await relengInProcess([command], { cwd: p.dir });
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toContain('version.json is invalid');
        expect(r.stderr).toContain('version: is longer than 128 characters: releng makes file names like PROJECT-VERSION-docker-image-SYSTEM.tar.gz.sha256 from it, which must fit in 255 bytes');
        expect(r.stderr).not.toMatch(/restor/);
      }
      expect(p.git('rev-parse', 'HEAD')).toBe(head);
      expect(p.git('tag', '--list')).toBe('');
    } finally {
      await writeFile(path.join(p.dir, 'version.json'), original);
      p.git('commit', '-q', '-am', 'version back');
    }
  });

  it('a tag that cannot be created half-way through: the repository is restored, and the error says so once (no "restoring failed")', async () => {
    const head = p.git('rev-parse', 'HEAD');
    // refs/tags/1.0.0 cannot be created: the ref refs/tags/1.0.0/x is in the way (git: "cannot lock ref").
    await mkdir(path.join(p.dir, '.git', 'refs', 'tags', '1.0.0'), { recursive: true });
    await writeFile(path.join(p.dir, '.git', 'refs', 'tags', '1.0.0', 'x'), `${head}\n`);
    try {
      const r = await relengInProcess(['tag'], { cwd: p.dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('the repository was restored: branch main at');
      expect(r.stderr).not.toContain('restoring the repository failed');
      expect(r.stderr).not.toContain('restore by hand');
      expect(p.git('rev-parse', 'HEAD')).toBe(head);
      expect(p.git('symbolic-ref', '--short', 'HEAD')).toBe('main');
      expect(p.git('status', '--porcelain', '--untracked-files=no')).toBe('');
    } finally {
      await rm(path.join(p.dir, '.git', 'refs', 'tags', '1.0.0'), { recursive: true, force: true });
    }
  });
});

describe('long values are not echoed whole', () => {
  let original: string;
  beforeAll(async () => { original = await readFile(path.join(p.dir, 'releng.json'), 'utf8'); });
  afterAll(async () => { await writeFile(path.join(p.dir, 'releng.json'), original); });

  it('a 200 KB endpoint is refused by the config in a short error', async () => {
    await p.editConfig((c) => { c.environments.local.s3.endpoint = `http://${'e'.repeat(200_000)}.example`; });
    const r = await relengInProcess(['check'], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('environments.local.s3.endpoint: is longer than 2048 characters');
    expect(r.stderr.length).toBeLessThan(8_000);
  });

  it('a 200 KB registry host reaches the error capped: its start and end, and how much was left out', async () => {
    await writeFile(path.join(p.dir, 'releng.json'), original);
    const host = `${'r'.repeat(200_000)}.example:5000`;
    await p.editConfig((c) => { c.environments.local.docker[0].registry = host; });
    const r = await relengInProcess(['check'], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach registry r{200}…\(\d+ characters left out\)…r+\.example:5000/);
    expect(r.stderr.length).toBeLessThan(20_000);
  });
});

describe('clock skew (Ceph RGW refuses a request signed an hour ahead)', () => {
  let rgw: TestRgw;
  beforeAll(async () => { rgw = await startTestRgw({ buckets: ['skew'] }); }, 120_000);
  afterAll(async () => { vi.useRealTimers(); await rgw?.stop(); });

  it('is explained as the clocks, with the server\'s time and ours, not as credentials or a policy', async () => {
    const original = await readFile(path.join(p.dir, 'releng.json'), 'utf8');
    await p.editConfig((c) => {
      c.environments.skewed = {
        colour: 'yellow', confirm: false, releasesBucket: 's3://skew/r', cacheBucket: 's3://skew/c', docsBucket: 's3://skew/d',
        s3: { endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, checksums: 'WHEN_REQUIRED' },
        credentials: { source: 'env', accessKeyIdVar: 'SKEW_KEY', secretAccessKeyVar: 'SKEW_SECRET' },
      };
    });
    // This process's clock, an hour ahead (Date only: timers run as they do).
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 3_600_000, shouldAdvanceTime: true });
    try {
      const r = await relengInProcess(['check', '--environment', 'skewed'], { cwd: p.dir, env: { SKEW_KEY: rgw.users.admin.accessKeyId, SKEW_SECRET: rgw.users.admin.secretAccessKey } });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/S3 refused the request for s3:\/\/skew\S* at \S+ because the clocks disagree \(RequestTimeTooSkewed\): the server's clock says \S+Z, this machine's \S+Z: ours is (359\d|360\d) s ahead/);
      expect(r.stderr).not.toMatch(/credentials are wrong|not allowed to do this/);
      expect(r.stderr).not.toContain(rgw.users.admin.secretAccessKey);
    } finally {
      vi.useRealTimers();
      await writeFile(path.join(p.dir, 'releng.json'), original);
    }
  });
});

describe('embedded servers die with the releng that started them, SIGKILL included', () => {
  /** Processes whose command line mentions `needle` (from /proc). */
  const processesWith = (needle: string) => readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => {
    try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle); } catch { return false; }
  });
  const answers = (port: number) => new Promise<boolean>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 1000 }, (res) => { res.resume(); resolve(true); });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
  });
  const until = async (what: string, ok: () => Promise<boolean> | boolean, seconds: number) => {
    for (let i = 0; i < seconds * 10; i++) { if (await ok()) return; await new Promise((r) => setTimeout(r, 100)); }
    throw new Error(`${what}: not after ${seconds} s`);
  };

  it('three runs of `releng serve` killed with SIGKILL leave no docker-registry and no S3 server behind', async () => {
    const registryConfig = path.join(p.dir, '.releng', 'local', 'registry', 'config.yml');
    const s3Data = path.join(p.dir, '.releng', 'local', 's3');
    const how = relengCommand('bundle');
    for (let round = 0; round < 3; round++) {
      const [port, registryPort] = [await freePort(), await freePort()];
      const child = spawn(how.file, [...how.args, 'serve', '--port', String(port), '--registry-port', String(registryPort)], { cwd: p.dir, env: { ...process.env, CI: 'true', ...how.env } as NodeJS.ProcessEnv, stdio: 'ignore' });
      try {
        await until('the registry answering', () => answers(registryPort), 60);
        await until('the S3 port answering', () => answers(port), 60);
        expect(processesWith(registryConfig).length).toBeGreaterThan(0);
      } finally {
        child.kill('SIGKILL');
      }
      await until('the docker-registry of the killed run gone', () => processesWith(registryConfig).length === 0, 15);
      await until('the S3 server of the killed run gone', () => processesWith(s3Data).length === 0, 15);
      expect(await answers(registryPort)).toBe(false);
    }
  }, 300_000);
});
