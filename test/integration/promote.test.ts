// promote (issue 11): a release uploaded to staging (s3rver) is copied without a rebuild to a
// production file tree (narinfos re-signed for production's key), from there to a second tree
// (file → file, no re-sign), and to S3 buckets on the same endpoint (server-side CopyObject).
// Proved with the clients users have: Nix fetches the closure back trusting only production's key,
// nix-instantiate reads the root manifest.nix. Refusals change nothing; a killed run resumes.
import { execFileSync } from 'node:child_process';
import { lstat, readFile, readlink, readdir, stat, writeFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Text } from '../../lib/hashing/checksums.ts';
import { parseFileList } from '../../lib/mirror/filelist.ts';
import { releng } from '../helpers/cli.ts';
import { countingWriters, promoteFixture, type PromoteFixture } from '../helpers/promote.ts';
import { upload } from '../../lib/phases/upload.ts';

/** Every file under a tree (relative paths), .releng/ sidecars included or not. */
async function filesUnder(dir: string, withMeta = false): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => !e.isDirectory()).map((e) => path.relative(dir, path.join(e.parentPath ?? (e as any).path, e.name)))
    .filter((p) => withMeta || !p.split('/').includes('.releng')).sort();
}

const fresh = ['--option', 'narinfo-cache-positive-ttl', '0', '--option', 'narinfo-cache-negative-ttl', '0'];

