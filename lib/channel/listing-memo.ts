// The listing memo of a channel: what each store path's NAR listing said (programs, debug files) and
// its NAR URL, by store path, kept between releases in STATE/listings/CHANNEL.sqlite. A store path's
// contents never change, so a new release fetches only the paths the previous one did not have.
// It saves requests only: a path the cache lacked is not remembered (asked again next time), and
// verification never reads it. After a complete index, paths this release did not use are dropped,
// so the memo holds about one release's paths.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { openDatabase, type Database } from './sqlite.ts';
import type { PathFacts } from './listings.ts';

export interface Remembered {
  facts: PathFacts;
  narUrl?: string;
}

export interface ListingMemo {
  get(storePath: string): Remembered | undefined;
  put(storePath: string, facts: PathFacts): void;
  putNarUrl(storePath: string, narUrl: string): void;
  /** Marks a path as used by this run (kept by prune). */
  used(storePath: string): void;
  /** Drops every path this run did not use. */
  prune(): number;
  close(): void;
}

/** Commits after this many writes (a crash loses at most these; they are fetched again). */
const BATCH = 2000;

/** Where a channel's memo lives. */
export function memoFileOf(stateDir: string, channel: string): string {
  return path.join(stateDir, 'listings', `${channel}.sqlite`);
}

export async function openListingMemo(file: string): Promise<ListingMemo> {
  await mkdir(path.dirname(file), { recursive: true });
  const db: Database = openDatabase(file);
  db.exec(`pragma synchronous = normal;
    create table if not exists Paths (path text primary key not null, programs text not null, debug text not null, narUrl text, used integer not null default 0);
    update Paths set used = 0;`);
  const select = db.prepare('select programs, debug, narUrl from Paths where path = ?');
  const upsert = db.prepare('insert into Paths (path, programs, debug, used) values (?, ?, ?, 1) on conflict(path) do update set programs = excluded.programs, debug = excluded.debug, used = 1');
  const setNar = db.prepare('update Paths set narUrl = ? where path = ?');
  const markUsed = db.prepare('update Paths set used = 1 where path = ?');
  let pending = 0;
  const wrote = () => {
    if (!db.inTransaction) db.exec('begin');
    if (++pending >= BATCH) { db.exec('commit'); pending = 0; }
  };
  return {
    get(storePath) {
      const row = select.get([storePath]) as { programs: string; debug: string; narUrl: string | null } | null;
      if (!row) return undefined;
      const programs = row.programs ? row.programs.split('\n') : [];
      const debug = row.debug ? row.debug.split('\n').map((l) => { const [buildId, member] = l.split(' '); return { buildId: buildId!, member: member! }; }) : [];
      return { facts: { programs, debug }, narUrl: row.narUrl ?? undefined };
    },
    put(storePath, facts) {
      wrote();
      upsert.run([storePath, facts.programs.join('\n'), facts.debug.map((d) => `${d.buildId} ${d.member}`).join('\n')]);
    },
    putNarUrl(storePath, narUrl) { wrote(); setNar.run([narUrl, storePath]); },
    used(storePath) { wrote(); markUsed.run([storePath]); },
    prune() {
      if (db.inTransaction) { db.exec('commit'); pending = 0; }
      return Number(db.run('delete from Paths where used = 0').changes);
    },
    close() {
      if (db.inTransaction) db.exec('commit');
      for (const s of [select, upsert, setNar, markUsed]) s.finalize();
      db.close();
    },
  };
}
