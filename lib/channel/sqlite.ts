// SQLite for the channel's programs.sqlite and the listing memo: node-sqlite3-wasm (SQLite compiled
// to WebAssembly, reading and writing real files through Node's fs; no native addon to build, so
// `npm ci` and the Nix package's buildNpmPackage need no compiler, python or Node headers). Why this
// one and not better-sqlite3 or sql.js: docs/channel.md, "programs.sqlite".
import { createRequire } from 'node:module';
import { ReleaseError } from '../core/errors.ts';
import type { Database as DatabaseT } from 'node-sqlite3-wasm';

export type Database = DatabaseT;

/** The schema command-not-found reads (nixos-channel-scripts' generate-programs-index, nix-index's nix-channel-index). */
export const PROGRAMS_SCHEMA = `create table Programs (
  name        text not null,
  system      text not null,
  package     text not null,
  primary key (name, system, package)
)`;

let ctor: (new (file?: string, opts?: { fileMustExist?: boolean; readOnly?: boolean }) => DatabaseT) | undefined;

/** Opens (or creates) a database file; errors name the file. */
export function openDatabase(file: string, opts: { readOnly?: boolean; mustExist?: boolean } = {}): Database {
  // Loaded on first use (CommonJS, kept out of the bundle: it finds its .wasm beside itself).
  ctor ??= (createRequire(import.meta.url)('node-sqlite3-wasm') as { Database: typeof ctor }).Database;
  try {
    return new ctor!(file, { readOnly: opts.readOnly, fileMustExist: opts.mustExist ?? opts.readOnly });
  } catch (e) {
    throw new ReleaseError(`cannot open the SQLite database ${file}: ${(e as Error).message}`, 'is it a SQLite file, and is its directory writable?');
  }
}
