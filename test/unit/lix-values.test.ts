// examples/lix/releng.json against the table of Lix's values in docs/adopting.md (issue 17): every
// row holds, and every value of every environment has a row (so no value drifts from Lix's
// environment.py / keys.py without the table, and its Lix source, saying so).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/config.ts';
import { repoRoot } from '../helpers/project.ts';

interface Row { scope: string; field: string; value: unknown; source: string }

async function lixValuesTable(): Promise<Row[]> {
  const doc = await readFile(path.join(repoRoot, 'docs/adopting.md'), 'utf8');
  const section = doc.split(/^## /m).find((s) => s.startsWith('Lix\'s values'));
  if (!section) throw new Error('docs/adopting.md has no "## Lix\'s values" section');
  return section.split('\n').filter((l) => /^\| [^-|]/.test(l) && !l.startsWith('| scope ')).map((l) => {
    const m = /^\| ([^|]+) \| `([^`]+)` \| `(.+)` \| (.+) \|$/.exec(l);
    if (!m) throw new Error(`docs/adopting.md: cannot read the row ${l}`);
    return { scope: m[1]!.trim(), field: m[2]!, value: JSON.parse(m[3]!), source: m[4]! };
  });
}

/** `a.b[1].c` in an object; undefined when absent. */
function at(o: any, field: string): unknown {
  for (const part of field.split('.')) {
    const m = /^(.+?)\[(\d+)\]$/.exec(part);
    o = m ? o?.[m[1]!]?.[Number(m[2])] : o?.[part];
  }
  return o;
}

/** Every leaf of an environment as `field → value` (arrays of strings are leaves; arrays of objects are indexed). */
function leaves(v: unknown, pre = ''): [string, unknown][] {
  if (v && typeof v === 'object' && !Array.isArray(v)) return Object.entries(v).flatMap(([k, x]) => leaves(x, pre ? `${pre}.${k}` : k));
  if (Array.isArray(v) && v.length && typeof v[0] === 'object') return v.flatMap((x, i) => leaves(x, `${pre}[${i}]`));
  return [[pre, v]];
}

describe('examples/lix/releng.json equals Lix\'s environment.py and keys.py', () => {
  it('every row of the table in docs/adopting.md holds in the file', async () => {
    const rows = await lixValuesTable();
    const raw = JSON.parse(await readFile(path.join(repoRoot, 'examples/lix/releng.json'), 'utf8'));
    expect(rows.length).toBeGreaterThan(80);
    const wrong = rows.filter((r) => JSON.stringify(at(r.scope === '(top)' ? raw : raw.environments[r.scope], r.field)) !== JSON.stringify(r.value))
      .map((r) => `${r.scope} ${r.field}: file ${JSON.stringify(at(r.scope === '(top)' ? raw : raw.environments[r.scope], r.field))}, table ${JSON.stringify(r.value)}`);
    expect(wrong).toEqual([]);
    // The file is a valid config (the loader applies the same schema as releng).
    await loadConfig(path.join(repoRoot, 'examples/lix/releng.json'));
  });

  it('every value of every environment has a row (with its Lix source)', async () => {
    const rows = await lixValuesTable();
    const raw = JSON.parse(await readFile(path.join(repoRoot, 'examples/lix/releng.json'), 'utf8'));
    const documented = new Set(rows.map((r) => `${r.scope} ${r.field}`));
    const missing = Object.entries(raw.environments).flatMap(([env, e]) => leaves(e).map(([f]) => `${env} ${f}`)).filter((k) => !documented.has(k));
    expect(missing).toEqual([]);
    expect(rows.every((r) => r.source.length > 10)).toBe(true);
  });

  it('the values issue 17 found wrong are Lix\'s now: the ssh user and host of the key command, the cache region, the Gerrit remote pattern', async () => {
    const { config } = await loadConfig(path.join(repoRoot, 'examples/lix/releng.json'));
    for (const env of ['staging', 'production']) {
      const c = config.environments[env]!.credentials;
      expect(c.source === 'command' && c.command.slice(0, 3)).toEqual(['ssh', 'lix-releng@s3-admin.afnix.fr', 'garage-ephemeral-key']);
    }
    expect(config.environments.staging!.s3!.region).toBe('garage');
    expect(config.environments.staging!.cache!.region).toBe('global');
    const git = config.environments.production!.git!;
    expect('remoteMatching' in git && new RegExp(git.remoteMatching).test('ssh://jade@gerrit.lix.systems:2022/lix')).toBe(true);
    expect(git.gerrit).toBe(true);
  });
});
