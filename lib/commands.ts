// Every command of the CLI: what it does, reads and changes (its --help), its flags, and how it runs.
import type { Context } from './context.ts';
import { ReleaseError } from './errors.ts';

export interface FlagDef {
  name: string;
  type: 'boolean' | 'string';
  description: string;
  /** Value shown in help, e.g. FILE. */
  value?: string;
}

export interface CommandDef {
  name: string;
  summary: string;
  reads: string;
  changes: string;
  usage?: string;
  flags: FlagDef[];
  /** Whether it loads releng.json + version.json into a Context (serve/channel may not need a version). */
  needsVersion: boolean;
  run(ctx: Context, positionals: string[]): Promise<unknown>;
}

export const globalFlags: FlagDef[] = [
  { name: 'config', type: 'string', value: 'FILE', description: 'releng.json to use (default: ./releng.json)' },
  { name: 'environment', type: 'string', value: 'NAME', description: 'environment to publish to (default: local when defined)' },
  { name: 'dry-run', type: 'boolean', description: 'run every read and check, print the exact writes, publish nothing (local staging under release/ may be written)' },
  { name: 'json', type: 'boolean', description: 'print the result as JSON on stdout (logs stay on stderr)' },
  { name: 'noconfirm', type: 'boolean', description: 'do not ask for the confirmation phrase (required without a terminal)' },
  { name: 'verbose', type: 'boolean', description: 'log every action and subprocess' },
  { name: 'help', type: 'boolean', description: 'show help for the command' },
];

const forcePushTag: FlagDef = { name: 'force-push-tag', type: 'boolean', description: 'replace tag VERSION on the git remote when it points at another commit' };
const replaceArtifacts: FlagDef = { name: 'replace-artifacts', type: 'boolean', description: 'replace objects of the release prefix that hold other content (only for a release never announced)' };
const forcePushImages: FlagDef = { name: 'force-push-images', type: 'boolean', description: 'replace an image tag VERSION that points at another image index (docs/images.md)' };

const replaceCacheInfo: FlagDef = { name: 'replace-cache-info', type: 'boolean', description: 'replace the cache bucket\'s nix-cache-info when it differs from Nix\'s (default: keep it, as Nix does, and report the difference)' };
const buildTarget: FlagDef = { name: 'target', type: 'string', value: 'all|manual', description: 'all (default), or only the manual: release/manual from the manual job, no tag needed (nightly docs)' };
const uploadTarget: FlagDef = { name: 'target', type: 'string', value: 'all|manual', description: 'all (default), or only the manual to the docs bucket: nightly/ when version.json is not official (no tag needed), else MAJOR/ and stable/' };
const noCheckGit: FlagDef = { name: 'no-check-git', type: 'boolean', description: 'skip the "HEAD at tag VERSION, tree clean" check (testing only)' };
const noCheckGitTag: FlagDef = { name: 'no-check-git', type: 'boolean', description: 'skip the "nothing staged or modified" check (testing only)' };

function notBuiltYet(name: string, issue: string): CommandDef['run'] {
  return async () => {
    throw new ReleaseError(`\`releng ${name}\` is not built yet (${issue})`, 'see the README for the commands that work today');
  };
}

/** The phases of a release, in the order `releng release` runs them. */
export const releasePhases: string[] = [
  'prepare', // release notes from doc/manual/rl-next fragments, committed
  'tag', // official_release, release commit, annotated tag, merge -s ours back
  'build', // evaluate + realise release jobs, lay out release/artifacts
  'upload', // cache, images, release bucket, docs, git push
];

