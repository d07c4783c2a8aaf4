// Debian's aria2c as a BitTorrent client that downloads a torrent from its web seeds alone (BEP 19):
// no DHT, no local peer discovery, no peer exchange, no trackers reached (the torrents under test
// have none), sockets bound to 127.0.0.1, every piece checked against the metainfo
// (--check-integrity). Runs asynchronously: the web server a test starts lives in the same process.
import { execFile } from 'node:child_process';
import { requireTool } from './tools.ts';

export interface Aria2Run { ok: boolean; code: number | null; output: string }

/** Downloads `torrent` into `dir`, giving up after `stopSeconds` without progress. */
export async function aria2Download(torrent: string, dir: string, stopSeconds = 10): Promise<Aria2Run> {
  requireTool('aria2c', 'aria2');
  const args = [
    '--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
    '--interface=127.0.0.1', '--disable-ipv6=true', '--seed-time=0', '--check-integrity=true',
    `--bt-stop-timeout=${stopSeconds}`, '--max-tries=2', '--retry-wait=1', '--timeout=10',
    '--summary-interval=0', '--console-log-level=warn', '--download-result=full', '--allow-overwrite=true', '--auto-file-renaming=false',
    `--dir=${dir}`, torrent,
  ];
  return new Promise((resolve) => {
    execFile('aria2c', args, { encoding: 'utf8', timeout: (stopSeconds + 50) * 1000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : null) : 0;
      resolve({ ok: !err, code, output: `${stdout}${stderr}` });
    });
  });
}
