// The shape of lib/ (issue 24): no import cycles and the layer rules of .dependency-cruiser.cjs,
// checked with dependency-cruiser over lib/ and scripts/. A second run over a small tree written
// here, with one breach of each rule, proves the rules fire (a check that cannot fail checks nothing).
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { cruise, type IViolation } from 'dependency-cruiser';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/project.ts';

const config = createRequire(import.meta.url)(path.join(repoRoot, '.dependency-cruiser.cjs'));

async function violations(root: string, dirs: string[]): Promise<{ violations: IViolation[]; cruised: number }> {
  const cwd = process.cwd();
  process.chdir(root);
  try {
    const r = await cruise(dirs, { validate: true, ruleSet: { forbidden: config.forbidden }, ...config.options, tsConfig: undefined });
    const out = r.output as Exclude<typeof r.output, string>;
    return { violations: out.summary.violations, cruised: out.summary.totalCruised };
  } finally {
    process.chdir(cwd);
  }
}

const show = (v: IViolation[]) => v.map((x) => `${x.rule.name}: ${x.from} -> ${x.to}${x.cycle ? ` (${x.cycle.map((c) => c.name).join(' -> ')})` : ''}`);

describe('lib/ by layer', () => {
  let tree: string | undefined;
  afterAll(async () => { if (tree) await rm(tree, { recursive: true, force: true }); });

  it('lib/ and scripts/ have no import cycle and break no layer rule', async () => {
    const r = await violations(repoRoot, ['lib', 'scripts']);
    expect(r.cruised).toBeGreaterThan(150);
    expect(show(r.violations)).toEqual([]);
  });

  it('lib/ holds folders (one per layer or domain), no loose modules', async () => {
    const loose = (await readdir(path.join(repoRoot, 'lib'), { withFileTypes: true })).filter((e) => !e.isDirectory()).map((e) => e.name);
    expect(loose.filter((n) => n !== 'README.md')).toEqual([]);
  });

  it('each rule fires on a tree that breaks it', async () => {
    tree = await mkdtemp(path.join(os.tmpdir(), 'releng-layers-'));
    const files: Record<string, string> = {
      // core imports an adapter (layer-core), and a cycle through two adapters (no-circular)
      'lib/core/plan.ts': "import { put } from '../s3/store.ts';\nexport const plan = put;\n",
      'lib/s3/store.ts': "import { sign } from '../nix/sign.ts';\nexport const put = sign;\n",
      'lib/nix/sign.ts': "import { put } from '../s3/store.ts';\nexport const sign = () => put;\n",
      // a domain imports a phase (layer-domains)
      'lib/upload/cache.ts': "import { build } from '../phases/build.ts';\nexport const cache = build;\n",
      // a phase imports another phase (phases-independent) and the CLI (cli-only-from-entries)
      'lib/phases/build.ts': "export const build = 1;\n",
      'lib/phases/upload.ts': "import { build } from './build.ts';\nimport { main } from '../cli/main.ts';\nexport const upload = [build, main];\n",
      'lib/cli/main.ts': "export const main = 1;\n",
      // a loose module at lib/'s top level (lib-top-level-holds-folders), importing one that is not there
      'lib/helpers.ts': "import { x } from './nowhere.ts';\nexport const h = x;\n",
    };
    for (const [f, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(tree, f)), { recursive: true });
      await writeFile(path.join(tree, f), text);
    }
    const rules = new Set((await violations(tree, ['lib'])).violations.map((v) => v.rule.name));
    for (const rule of ['no-circular', 'layer-core', 'layer-domains', 'phases-independent', 'cli-only-from-entries', 'lib-top-level-holds-folders', 'not-to-unresolvable']) {
      expect(rules, rule).toContain(rule);
    }
  });
});
