// A faithful S3 for tests: Ceph's RADOS Gateway (Debian radosgw, Ceph 16) on a throwaway
// single-node cluster under a temp dir — one mon, one memstore OSD, no mgr, beast frontend — all
// on 127.0.0.1, on free ports, stopped by pid. Unlike s3rver it checks SigV4 signatures, enforces
// bucket and STS session policies, honours If-None-Match and stores multipart objects as S3 does.
// Settings that make it start in ~3 s (paxos propose interval, 8 PGs per pool) are explained in
// docs/testing.md.
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomUUID, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { createS3Client, s3Store, type S3Credentials, type S3Store } from '../../lib/s3/store.ts';
import { requireTool } from './tools.ts';

const run = promisify(execFile);

export interface RgwUser extends S3Credentials {
  uid: string;
}

export interface TestRgw {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  region: string;
  /** `admin` may create roles (caps roles=*); `other` is a second, unprivileged user. */
  users: { admin: RgwUser; other: RgwUser };
  /** A store (releng's own S3 adapter) signed as the admin user. */
  store: S3Store;
  /** A store signed with the given credentials. */
  storeAs(creds: S3Credentials): S3Store;
  createBucket(name: string, as?: S3Credentials): Promise<void>;
  /** Runs `radosgw-admin ARGS` against this cluster; returns stdout. */
  admin(args: string[]): Promise<string>;
  dir: string;
  stop(): Promise<void>;
}

const TOOLS: [string, string][] = [
  ['radosgw', 'radosgw'], ['ceph-mon', 'ceph-mon'], ['ceph-osd', 'ceph-osd'], ['monmaptool', 'ceph-mon'],
  ['ceph-authtool', 'ceph-common'], ['radosgw-admin', 'radosgw'], ['ceph', 'ceph-common'],
];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A block of 40 consecutive free ports for the daemons' messengers (Ceph binds within a range). */
async function freeRange(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const base = 20000 + Math.floor(Math.random() * 2000) * 20;
    const checks = await Promise.all(Array.from({ length: 40 }, (_, i) => portFree(base + i)));
    if (checks.every(Boolean)) return base;
  }
  throw new Error('rgw test helper: no free block of 40 ports on 127.0.0.1');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Alive = exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

// ---- Leaks: the daemons daemonize (they are no children of this process), so a test process that
// dies without afterAll (vitest kills a worker at its timeout: SIGTERM, SIGKILL 1 s later) would
// leave a running cluster. Three nets catch them: stop() (afterAll); a synchronous exit/signal hook
// in the process that started the cluster; and a record per cluster naming that process, so that
// reapOrphanClusters() (vitest globalSetup teardown, and every startTestRgw) kills the clusters
// of processes that are gone (SIGKILL runs no hook).

const DAEMONS = ['client.rgw.a', 'osd.0', 'mon.a'];
/** Where each running cluster is recorded: one JSON file { dir, owner } per cluster. */
export const CLUSTER_RECORDS = path.join(os.tmpdir(), 'releng-rgw-clusters');
const recordOf = (dir: string) => path.join(CLUSTER_RECORDS, `${path.basename(dir)}.json`);
/** Clusters this process started and has not stopped. */
const live = new Set<string>();

/** The daemons' pids of a cluster directory (from their pid files; missing ones left out). */
export function clusterPids(dir: string): number[] {
  const pids: number[] = [];
  for (const name of DAEMONS) {
    try {
      const pid = Number(readFileSync(path.join(dir, 'run', `${name}.pid`), 'utf8').trim());
      if (pid > 0) pids.push(pid);
    } catch { /* not started */ }
  }
  return pids;
}

