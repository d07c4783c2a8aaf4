// Every command of the CLI: what it does, reads and changes (its --help), its flags, and how it runs.
// This list is the single registry: lib/cli/main.ts builds the argument parser (commander), the
// help, and the shell completions (lib/cli/completion.ts) from it. A new command is one entry here.
import type { Context } from '../config/context.ts';
import { UsageError } from '../core/errors.ts';
import type { CommandDef, FlagDef, GlobalFlagName } from './command-def.ts';

export { globalFlags, globalsOf, type CommandDef, type FlagDef, type GlobalFlagName } from './command-def.ts';

const localOnly: GlobalFlagName[] = ['config', 'dry-run', 'json', 'verbose'];

const forcePushTag: FlagDef = { name: 'force-push-tag', type: 'boolean', description: 'replace tag VERSION on the git remote when it points at another commit' };
const replaceArtifacts: FlagDef = { name: 'replace-artifacts', type: 'boolean', description: 'replace objects of the release prefix that hold other content (only for a release never announced)' };
const forcePushImages: FlagDef = { name: 'force-push-images', type: 'boolean', description: 'replace an image tag VERSION that points at another image index (docs/images.md)' };

const replaceCacheInfo: FlagDef = { name: 'replace-cache-info', type: 'boolean', description: 'replace the cache bucket\'s nix-cache-info when it differs from Nix\'s (default: keep it, as Nix does, and report the difference)' };
const buildTarget: FlagDef = { name: 'target', type: 'string', value: 'all|manual', description: 'all (default), or only the manual: release/manual from the manual job, no tag needed (nightly docs)' };
const uploadTarget: FlagDef = { name: 'target', type: 'string', value: 'all|manual', description: 'all (default), or only the manual to the docs bucket: nightly/ when version.json is not official (no tag needed), else MAJOR/ and stable/' };
const noCheckGit: FlagDef = { name: 'no-check-git', type: 'boolean', description: 'skip the "HEAD at tag VERSION, tree clean" check (testing only)' };
const noCheckGitTag: FlagDef = { name: 'no-check-git', type: 'boolean', description: 'skip the "nothing staged or modified" check (testing only)' };
const noMirrorLists: FlagDef = { name: 'no-mirror-lists', type: 'boolean', description: 'leave the environment\'s mirror file lists as they are (a batch of several releases: run `releng mirror-lists` once at the end)' };

