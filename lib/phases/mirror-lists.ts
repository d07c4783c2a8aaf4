// `releng mirror-lists`: regenerate the quick-fedora-mirror lists of every module of an environment
// (or those named) at once (issue 28). Upload and promote regenerate them after each run; a batch
// that publishes several releases before telling mirrors runs those with --no-mirror-lists and this
// once at the end, as Rocky runs its syncs to completion and then its file lists
// (sync-file-list-parallel.sh). Every module is scanned, then every module's extra lists and time
// lists are written together (lib/mirror/filelist.ts): hardlinks across modules need both lists at once.
// Steps: open the environment → plan (scan, reads only) → apply (each list only if its text changed).
import { apply, countByKind } from '../actions/index.ts';
import type { Context } from '../config/context.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { openEnvironment } from '../environment/open.ts';
import { planFileLists, type FileListResult } from '../mirror/filelist.ts';

export interface MirrorListsSummary {
  environment: string;
  dryRun: boolean;
  /** Each module: its time list's URL, whether any of its lists changed, and each list. */
  modules: FileListResult[];
  /** Lists (re)written, or that a run would write (--dry-run). */
  written: number;
}

export async function mirrorLists(ctx: Context, positionals: string[]): Promise<MirrorListsSummary> {
  const { log, flags } = ctx;
  // Buckets and their endpoint only: no registry logins, nothing of the release.
  const target = await openEnvironment(ctx, undefined, { registries: false });
  try {
    const configured = Object.keys(target.env.mirror?.fileLists ?? {});
    if (!configured.length) {
      throw new ReleaseError(`environment ${target.name} has no mirror file lists (environments.${target.name}.mirror.fileLists in ${ctx.loaded.file})`,
        'add a module, e.g. "mirror": { "fileLists": { "lix": { "root": "file:///srv/mirror/lix" } } } (docs/mirrors.md); nothing was written');
    }
    const unknown = positionals.filter((m) => !configured.includes(m));
    if (unknown.length) throw new UsageError(`no module ${unknown.join(', ')} in environments.${target.name}.mirror.fileLists: choose among ${configured.join(', ')} (or name none for all)`);
    const only = positionals.length ? [...new Set(positionals)] : configured;

    const phase = log.phase(`scanning ${only.length} module${only.length === 1 ? '' : 's'} of ${target.name}: ${only.join(', ')}`);
    const lists = await planFileLists(target.s3, target.env.mirror, { only });
    const planned = countByKind(lists.plan)['s3.put'] ?? 0;
    phase.succeed(`${lists.results.map((r) => `${r.module}: ${r.entries} entries`).join('; ')}; ${planned} list${planned === 1 ? '' : 's'} to write`);

    const applied = await apply(lists.plan, { log, dryRun: flags.dryRun, writers: { s3: target.s3 } });
    if (!flags.dryRun) log.info(`mirror file lists of ${target.name}: ${applied.byKind['s3.put'] ?? 0} written, ${lists.plan.skipped.length} unchanged`);
    return { environment: target.name, dryRun: flags.dryRun, modules: lists.results, written: flags.dryRun ? planned : applied.byKind['s3.put'] ?? 0 };
  } finally {
    await target.close();
  }
}
