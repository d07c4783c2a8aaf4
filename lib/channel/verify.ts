// Reads a published channel release back from the buckets and checks it from scratch: the channel
// object points at a release page; every file the page lists exists with the size and sha256 the
// page states (the body is hashed, not only its metadata); every NAME.sha256 agrees; no file of the
// prefix is missing from the page; every alias of the channel redirects to a key that exists; for
// kinds with `programs`, the tarballs hold a programs.sqlite that opens and answers command-not-found,
// and every debuginfo/ entry of the release points at a NAR member that exists (issue 27).
// Reads only. Exported for `releng verify` (issue 9); `releng channel CHANNEL --verify` calls it too.
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'node-html-parser';
import pLimit from 'p-limit';
import type { BucketRef } from '../environment/open.ts';
import { ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import type { S3Reader } from '../s3/store.ts';
import { archiveKeyOf, debugInfoEntries, debugOutputs } from './debuginfo.ts';
import { httpListingSource, type ListingSource } from './listings.ts';
import type { ChannelsConfig } from '../config/channels.ts';
import { openDatabase } from './sqlite.ts';

/** What a channel kind with `programs` publishes besides its files (issue 27). */
export interface ChannelProgramsCheck {
  /** Tarballs that must hold TOPDIR/programs.sqlite (those the release page lists). */
  tarballs: string[];
  /** The cache bucket with the debuginfo/ entries, and where the debug outputs' listings are read. */
  debuginfo?: { cache: BucketRef; source: ListingSource };
}

export interface ChannelVerifyInput {
  reader: S3Reader;
  releases: BucketRef;
  channels: BucketRef;
  channel: string;
  /** Public URL of the releases bucket (+ prefix): what redirect targets start with. */
  releasesUrl: string;
  /** Parallel body reads (default 4). */
  concurrency?: number;
  /** programs.sqlite in the tarballs and the debuginfo entries (kinds with `programs`). */
  programs?: ChannelProgramsCheck;
}

export interface ChannelVerifyResult {
  channel: string;
  /** The release page's key in the releases bucket, when the channel object could be read. */
  pageKey?: string;
  /** Files hashed, .sha256 files compared, redirects followed. */
  checked: { files: number; sha256Files: number; redirects: number; programsDatabases?: number; debuginfo?: number };
  /** Empty when the release is intact. Each names the key and what is wrong. */
  problems: string[];
}

/** Public URL of the releases bucket (+ prefix): what channel redirect targets start with. */
export function releasesUrlOf(env: { releasesUrl?: string }, releases: BucketRef): string {
  return env.releasesUrl ?? `/${releases.bucket}${releases.prefix ? `/${releases.prefix.replace(/\/$/, '')}` : ''}`;
}

/** The releases-bucket key a redirect target names, or undefined when it is not under releasesUrl. */
export function keyOfTarget(target: string, releasesUrl: string, releases: BucketRef): string | undefined {
  const base = releasesUrl.replace(/\/+$/, '') + '/';
  if (!target.startsWith(base)) return undefined;
  const rel = target.slice(base.length).split(/[?#]/)[0]!;
  if (!rel || rel.split('/').some((s) => s === '' || s === '.' || s === '..')) return undefined;
  try { return releases.prefix + decodeURIComponent(rel); } catch { return undefined; }
}

/** Checks the release `channel` points at; never throws for a problem of the release (see `problems`). */
export async function verifyChannelRelease(input: ChannelVerifyInput): Promise<ChannelVerifyResult> {
  const { reader, releases, channels, channel, releasesUrl } = input;
  const problems: string[] = [];
  const checked = { files: 0, sha256Files: 0, redirects: 0 };
  const channelKey = `${channels.prefix}${channel}`;
  const where = (b: string, k: string) => `s3://${b}/${k}`;
  if (!reader.sha256Of) throw new ReleaseError('this S3 adapter cannot read object bodies, so it cannot verify a channel release');
  const head = await reader.head(channels.bucket, channelKey);
  if (!head) return { channel, checked, problems: [`${where(channels.bucket, channelKey)} does not exist: the channel was never published`] };
  const pageKey = head.redirect ? keyOfTarget(head.redirect, releasesUrl, releases) : undefined;
  if (!pageKey) return { channel, checked, problems: [`${where(channels.bucket, channelKey)} redirects to ${JSON.stringify(head.redirect ?? '')}, not to a release under ${releasesUrl}`] };
  checked.redirects++;
  const page = await reader.getText(releases.bucket, pageKey);
  if (page === undefined) return { channel, pageKey, checked, problems: [`${where(channels.bucket, channelKey)} points at ${where(releases.bucket, pageKey)}, which does not exist`] };

  // The page's table: name, size, sha256 per file.
  const rows = parse(page).querySelectorAll('tbody tr').map((tr) => tr.querySelectorAll('td').map((td) => td.text.trim()));
  const listed = new Map<string, { size: number; sha256: string }>();
  for (const r of rows) {
    if (r.length < 3 || !/^\d+$/.test(r[1]!) || !/^[0-9a-f]{64}$/.test(r[2]!)) { problems.push(`${where(releases.bucket, pageKey)}: a table row is not "name, size, sha256": ${JSON.stringify(r)}`); continue; }
    listed.set(r[0]!, { size: Number(r[1]), sha256: r[2]! });
  }
  if (!listed.size) problems.push(`${where(releases.bucket, pageKey)} lists no files`);
  const filesPrefix = `${pageKey}/`;
  const present = new Map((await reader.list(releases.bucket, filesPrefix)).map((o) => [o.key.slice(filesPrefix.length), o]));
  const limit = pLimit(input.concurrency ?? 4);
  await Promise.all([...listed].map(([name, want]) => limit(async () => {
    const key = filesPrefix + name;
    const got = await reader.sha256Of!(releases.bucket, key);
    checked.files++;
    if (!got) { problems.push(`${where(releases.bucket, key)} is on the release page but does not exist`); return; }
    if (got.size !== want.size || got.sha256 !== want.sha256) {
      problems.push(`${where(releases.bucket, key)} holds ${got.size} bytes with sha256 ${got.sha256}, but the release page says ${want.size} bytes, ${want.sha256}`);
    }
  })));
  for (const name of present.keys()) {
    if (name.endsWith('.sha256')) {
      const of = name.slice(0, -'.sha256'.length);
      const text = (await reader.getText(releases.bucket, filesPrefix + name)) ?? '';
      checked.sha256Files++;
      // "HEX  NAME" as the NixOS mirror writes it (older releases: HEX alone).
      const m = /^([0-9a-f]{64})(?:\s+\*?(\S.*?))?\s*$/.exec(text);
      const want = listed.get(of);
      if (!m) problems.push(`${where(releases.bucket, filesPrefix + name)} is not "SHA256  NAME": ${JSON.stringify(text.slice(0, 100))}`);
      else if (!want) problems.push(`${where(releases.bucket, filesPrefix + name)} belongs to ${of}, which the release page does not list`);
      else if (m[1] !== want.sha256 || (m[2] !== undefined && m[2] !== of)) problems.push(`${where(releases.bucket, filesPrefix + name)} says ${m[1]}${m[2] ? `  ${m[2]}` : ''}, but ${of} has sha256 ${want.sha256}`);
    } else if (!listed.has(name)) {
      problems.push(`${where(releases.bucket, filesPrefix + name)} is in the release prefix but not on its page`);
    }
  }
  // Every alias of the channel redirects to a key that exists.
  const aliasPrefix = `${channelKey}/`;
  const aliases = await reader.list(channels.bucket, aliasPrefix);
  await Promise.all(aliases.map((a) => limit(async () => {
    const h = await reader.head(channels.bucket, a.key);
    checked.redirects++;
    if (!h?.redirect) { problems.push(`${where(channels.bucket, a.key)} is not a redirect`); return; }
    const key = keyOfTarget(h.redirect, releasesUrl, releases);
    if (!key) { problems.push(`${where(channels.bucket, a.key)} redirects to ${h.redirect}, outside ${releasesUrl}`); return; }
    if (!(await reader.head(releases.bucket, key))) problems.push(`${where(channels.bucket, a.key)} redirects to ${h.redirect}, but ${where(releases.bucket, key)} does not exist (a dangling redirect)`);
  })));
  if (input.programs) await verifyPrograms(input, input.programs, filesPrefix, [...listed.keys()], checked, problems);
  problems.sort();
  return { channel, pageKey, checked, problems };
}

/** The programs check of `channel` when its kind (first `match`) has `programs`; listings read from the published cache only. */
export function programsCheckOf(channels: ChannelsConfig | undefined, channel: string, cache: BucketRef): ChannelProgramsCheck | undefined {
  const kind = channels?.kinds.find((k) => new RegExp(`^(?:${k.match})$`).test(channel));
  const cfg = kind?.programs;
  if (!kind || !cfg) return undefined;
  return { tarballs: cfg.tarballs, debuginfo: cfg.debuginfo ? { cache, source: httpListingSource(kind.binaryCacheUrl, { localStore: false }) } : undefined };
}

/** The columns command-not-found's query reads. */
const PROGRAMS_COLUMNS = ['name', 'system', 'package'];

/**
 * Each configured tarball on the page holds TOPDIR/programs.sqlite, which opens, has the Programs
 * table command-not-found reads and answers its query; every debug file of the release's debug
 * outputs (store-paths.xz) has a debuginfo/ entry whose archive exists in the cache bucket and whose
 * member is that debug file (an entry of another build: its archive exists and its member is a debug file).
 */
async function verifyPrograms(input: ChannelVerifyInput, cfg: ChannelProgramsCheck, filesPrefix: string, listed: string[], checked: ChannelVerifyResult['checked'], problems: string[]): Promise<void> {
  const { reader, releases } = input;
  const where = (b: string, k: string) => `s3://${b}/${k}`;
  if (!reader.download) { problems.push('this S3 adapter cannot download objects, so programs.sqlite cannot be checked'); return; }
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'releng-channel-verify-'));
  try {
    checked.programsDatabases = 0;
    for (const name of cfg.tarballs.filter((t) => listed.includes(t))) {
      const key = filesPrefix + name;
      const file = path.join(tmp, name);
      await reader.download(releases.bucket, key, file);
      const out = path.join(tmp, `${name}.d`);
      await mkdir(out, { recursive: true });
      // A tarball without the member makes tar fail ("Not found in archive"): reported below as missing.
      await run('tar', ['-x', name.endsWith('.zst') ? '--zstd' : '--xz', '-f', file, '-C', out, '--wildcards', '*/programs.sqlite']).catch(() => undefined);
      const top = await readdir(out).catch(() => [] as string[]);
      const db = top.length === 1 ? path.join(out, top[0]!, 'programs.sqlite') : undefined;
      const exists = db ? await readdir(path.dirname(db)).then((e) => e.includes('programs.sqlite'), () => false) : false;
      if (!db || !exists) { problems.push(`${where(releases.bucket, key)} has no programs.sqlite in its top directory (command-not-found finds no database)`); continue; }
      try {
        const d = openDatabase(db, { readOnly: true });
        try {
          const cols = (d.all('pragma table_info(Programs)') as Array<{ name: string }>).map((c) => c.name);
          if (PROGRAMS_COLUMNS.some((c) => !cols.includes(c))) { problems.push(`${where(releases.bucket, key)}: programs.sqlite has no table Programs(name, system, package) (columns: ${cols.join(', ') || 'none'})`); continue; }
          d.all('select package from Programs where system = ? and name = ?', ['x86_64-linux', 'releng-verify']);
          const n = Number((d.get('select count(*) as n from Programs') as { n: number }).n);
          if (!n) problems.push(`${where(releases.bucket, key)}: programs.sqlite has no programs`);
        } finally {
          d.close();
        }
        checked.programsDatabases++;
      } catch (e) {
        problems.push(`${where(releases.bucket, key)}: programs.sqlite does not open: ${(e as Error).message}`);
      }
    }
    if (!cfg.debuginfo) return;
    const { cache, source } = cfg.debuginfo;
    const spKey = `${filesPrefix}store-paths.xz`;
    const spFile = path.join(tmp, 'store-paths.xz');
    if (!(await reader.head(releases.bucket, spKey))) { problems.push(`${where(releases.bucket, spKey)} does not exist: the debug outputs cannot be known`); return; }
    await reader.download(releases.bucket, spKey, spFile);
    const { stdout } = await run('xz', ['-dc', spFile]);
    const entries = await debugInfoEntries({ storePaths: debugOutputs(stdout.split('\n').filter(Boolean)), source, cache });
    const limit = pLimit(input.concurrency ?? 4);
    checked.debuginfo = 0;
    await Promise.all(entries.map((e) => limit(async () => {
      const body = await reader.getText(cache.bucket, e.key);
      checked.debuginfo!++;
      if (body === undefined) { problems.push(`${where(cache.bucket, e.key)} does not exist: the debug file of ${e.storePath} is not indexed`); return; }
      let doc: { archive?: unknown; member?: unknown };
      try { doc = JSON.parse(body); } catch { problems.push(`${where(cache.bucket, e.key)} is not JSON: ${JSON.stringify(body.slice(0, 100))}`); return; }
      const archive = typeof doc.archive === 'string' ? archiveKeyOf(e.key, doc.archive) : undefined;
      if (!archive || typeof doc.member !== 'string' || !/^lib\/debug\/\.build-id\/[0-9a-f]{2}\/[0-9a-f]{38}\.debug$/.test(doc.member)) {
        problems.push(`${where(cache.bucket, e.key)} is not {"archive":"../nar/…","member":"lib/debug/.build-id/…"}: ${body.slice(0, 200)}`);
        return;
      }
      if (!(await reader.head(cache.bucket, archive))) problems.push(`${where(cache.bucket, e.key)} points at ${where(cache.bucket, archive)}, which does not exist`);
      else if (body === e.body) return;
      else if (!doc.member.endsWith(`${e.key.slice(-38)}.debug`)) problems.push(`${where(cache.bucket, e.key)} names member ${doc.member}, which is not the debug file of build id ${e.key.split('/').at(-1)}`);
    })));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** verifyChannelRelease, throwing a ReleaseError that lists every problem. */
export async function assertChannelRelease(input: ChannelVerifyInput): Promise<ChannelVerifyResult> {
  const r = await verifyChannelRelease(input);
  if (r.problems.length) {
    throw new ReleaseError(`channel ${input.channel} failed verification (${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}):\n  ${r.problems.join('\n  ')}`,
      'a re-run of `releng channel` with the same release repairs missing files and aliases; a file with other content needs a look by hand');
  }
  return r;
}
