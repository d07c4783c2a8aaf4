// The shape of lib/, checked by test/unit/layers.test.ts (dependency-cruiser). Layers, bottom to top;
// a module imports only from its own layer or those below it (type-only imports count too):
//   core         plans, apply, errors, retry, exec, secrets, the Logger interfaces
//   config       releng.json and version.json (schemas, loaders), the Context of a run
//   release      the release model on disk (build-result, tag record, manual record); hashing
//   adapters     one reader/writer per kind of store or program: s3 fs nix oci git hydra html local
//   environment  an environment opened: its stores, registries, confirmation
//   domains      planners and verifiers: upload verify promote channel index grants lock mirror release-notes branch-off
//   actions      every kind of write put together (render, apply) above the domains that define them
//   phases       one file per command: a sequence of named steps
//   cli          the program: parser, commands table, completion, terminal log; only entries import it
// See lib/README.md.
const layers = [
  ['core', ['core']],
  ['config', ['config']],
  ['release', ['release', 'hashing']],
  ['adapters', ['s3', 'fs', 'nix', 'oci', 'git', 'hydra', 'html', 'local']],
  ['environment', ['environment']],
  ['domains', ['upload', 'verify', 'promote', 'channel', 'index', 'grants', 'lock', 'mirror', 'release-notes', 'branch-off']],
  ['actions', ['actions']],
  ['phases', ['phases']],
  ['cli', ['cli']],
];
const folders = (ls) => `^lib/(${ls.join('|')})/`;
const layerRules = layers.slice(0, -1).map(([name, own], i) => {
  const above = layers.slice(i + 1).flatMap(([, f]) => f);
  return {
    name: `layer-${name}`,
    comment: `lib/{${own.join(',')}} (layer ${name}) must not import a higher layer: ${above.join(', ')}`,
    severity: 'error',
    from: { path: folders(own) },
    to: { path: folders(above) },
  };
});

module.exports = {
  forbidden: [
    { name: 'no-circular', comment: 'no import cycles (type-only and dynamic imports count)', severity: 'error', from: {}, to: { circular: true } },
    ...layerRules,
    {
      name: 'phases-independent',
      comment: 'a phase imports no other phase: what two share belongs in a layer below',
      severity: 'error',
      from: { path: '^lib/phases/([^/]+)\\.ts$' },
      to: { path: '^lib/phases/', pathNot: '^lib/phases/$1\\.ts$' },
    },
    {
      name: 'cli-only-from-entries',
      comment: 'lib/cli is the program: only the entries (scripts/) import it',
      severity: 'error',
      from: { pathNot: '^(scripts|lib/cli)/' },
      to: { path: '^lib/cli/' },
    },
    {
      name: 'lib-top-level-holds-folders',
      comment: 'lib/ holds folders only: a module belongs to a layer',
      severity: 'error',
      from: { path: '^lib/[^/]+$' },
      to: {},
    },
    {
      name: 'not-to-unresolvable',
      comment: 'every import resolves',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['es6', 'cjs'],
    // Resolve packages' subpath exports as Node does (stream-json/filters/pick.js → src/filters/pick.js).
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
