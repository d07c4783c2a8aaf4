// Values that would escape their place are refused before any write (issue 9), through the CLI as a
// user runs it: a version git cannot tag (`1.0.0.lock`) before prepare commits the notes, a
// fragment with a NUL byte or invalid UTF-8 (file and line), and `releasesBucket: "s3://rel/../cache"`.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releng } from '../helpers/cli.ts';
import { scratchProject, type ScratchProject } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

describe('values that would escape their place', () => {
  let p: ScratchProject;
  beforeAll(async () => { requireTool('git', 'git'); p = await scratchProject(); });
  afterAll(async () => { await p?.cleanup(); });

  it('version 1.0.0.lock is refused before prepare commits anything', async () => {
    const file = path.join(p.dir, 'version.json');
    const before = await readFile(file, 'utf8');
    await writeFile(file, before.replace('"1.0.0"', '"1.0.0.lock"'));
    p.git('commit', '-q', '-am', 'bump to a bad version');
    const head = p.git('rev-parse', 'HEAD');
    try {
      const r = await releng(['prepare'], { cwd: p.dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${file}`);
      expect(r.stderr).toContain('version: "1.0.0.lock" ends with ".lock": it must be a valid git tag name (git check-ref-format) and one path segment');
      expect(p.git('rev-parse', 'HEAD')).toBe(head);
      expect(p.git('status', '--porcelain')).toBe('');
    } finally {
      await writeFile(file, before);
      p.git('commit', '-q', '-am', 'back to 1.0.0');
    }
  });

  it('a fragment with a NUL byte or invalid UTF-8 is refused with file and line, nothing committed', async () => {
    const dir = path.join(p.dir, 'doc/manual/rl-next');
    await writeFile(path.join(dir, 'zz-nul.md'), '---\nsynopsis: has a NUL\n---\n\nline\u0000\n');
    await writeFile(path.join(dir, 'zz-latin1.md'), Buffer.concat([Buffer.from('---\nsynopsis: caf'), Buffer.from([0xe9]), Buffer.from('\n---\n')]));
    p.git('add', '-A');
    p.git('commit', '-q', '-m', 'bad fragments');
    const head = p.git('rev-parse', 'HEAD');
    const r = await releng(['prepare'], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('doc/manual/rl-next/zz-nul.md:5: contains a NUL byte');
    expect(r.stderr).toContain('doc/manual/rl-next/zz-latin1.md:2: is not valid UTF-8');
    expect(p.git('rev-parse', 'HEAD')).toBe(head);
  });

  it('releasesBucket "s3://rel/../cache" is refused when the config loads', async () => {
    await p.editConfig((c) => { c.environments.local.releasesBucket = 's3://rel/../cache'; });
    const r = await releng(['upload', '--no-check-git', '--dry-run'], { cwd: p.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('environments.local.releasesBucket: the prefix has a ".." segment');
  });
});
