// A docker-archive from a nix2container image description (issue 26). Lix's dockerImage.SYSTEM
// (docker.nix: nix2container.buildImage) outputs no tarball but a JSON file naming, per layer, the
// store paths it holds (with a rewrite of their prefix and permission overrides for copyToRoot
// paths) or a prebuilt layer tar; nix2container's patched skopeo assembles the image from it. Hydra
// builds that description, not `dockerImage.SYSTEM.tarball`, so `build --from-hydra` assembles the
// image here from the description and the store paths fetched with it.
//
// Format (nlewo/nix2container types/types.go, Image version 1): image-config (the OCI config's
// `config`), layers [{digest, size, diff_ids, paths: [{path, options: {rewrite: {regex, repl},
// perms: [{regex, mode, uid, gid, uname, gname}], ignoreDestination}}], mediatype, layer-path}],
// arch, created. Entries are written as nix2container writes them (uid/gid 0, root/root, mtime
// 1970-01-01T00:00:01Z, symlinks 0777, parents /nix and /nix/store as 0755 directories, perms
// matched against the source path), but the tar bytes are releng's: the layers' digests are
// recomputed, not the description's (docs/hydra.md).
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdtemp, readFile, readdir, readlink, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { z } from 'zod';
import { ReleaseError } from '../core/errors.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';

const storePath = z.string().regex(/^\/nix\/store\/[0-9a-z]{32}-[^/]+(\/.*)?$/s, 'expected a /nix/store path');
const perm = z.object({
  regex: z.string(),
  mode: z.string().regex(/^[0-7]{0,4}$/, 'expected octal permission bits like "1777"').optional(),
  orMode: z.string().regex(/^[0-7]{1,4}$/, 'expected octal permission bits like "0200"').optional(),
  uid: z.number().int().nonnegative().optional(),
  gid: z.number().int().nonnegative().optional(),
  uname: z.string().optional(),
  gname: z.string().optional(),
}).passthrough();

export const imageDescriptionSchema = z.object({
  version: z.literal(1, { message: 'expected nix2container image format version 1' }),
  'image-config': z.record(z.string(), z.unknown()).nullable().default({}),
  layers: z.array(z.object({
    digest: z.string(),
    size: z.number().int().nonnegative(),
    diff_ids: z.string(),
    paths: z.array(z.object({
      path: storePath,
      options: z.object({
        rewrite: z.object({ regex: z.string(), repl: z.string() }).optional(),
        perms: z.array(perm).nullable().optional(),
        ignoreDestination: z.string().optional(),
      }).passthrough().nullable().optional(),
    }).passthrough()).nullable().optional(),
    mediatype: z.string(),
    'layer-path': storePath.optional(),
  }).passthrough()).nullable().default([]),
  arch: z.string().min(1),
  created: z.string().nullable().optional(),
}).passthrough();
export type ImageDescription = z.infer<typeof imageDescriptionSchema>;
type LayerPath = NonNullable<NonNullable<ImageDescription['layers']>[number]['paths']>[number];

/** Whether a file is a nix2container image description (a JSON object with version, image-config and layers). */
export async function isImageDescription(file: string): Promise<boolean> {
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile() || st.size > 64 * 1024 * 1024) return false;
  try {
    const j = JSON.parse(await readFile(file, 'utf8'));
    return typeof j === 'object' && j !== null && 'image-config' in j && Array.isArray(j.layers);
  } catch { return false; }
}

export async function readImageDescription(file: string): Promise<ImageDescription> {
  return parseWith(imageDescriptionSchema, parseJsonText(await readFile(file, 'utf8'), file), file, 'expected a nix2container image description (the output of nix2container.buildImage)');
}

const epoch1 = new Date('1970-01-01T00:00:01Z');
const plainTar = 'application/vnd.oci.image.layer.v1.tar';

interface Entry { src?: string; dst: string; type: 'file' | 'directory' | 'symlink'; mode: number; size: number; link?: string; uid: number; gid: number; uname: string; gname: string }