// Phases are imported when their command runs: `--help` and `build` need not load the S3 SDK.
export const commands: CommandDef[] = [
  {
    name: 'prepare',
    summary: 'assemble the release notes from doc/manual/rl-next/*.md fragments and commit them',
    reads: 'releng.json, version.json, the fragments, change-authors.yml, SUMMARY.md',
    changes: 'git (local): writes rl-MAJOR.md and SUMMARY.md, removes the fragments, one commit',
    flags: [{ name: 'date', type: 'string', value: 'YYYY-MM-DD', description: 'release date in the notes (default: today, UTC)' }],
    needsVersion: true,
    run: async (ctx) => (await import('./phases/prepare.ts')).prepare(ctx),
  },
  {
    name: 'tag',
    summary: 'make the release commit (official_release: true) and annotated tag VERSION, merge it back with -s ours',
    reads: 'releng.json, version.json, git state',
    changes: 'git (local): a commit, tag VERSION, a merge commit on the branch; leaves HEAD detached at the tag; writes release/tag.json',
    flags: [
      { name: 'force-tag', type: 'boolean', description: 'replace an existing tag VERSION' },
      noCheckGitTag,
    ],
    needsVersion: true,
    run: async (ctx) => (await import('./phases/tag.ts')).tag(ctx),
  },
  {
    name: 'build',
    summary: 'evaluate and build the release jobs and lay out release/artifacts, release/manual and build-result.json',
    reads: 'releng.json, version.json, the release jobs (Nix) or a Hydra evaluation (--from-hydra), git HEAD',
    changes: 'the Nix store (builds or paths fetched from the Hydra\'s cache, gc roots under release/gcroots) and release/ (local files only)',
    flags: [
      { name: 'profile', type: 'string', value: 'NAME', description: 'which systems to build (default: releng.json defaultProfile)' },
      buildTarget,
      { name: 'from-hydra', type: 'string', value: 'URL', description: 'take the release jobs from a Hydra evaluation instead of building them: …/eval/ID, …/jobset/P/J (its latest finished evaluation) or …/build/ID; fetched from releng.json hydra.cache (docs/hydra.md). Exit 5: a job is not finished yet' },
      { name: 'hydra-json', type: 'string', value: 'FILE', description: 'as --from-hydra, for the build named in Hydra\'s RunCommand file (pass "$HYDRA_JSON"); needs hydra.url' },
      { name: 'builders', type: 'string', value: 'SPEC', description: 'remote builders for this build (nix.conf `builders`, e.g. "ssh://builder aarch64-linux /root/.ssh/id_builder 4 1 big-parallel")' },
      { name: 'max-jobs', type: 'string', value: 'N', description: 'local build jobs for Nix (0: everything on --builders)' },
      noCheckGit,
    ],
    needsVersion: true,
    run: async (ctx) => (await import('./phases/build.ts')).build(ctx),
  },
  {
    name: 'upload',
    summary: 'publish release/ to an environment: binary cache, container images, release bucket, root manifest.nix, docs, then git push',
    reads: 'release/build-result.json, release/tag.json, the environment\'s buckets, registries and git remote (to skip what is there)',
    changes: 'S3: the cache bucket (signed Nix binary cache), the releases bucket (PROJECT/PROJECT-VERSION/, /manifest.nix) and docs bucket (manual/PROJECT/...); registries: per-system images and the image index under each tag; git: the branch and tag VERSION on the remote; locally: the staged cache in release/cache/ENV and image copies in release/oci',
    flags: [forcePushTag, forcePushImages, replaceArtifacts, replaceCacheInfo, uploadTarget, noCheckGit],
    needsVersion: true,
    run: async (ctx) => (await import('./phases/upload.ts')).uploadCommand(ctx),
  },
  {
    name: 'release',
    summary: 'the whole release: prepare → tag → build → upload',
    reads: 'everything the four phases read',
    changes: 'everything the four phases change',
    flags: [
      { name: 'date', type: 'string', value: 'YYYY-MM-DD', description: 'release date in the notes (default: today, UTC)' },
      { name: 'profile', type: 'string', value: 'NAME', description: 'which systems to build' },
      { name: 'force-tag', type: 'boolean', description: 'replace an existing tag VERSION' },
      forcePushTag,
      forcePushImages,
      replaceArtifacts,
      replaceCacheInfo,
      noCheckGit,
    ],
    needsVersion: true,
    // Implemented in scripts/releng.ts: each phase gets a fresh context (tag rewrites version.json).
    run: async () => { throw new Error('internal: release is run by the entry script'); },
  },
  {
    name: 'channel',
    summary: 'publish a Hydra evaluation as a channel release and move the channel (never backwards)',
    usage: 'releng channel CHANNEL (--build URL | --hydra-json FILE | --verify)',
    reads: 'Hydra JSON, the binary cache, the channel\'s current redirect',
    changes: 'S3: the release prefix and the channel redirects; git: the channel branch. Exit 3: already at that release; 4: would go back in time (both: nothing to do)',
    flags: [
      { name: 'build', type: 'string', value: 'URL', description: 'the Hydra build to publish (e.g. https://hydra.nixos.org/build/ID or .../latest-finished)' },
      { name: 'hydra-json', type: 'string', value: 'FILE', description: 'the build from Hydra\'s RunCommand file (pass "$HYDRA_JSON")' },
      { name: 'force', type: 'boolean', description: 'publish even if the channel would go back in time or is already there, or its branch is not a fast-forward (logged loudly)' },
      { name: 'verify', type: 'boolean', description: 'publish nothing: read the release the channel points at back and check every file, .sha256 and redirect' },
      { name: 'keep-staged', type: 'boolean', description: 'keep the downloaded products in the state directory after a successful publish' },
    ],
    needsVersion: false,
    run: async (ctx, positionals) => (await import('./phases/channel.ts')).channel(ctx, positionals),
  },
  {
    name: 'lock',
    summary: 'update pinned flake inputs (flake.lock) on a branch releng/lock-DATE from the main branch, summarised; --push sends it for review',
    usage: 'releng lock [INPUT...] [--push] [--environment NAME] [--dry-run] [--json]',
    reads: 'releng.json (mainBranch; the environment\'s git remote and gerrit flag), flake.lock on the main branch, the inputs (Nix fetches them), the remote (git ls-remote)',
    changes: 'git (local): a commit of flake.lock alone and the branch releng/lock-DATE (never the checkout, its index or HEAD); with --push the remote: that branch, or refs/for/MAIN on Gerrit. Caches: the Nix store, input mirrors under $RELENG_STATE_DIR (default ~/.local/state/releng)',
    flags: [
      { name: 'push', type: 'boolean', description: 'push the update to the environment\'s git remote (Gerrit: refs/for/MAIN with a stable Change-Id); skipped when the remote already has it' },
      { name: 'all-or-nothing', type: 'boolean', description: 'commit nothing when any input cannot be updated (default: update the others and name the failures)' },
      { name: 'date', type: 'string', value: 'YYYY-MM-DD', description: 'date in the branch name releng/lock-DATE (default: today, UTC)' },
    ],
    needsVersion: false,
    run: async (ctx, positionals) => (await import('./phases/lock.ts')).lock(ctx, positionals),
  },
  {
    name: 'serve',
    summary: 'serve the local environment\'s S3 data over HTTP to browse a local release',
    reads: '.releng/local/ of the project',
    changes: 'nothing (serves until Ctrl-C)',
    flags: [{ name: 'port', type: 'string', value: 'PORT', description: 'port on 127.0.0.1 (default: 4566)' }],
    needsVersion: false,
    run: async (ctx) => (await import('./local/serve.ts')).serve(ctx),
  },
];