/** Synchronous (usable in an exit hook): SIGKILL every daemon of the cluster, remove its dir and record. */
export function killClusterSync(dir: string): void {
  for (const pid of clusterPids(dir)) if (alive(pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  rmSync(dir, { recursive: true, force: true });
  rmSync(recordOf(dir), { force: true });
  live.delete(dir);
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => { for (const dir of [...live]) killClusterSync(dir); };
  process.on('exit', killAll);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      // Our listener replaced the default action: die of the signal as the sender meant, unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

function register(dir: string): void {
  hookExit();
  live.add(dir);
  mkdirSync(CLUSTER_RECORDS, { recursive: true });
  writeFileSync(recordOf(dir), JSON.stringify({ dir, owner: process.pid }));
}

/** Kills the clusters whose starting process is gone (their record says which); returns their dirs. */
export function reapOrphanClusters(): string[] {
  const reaped: string[] = [];
  let names: string[] = [];
  try { names = readdirSync(CLUSTER_RECORDS); } catch { return reaped; }
  for (const name of names) {
    try {
      const { dir, owner } = JSON.parse(readFileSync(path.join(CLUSTER_RECORDS, name), 'utf8')) as { dir: string; owner: number };
      if (typeof dir !== 'string' || !path.basename(dir).startsWith('releng-rgw-') || alive(owner)) continue;
      killClusterSync(dir);
      reaped.push(dir);
    } catch { /* a record being written, or removed meanwhile */ }
  }
  return reaped;
}

/** Starts a cluster; the caller must `stop()` it (afterAll). Fails naming the Debian package of a missing tool. */
/** What the throwaway cluster's one OSD (memstore: in RAM) can hold; the bench sizes its RGW runs by it. */
export const RGW_MEMSTORE_BYTES = 4 * 1024 ** 3;

export async function startTestRgw(opts: { buckets?: string[] } = {}): Promise<TestRgw> {
  for (const [prog, pkg] of TOOLS) requireTool(prog, pkg);
  reapOrphanClusters();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-rgw-'));
  register(dir);
  const monPort = await freePort();
  const rgwPort = await freePort();
  const msBase = await freeRange();
  const conf = path.join(dir, 'ceph.conf');
  const keyring = path.join(dir, 'keyring');
  for (const d of ['dev/mon.a', 'dev/osd0', 'dev/rgw.a', 'run', 'log', 'crash']) await mkdir(path.join(dir, d), { recursive: true });
  const fsid = randomUUID();
  await writeFile(conf, `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monPort}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr1 = false
ms bind port min = ${msBase}
ms bind port max = ${msBase + 39}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = ${keyring}
run dir = ${dir}/run
crash dir = ${dir}/crash
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
auth allow insecure global id reclaim = false
[mon]
mon data = ${dir}/dev/mon.$id
mon cluster log file = ${dir}/log/cluster.log
mon data avail crit = 1
# radosgw creates its pools one by one; with the default interval the first PUT takes ~18 s
paxos propose interval = 0.05
[osd]
osd data = ${dir}/dev/osd$id
keyring = ${dir}/dev/osd$id/keyring
osd objectstore = memstore
memstore device bytes = ${RGW_MEMSTORE_BYTES}
osd class load list = *
osd class default list = *
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/dev/rgw.a
rgw sts key = ${randomBytes(8).toString('hex')}
rgw s3 auth use sts = true
rgw thread pool size = 64
`);
  const started: string[] = [];
  const pidOf = async (name: string) => Number((await readFile(path.join(dir, 'run', `${name}.pid`), 'utf8')).trim());
  const stop = async () => {
    const pids: number[] = [];
    for (const name of ['client.rgw.a', 'osd.0', 'mon.a']) {
      const pid = await pidOf(name).catch(() => 0);
      if (pid > 0 && alive(pid)) {
        try { process.kill(pid, 'SIGTERM'); pids.push(pid); } catch { /* already gone */ }
      }
    }
    for (let i = 0; i < 30 && pids.some(alive); i++) await sleep(100);
    for (const pid of pids) if (alive(pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    for (const pid of pids) for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
    await rm(dir, { recursive: true, force: true });
    await rm(recordOf(dir), { force: true });
    live.delete(dir);
  };
  try {
    const auth = (args: string[]) => run('ceph-authtool', args);
    await auth(['--create-keyring', '--gen-key', '--name=mon.', keyring, '--cap', 'mon', 'allow *']);
    await auth(['--gen-key', '--name=client.admin', keyring, '--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *']);
    await auth(['--gen-key', '--name=client.rgw.a', keyring, '--cap', 'mon', 'allow rw', '--cap', 'osd', 'allow rwx', '--cap', 'mgr', 'allow rw']);
    const monmap = path.join(dir, 'monmap');
    await run('monmaptool', ['--create', '--clobber', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, monmap]);
    await run('ceph-mon', ['-c', conf, '-i', 'a', '--mkfs', '--monmap', monmap, '--keyring', keyring]);
    await run('ceph-mon', ['-c', conf, '-i', 'a']); // daemonizes, writes run/mon.a.pid
    started.push('mon.a');
    const ceph = (args: string[]) => run('ceph', ['-c', conf, '--connect-timeout', '20', ...args], { timeout: 60_000 });
    const osdUuid = randomUUID();
    const osdSecret = (await run('ceph-authtool', ['--gen-print-key'])).stdout.trim();
    const newJson = path.join(dir, 'dev/osd0/new.json');
    await writeFile(newJson, JSON.stringify({ cephx_secret: osdSecret }));
    const osdId = (await ceph(['osd', 'new', osdUuid, '-i', newJson])).stdout.trim();
    if (osdId !== '0') throw new Error(`unexpected osd id ${osdId}`);
    await writeFile(path.join(dir, 'dev/osd0/keyring'), `[osd.0]\n\tkey = ${osdSecret}\n`);
    await run('ceph-osd', ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
    await run('ceph-osd', ['-c', conf, '-i', '0']);
    started.push('osd.0');
    for (let i = 0; ; i++) {
      const out = await ceph(['osd', 'stat', '-f', 'json']).then((r) => r.stdout, () => '');
      if (out.includes('"num_up_osds":1')) break;
      if (i >= 120) throw new Error('the OSD did not come up in 60 s');
      await sleep(500);
    }
    await run('radosgw', ['-c', conf, '-n', 'client.rgw.a']);
    started.push('client.rgw.a');
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    for (let i = 0; ; i++) {
      const ok = await fetch(endpoint + '/').then(() => true, () => false);
      if (ok) break;
      if (i >= 240) throw new Error(`radosgw did not answer on ${endpoint} in 60 s (log: ${dir}/log/client.rgw.a.log)`);
      await sleep(250);
    }
    const admin = async (args: string[]) => (await run('radosgw-admin', ['-c', conf, '-n', 'client.admin', ...args], { timeout: 60_000 })).stdout;
    const mkUser = async (uid: string): Promise<RgwUser> => {
      const user: RgwUser = { uid, accessKeyId: `RELENG${randomBytes(7).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(20).toString('hex') };
      await admin(['user', 'create', `--uid=${uid}`, `--display-name=${uid}`, `--access-key=${user.accessKeyId}`, `--secret=${user.secretAccessKey}`]);
      return user;
    };
    const users = { admin: await mkUser('releng-admin'), other: await mkUser('releng-other') };
    await admin(['caps', 'add', `--uid=${users.admin.uid}`, '--caps=roles=*']);
    const region = 'us-east-1';
    const storeAs = (creds: S3Credentials) =>
      s3Store(createS3Client({ endpoint, region, forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, creds), endpoint);
    const createBucket = async (name: string, as: S3Credentials = users.admin) => {
      const client = createS3Client({ endpoint, region, forcePathStyle: true, checksums: 'WHEN_REQUIRED' }, as);
      await client.send(new CreateBucketCommand({ Bucket: name }));
    };
    for (const b of opts.buckets ?? []) await createBucket(b);
    return { endpoint, region, users, store: storeAs(users.admin), storeAs, createBucket, admin, dir, stop };
  } catch (e) {
    const log = await readFile(path.join(dir, 'log', 'client.rgw.a.log'), 'utf8').catch(() => '');
    await stop();
    throw new Error(`starting Ceph RGW failed (started: ${started.join(', ') || 'nothing'}): ${(e as Error).message}${log ? `\nradosgw log tail:\n${log.slice(-2000)}` : ''}`);
  }
}