/** `--target` of build and upload: everything (default), or only the manual (nightly docs, as Lix's `--target manual`), each its own phase file. */
function targetOf(ctx: Context, command: 'build' | 'upload'): 'all' | 'manual' {
  const t = ctx.flags.extra['target'] ?? 'all';
  if (t !== 'all' && t !== 'manual') throw new UsageError(`--target ${String(t)} is not ${command === 'build' ? 'a build' : 'an upload'} target: use --target all (default) or --target manual`);
  return t;
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
    globals: localOnly,
    examples: ['releng prepare --dry-run', 'releng prepare --date 2026-12-01'],
    needsVersion: true,
    run: async (ctx) => (await import('../phases/prepare.ts')).prepare(ctx),
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
    globals: localOnly,
    examples: ['releng tag --dry-run', 'releng tag --force-tag'],
    needsVersion: true,
    run: async (ctx) => (await import('../phases/tag.ts')).tag(ctx),
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
      { name: 'max-jobs', type: 'string', value: 'N', description: 'local build jobs for Nix (0: everything on --builders; default: releng.json build.maxJobs)' },
      { name: 'cores', type: 'string', value: 'N', description: 'cores each build may use, nix-store --cores (0: all; default: releng.json build.cores)' },
      { name: 'workers', type: 'string', value: 'N', description: 'nix-eval-jobs --workers (default: releng.json build.workers)' },
      noCheckGit,
    ],
    globals: localOnly,
    examples: ['releng build', 'releng build --profile x86_64-linux-only --dry-run', 'releng build --workers 4 --max-jobs 2 --cores 16'],
    needsVersion: true,
    locksCheckout: true,
    run: async (ctx) => (targetOf(ctx, 'build') === 'manual' ? (await import('../phases/build-manual.ts')).buildManual(ctx) : (await import('../phases/build.ts')).build(ctx)),
  },
  {
    name: 'upload',
    summary: 'publish release/ to an environment: binary cache, container images, release bucket, root manifest.nix, docs, then git push',
    reads: 'release/build-result.json, release/tag.json, the environment\'s buckets, registries and git remote (to skip what is there)',
    changes: 'S3: the cache bucket (signed Nix binary cache), the releases bucket (PROJECT/PROJECT-VERSION/, /manifest.nix) and docs bucket (manual/PROJECT/...); registries: per-system images and the image index under each tag; git: the branch and tag VERSION on the remote; locally: the staged cache in release/cache/ENV and image copies in release/oci',
    flags: [forcePushTag, forcePushImages, replaceArtifacts, replaceCacheInfo, uploadTarget, noCheckGit, noMirrorLists,
      { name: 'deep', type: 'boolean', description: 'read back and hash every published object the plan would skip, send again what differs from release/ under releng\'s own metadata (bit rot), and verify as `releng verify --deep`' }],
    examples: ['releng upload --environment staging --dry-run --json', 'releng upload --environment production', 'releng upload --target manual', 'releng upload --environment production --deep'],
    needsVersion: true,
    locksCheckout: true,
    run: async (ctx) => (targetOf(ctx, 'upload') === 'manual' ? (await import('../phases/upload-manual.ts')).uploadManual(ctx) : (await import('../phases/upload.ts')).upload(ctx)),
  },
  {
    name: 'branch-off',
    summary: 'after a new major\'s release (X.Y.0), create the maintenance branch release-X.Y at the merge commit tag left on the main branch, and push it',
    reads: 'releng.json, version.json, release/tag.json (or Lix\'s releng/prev-git-branch.txt), local refs, the environment\'s git remote (ls-remote)',
    changes: 'git: refs/heads/release-X.Y here and on the environment\'s remote (a direct push, on Gerrit too: it needs Create Reference, and Push while the commit is on no branch); refuses when the branch exists elsewhere',
    flags: [{ name: 'branch', type: 'string', value: 'NAME', description: 'the branch to create (default: release-MAJOR)' }],
    examples: ['releng branch-off --environment production --dry-run', 'releng branch-off --environment staging'],
    needsVersion: true,
    run: async (ctx) => (await import('../phases/branch-off.ts')).branchOff(ctx),
  },
  {
    name: 'verify',
    summary: 'read every destination of a release back from scratch; exit 0 only when all of it is as released',
    reads: 'release/build-result.json and release/tag.json when present (else the published SHA256SUMS and manifest.nix); the environment\'s buckets, registries and git remote; quick mode: the MD5s of release/artifacts (a listed ETag equal to one proves that object without a HEAD; the hash memo answers for unchanged files). No upload record',
    changes: 'nothing (exit 1 and one line per problem, naming the repair)',
    flags: [
      { name: 'deep', type: 'boolean', description: 'download and hash every object (release files, docs, every NAR: FileHash, NarHash) and read its metadata, instead of a listing (ETag = MD5 of the file in release/) or HEAD + sha256 metadata' },
      { name: 'published', type: 'string', value: 'VERSION', description: 'verify VERSION from what is published alone (its SHA256SUMS and manifest.nix), ignoring release/' },
      { name: 'public-key', type: 'string', value: 'NAME:BASE64', description: 'the cache key to check signatures with (default: from the environment\'s cache.signingKeyFile)' },
    ],
    globals: ['config', 'environment', 'json', 'verbose'],
    examples: ['releng verify --environment staging', 'releng verify --environment production --deep --json', 'releng verify --environment production --published 2.93.0'],
    needsVersion: false,
    run: async (ctx) => (await import('../phases/verify.ts')).verify(ctx),
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
    examples: ['releng release --environment staging --dry-run', 'nix run .#release -- --environment staging'],
    needsVersion: true,
    locksCheckout: true,
    // Implemented in lib/cli/main.ts: each phase gets a fresh context (tag rewrites version.json).
    run: async () => { throw new Error('internal: release is run by the entry script'); },
  },
  {
    name: 'channel',
    summary: 'publish a Hydra evaluation as a channel release and move the channel (never backwards)',
    usage: 'releng channel CHANNEL (--build URL | --hydra-json FILE | --verify)',
    reads: 'Hydra JSON, the binary cache (and its NAR listings for programs.sqlite), the channel\'s current redirect',
    changes: 'S3: the release prefix and the channel redirects (kinds with `programs`: the tarballs carry programs.sqlite, and debuginfo/ entries go into cacheBucket); git: the channel branch. Exit 3: already at that release; 4: would go back in time (both: nothing to do)',
    flags: [
      { name: 'build', type: 'string', value: 'URL', description: 'the Hydra build to publish (e.g. https://hydra.nixos.org/build/ID or .../latest-finished)' },
      { name: 'hydra-json', type: 'string', value: 'FILE', description: 'the build from Hydra\'s RunCommand file (pass "$HYDRA_JSON")' },
      { name: 'force', type: 'boolean', description: 'publish even if the channel would go back in time or is already there, or its branch is not a fast-forward (logged loudly)' },
      { name: 'verify', type: 'boolean', description: 'publish nothing: read the release the channel points at back and check every file, .sha256 and redirect (and programs.sqlite and debuginfo/ entries)' },
      { name: 'keep-staged', type: 'boolean', description: 'keep the downloaded products in the state directory after a successful publish' },
    ],
    examples: ['releng channel nixos-unstable --build https://hydra.example/build/1 --dry-run', 'releng channel nixos-25.05 --hydra-json "$HYDRA_JSON" --noconfirm'],
    needsVersion: false,
    run: async (ctx, positionals) => (await import('../phases/channel.ts')).channel(ctx, positionals),
  },
  {
    name: 'grant',
    summary: 'mint a narrow, expiring upload grant for an outside builder (written as a JSON file for them)',
    usage: 'releng grant UPLOADER --environment ENV [--version V] [--ttl 1h]',
    reads: 'releng.json (environments.ENV.uploaders.UPLOADER, environments.ENV.grants), the environment\'s credentials',
    changes: 'nothing in the buckets; writes the grant file (mode 0600, holds only the grant\'s own credentials or POST forms) and appends its id and scope to .releng/grants/ENV.jsonl',
    flags: [
      { name: 'version', type: 'string', value: 'V', description: 'the release version, for uploaders whose prefix has {version}' },
      { name: 'ttl', type: 'string', value: 'DURATION', description: 'lifetime like 15m, 1h (default: the uploader\'s ttl; at most its maxTtl; STS servers want >= 15m)' },
      { name: 'output', type: 'string', value: 'FILE', description: 'where to write the grant (default: ./releng-grant-UPLOADER[-V]-ID.json; never under release/)' },
    ],
    globals: ['config', 'environment', 'dry-run', 'json', 'verbose'],
    examples: ['releng grant installers --environment production --version 2.93.0 --ttl 1h', 'releng grant deb --environment staging --output grant.json'],
    needsVersion: false,
    run: async (ctx, positionals) => (await import('../phases/grant.ts')).grant(ctx, positionals),
  },
  {
    name: 'contribute',
    summary: 'upload files with a grant (the outside builder\'s side): checked against the grant, sha256 in metadata, checksummed in transit',
    usage: 'releng contribute --grant FILE FILES...',
    reads: 'the grant file and the files; releng.json is not needed',
    changes: 'S3: the files under the grant\'s prefix only (with x-amz-meta-sha256 and x-amz-meta-releng-grant)',
    flags: [{ name: 'grant', type: 'string', value: 'FILE', description: 'the grant file from `releng grant`' }],
    globals: ['config', 'dry-run', 'json', 'verbose'],
    examples: ['releng contribute --grant grant.json lix-installer-aarch64-darwin', 'releng contribute --grant grant.json --dry-run hello_1.0.0_amd64.deb'],
    needsVersion: false,
    needsConfig: false,
    run: async (ctx, positionals) => (await import('../phases/contribute.ts')).contribute(ctx, positionals),
  },
  {
    name: 'index',
    summary: 'validate new uploads, move the accepted ones into place and regenerate the installers\' SHA256SUMS, latest copies and page, and the signed APT repository',
    usage: 'releng index --environment ENV [--copy PKG | --remove PKG] [VERSION]',
    reads: 'the uploaders\' incoming prefixes, the published installers and APT indexes (every suite, the pool files a Contents or --copy needs), the APT retention ledger, .releng/index/ENV.json (uploads already processed), the APT signing key (gpg)',
    changes: 'S3: server-side copies into the published places, SHA256SUMS, latest copies, the HTML pages, pool/, dists/SUITE/ (by-hash, Packages, binary-ARCH/Release, Contents-ARCH.gz, Release, Release.gpg, InRelease last), the APT key (NAME.gpg, NAME.asc) and page; deletes pool/ and dists/ files no index has referenced for the grace period (apt.retention) and records the others in releng-retention.json; a .rejected note next to each refused upload, and deletes moved uploads; locally .releng/index/ENV.json',
    flags: [
      { name: 'verify-only', type: 'boolean', description: 'only check what is published (Release signatures and Valid-Until, every index\'s hashes, every pool file, the key, SHA256SUMS)' },
      { name: 'refresh', type: 'boolean', description: 're-sign every suite\'s Release with a new Date and Valid-Until and change nothing else (for a timer, more often than apt.validFor); incoming is not read' },
      { name: 'remove', type: 'string', value: 'PACKAGE', description: 'take PACKAGE (every version, or the VERSION given after it) out of every suite\'s indexes, or of --from SUITE; its pool files go after the grace period' },
      { name: 'copy', type: 'string', value: 'PACKAGE', description: 'put PACKAGE (its newest version in --from, or VERSION) into suite --to: the same pool files, read back and checked, never uploaded again' },
      { name: 'from', type: 'string', value: 'SUITE', description: 'the suite --copy reads, or the one --remove changes (default: every suite)' },
      { name: 'to', type: 'string', value: 'SUITE', description: 'the suite --copy writes' },
    ],
    examples: [
      'releng index --environment production --dry-run', 'releng index --environment production --verify-only', 'releng index --environment production --refresh',
      'releng index --environment production --remove hello 1.0.0', 'releng index --environment production --copy hello --from testing --to stable',
    ],
    needsVersion: false,
    locksCheckout: true,
    run: async (ctx, positionals) => (await import('../phases/index-uploads.ts')).indexUploads(ctx, positionals),
  },
  {
    name: 'promote',
    summary: 'copy a verified release from one environment to another (staging → production) without a rebuild, then verify it there',
    usage: 'releng promote VERSION --from SOURCE --environment DEST [--delete]',
    reads: 'both environments: the source release (`releng verify` of it first: nothing is copied unless it is whole), what the destination already holds; both cache signing keys. After the copy, `releng verify` of the destination against the source\'s SHA256SUMS and manifest, signatures checked with the destination\'s key',
    changes: 'the destination only: cache (closure of the release\'s manifest.nix; narinfos re-signed if the keys differ), PROJECT/PROJECT-VERSION/, manual/PROJECT/MAJOR/, registries (every platform manifest by digest, the index under VERSION), then what users follow (root manifest.nix, stable/ docs, latest-PROJECT-MAJOR, the {major} and latest image tags) unless the destination is at a newer release; with --delete, last, the stale docs pages; its mirror file lists (fullfiletimelist-MODULE, fullfilelist, imagelist-MODULE)',
    flags: [
      { name: 'from', type: 'string', value: 'ENV', description: 'the environment to copy from (e.g. staging); --environment names the destination' },
      { name: 'delete', type: 'boolean', description: 'also delete from the destination\'s docs prefixes what the source no longer has (never in a release prefix or the cache); every deletion is in the plan' },
      { name: 'deep', type: 'boolean', description: 'verify the source before and the destination after as `releng verify --deep` does: every object read and hashed, every NAR unpacked (NarHash, FileHash)' },
      { name: 'from-public-key', type: 'string', value: 'NAME:BASE64', description: 'the source cache\'s public key, when its signing key file (or KEYFILE.pub) is not on this machine' },
      replaceArtifacts,
      forcePushImages,
      noMirrorLists,
    ],
    examples: ['releng promote 2.93.0 --from staging --environment production --dry-run', 'releng promote 2.93.0 --from staging --environment mirror --delete'],
    needsVersion: false,
    locksCheckout: true,
    run: async (ctx, positionals) => (await import('../phases/promote.ts')).promote(ctx, positionals),
  },
  {
    name: 'mirror-lists',
    summary: 'regenerate the quick-fedora-mirror file lists of every module of an environment (or those named) at once',
    usage: 'releng mirror-lists [MODULE...] --environment NAME',
    reads: 'releng.json (environments.NAME.mirror.fileLists), every file of each module\'s tree (names, sizes, times; the checksummed files\' bytes), the lists there now',
    changes: 'at each module root, only the lists whose content changed: fullfilelist and imagelist-MODULE of every module, then every fullfiletimelist-MODULE (docs/mirrors.md)',
    flags: [],
    globals: ['config', 'environment', 'dry-run', 'json', 'verbose'],
    examples: ['releng mirror-lists --environment production', 'releng mirror-lists lix --environment production --dry-run'],
    needsVersion: false,
    run: async (ctx, positionals) => (await import('../phases/mirror-lists.ts')).mirrorLists(ctx, positionals),
  },
  {
    name: 'lock',
    summary: 'update pinned flake inputs (flake.lock) from the main branch, summarised, as one review kept current: branch releng/lock, or a Gerrit change',
    usage: 'releng lock [INPUT...] [--push] [--per-input] [--environment NAME]',
    reads: 'releng.json (mainBranch; lock: branches, review metadata, ref bumps, signing key; the environment\'s git remote and gerrit flag), flake.lock and flake.nix on the main branch, the inputs (Nix fetches them; ref bumps list their refs), the remote (git ls-remote; the stream\'s branch is fetched to check it is releng\'s)',
    changes: 'git (local): a commit of flake.lock alone (and flake.nix for a ref bump) and the stream\'s branch releng/lock (never the checkout, its index or HEAD); with --push the remote: that branch replaced with --force-with-lease, or refs/for/MAIN on Gerrit (a new patch set of the stream\'s change) with its push options. Caches: the Nix store, input mirrors under $RELENG_STATE_DIR (default ~/.local/state/releng)',
    flags: [
      { name: 'push', type: 'boolean', description: 'push the update to the environment\'s git remote: the stream\'s branch, or on Gerrit refs/for/MAIN with the stream\'s Change-Id and lock\'s push options (topic, hashtags, reviewers, cc, labels); skipped when the remote already has it' },
      { name: 'per-input', type: 'boolean', description: 'one update stream per input: its own branch (lock.inputBranch, default releng/lock-INPUT) or Gerrit change, each kept current' },
      { name: 'all-or-nothing', type: 'boolean', description: 'commit nothing when any input cannot be updated (default: update the others and name the failures)' },
    ],
    examples: ['releng lock --dry-run', 'releng lock nixpkgs --push --environment production', 'releng lock --per-input --push --environment production'],
    needsVersion: false,
    run: async (ctx, positionals) => (await import('../phases/lock.ts')).lock(ctx, positionals),
  },
  {
    name: 'serve',
    summary: 'serve the local environment\'s S3 data over HTTP to browse a local release',
    reads: '.releng/local/ of the project',
    changes: 'nothing (serves until Ctrl-C)',
    flags: [
      { name: 'port', type: 'string', value: 'PORT', description: 'S3 port on 127.0.0.1 (default: 4566)' },
      { name: 'registry-port', type: 'string', value: 'PORT', description: 'container registry port on 127.0.0.1 (default: 5000), when the environment has an embedded registry' },
    ],
    globals: ['config', 'environment', 'verbose'],
    examples: ['releng serve', 'releng serve --port 8080 --registry-port 5000'],
    needsVersion: false,
    run: async (ctx) => (await import('../phases/serve.ts')).serve(ctx),
  },
  {
    name: 'check',
    summary: 'check an environment without a build: config, credentials, buckets (read and write), registry logins, signing key, git remote, tools',
    usage: 'releng check [--environment NAME | --all]',
    reads: 'releng.json, credentials, every bucket (a probe object is written and removed), registries, the signing key, the git remote, the tools on PATH',
    changes: 'nothing (the probe .releng-check/RUN-ID in each S3 bucket, .releng-check-RUN-ID in each file:// directory, is deleted again)',
    flags: [{ name: 'all', type: 'boolean', description: 'check every environment of releng.json' }],
    globals: ['config', 'environment', 'json', 'verbose'],
    examples: ['releng check', 'releng check --environment staging', 'releng check --all --json'],
    needsVersion: false,
    run: async (ctx) => (await import('../phases/check.ts')).check({ flags: ctx.flags, positionals: [], log: ctx.log, configFlag: ctx.loaded.file, cwd: ctx.root, stdout: ctx.stdout }),
    runBare: async (io) => (await import('../phases/check.ts')).check(io),
  },
  {
    name: 'init',
    summary: 'write a starting releng.json for the repository in the current directory (never overwrites)',
    reads: 'flake.nix (project name) or the directory name',
    changes: 'writes releng.json (or --config FILE)',
    flags: [{ name: 'project', type: 'string', value: 'NAME', description: 'project name (default: from flake.nix, else the directory name)' }],
    globals: ['config', 'json'],
    examples: ['releng init', 'releng init --project lix'],
    needsVersion: false,
    run: async (ctx) => (await import('../phases/init.ts')).init({ flags: ctx.flags, positionals: [], log: ctx.log, cwd: ctx.root, stdout: ctx.stdout }),
    runBare: async (io) => (await import('../phases/init.ts')).init(io),
  },
  {
    name: 'sha256',
    summary: 'print the sha256 of files as releng computes them before an upload (sha256sum format)',
    usage: 'releng sha256 FILE... [--md5] [--json]',
    reads: 'the files named',
    changes: 'nothing (prints to stdout)',
    flags: [{ name: 'md5', type: 'boolean', description: 'also print the MD5 (base64, as Content-MD5 carries it)' }],
    globals: ['json', 'verbose'],
    examples: ['releng sha256 release/artifacts/lix/lix-2.91.0/*.tar.xz', 'releng sha256 big.tar.xz | sha256sum -c'],
    needsVersion: false,
    needsConfig: false,
    run: async (ctx, positionals) => (await import('../phases/sha256.ts')).sha256({ flags: ctx.flags, positionals, log: ctx.log, cwd: ctx.root, stdout: ctx.stdout }),
    runBare: async (io) => (await import('../phases/sha256.ts')).sha256(io),
  },
  {
    name: 'completion',
    summary: 'print a shell completion script (bash, zsh or fish)',
    usage: 'releng completion (bash | zsh | fish)',
    reads: 'nothing',
    changes: 'nothing (prints to stdout)',
    flags: [],
    globals: [],
    examples: ['releng completion bash > /etc/bash_completion.d/releng', 'releng completion fish > ~/.config/fish/completions/releng.fish'],
    needsVersion: false,
    run: async () => { throw new Error('internal: completion runs without a context'); },
    runBare: async (io) => (await import('./completion.ts')).printCompletion(io.positionals, io.stdout, commands),
  },
];

export function commandNamed(name: string): CommandDef | undefined {
  return commands.find((c) => c.name === name);
}

export function commandNames(): string[] {
  return commands.map((c) => c.name);
}
