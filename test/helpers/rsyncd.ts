// Debian's rsync in daemon mode serving one tree as a module, on 127.0.0.1 and a free port, with
// its own config and pid file under a temp dir; stopped by the pid of the process started here.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { requireTool } from './tools.ts';

export interface Rsyncd { url: string; port: number; stop(): Promise<void> }

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address() as net.AddressInfo; srv.close(() => resolve(port)); });
  });
}

/** Serves `root` as rsync://127.0.0.1:PORT/MODULE/, excluding releng's sidecars and temp files. */
export async function startRsyncd(module: string, root: string): Promise<Rsyncd> {
  requireTool('rsync', 'rsync');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-rsyncd-'));
  const port = await freePort();
  const conf = path.join(dir, 'rsyncd.conf');
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  await writeFile(conf, [
    `pid file = ${path.join(dir, 'rsyncd.pid')}`,
    `log file = ${path.join(dir, 'rsyncd.log')}`,
    'use chroot = no',
    `uid = ${uid}`,
    `gid = ${gid}`,
    `[${module}]`,
    `  path = ${root}`,
    '  read only = yes',
    '  exclude = .releng/ .releng-tmp-*',
    '',
  ].join('\n'));
  const proc: ChildProcess = spawn('rsync', ['--daemon', '--no-detach', `--config=${conf}`, '--address=127.0.0.1', `--port=${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (c) => { stderr += c; });
  // Ready when the port accepts a connection (bounded: 100 tries, 50 ms apart).
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`rsync --daemon exited: ${stderr}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (i >= 100) { proc.kill(); throw new Error(`rsync --daemon did not listen on ${port}: ${stderr}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `rsync://127.0.0.1:${port}/${module}`, port,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        process.kill(proc.pid!, 'SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
