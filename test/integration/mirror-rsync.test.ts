// A mirror network fed by releng (issues 11, 28), with real components only: releng (the bundle)
// builds, uploads to staging (s3rver) and promotes into production's file tree, the mirror master;
// Debian's `rsync --daemon` serves that tree as the master module `pub`; a downstream mirror runs
// quick-fedora-mirror's algorithm with its stock settings (test/helpers/mirror-client.ts: FILELIST
// fullfiletimelist-$mdir, EXTRAFILES fullfilelist and imagelist-$mdir); Debian's aria2c downloads a
// release tarball from its torrent's web seed alone. What it proves:
// - a stock client fails on a master without the extra lists (why releng writes them), and
//   `releng mirror-lists` repairs the master;
// - the first sync ends byte-identical (files, symlinks), a run with nothing new transfers nothing;
// - hardlinks made on the master (Rocky's and Fedora's `hardlink` pass) reach the mirror as hardlinks;
// - a second release promoted with --delete (--dry-run first: every deletion in the plan, none in a
//   release prefix or the cache; without --delete the stale pages are kept and the run names the
//   repair) and --no-mirror-lists: the mirror sees nothing until `releng mirror-lists`, then transfers
//   exactly the files that are new or changed, makes the changed link, and deletes the deleted pages
//   and their emptied directories; the same on S3 (prods3): the pages leave the bucket and its lists;
// - the release's torrent is in SHA256SUMS and aria2c gets the tarball from production's web server.
import { createHash } from 'node:crypto';
import { link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFileList } from '../../lib/mirror/filelist.ts';
import { parseTorrent } from '../../lib/mirror/torrent.ts';
import { aria2Download } from '../helpers/aria2.ts';
import { releng } from '../helpers/cli.ts';
import { startStaticServer, type StaticServer } from '../helpers/http-static.ts';
import { quickMirror, QuickMirrorError, type QuickMirrorConfig } from '../helpers/mirror-client.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { nixKey } from '../helpers/promote.ts';
import { startRsyncd, type Rsyncd } from '../helpers/rsyncd.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tagLikeReleng } from '../helpers/tagged.ts';
import { requireTool } from '../helpers/tools.ts';

