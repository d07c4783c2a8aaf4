// programs.sqlite, the database command-not-found reads ("which package provides program X on
// system S"), as nixos-channel-scripts generates it for a NixOS channel (generate-programs-index,
// since 2022 nix-index's nix-channel-index):
//   - the packages: every attribute of the release's packages.json.br (nixpkgs' package list);
//   - per system, their output paths: `nix-env -qaP --out-path --json` over the channel's own
//     expressions (packages.json.br names outputs but holds no store paths), as nix-channel-index does;
//   - per output path, the programs under bin/ from the binary cache's NAR listing (HASH.ls), or the
//     local store; a path shared by several attributes goes to the shortest name ("nix" over "nixStable");
//   - rows (program, system, attribute) into the `Programs` table, written in sorted order, so the
//     same inputs give the same bytes (a re-run after a crash uploads nothing new).
// Memory stays bounded: both JSON documents are streamed, listings are reduced to their facts as they
// arrive (at most `concurrency` held at once) and rows go straight into SQLite.
import { createReadStream } from 'node:fs';
import { access, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import { createBrotliDecompress } from 'node:zlib';
import { execa } from 'execa';
import { parser as parserM } from 'stream-json';
import pickM from 'stream-json/filters/pick.js';
import streamObjectM from 'stream-json/streamers/stream-object.js';
import { MissingToolError, ReleaseError } from '../core/errors.ts';
import { openDatabase, PROGRAMS_SCHEMA } from './sqlite.ts';
import type { ListingSource, PathFacts } from './listings.ts';
import type { ListingMemo } from './listing-memo.ts';

/** Streams the top-level entries of the object at `pick` in a JSON byte stream to `each`. */
async function streamEntries(source: Readable, pick: string | undefined, each: (key: string, value: unknown) => void): Promise<void> {
  const stages: Array<NodeJS.ReadWriteStream> = [parserM.asStream() as any];
  if (pick) stages.push(pickM.asStream({ filter: pick }) as any);
  stages.push(streamObjectM.asStream() as any);
  await pipeline(source, ...(stages as [NodeJS.ReadWriteStream]), new Writable({
    objectMode: true,
    write(item: { key: string; value: unknown }, _enc, cb) {
      try { each(item.key, item.value); cb(); } catch (e) { cb(e as Error); }
    },
  }));
}

/** The attribute names of packages.json.br (`{"version":2,"packages":{ATTR:{...}}}`, brotli), streamed. */
export async function readPackageAttrs(file: string, shownAs = file): Promise<Set<string>> {
  const attrs = new Set<string>();
  try {
    await streamEntries(createReadStream(file).pipe(createBrotliDecompress()), 'packages', (key) => { attrs.add(key); });
  } catch (e) {
    throw new ReleaseError(`${shownAs} is not a brotli-compressed packages.json (${(e as Error).message})`, 'is channels.kinds[].programs.packages the release file of nixpkgs\' package list? nothing was published');
  }
  if (!attrs.size) throw new ReleaseError(`${shownAs} lists no packages (expected {"version":2,"packages":{ATTRIBUTE:{...}}})`, 'is channels.kinds[].programs.packages nixpkgs\' packages.json.br? nothing was published');
  return attrs;
}

/** One package of an evaluation: its attribute path and output paths. */
export interface EvaluatedPackage {
  attr: string;
  outputs: Record<string, string>;
}

/** Evaluates a channel's packages for one system (their output paths). */
export type Evaluate = (exprPath: string, system: string, each: (p: EvaluatedPackage) => void) => Promise<void>;

/**
 * `nix-env -qaP --out-path --json` over the channel's expressions for `system`, as nix-channel-index
 * runs it (aliases off, no overlays); the JSON is streamed, not held.
 */
export const nixEnvEvaluate: Evaluate = async (exprPath, system, each) => {
  // --readonly-mode: nothing is written to the store (no .drv files); no import-from-derivation: an
  // evaluation never builds anything.
  const args = ['-qaP', '--out-path', '--json', '--file', exprPath, '--argstr', 'system', system,
    '--arg', 'config', '{ allowAliases = false; }', '--arg', 'overlays', '[ ]', '--readonly-mode', '--option', 'allow-import-from-derivation', 'false'];
  const proc = execa('nix-env', args, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', buffer: { stdout: false, stderr: true }, reject: false, env: { NIX_PATH: '' } });
  const parsing = streamEntries(proc.stdout!, undefined, (attr, value) => {
    const outputs = (value as { outputs?: Record<string, unknown> })?.outputs ?? {};
    const paths: Record<string, string> = {};
    for (const [o, p] of Object.entries(outputs)) if (typeof p === 'string' && p.startsWith('/nix/store/')) paths[o] = p;
    each({ attr, outputs: paths });
  });
  const [parsed, result] = await Promise.allSettled([parsing, proc]);
  const r = result.status === 'fulfilled' ? result.value : (result.reason as any);
  if (r?.code === 'ENOENT' || r?.cause?.code === 'ENOENT') throw new MissingToolError('nix-env', 'nix-bin');
  if (r?.exitCode !== 0) {
    throw new ReleaseError(`nix-env could not evaluate the packages of ${exprPath} for ${system} (exit ${r?.exitCode}):\n  ${String(r?.stderr ?? '').trim().split('\n').slice(-8).join('\n  ')}`,
      'is this a nixpkgs channel tarball? check the systems in channels.kinds[].programs; nothing was published');
  }
  if (parsed.status === 'rejected') throw new ReleaseError(`nix-env's JSON for ${exprPath} (${system}) could not be read: ${(parsed.reason as Error).message}`, 'nothing was published');
};

/** Prefers the shorter attribute, then the one first in byte order (generate-programs-index). */
function better(a: string, b: string): boolean {
  return a.length < b.length || (a.length === b.length && a < b);
}

export interface ProgramsIndexInput {
  /** The channel's unpacked expressions (the tarball's top directory). */
  exprDir: string;
  /** packages.json.br of the release (a local file). */
  packagesFile: string;
  systems: string[];
  source: ListingSource;
  memo: ListingMemo;
  /** programs.sqlite to write (replaced). */
  output: string;
  concurrency?: number;
  evaluate?: Evaluate;
  /** Progress: paths looked at so far, of how many. */
  onPath?: (done: number, total: number) => void;
}

export interface ProgramsIndexStats {
  /** Attributes of packages.json.br. */
  packages: number;
  /** Distinct output paths of those packages over all systems. */
  paths: number;
  /** Listings fetched from the cache (or read from the store) in this run. */
  fetched: number;
  /** Paths answered by the memo of an earlier run. */
  remembered: number;
  /** Paths the cache has no listing for (not built, or not yet uploaded): not indexed. */
  missing: number;
  /** Rows of Programs. */
  rows: number;
  /** Per system: packages of packages.json.br the evaluation had. */
  evaluated: Record<string, number>;
}

/** The executable of the channel's expressions: `nixpkgs` inside the tarball's directory (NixOS channels: a link to `.`), else the directory. */
export async function channelExpressions(exprDir: string): Promise<string> {
  const inner = path.join(exprDir, 'nixpkgs');
  return (await access(inner).then(() => true, () => false)) ? inner : exprDir;
}

/** Writes programs.sqlite for the channel (see the file comment); the memo learns every listing fetched. */
export async function generateProgramsIndex(input: ProgramsIndexInput): Promise<ProgramsIndexStats> {
  const attrs = await readPackageAttrs(input.packagesFile);
  const evaluate = input.evaluate ?? nixEnvEvaluate;
  const exprPath = await channelExpressions(input.exprDir);
  // Output path → the package (shortest attribute) and system it belongs to.
  const owners = new Map<string, { attr: string; system: string }>();
  const evaluated: Record<string, number> = {};
  for (const system of input.systems) {
    let n = 0;
    await evaluate(exprPath, system, (p) => {
      if (!attrs.has(p.attr)) return;
      n++;
      for (const out of Object.values(p.outputs)) {
        const have = owners.get(out);
        if (!have || better(p.attr, have.attr)) owners.set(out, { attr: p.attr, system });
      }
    });
    evaluated[system] = n;
  }
  const stats: ProgramsIndexStats = { packages: attrs.size, paths: owners.size, fetched: 0, remembered: 0, missing: 0, rows: 0, evaluated };
  attrs.clear();

  // Rows go into a scratch database as listings arrive (any order), then into programs.sqlite sorted.
  await mkdir(path.dirname(input.output), { recursive: true });
  const scratchFile = `${input.output}.rows`;
  await rm(scratchFile, { force: true });
  await rm(input.output, { force: true });
  const scratch = openDatabase(scratchFile);
  let done = 0;
  try {
    scratch.exec('pragma journal_mode = off; pragma synchronous = off; create table Rows (name text not null, system text not null, package text not null)');
    const insert = scratch.prepare('insert into Rows (name, system, package) values (?, ?, ?)');
    scratch.exec('begin');
    try {
      const entries = owners.entries();
      const worker = async () => {
        for (let next = entries.next(); !next.done; next = entries.next()) {
          const [storePath, owner] = next.value;
          let facts: PathFacts | undefined = input.memo.get(storePath)?.facts;
          if (facts) { stats.remembered++; input.memo.used(storePath); } else {
            facts = await input.source.facts(storePath);
            if (facts) { stats.fetched++; input.memo.put(storePath, facts); } else stats.missing++;
          }
          for (const program of facts?.programs ?? []) insert.run([program, owner.system, owner.attr]);
          input.onPath?.(++done, owners.size);
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, input.concurrency ?? 32) }, worker));
    } finally {
      insert.finalize();
      scratch.exec('commit');
    }
  } finally {
    scratch.close();
  }
  owners.clear();

  const db = openDatabase(input.output);
  try {
    db.exec('pragma journal_mode = off; pragma synchronous = off');
    db.exec(PROGRAMS_SCHEMA);
    db.run('attach database ? as scratch', [scratchFile]);
    db.exec('begin; insert or ignore into Programs (name, system, package) select name, system, package from scratch.Rows order by name, system, package; commit');
    db.exec('detach database scratch');
    stats.rows = Number((db.get('select count(*) as n from Programs') as { n: number }).n);
    db.exec('vacuum');
  } finally {
    db.close();
    await rm(scratchFile, { force: true });
  }
  return stats;
}

/** What `select package from Programs where system = ? and name = ?` answers: command-not-found's own query. */
export function packagesProviding(dbFile: string, system: string, program: string): string[] {
  const db = openDatabase(dbFile, { readOnly: true });
  try {
    return (db.all('select package from Programs where system = ? and name = ?', [system, program]) as Array<{ package: string }>).map((r) => r.package);
  } finally {
    db.close();
  }
}