export function commandNamed(name: string): CommandDef | undefined {
  return commands.find((c) => c.name === name);
}

function flagLine(f: FlagDef): string {
  const left = `--${f.name}${f.value ? ` ${f.value}` : ''}`;
  return `  ${left.padEnd(26)} ${f.description}`;
}

export function mainHelp(): string {
  return [
    'releng — release engineering for Nix projects: plan every publish, then apply it.',
    '',
    'Usage: releng <command> [flags]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    '',
    'Global flags:',
    ...globalFlags.map(flagLine),
    '',
    'Run `releng <command> --help` for what a command reads and changes.',
    'Exit status: 0 success, 1 failure, 2 usage error; `channel` also 3 (already at that release) and 4 (would go back in time): nothing to do.',
  ].join('\n');
}

export function commandHelp(c: CommandDef): string {
  return [
    `releng ${c.name} — ${c.summary}`,
    '',
    `Usage: ${c.usage ?? `releng ${c.name} [flags]`}`,
    '',
    `Reads:   ${c.reads}`,
    `Changes: ${c.changes}`,
    ...(c.flags.length ? ['', 'Flags:', ...c.flags.map(flagLine)] : []),
    '',
    'Global flags:',
    ...globalFlags.map(flagLine),
  ].join('\n');
}