function regexOf(re: string, where: string): RegExp {
  try { return new RegExp(re); } catch (e) {
    throw new ReleaseError(`${where}: ${JSON.stringify(re)} is not a regular expression releng can use (${(e as Error).message})`, 'nix2container takes Go regular expressions; releng reads them as JavaScript ones');
  }
}

/** Every entry of one layer's paths, by destination (sorted), as nix2container lays them out. */
async function layerEntries(paths: LayerPath[], where: string): Promise<Entry[]> {
  const byDst = new Map<string, Entry>();
  const dirEntry = (dst: string): Entry => ({ dst, type: 'directory', mode: 0o755, size: 0, uid: 0, gid: 0, uname: 'root', gname: 'root' });
  for (const [i, p] of paths.entries()) {
    const o = p.options ?? {};
    const rewrite = o.rewrite ? { re: regexOf(o.rewrite.regex, `${where} paths[${i}].options.rewrite.regex`), repl: o.rewrite.repl } : undefined;
    const perms = (o.perms ?? []).map((x, j) => ({ ...x, re: regexOf(x.regex, `${where} paths[${i}].options.perms[${j}].regex`) }));
    const ignore = o.ignoreDestination ? regexOf(o.ignoreDestination, `${where} paths[${i}].options.ignoreDestination`) : undefined;
    if (!(await lstat(p.path).catch(() => undefined))) {
      throw new ReleaseError(`${where}: ${p.path} is not in the Nix store here`, 'the image description\'s paths come with its closure: fetch it (build --from-hydra copies the closures of the outputs) or build it');
    }
    const walk = async (src: string): Promise<void> => {
      const st = await lstat(src);
      const dst = (rewrite ? src.replace(rewrite.re, rewrite.repl) : src).replace(/^\/+/, '');
      if (dst !== '' && !(ignore && ignore.test(`/${dst}`))) {
        const type = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'directory' : 'file';
        const e: Entry = { src, dst, type, mode: type === 'symlink' ? 0o777 : st.mode & 0o7777, size: type === 'file' ? st.size : 0, uid: 0, gid: 0, uname: 'root', gname: 'root' };
        if (type === 'symlink') e.link = await readlink(src);
        for (const x of perms) {
          if (!x.re.test(src)) continue;
          e.uid = x.uid ?? 0; e.gid = x.gid ?? 0;
          if (x.uname) e.uname = x.uname;
          if (x.gname) e.gname = x.gname;
          if (x.mode) e.mode = parseInt(x.mode, 8);
          if (x.orMode) e.mode |= parseInt(x.orMode, 8);
        }
        byDst.set(dst, e);
        // Parents of the destination (nix/, nix/store/) as plain directories, unless the layer has them.
        for (let d = path.posix.dirname(dst); d !== '.' && d !== ''; d = path.posix.dirname(d)) if (!byDst.has(d)) byDst.set(d, dirEntry(d));
      } else if (ignore && dst !== '' && ignore.test(`/${dst}`)) {
        return; // a directory ignored takes its whole subtree with it
      }
      if (st.isDirectory()) for (const n of (await readdir(src)).sort()) await walk(path.join(src, n));
    };
    await walk(p.path);
  }
  return [...byDst.values()].sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
}