describe('releng promote', () => {
  let f: PromoteFixture;
  let prod: string;
  beforeAll(async () => {
    f = await promoteFixture();
    prod = path.join(f.trees, 'production');
    await f.uploadStaging();
  });
  afterAll(async () => { await f?.cleanup(); });

  it('refuses without --from, or with one environment on both sides, naming what to do', async () => {
    const r = await f.promote('1.0.0', { environment: 'production' });
    expect(r.ok).toBe(false);
    expect(r.error).toContain('promote needs --from SOURCE');
    const same = await f.promote('1.0.0', { environment: 'staging', extra: { from: 'staging' } });
    expect(same.error).toContain('--from and --environment are both "staging"');
  });

  it('a staging release that fails verification is refused and nothing is copied', async () => {
    // One NAR of the closure goes missing in staging.
    const nars = (await f.s3.store.list('staging-cache', 'nar/'));
    const victim = nars[0]!;
    const body = await f.s3.store.getStream!('staging-cache', victim.key);
    const chunks: Buffer[] = [];
    for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
    const head = (await f.s3.store.head('staging-cache', victim.key))!;
    await f.s3.store.delete('staging-cache', victim.key);
    try {
      const r = await f.promote('1.0.0', { environment: 'production', extra: { from: 'staging' } });
      expect(r.ok).toBe(false);
      expect(r.error).toContain('hello 1.0.0 in staging failed verification; nothing was copied');
      // releng verify's own problem line: where, what, and the repair.
      expect(r.error).toContain(`binary cache: s3://staging-cache/${victim.key}: missing: the NAR of /nix/store/`);
      expect(r.error).toContain('repair: delete s3://staging-cache/');
      // The destination is unchanged: listed, it is as empty as before (no sidecar, no file list).
      expect(await filesUnder(prod, true)).toEqual([]);
      expect(r.log).not.toContain('planning promote');
      // The same to an S3 destination: its buckets list empty afterwards.
      const s3r = await f.promote('1.0.0', { environment: 'prods3', extra: { from: 'staging' } });
      expect(s3r.error).toContain('hello 1.0.0 in staging failed verification; nothing was copied');
      for (const b of ['prods3-releases', 'prods3-cache', 'prods3-docs']) expect(await f.s3.store.list(b, '')).toEqual([]);
    } finally {
      const tmp = path.join(f.trees, 'victim');
      await writeFile(tmp, Buffer.concat(chunks));
      await f.s3.store.put({ bucket: 'staging-cache', key: victim.key, body: { file: tmp }, size: head.size, sha256: head.sha256!, contentType: head.contentType! });
      await rm(tmp);
    }
  });

  it('--deep reads every NAR of staging: a NAR rotted in place (same size, same sha256 metadata) is refused; without --deep only its size is seen', async () => {
    // The NAR of the release's own store path (the manifest's), found as Nix would: manifest → narinfo → URL.
    const manifestFile = path.join(f.trees, 'staging-manifest.nix');
    await writeFile(manifestFile, (await f.s3.store.getText('staging-releases', 'hello/hello-1.0.0/manifest.nix'))!);
    const out = Object.values(JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', manifestFile], { encoding: 'utf8' })))[0] as string;
    const narinfo = (await f.s3.store.getText('staging-cache', `${path.basename(out).slice(0, 32)}.narinfo`))!;
    const victim = { key: /^URL: (.*)$/m.exec(narinfo)![1]! };
    const head = (await f.s3.store.head('staging-cache', victim.key))!;
    const chunks: Buffer[] = [];
    for await (const c of (await f.s3.store.getStream!('staging-cache', victim.key)) as AsyncIterable<Buffer>) chunks.push(c);
    const good = Buffer.concat(chunks);
    const rotten = Buffer.from(good);
    rotten[rotten.length >> 1] ^= 0xff;
    const tmp = path.join(f.trees, 'rotten');
    await writeFile(tmp, rotten);
    // Stored under the old sha256 metadata, as bit rot in the server would leave it.
    await f.s3.store.put({ bucket: 'staging-cache', key: victim.key, body: { file: tmp }, size: rotten.length, sha256: head.sha256!, contentType: head.contentType! });
    try {
      const shallow = await f.promote('1.0.0', { environment: 'prods3', dryRun: true, extra: { from: 'staging' } });
      expect(shallow.ok, shallow.error).toBe(true);
      const deep = await f.promote('1.0.0', { environment: 'prods3', extra: { from: 'staging', deep: true } });
      expect(deep.ok).toBe(false);
      expect(deep.error).toContain('hello 1.0.0 in staging failed verification; nothing was copied');
      expect(deep.error).toContain(`binary cache: s3://staging-cache/${victim.key}: FileHash `);
      for (const b of ['prods3-releases', 'prods3-cache', 'prods3-docs']) expect(await f.s3.store.list(b, '')).toEqual([]);
    } finally {
      await writeFile(tmp, good);
      await f.s3.store.put({ bucket: 'staging-cache', key: victim.key, body: { file: tmp }, size: good.length, sha256: head.sha256!, contentType: head.contentType! });
      await rm(tmp);
    }
  });

  it('without staging\'s key file it refuses (signatures are never skipped); --from-public-key gives the key', async () => {
    const key = path.join(f.p.dir, 'keys', 'staging.key');
    const aside = `${key}.aside`;
    const { rename } = await import('node:fs/promises');
    await rename(key, aside);
    try {
      const r = await f.promote('1.0.0', { environment: 'production', dryRun: true, extra: { from: 'staging' } });
      expect(r.ok).toBe(false);
      expect(r.error).toContain('staging\'s cache public key is not readable here');
      expect(r.error).toContain('--from-public-key NAME:BASE64');
      const given = await f.promote('1.0.0', { environment: 'production', dryRun: true, extra: { from: 'staging', 'from-public-key': f.keys.staging } });
      expect(given.ok, given.error).toBe(true);
      expect(given.summary!.verified.source.checked['binary cache']!.narinfos).toBe(given.summary!.closure);
      // A wrong key is a verification failure naming the signatures, not a skip.
      const wrong = await f.promote('1.0.0', { environment: 'production', dryRun: true, extra: { from: 'staging', 'from-public-key': f.keys.production } });
      expect(wrong.ok).toBe(false);
      expect(wrong.error).toContain('hello 1.0.0 in staging failed verification; nothing was copied');
      expect(wrong.error).toContain('(trusted key hello-production-1)');
      expect(await filesUnder(prod, true)).toEqual([]);
    } finally {
      await rename(aside, key);
    }
  });

  it('refuses a version staging does not have', async () => {
    const r = await f.promote('9.9.9', { environment: 'production', extra: { from: 'staging' } });
    expect(r.ok).toBe(false);
    expect(r.error).toContain('staging-releases/hello/hello-9.9.9/SHA256SUMS: missing');
    expect(await filesUnder(prod, true)).toEqual([]);
  });

  it('--dry-run prints every transfer and re-signed narinfo, NARs before narinfos, pointers last, and writes nothing', async () => {
    const r = await f.promote('1.0.0', { environment: 'production', dryRun: true, extra: { from: 'staging' } });
    expect(r.ok, r.error).toBe(true);
    const plan = r.summary!.plan;
    expect(plan.length).toBeGreaterThan(10);
    const first = (re: RegExp) => plan.findIndex((l) => re.test(l));
    const last = (re: RegExp) => plan.length - 1 - [...plan].reverse().findIndex((l) => re.test(l));
    expect(plan[first(/\/nar\//)]).toMatch(/^s3 transfer s3:\/\/staging-cache\/nar\/.*\.nar\.zst -> file:\/\/.*\/production\/cache\/nar\//);
    // Keys differ: narinfos are puts of re-signed text, after every NAR.
    expect(last(/\/nar\//)).toBeLessThan(first(/\.narinfo/));
    expect(plan[first(/\.narinfo/)]).toMatch(/^s3 put file:\/\/.*\.narinfo \(text\/x-nix-narinfo/);
    expect(last(/\.narinfo/)).toBeLessThan(first(/production\/releases\/hello\/hello-1\.0\.0\//));
    expect(last(/production\/releases\/hello\//)).toBeLessThan(first(/production\/releases\/manifest\.nix/));
    expect(first(/production\/docs\/manual\/hello\/stable\//)).toBeGreaterThan(first(/production\/releases\/manifest\.nix/));
    expect(plan[plan.length - 2]).toMatch(/^oci index .*\/hello:latest /);
    // The git push to production's own remote comes last.
    expect(plan[plan.length - 1]).toMatch(/^git push --atomic \.\.\/remote\.git [0-9a-f]{40}:refs\/heads\/main refs\/tags\/1\.0\.0:refs\/tags\/1\.0\.0$/);
    expect(plan.some((l) => l === `s3 redirect file://${prod}/releases/latest-hello-1.0 -> /hello/hello-1.0.0/`)).toBe(true);
    expect(r.summary!.resigned).toBe(r.summary!.closure);
    expect(r.log).toContain('[dry-run] s3 transfer');
    // Images: every platform manifest by digest, then the index under the version, the moving tags last.
    const stagingReg = f.registries.staging.host;
    const prodReg = f.registries.production.host;
    expect(plan.filter((l) => l.startsWith('oci copy'))).toHaveLength(2);
    expect(plan[first(/^oci copy/)]).toMatch(new RegExp(`^oci copy ${stagingReg}/hello@sha256:[0-9a-f]{64} -> ${prodReg}/hello@sha256:[0-9a-f]{64} \\(linux/`));
    expect(last(/^oci copy/)).toBeLessThan(first(/^oci index .*:1\.0\.0 /));
    expect(first(/^oci index .*:1\.0\.0 /)).toBeLessThan(first(/production\/releases\/hello\//));
    expect(first(/^oci index .*:latest /)).toBeGreaterThan(first(/production\/releases\/manifest\.nix/));
    expect(await filesUnder(prod, true)).toEqual([]);
  });

  it('the CLI: --help says what promote reads and changes; --dry-run --json prints the plan as JSON on stdout', async () => {
    const help = await releng(['promote', '--help'], { cwd: f.p.dir });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: releng promote VERSION --from SOURCE --environment DEST');
    expect(help.stdout).toContain('--delete');
    expect(help.stdout).toContain('Changes: the destination only');
    const r = await releng(['promote', '1.0.0', '--from', 'staging', '--environment', 'production', '--dry-run', '--json'], { cwd: f.p.dir });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.result).toMatchObject({ version: '1.0.0', from: 'staging', to: 'production', dryRun: true, applied: {} });
    expect(out.result.plan.length).toBeGreaterThan(10);
    expect(await filesUnder(prod, true)).toEqual([]);
  }, 400_000); // two CLI processes (tsx compiles releng at start): slow on a loaded machine

  it('a usage error (no VERSION) is a UsageError: exit status 2', async () => {
    const { UsageError } = await import('../../lib/core/errors.ts');
    const { promote } = await import('../../lib/phases/promote.ts');
    await expect(promote(await f.ctx({ environment: 'production', extra: { from: 'staging' } }), [])).rejects.toBeInstanceOf(UsageError);
  });

  it('production asks for confirmation: unattended without --noconfirm it refuses before any write', async () => {
    const r = await f.promote('1.0.0', { environment: 'production', noconfirm: false, extra: { from: 'staging' } });
    expect(r.ok).toBe(false);
    expect(r.error).toContain('needs confirmation');
    expect(await filesUnder(prod, true)).toEqual([]);
  });

  it('killed midway, the re-run copies only the rest; Nix then fetches the closure trusting only production\'s key', async () => {
    const killed = countingWriters(6);
    const r1 = await f.promote('1.0.0', { environment: 'production', extra: { from: 'staging' } }, { wrapWriters: killed.wrap });
    expect(r1.ok).toBe(false);
    expect(r1.error).toContain('killed at');
    expect(r1.error).toContain('re-run `releng promote 1.0.0 --from staging --environment production`');
    expect(killed.keys).toHaveLength(5);
    // Nothing users follow moved while the cache was incomplete.
    await expect(lstat(path.join(prod, 'releases', 'manifest.nix'))).rejects.toThrow();
    const rest = countingWriters();
    const r2 = await f.promote('1.0.0', { environment: 'production', extra: { from: 'staging' } }, { wrapWriters: rest.wrap });
    expect(r2.ok, r2.error).toBe(true);
    // No object written twice across the two runs.
    expect(rest.keys.filter((k) => killed.keys.includes(k))).toEqual([]);
    expect(r2.summary!.resigned).toBeGreaterThan(0);
    // promote's own last step was releng verify of production; verify --deep from scratch agrees,
    // reading every NAR (FileHash, NarHash) and checking signatures against production's key.
    expect(r2.summary!.verified.destination?.ok).toBe(true);
    // The checkout's verify (its build's drvs and outPaths, which promote copied from staging: issue
    // 25) and --published (the manifest's closure) agree.
    const { verify } = await import('../../lib/phases/verify.ts');
    const deep = await verify(await f.ctx({ environment: 'production', extra: { deep: true } }));
    expect(deep.ok).toBe(true);
    expect(deep.checked['binary cache']!['NARs hashed']).toBe(r2.summary!.closure);
    const published = await verify(await f.ctx({ environment: 'production', extra: { deep: true, published: '1.0.0' } }));
    expect(published.ok).toBe(true);

    // Production's git remote has the tag, pointing at the release commit.
    const tagLine = execFileSync('git', ['ls-remote', f.p.remote, 'refs/tags/1.0.0^{}'], { encoding: 'utf8' });
    expect(tagLine).toContain(`${f.p.git('rev-parse', '1.0.0^{commit}')}\trefs/tags/1.0.0^{}`);
    // The images in production's registry are staging's, byte for byte (same index digest), under every tag.
    const inspect = (ref: string) => execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' });
    const stagingIndex = inspect(`${f.registries.staging.host}/hello:1.0.0`);
    for (const tag of ['1.0.0', '1.0', 'latest']) expect(inspect(`${f.registries.production.host}/hello:${tag}`)).toBe(stagingIndex);
    for (const m of JSON.parse(stagingIndex).manifests) inspect(`${f.registries.production.host}/hello@${m.digest}`);

    // A user's Nix, trusting only production's key, fetches the release back from the tree.
    const out = Object.values(JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', path.join(prod, 'releases', 'hello', 'hello-1.0.0', 'manifest.nix')], { encoding: 'utf8' }))) as string[];
    const store = path.join(f.trees, 'nix-user-store');
    execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'copy', ...fresh, '--from', `file://${prod}/cache`, '--to', store,
      '--option', 'trusted-public-keys', f.keys.production, ...out], { stdio: 'pipe' });
    // ...and with staging's key it is refused: the narinfos were re-signed.
    expect(() => execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'copy', ...fresh, '--from', `file://${prod}/cache`, '--to', path.join(f.trees, 'other-store'),
      '--option', 'trusted-public-keys', f.keys.staging, out[0]!], { stdio: 'pipe' })).toThrow(/lacks a valid signature/);
    // The root manifest.nix reads with Nix and names this release's build.
    const manifest = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', path.join(prod, 'releases', 'manifest.nix')], { encoding: 'utf8' }));
    expect(Object.values(manifest).every((p) => out.includes(p as string))).toBe(true);
    // latest-hello-1 is a relative symlink to the release prefix.
    expect(await readlink(path.join(prod, 'releases', 'latest-hello-1.0'))).toBe('hello/hello-1.0.0/');
    // Byte-identical to staging: the release prefix files.
    const sums = await readFile(path.join(prod, 'releases', 'hello', 'hello-1.0.0', 'SHA256SUMS'), 'utf8');
    expect(sums).toBe(await f.s3.store.getText('staging-releases', 'hello/hello-1.0.0/SHA256SUMS'));
  });

  it('a second run writes nothing, and the file list is not rewritten', async () => {
    const list = path.join(prod, 'fullfiletimelist-hello');
    // Nix's `copy --from file://` above created its empty dirs (log/, realisations/, ...) in the tree: one run lists them.
    expect((await f.promote('1.0.0', { environment: 'production', extra: { from: 'staging' } })).summary!.fileLists[0]!.changed).toBe(true);
    const before = await stat(list);
    const again = countingWriters();
    const r = await f.promote('1.0.0', { environment: 'production', extra: { from: 'staging' } }, { wrapWriters: again.wrap });
    expect(r.ok, r.error).toBe(true);
    expect(again.keys).toEqual([]);
    expect(r.summary!.fileLists).toEqual([expect.objectContaining({ module: 'hello', changed: false })]);
    expect((await stat(list)).mtimeMs).toBe(before.mtimeMs);
  });

  it('writes fullfiletimelist-hello in quick-fedora-mirror format 2, listing every file of the tree and checksums of SHA256SUMS', async () => {
    const text = await readFile(path.join(prod, 'fullfiletimelist-hello'), 'utf8');
    expect(text.startsWith('[Version]\n2\n\n[Files]\n')).toBe(true);
    expect(text.endsWith('\n[End]\n')).toBe(true);
    const entries = parseFileList(text);
    const files = entries.filter((e) => e.type !== 'd').map((e) => e.path).sort();
    // Every file but the module's three lists (quick-fedora-mirror's FILELIST and EXTRAFILES, issue 28).
    expect(files).toEqual((await filesUnder(prod)).filter((p) => !['fullfiletimelist-hello', 'fullfilelist', 'imagelist-hello'].includes(p)));
    expect((await readFile(path.join(prod, 'fullfilelist'), 'utf8')).trim().split('\n')).toEqual(entries.map((e) => `./${e.path}`));
    expect(entries.find((e) => e.path === 'releases/latest-hello-1.0')?.type).toBe('l');
    expect(entries.find((e) => e.path === 'releases/hello')?.type).toBe('d');
    const sums = await readFile(path.join(prod, 'releases/hello/hello-1.0.0/SHA256SUMS'));
    const sha1 = execFileSync('sha1sum', { input: sums, encoding: 'utf8' }).split(' ')[0];
    expect(text).toContain(`[Checksums SHA1]\n`);
    expect(text).toContain(`${sha1}\treleases/hello/hello-1.0.0/SHA256SUMS\n`);
    const file = entries.find((e) => e.path === 'releases/hello/hello-1.0.0/SHA256SUMS')!;
    const st = await stat(path.join(prod, file.path));
    expect(file.size).toBe(st.size);
    expect(file.time).toBe(Math.floor(Math.max(st.mtimeMs, st.ctimeMs) / 1000));
  });

  it('file → file: a second tree gets server-side file copies, narinfos kept as signed (same key)', async () => {
    const r = await f.promote('1.0.0', { environment: 'mirror', extra: { from: 'production' } });
    expect(r.ok, r.error).toBe(true);
    expect(r.summary!.resigned).toBe(0);
    expect(r.summary!.planned['s3.copy']).toBeGreaterThan(0);
    expect(r.summary!.planned['s3.transfer'] ?? 0).toBe(0);
    const mirror = path.join(f.trees, 'mirror');
    for (const b of ['releases', 'cache', 'docs']) {
      const a = await filesUnder(path.join(prod, b));
      const m = await filesUnder(path.join(mirror, b));
      // No latest link in the mirror (latestLinks defaults to off there).
      expect(m).toEqual(a.filter((p) => p !== 'latest-hello-1.0'));
      for (const p of m) expect((await readFile(path.join(mirror, b, p))).equals(await readFile(path.join(prod, b, p)))).toBe(true);
    }
  });

  it('S3 → S3 on one endpoint: CopyObject server-side, no byte through the client; Nix fetches it over HTTP', async () => {
    await f.s3.resetLog();
    const r = await f.promote('1.0.0', { environment: 'prods3', extra: { from: 'staging' } });
    expect(r.ok, r.error).toBe(true);
    expect(r.summary!.planned['s3.copy']).toBeGreaterThan(0);
    const puts = (await f.s3.requests()).filter((l) => l.startsWith('PUT /prods3-') && !/fullfiletimelist-releases|fullfilelist|imagelist-releases/.test(l));
    // CopyObject is a PUT with x-amz-copy-source; the narinfos are re-signed PUTs (keys differ).
    expect(puts.length).toBe(Object.values(r.summary!.applied).reduce((a, b) => a + b, 0));
    const out = Object.values(JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', path.join(f.trees, 'production', 'releases', 'manifest.nix')], { encoding: 'utf8' }))) as string[];
    execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'copy', ...fresh, '--from', `${f.s3.endpoint}/prods3-cache`, '--to', path.join(f.trees, 'nix-s3-store'),
      '--option', 'trusted-public-keys', f.keys.production, ...out], { stdio: 'pipe' });
    const redirect = await f.s3.store.head('prods3-releases', 'latest-hello-1.0');
    expect(redirect?.redirect).toBe('/hello/hello-1.0.0/');
    // The file list of an S3 module is an object at its root.
    const list = await f.s3.store.getText('prods3-releases', 'fullfiletimelist-releases');
    expect(list).toMatch(/^\[Version\]\n2\n\n\[Files\]\n/);
    expect(list).toMatch(/\n\d+\tf\t\d+\thello\/hello-1\.0\.0\/SHA256SUMS\n/);
    expect(list).toMatch(/\n\d+\td\t0\thello\/hello-1\.0\.0\n/);
    const sums = (await f.s3.store.getText('prods3-releases', 'hello/hello-1.0.0/SHA256SUMS'))!;
    expect(list).toContain(`[Checksums SHA256]\n${sha256Text(sums)}\thello/hello-1.0.0/SHA256SUMS\n`);
  });

  it('upload straight to a file tree: the same planners; a second upload writes nothing; latest link and file list', async () => {
    const first = await f.upload('direct');
    expect(first.applied['s3.put']).toBeGreaterThan(10);
    const root = path.join(f.trees, 'direct');
    expect(await readlink(path.join(root, 'releases', 'latest-hello-1.0'))).toBe('hello/hello-1.0.0/');
    const list = path.join(root, 'releases', 'fullfiletimelist-direct');
    const before = await stat(list);
    const again = await f.upload('direct');
    expect(again.applied).toEqual({});
    expect((await stat(list)).mtimeMs).toBe(before.mtimeMs);
    // --no-mirror-lists (a batch: `releng mirror-lists` at the end) leaves the lists as they are (issue 28).
    await rm(list);
    await upload(await f.ctx({ environment: 'direct', extra: { 'no-mirror-lists': true } }));
    expect(await stat(list).catch(() => undefined)).toBeUndefined();
    await f.upload('direct');
    expect((await stat(list)).isFile()).toBe(true);
    // The tree is a cache Nix reads, trusting production's key (the direct environment signs with it).
    const out = Object.values(JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', path.join(root, 'releases', 'manifest.nix')], { encoding: 'utf8' }))) as string[];
    execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'copy', ...fresh, '--from', `file://${root}/cache`, '--to', path.join(f.trees, 'nix-direct-store'),
      '--option', 'trusted-public-keys', f.keys.production, ...out], { stdio: 'pipe' });
    // A file changed behind releng's back is found by its bytes (the sidecar no longer vouches) and replaced.
    const page = path.join(root, 'docs', 'manual', 'hello', '1.0', 'index.html');
    const good = await readFile(page);
    await writeFile(page, good.toString().replace('hello', 'HELLO'));
    const repair = await f.upload('direct');
    expect(repair.applied).toEqual({ 's3.put': 1 });
    expect((await readFile(page)).equals(good)).toBe(true);
  });

  it('--delete removes stale docs pages only, and --dry-run shows each deletion', async () => {
    const stale = path.join(prod, 'docs', 'manual', 'hello', '1.0', 'stale-page.html');
    await mkdir(path.dirname(stale), { recursive: true });
    await writeFile(stale, 'old\n');
    // A file in the immutable release prefix that staging lacks is never deleted.
    const extra = path.join(prod, 'releases', 'hello', 'hello-1.0.0', 'extra.txt');
    await writeFile(extra, 'kept\n');
    const without = await f.promote('1.0.0', { environment: 'production', dryRun: true, extra: { from: 'staging' } });
    expect(without.ok, without.error).toBe(true);
    expect(without.summary!.plan.filter((l) => l.startsWith('s3 delete'))).toEqual([]);
    const dry = await f.promote('1.0.0', { environment: 'production', dryRun: true, extra: { from: 'staging', delete: true } });
    expect(dry.ok, dry.error).toBe(true);
    expect(dry.summary!.plan.filter((l) => l.startsWith('s3 delete'))).toEqual([`s3 delete file://${prod}/docs/manual/hello/1.0/stale-page.html`]);
    expect(dry.log).toContain(`[dry-run] s3 delete file://${prod}/docs/manual/hello/1.0/stale-page.html`);
    await stat(stale);
    const real = await f.promote('1.0.0', { environment: 'production', extra: { from: 'staging', delete: true } });
    await expect(stat(stale)).rejects.toThrow();
    expect(await readFile(extra, 'utf8')).toBe('kept\n');
    // ...but verify of the destination (releng verify's release-prefix check) names it and fails the run.
    expect(real.ok).toBe(false);
    expect(real.error).toContain('hello 1.0.0 in production failed verification after promote: 1 problem');
    expect(real.error).toContain(`${prod}/releases/hello/hello-1.0.0/extra.txt: not part of the release (SHA256SUMS does not list it`);
    await rm(extra);
    const clean = await f.promote('1.0.0', { environment: 'production', extra: { from: 'staging', delete: true } });
    expect(clean.ok, clean.error).toBe(true);
    expect(clean.summary!.fileLists[0]!.changed).toBe(true);
  });

  it('refuses when the destination release prefix holds other content (immutable), copying nothing', async () => {
    // Someone else's file (issue 23): no releng sidecar, record or intent, other bytes at the full
    // size; then the same with a sidecar recording other bytes (another releng wrote other content).
    const file = path.join(prod, 'releases', 'hello', 'hello-1.0.0', 'SHA256SUMS');
    const sidecar = path.join(prod, 'releases', '.releng', 'meta', 'hello', 'hello-1.0.0', 'SHA256SUMS.json');
    const good = await readFile(file);
    const goodSidecar = await readFile(sidecar);
    const foreign = Buffer.alloc(good.length, 'x');
    try {
      await writeFile(file, foreign);
      for (const side of [undefined, JSON.stringify({ ...JSON.parse(goodSidecar.toString()), sha256: sha256Text(foreign), size: foreign.length, mtimeMs: 0 })]) {
        if (side === undefined) await rm(sidecar); else await writeFile(sidecar, side);
        const counting = countingWriters();
        const r = await f.promote('1.0.0', { environment: 'production', extra: { from: 'staging' } }, { wrapWriters: counting.wrap });
        expect(r.ok).toBe(false);
        expect(r.error).toContain('already holds 1 object with other content');
        expect(r.error).toContain('hello/hello-1.0.0/SHA256SUMS');
        expect(counting.keys).toEqual([]);
        expect((await readFile(file)).equals(foreign)).toBe(true);
      }
    } finally {
      await writeFile(file, good);
      await writeFile(sidecar, goodSidecar);
    }
  });
});