/** path → sha256 of the bytes (files), '-> target' (links), 'dir' (directories), below root, without releng's .releng/ sidecars. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    const abs = path.join(e.parentPath ?? (e as any).path, e.name);
    const rel = path.relative(root, abs);
    if (rel.split('/').includes('.releng')) continue;
    out.set(rel, e.isSymbolicLink() ? `-> ${await readlink(abs)}` : e.isDirectory() ? 'dir' : createHash('sha256').update(await readFile(abs)).digest('hex'));
  }
  return out;
}

const sorted = (l: Iterable<string>) => [...l].sort();

describe('a quick-fedora-mirror downstream of a releng mirror master', () => {
  let p: ScratchProject;
  let s3: TestS3;
  let trees: string;
  let web: StaticServer;
  let rsyncd: Rsyncd;
  let master: string; // TREES/pub/hello: the module directory
  let mirror: (dest: string) => QuickMirrorConfig;
  const cli = async (...args: string[]) => {
    const r = await releng(args, { cwd: p.dir });
    if (r.code !== 0) throw new Error(`releng ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout ? JSON.parse(r.stdout) : undefined;
  };

  beforeAll(async () => {
    requireTool('nix-build', 'nix-bin');
    requireTool('zstd', 'zstd');
    requireTool('rsync', 'rsync');
    requireTool('aria2c', 'aria2');
    s3 = await startTestS3(['staging-releases', 'staging-cache', 'staging-docs', 'prods3-releases', 'prods3-cache', 'prods3-docs']);
    trees = await mkdtemp(path.join(os.tmpdir(), 'releng-mirror-net-'));
    master = path.join(trees, 'pub', 'hello');
    for (const b of ['releases', 'cache', 'docs']) await mkdir(path.join(master, b), { recursive: true });
    web = await startStaticServer(path.join(trees, 'pub'));
    p = await scratchProject();
    const staging = nixKey('hello-staging-1');
    const production = nixKey('hello-production-1');
    await mkdir(path.join(p.dir, 'keys'));
    await writeFile(path.join(p.dir, 'keys', 'staging.key'), staging.secret, { mode: 0o600 });
    await writeFile(path.join(p.dir, 'keys', 'production.key'), production.secret, { mode: 0o600 });
    const cache = (key: string) => ({ signingKeyFile: key, compression: 'zstd', storeOptions: { 'write-nar-listing': 'true' } });
    const s3Settings = { endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' };
    await p.editConfig((c) => {
      c.defaultProfile = 'x86_64-linux-only';
      c.environments = {
        staging: { releasesBucket: 's3://staging-releases', cacheBucket: 's3://staging-cache', docsBucket: 's3://staging-docs', s3: s3Settings, credentials: { source: 'embedded' }, cache: cache('keys/staging.key'), confirm: false },
        production: {
          releasesBucket: `file://${master}/releases`, cacheBucket: `file://${master}/cache`, docsBucket: `file://${master}/docs`,
          releasesUrl: `${web.url}/hello/releases`, cache: cache('keys/production.key'), confirm: false,
          mirror: { latestLinks: true, fileLists: { hello: { root: `file://${master}` } }, torrents: { match: ['*-x86_64-linux.tar.xz'] } },
        },
        prods3: {
          releasesBucket: 's3://prods3-releases', cacheBucket: 's3://prods3-cache', docsBucket: 's3://prods3-docs', s3: s3Settings, credentials: { source: 'embedded' },
          cache: cache('keys/production.key'), confirm: false, mirror: { fileLists: { docs: { root: 's3://prods3-docs' } } },
        },
      };
    });
    p.git('add', '-A');
    p.git('commit', '-q', '-m', 'a mirror network');
    await tagLikeReleng(p, '1.0.0');
    await cli('build', '--json');
    await cli('upload', '--environment', 'staging', '--json');
    await cli('promote', '1.0.0', '--from', 'staging', '--environment', 'production', '--noconfirm', '--json');
    await cli('promote', '1.0.0', '--from', 'staging', '--environment', 'prods3', '--noconfirm', '--json');
    rsyncd = await startRsyncd('pub', path.join(trees, 'pub'));
    mirror = (dest) => ({ remote: rsyncd.url.replace(/\/pub$/, ''), masterModule: 'pub', modules: { hello: 'hello' }, dest, timeFile: `${dest}.time` });
  }, 600_000);
  afterAll(async () => {
    await rsyncd?.stop();
    await web?.close();
    await s3?.stop();
    await p?.cleanup();
    if (trees) await rm(trees, { recursive: true, force: true });
  });

  it('the master has the three lists quick-fedora-mirror fetches; without the extra two a stock client stops, and `releng mirror-lists` restores them', async () => {
    const lists = ['fullfiletimelist-hello', 'fullfilelist', 'imagelist-hello'];
    for (const n of lists) expect((await stat(path.join(master, n))).isFile(), n).toBe(true);
    const images = (await readFile(path.join(master, 'imagelist-hello'), 'utf8')).trim().split('\n');
    expect(images).toContain('./releases/hello/hello-1.0.0/hello-1.0.0-x86_64-linux.tar.xz');
    expect(images.every((l) => /\.(tar\.xz|tar\.gz|iso)$/.test(l))).toBe(true);
    const plain = (await readFile(path.join(master, 'fullfilelist'), 'utf8')).trim().split('\n');
    expect(plain).toEqual(parseFileList(await readFile(path.join(master, 'fullfiletimelist-hello'), 'utf8')).map((e) => `./${e.path}`));

    // A master as releng left it before issue 28: only the time list.
    await rm(path.join(master, 'fullfilelist'));
    await rm(path.join(master, 'imagelist-hello'));
    const scratch = path.join(trees, 'stock-client');
    const failed = await quickMirror(mirror(scratch)).catch((e) => e);
    expect(failed).toBeInstanceOf(QuickMirrorError);
    expect(failed.message).toContain('file list is outdated');
    expect(failed.output).toMatch(/link_stat "\/?hello\/(fullfilelist|imagelist-hello)".*No such file or directory/);

    // Bad input changes nothing and says what to do.
    const unknown = await releng(['mirror-lists', 'nosuch', '--environment', 'production'], { cwd: p.dir });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no module nosuch in environments.production.mirror.fileLists: choose among hello');
    const none = await releng(['mirror-lists', '--environment', 'staging'], { cwd: p.dir });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('environment staging has no mirror file lists (environments.staging.mirror.fileLists in');
    expect(await stat(path.join(master, 'fullfilelist')).catch(() => undefined)).toBeUndefined();

    const dry = await cli('mirror-lists', '--environment', 'production', '--dry-run', '--json');
    expect(dry.result.written).toBe(2);
    expect(dry.plan.steps.flatMap((s: any) => s.actions).map((a: any) => `${a.kind} ${a.key} ${a.reason}`)).toEqual(['s3.put fullfilelist new', 's3.put imagelist-hello new']);
    expect(await stat(path.join(master, 'fullfilelist')).catch(() => undefined)).toBeUndefined();
    const real = await cli('mirror-lists', '--environment', 'production', '--json');
    expect(real.result).toMatchObject({ environment: 'production', written: 2, modules: [{ module: 'hello', changed: true }] });
    expect((await readFile(path.join(master, 'fullfilelist'), 'utf8')).trim().split('\n')).toEqual(plain);
    expect(await cli('mirror-lists', '--environment', 'production', '--json')).toMatchObject({ result: { written: 0 } });
    // The failed run still put the new time list in place (rsync's other files completed), so the
    // client now sees no change; as quick-fedora-mirror says for changed EXTRAFILES, one run with -a.
    expect(await quickMirror(mirror(scratch))).toMatchObject({ unchanged: ['hello'], requested: [] });
    const again = await quickMirror({ ...mirror(scratch), alwaysCheck: true });
    expect(again.transferred).toEqual(['hello/fullfilelist', 'hello/imagelist-hello']);
    expect(await snapshot(path.join(scratch, 'hello'))).toEqual(await snapshot(master));
  });

  const dest = () => path.join(trees, 'downstream');

  it('the first sync fetches every file and link of the list and ends identical; a second run transfers nothing', async () => {
    const run = await quickMirror(mirror(dest()));
    const want = await snapshot(master);
    expect(await snapshot(path.join(dest(), 'hello'))).toEqual(want);
    const files = sorted([...want].filter(([, v]) => v !== 'dir' && !v.startsWith('-> ')).map(([k]) => `hello/${k}`));
    expect(run.transferred).toEqual(files);
    expect(run.filesTransferred).toBe(files.length);
    expect(run.linked).toEqual(['hello/releases/latest-hello-1.0']);
    expect((await lstat(path.join(dest(), 'hello', 'releases', 'latest-hello-1.0'))).isSymbolicLink()).toBe(true);
    const idle = await quickMirror(mirror(dest()));
    expect(idle.unchanged).toEqual(['hello']);
    expect(idle.requested).toEqual([]);
  });

  const docs = () => path.join(master, 'docs', 'manual', 'hello');

  it('hardlinks made on the master (a `hardlink` pass over stable/ and 1.0/) reach the mirror as hardlinks, no bytes sent', async () => {
    const pages = (await readdir(path.join(docs(), 'stable'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile())
      .map((e) => path.relative(path.join(docs(), 'stable'), path.join(e.parentPath ?? (e as any).path, e.name)));
    expect(pages.length).toBeGreaterThan(2);
    for (const page of pages) {
      const tmp = path.join(docs(), 'stable', `${page}.hardlink-tmp`);
      await link(path.join(docs(), '1.0', page), tmp);
      await import('node:fs/promises').then((fs) => fs.rename(tmp, path.join(docs(), 'stable', page)));
    }
    await cli('mirror-lists', '--environment', 'production', '--json');
    const run = await quickMirror(mirror(dest()));
    expect(run.transferred.filter((t) => !t.startsWith('hello/full') && !t.startsWith('hello/imagelist'))).toEqual([]);
    expect(run.hardlinked.length).toBeGreaterThan(0);
    for (const page of pages) {
      const [a, b] = await Promise.all(['1.0', 'stable'].map((d) => stat(path.join(dest(), 'hello', 'docs', 'manual', 'hello', d, page))));
      expect(b!.ino, page).toBe(a!.ino);
    }
    expect(await snapshot(path.join(dest(), 'hello'))).toEqual(await snapshot(master));
  });

  it('a second release promoted with --delete: the mirror sees nothing before `releng mirror-lists`, then transfers exactly what changed and deletes the removed page', async () => {
    // Release 1.0.1: its manual no longer has command-ref/hello.html.
    p.git('checkout', '-q', 'main');
    const versionFile = path.join(p.dir, 'version.json');
    await writeFile(versionFile, (await readFile(versionFile, 'utf8')).replace('"1.0.0"', '"1.0.1"'));
    await rm(path.join(p.dir, 'src', 'manual', 'command-ref'), { recursive: true });
    p.git('commit', '-q', '-am', 'hello 1.0.1: one page less');
    await tagLikeReleng(p, '1.0.1');
    await cli('build', '--json');
    await cli('upload', '--environment', 'staging', '--json');

    const before = await snapshot(master);
    const listBefore = await readFile(path.join(master, 'fullfiletimelist-hello'), 'utf8');
    const removed = ['docs/manual/hello/1.0/command-ref/hello.html', 'docs/manual/hello/stable/command-ref/hello.html'];
    // --dry-run: every deletion is a line of the plan, the last step; none in a release prefix or the cache; nothing written.
    const dry = await cli('promote', '1.0.1', '--from', 'staging', '--environment', 'production', '--delete', '--dry-run', '--json');
    const deletes = dry.result.plan.filter((l: string) => l.startsWith('s3 delete'));
    expect(sorted(deletes)).toEqual(removed.map((k) => `s3 delete file://${master}/${k.replace(/^docs\//, 'docs/')}`).sort());
    expect(dry.plan.steps.at(-1).actions.map((a: any) => a.kind)).toEqual(['s3.delete', 's3.delete']);
    expect(await snapshot(master)).toEqual(before);

    // Without --delete the pages stay, the plan says so, and the closing verification names the repair.
    const kept = await releng(['promote', '1.0.1', '--from', 'staging', '--environment', 'production', '--noconfirm'], { cwd: p.dir });
    expect(kept.code).toBe(1);
    expect(kept.stderr).toContain('that staging no longer has: kept: pass --delete to remove them');
    expect(kept.stderr).toContain('--environment production --delete (it deletes the docs pages staging no longer has)');
    for (const k of removed) expect((await stat(path.join(master, k))).isFile()).toBe(true);

    // With --delete, and the lists left for later (a batch): the mirror is not told yet.
    const done = await cli('promote', '1.0.1', '--from', 'staging', '--environment', 'production', '--delete', '--no-mirror-lists', '--noconfirm', '--json');
    expect(done.result.applied['s3.delete']).toBe(2);
    expect(done.result.fileLists).toEqual([]);
    for (const k of removed) expect(await lstat(path.join(master, k)).catch(() => undefined), k).toBeUndefined();
    expect(await lstat(path.join(master, 'docs/manual/hello/1.0/command-ref')).catch(() => undefined)).toBeUndefined();
    expect(await readFile(path.join(master, 'fullfiletimelist-hello'), 'utf8')).toBe(listBefore);
    const untold = await quickMirror(mirror(dest()));
    expect(untold).toMatchObject({ unchanged: ['hello'], requested: [] });

    await cli('mirror-lists', '--environment', 'production', '--json');
    const list = parseFileList(await readFile(path.join(master, 'fullfiletimelist-hello'), 'utf8')).map((e) => e.path);
    for (const k of removed) expect(list).not.toContain(k);
    expect(list).toContain('releases/hello/hello-1.0.1/SHA256SUMS');
    const after = await snapshot(master);
    const run = await quickMirror(mirror(dest()));

    const changedFiles = sorted([...after].filter(([k, v]) => v !== 'dir' && !v.startsWith('-> ') && before.get(k) !== v).map(([k]) => `hello/${k}`));
    expect(changedFiles).toContain('hello/releases/manifest.nix');
    expect(changedFiles.filter((k) => k.includes('hello-1.0.0/'))).toEqual([]); // 1.0.0's release prefix untouched
    expect(run.transferred).toEqual(changedFiles);
    expect(run.filesTransferred).toBe(changedFiles.length);
    expect(run.linked).toEqual(['hello/releases/latest-hello-1.0']);
    expect(await readlink(path.join(dest(), 'hello', 'releases', 'latest-hello-1.0'))).toBe('hello/hello-1.0.1/');
    expect(run.deletedFiles).toEqual(removed.map((k) => `hello/${k}`).sort());
    expect(run.deletedDirs).toEqual(['hello/docs/manual/hello/1.0/command-ref', 'hello/docs/manual/hello/stable/command-ref']);
    expect(await snapshot(path.join(dest(), 'hello'))).toEqual(after);
    // The mirror's hardlinks are the master's: pages the release left alone are still one file on
    // both; a page releng rewrote (a rename over one name) is two files on both.
    const linkedOn = async (root: string) => {
      const out: Record<string, boolean> = {};
      for (const page of await readdir(path.join(root, 'docs/manual/hello/1.0'))) {
        const [a, b] = await Promise.all(['1.0', 'stable'].map((d) => stat(path.join(root, 'docs/manual/hello', d, page)).catch(() => undefined)));
        if (a?.isFile() && b?.isFile()) out[page] = a.ino === b.ino;
      }
      return out;
    };
    const masterLinks = await linkedOn(master);
    expect(Object.keys(masterLinks).length).toBeGreaterThan(0);
    expect(await linkedOn(path.join(dest(), 'hello'))).toEqual(masterLinks);

    const verified = await releng(['verify', '--published', '1.0.1', '--environment', 'production', '--deep'], { cwd: p.dir });
    expect(verified.code, verified.stderr).toBe(0);
  }, 600_000);

  it('on S3 too: promote --delete removes the pages from the bucket and from its lists', async () => {
    const r = await cli('promote', '1.0.1', '--from', 'staging', '--environment', 'prods3', '--delete', '--noconfirm', '--json');
    expect(r.result.applied['s3.delete']).toBe(2);
    const keys = (await s3.store.list('prods3-docs', '')).map((o) => o.key);
    expect(keys.filter((k) => k.includes('command-ref'))).toEqual([]);
    expect(keys).toEqual(expect.arrayContaining(['fullfiletimelist-docs', 'fullfilelist', 'imagelist-docs']));
    const list = await s3.store.getText('prods3-docs', 'fullfiletimelist-docs');
    expect(list).toContain('manual/hello/1.0/index.html');
    expect(list).not.toContain('command-ref');
    expect(await s3.store.getText('prods3-docs', 'fullfilelist')).not.toContain('command-ref');
    expect(list!.split('\n').filter((l) => l.startsWith('[Checksums'))).toEqual(['[Checksums SHA1]', '[Checksums MD5]', '[Checksums SHA256]', '[Checksums SHA512]']);
  });

  it('the release\'s torrent is in SHA256SUMS, and aria2c downloads the tarball from production\'s web seed alone', async () => {
    const prefix = path.join(master, 'releases', 'hello', 'hello-1.0.1');
    const name = 'hello-1.0.1-x86_64-linux.tar.xz';
    const sums = await readFile(path.join(prefix, 'SHA256SUMS'), 'utf8');
    const torrentBytes = await readFile(path.join(prefix, `${name}.torrent`));
    expect(sums).toContain(`${createHash('sha256').update(torrentBytes).digest('hex')}  ${name}.torrent`);
    const t = parseTorrent(torrentBytes);
    expect(t).toMatchObject({ name, webSeeds: [`${web.url}/hello/releases/hello/hello-1.0.1/${name}`], trackers: [] });
    const out = path.join(trees, 'aria2');
    const run = await aria2Download(path.join(prefix, `${name}.torrent`), out);
    expect(run.ok, run.output).toBe(true);
    const got = await readFile(path.join(out, name));
    expect(sums).toContain(`${createHash('sha256').update(got).digest('hex')}  ${name}\n`);
    expect(web.requests.some((q) => q.path === `/hello/releases/hello/hello-1.0.1/${name}` && q.status === 206)).toBe(true);
  });
});