/** Writes a tar of the entries to `file`; returns its sha256 (the layer's diff_id) and size. */
async function writeLayer(entries: Entry[], file: string): Promise<{ sha256: string; size: number }> {
  const pack = tar.pack();
  const hash = createHash('sha256');
  let size = 0;
  const tee = new Transform({ transform(chunk, _e, cb) { hash.update(chunk); size += chunk.length; cb(null, chunk); } });
  const done = pipeline(pack, tee, createWriteStream(file));
  try {
    for (const e of entries) {
      const header = { name: e.type === 'directory' ? `${e.dst}/` : e.dst, mode: e.mode, uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname, mtime: epoch1 };
      if (e.type === 'directory') await new Promise<void>((res, rej) => pack.entry({ ...header, type: 'directory' }, (err) => (err ? rej(err) : res())));
      else if (e.type === 'symlink') await new Promise<void>((res, rej) => pack.entry({ ...header, type: 'symlink', linkname: e.link }, (err) => (err ? rej(err) : res())));
      else {
        await new Promise<void>((res, rej) => {
          const sink = pack.entry({ ...header, type: 'file', size: e.size }, (err) => (err ? rej(err) : res()));
          createReadStream(e.src!).on('error', rej).pipe(sink);
        });
      }
    }
    pack.finalize();
  } catch (e) { pack.destroy(e as Error); }
  await done;
  return { sha256: hash.digest('hex'), size };
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Assembles a gzipped docker-archive (what `copyTo docker-archive:` and Lix's dockerImage.tarball
 * give) at `out` from the description `file`: one layer.tar per layer (a description's prebuilt
 * `layer-path` as it is, checked against its diff_ids), the config with rootfs.diff_ids, and
 * manifest.json tagged `repoTag`.
 */
export async function dockerArchiveFromDescription(file: string, out: string, repoTag: string): Promise<{ layers: number; diffIds: string[] }> {
  const d = await readImageDescription(file);
  const work = await mkdtemp(path.join(os.tmpdir(), 'releng-n2c-'));
  try {
    const layers: { diffId: string; file: string }[] = [];
    for (const [i, l] of (d.layers ?? []).entries()) {
      const where = `${file} layers[${i}]`;
      if (l.mediatype !== plainTar) {
        throw new ReleaseError(`${where}: media type ${l.mediatype} is not one releng assembles (only ${plainTar})`, 'build the image\'s tarball instead (dockerImage.image: "tarball" with a job whose output is a docker-archive)');
      }
      if (l['layer-path']) {
        const sha = await sha256Of(l['layer-path']).catch((e) => { throw new ReleaseError(`${where}: cannot read layer-path ${l['layer-path']} (${(e as NodeJS.ErrnoException).code ?? e})`, 'the layer tar comes with the description\'s closure: fetch or build it'); });
        if (`sha256:${sha}` !== l.diff_ids) throw new ReleaseError(`${where}: layer-path ${l['layer-path']} hashes to sha256:${sha}, not its diff_ids ${l.diff_ids}`, 'the store path is not what the description was built with; nothing was written');
        layers.push({ diffId: `sha256:${sha}`, file: l['layer-path'] });
        continue;
      }
      const entries = await layerEntries(l.paths ?? [], where);
      const lf = path.join(work, `layer-${i}.tar`);
      const { sha256 } = await writeLayer(entries, lf);
      layers.push({ diffId: `sha256:${sha256}`, file: lf });
    }
    const created = d.created ?? epoch1.toISOString().replace('.000Z', 'Z');
    const config = {
      architecture: d.arch, os: 'linux', created, config: d['image-config'] ?? {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created, created_by: 'nix2container (assembled by releng)' })),
    };
    const configText = JSON.stringify(config);
    const configName = `${createHash('sha256').update(configText).digest('hex')}.json`;
    const layerNames = layers.map((l) => `${l.diffId.slice('sha256:'.length)}/layer.tar`);
    const manifest = JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: [...new Set(layerNames)] }]);
    const pack = tar.pack();
    const done = pipeline(pack, createGzip({ level: 6 }), createWriteStream(out));
    const header = { mode: 0o644, uid: 0, gid: 0, mtime: epoch1 };
    const add = (name: string, body: string) => new Promise<void>((res, rej) => pack.entry({ ...header, name }, body, (e) => (e ? rej(e) : res())));
    try {
      await add('manifest.json', manifest);
      await add(configName, configText);
      const seen = new Set<string>();
      for (const [i, l] of layers.entries()) {
        if (seen.has(layerNames[i]!)) continue;
        seen.add(layerNames[i]!);
        const size = (await stat(l.file)).size;
        await new Promise<void>((res, rej) => {
          const sink = pack.entry({ ...header, name: layerNames[i]!, size }, (e) => (e ? rej(e) : res()));
          createReadStream(l.file).on('error', rej).pipe(sink);
        });
      }
      pack.finalize();
    } catch (e) { pack.destroy(e as Error); }
    await done;
    return { layers: layers.length, diffIds: layers.map((l) => l.diffId) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
