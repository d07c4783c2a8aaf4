// Makes a scratch project look as `releng tag` leaves it (until tag is on this branch): a release
// commit tagged VERSION (annotated), merged back into the branch with -s ours, HEAD detached at the
// tag, and release/tag.json recording it.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TagRecord } from '../../lib/release/tag-record.ts';

export async function tagLikeReleng(p: { dir: string; git(...args: string[]): string }, version = '1.0.0', branch = 'main'): Promise<TagRecord> {
  p.git('checkout', '-q', '--detach', branch);
  // The release commit says official_release: true, as `releng tag` makes it (upload checks the build is official).
  const versionFile = path.join(p.dir, 'version.json');
  await writeFile(versionFile, (await readFile(versionFile, 'utf8')).replace('"official_release": false', '"official_release": true'));
  p.git('commit', '-q', '-am', `release ${version}`);
  const releaseCommit = p.git('rev-parse', 'HEAD');
  p.git('tag', '-a', version, '-m', `release ${version}`);
  p.git('checkout', '-q', branch);
  p.git('merge', '-q', '-s', 'ours', '--no-edit', version);
  const mergeCommit = p.git('rev-parse', 'HEAD');
  p.git('checkout', '-q', '--detach', version);
  const record: TagRecord = { version, branch, releaseCommit, mergeCommit };
  await mkdir(path.join(p.dir, 'release'), { recursive: true });
  await writeFile(path.join(p.dir, 'release', 'tag.json'), JSON.stringify(record, null, 2) + '\n');
  return record;
}
