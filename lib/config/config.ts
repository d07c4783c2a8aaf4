// releng.json: the schema (zod) and loader. Environments and profiles are data, not code.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { channelsConfigSchema } from './channels.ts';
import { checkUploaders, grantEnvironmentFields } from './grants.ts';
import { releaseJobsMappingSchema } from './release-jobs.ts';
import { lockSettingsSchema } from './lock.ts';
import { ReleaseError } from '../core/errors.ts';
import { s3UrlProblem } from './keys.ts';
import { argvSafe } from './argv-safe.ts';
import { parseJsonText, parseWith } from '../core/zod-errors.ts';

/** s3://BUCKET[/PREFIX]; the bucket and every prefix segment checked where the config loads (lib/config/keys.ts, issue 9). */
const s3Url = z.string().superRefine((u, ctx) => {
  const problem = s3UrlProblem(u);
  if (problem) ctx.addIssue({ code: 'custom', message: problem.startsWith('expected') ? problem : `${problem}; expected s3://BUCKET or s3://BUCKET/PREFIX with plain path segments` });
});
/** A bucket: S3 (checked as s3Url), or a directory of a mirror tree (lib/fs/store.ts, issue 11). */
const bucketUrl = z.string().superRefine((u, ctx) => {
  if (u.startsWith('file://')) {
    if (!/^file:\/\/\/[^\s]+$/.test(u)) ctx.addIssue({ code: 'custom', message: 'expected s3:// URL (s3://BUCKET or s3://BUCKET/PREFIX) or file:///ABSOLUTE/DIR' });
    else if (u.split('/').slice(3).some((seg) => seg === '..' || seg === '.')) ctx.addIssue({ code: 'custom', message: 'file:///ABSOLUTE/DIR: no . or .. segments (the tree must be where it says)' });
    return;
  }
  const problem = s3UrlProblem(u);
  if (problem) ctx.addIssue({ code: 'custom', message: problem.startsWith('expected') ? `${problem} (or file:///ABSOLUTE/DIR)` : `${problem}; expected s3://BUCKET or s3://BUCKET/PREFIX with plain path segments, or file:///ABSOLUTE/DIR` });
});
const nonEmpty = z.string().min(1, 'must not be empty');
/** `"$comment"`: JSON has no comments, so releng.json may carry notes in this field (JSON Schema's own convention); ignored. */
const comment = z.union([z.string(), z.array(z.string())]).optional();
const colour = z.enum(['blue', 'green', 'red', 'yellow', 'magenta', 'cyan', 'white']);

/** Where S3 credentials come from. Never stored in the config itself. */
const credentials = z.discriminatedUnion('source', [
  /** Read from environment variables (defaults: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). */
  z.object({
    source: z.literal('env'),
    accessKeyIdVar: nonEmpty.default('AWS_ACCESS_KEY_ID'),
    secretAccessKeyVar: nonEmpty.default('AWS_SECRET_ACCESS_KEY'),
    sessionTokenVar: nonEmpty.optional(),
  }).strict(),
  /** Run a command printing short-lived scoped credentials as JSON (Lix: garage-ephemeral-key). */
  z.object({
    source: z.literal('command'),
    command: z.array(nonEmpty).min(1, 'must name a program').refine((c) => !c[0]!.startsWith('-'), 'starts with "-": the first element is the program to run'),
    accessKeyIdField: nonEmpty.default('id'),
    secretAccessKeyField: nonEmpty.default('secret_key'),
    /** Field holding a session token (STS-style temporary credentials), if the command prints one. */
    sessionTokenField: nonEmpty.optional(),
  }).strict(),
  /** The embedded local S3 server's fixed test credentials. */
  z.object({ source: z.literal('embedded') }).strict(),
]);

const s3 = z.object({
  /** `embedded` starts a local S3 server under .releng/local/; otherwise an http(s) URL. */
  endpoint: z.union([z.literal('embedded'), z.string().max(2048, 'is longer than 2048 characters: expected an http(s):// URL').url('expected http(s):// URL or "embedded"')]),
  region: nonEmpty.default('us-east-1'),
  forcePathStyle: z.boolean().default(true),
  /** AWS SDK default CRC32 checksums break Garage and R2: WHEN_REQUIRED turns them off. */
  checksums: z.enum(['WHEN_SUPPORTED', 'WHEN_REQUIRED']).default('WHEN_REQUIRED'),
  /**
   * The checksum every PUT (and multipart part) carries for the server to verify, besides the
   * signed x-amz-content-sha256 (issue 9, docs/verify.md "transit checksums per server"):
   * `sha256` (default: x-amz-checksum-sha256, free since the sha256 is known; AWS, R2 and newer
   * servers check it, others ignore it), `content-md5` (every S3 server checks it, including
   * Ceph RGW 16; costs an MD5 of every file sent) or `payload-sha256-only`.
   */
  transitChecksum: z.enum(['content-md5', 'sha256', 'payload-sha256-only']).default('sha256'),
  /**
   * Create release-prefix objects, NARs and narinfos with `If-None-Match: *` (AWS, Ceph RGW, R2):
   * two runs racing cannot overwrite each other's objects (docs/verify.md "conditional writes").
   */
  conditionalWrites: z.boolean().default(false),
}).strict();

const cache = z.object({
  /** Nix secret key file signing the binary cache (relative to the project root). */
  signingKeyFile: argvSafe('a file path (./-key for a file whose name starts with "-")'),
  compression: z.enum(['zstd', 'xz', 'none']).default('zstd'),
  /** Extra Nix store URL options (want-mass-query, write-nar-listing, ...). */
  storeOptions: z.record(z.string(), z.string()).default({}),
  /** Region cache writes are signed with, when it is not s3.region (Lix signs cache writes with `global`
   *  in every environment, its other uploads with the environment's region; issue 17). */
  region: nonEmpty.optional(),
  /** The public key matching signingKeyFile (`NAME:BASE64`, what users trust); `releng check` compares them. */
  publicKey: z.string().regex(/^[^:\s]+:[A-Za-z0-9+/]{43}=$/, 'expected a Nix public key NAME:BASE64').optional(),
}).strict();

/** Gerrit only: the branch goes for review (`refs/for/BRANCH`, Lix's push) or directly to `refs/heads/BRANCH`. */
const branchPush = z.enum(['review', 'direct']).optional();
const git = z.union([
  z.object({ remote: argvSafe('a remote name, URL or path (./-dir for a directory whose name starts with "-")'), gerrit: z.boolean().default(false), branchPush }).strict(),
  /** Pick the remote from `git remote -v` whose URL matches (Lix production: its Gerrit). */
  z.object({ remoteMatching: nonEmpty, gerrit: z.boolean().default(false), branchPush }).strict(),
]);

const dockerTarget = z.object({
  /** Registry host[:port], or `embedded` for the local registry releng starts. */
  registry: argvSafe('a registry host[:port], or "embedded"'),
  repository: z.string().regex(/^[a-z0-9]+([._/-][a-z0-9]+)*$/, 'expected a lowercase repository path like lix-project/lix'),
  tags: z.array(z.string().regex(/^(\{version\}|\{major\}|[\w][\w.-]{0,127})$/, 'expected {version}, {major} or a literal tag')).min(1),
  /** Also tag `latest` unless the release is from a maintenance branch. */
  latest: z.boolean().default(true),
  tlsVerify: z.boolean().default(true),
  /** Directory with the registry's CA as *.crt (containers-certs.d(5) layout), relative to the project root. */
  certDir: argvSafe('a directory path (./-dir for one whose name starts with "-")').optional(),
}).strict();

/** How promote writes into this environment (issue 11). */
const promoteSettings = z.object({
  /** Re-sign narinfos with this environment's cache key when it differs from the source's (default true). */
  resign: z.boolean().default(true),
  /** `auto`: S3 CopyObject when source and destination share the endpoint; `never`: always GET then PUT. */
  serverSideCopy: z.enum(['auto', 'never']).default('auto'),
}).strict();

/** The checksum sections of a time list, in the order Fedora's create-filelist writes them (all four by default). */
export const fileListChecksumAlgorithms = ['SHA1', 'MD5', 'SHA256', 'SHA512'] as const;

/** One quick-fedora-mirror module: a tree whose `fullfiletimelist-MODULE`, `fullfilelist` and `imagelist-MODULE` releng keeps current. */
const fileListModule = z.object({
  /** The module's root: a file:// directory or an s3:// bucket/prefix (the lists are objects at its root). */
  root: bucketUrl,
  /** Which files get [Checksums ALGO] lines: file names or globs (`*.narinfo`, `SHA256SUMS`). */
  checksums: z.array(nonEmpty).default(['SHA256SUMS', 'manifest.nix']),
  /** Which [Checksums ALGO] sections the time list has (create-filelist writes all four; quick-fedora-mirror checks SHA1). */
  checksumAlgorithms: z.array(z.enum(fileListChecksumAlgorithms)).min(1, 'name at least one of SHA1, MD5, SHA256, SHA512 (create-filelist writes all four)')
    .refine((a) => new Set(a).size === a.length, 'an algorithm is named twice')
    .default([...fileListChecksumAlgorithms]),
}).strict();

/** An http(s) URL (web seeds, trackers). */
const httpUrl = z.string().regex(/^https?:\/\/[^\s]+$/, 'expected an http(s):// URL');

/**
 * `.torrent` files `build` writes beside matching release files (issue 28): BitTorrent v1 metainfo
 * whose web seeds (BEP 19) are this environment's releasesUrl (and `webSeeds`), listed in SHA256SUMS.
 */
const torrentSettings = z.object({
  /** File names or globs of the release prefix that get a torrent (`*.iso`, `*.tar.xz`). */
  match: z.array(nonEmpty).min(1, 'name the files that get a torrent, e.g. ["*.iso"]'),
  /** Only files of at least this many bytes (default 0: every match). */
  minSize: z.number().int().nonnegative().default(0),
  /** More web seeds: base URLs of trees that mirror releasesBucket (the file's key is appended). */
  webSeeds: z.array(httpUrl).default([]),
  /** Trackers (`announce`, `announce-list`); none by default: the web seeds serve every piece. */
  trackers: z.array(z.string().regex(/^(https?|udp):\/\/[^\s]+$/, 'expected an http(s):// or udp:// tracker URL')).default([]),
  /** The torrent's `comment` (e.g. the release notes' URL). */
  comment: nonEmpty.optional(),
}).strict();

const mirrorSettings = z.object({
  /** Module name → module; `fullfiletimelist-MODULE` is regenerated after every publish or promote. */
  fileLists: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'module names are letters, digits, ., _ and -'), fileListModule).default({}),
  /** Keep a `latest-PROJECT-MAJOR` pointer at the releases root (symlink on file trees, redirect object on S3). */
  latestLinks: z.boolean().default(true),
  /** `.torrent` files for large release files, web-seeded from this environment's releasesUrl (docs/mirrors.md). */
  torrents: torrentSettings.optional(),
}).strict();

const environment = z.object({
  $comment: comment,
  colour: colour.default('white'),
  releasesBucket: bucketUrl,
  cacheBucket: bucketUrl,
  docsBucket: bucketUrl,
  /** Channel redirect objects (`releng channel`); same endpoint and credentials as the other buckets. */
  channelsBucket: bucketUrl.optional(),
  /** Public URL of releasesBucket (channel redirect targets); default `/BUCKET[/PREFIX]` on the S3 endpoint. */
  releasesUrl: z.string().regex(/^(https?:\/\/[^\s]+|\/[^\s]*)$/, 'expected an http(s):// URL or a path starting with /').optional(),
  /** Required when any bucket is s3://; an environment of file:// trees only needs none. */
  s3: s3.optional(),
  /** Per-bucket endpoint/region over `s3`, keyed by bucket name (NixOS: nix-channels in us-east-1, nix-releases in eu-west-1); same credentials. */
  bucketS3: z.record(z.string(), s3.partial().strict()).default({}),
  credentials: credentials.default({ source: 'env', accessKeyIdVar: 'AWS_ACCESS_KEY_ID', secretAccessKeyVar: 'AWS_SECRET_ACCESS_KEY' }),
  cache: cache.optional(),
  git: git.optional(),
  docker: z.array(dockerTarget).default([]),
  /** Ask the operator to type "I want to release this to ENV" (default: all but local). */
  confirm: z.boolean().optional(),
  /** Takes unofficial (rehearsal) builds: `build` on an untagged checkout names them with the
   *  package's own version (e.g. 2.96.0-abc1234). Other environments refuse them (issue 26). */
  unofficial: z.boolean().optional(),
  ...grantEnvironmentFields,
  /** `releng promote` into this environment (docs/promote.md). */
  promote: promoteSettings.optional(),
  /** Mirror-master duties of this environment: quick-fedora-mirror file lists (docs/promote.md). */
  mirror: mirrorSettings.optional(),
}).strict().superRefine((e, ctx) => {
  const s3Buckets = (['releasesBucket', 'cacheBucket', 'docsBucket', 'channelsBucket'] as const).filter((k) => e[k]?.startsWith('s3://'));
  if (s3Buckets.length && !e.s3) ctx.addIssue({ code: 'custom', path: ['s3'], message: `required: ${s3Buckets.join(', ')} ${s3Buckets.length === 1 ? 'is' : 'are'} on S3 (set s3.endpoint, or use file:// URLs)` });
  if (e.mirror?.torrents && !/^https?:\/\//.test(e.releasesUrl ?? '')) {
    ctx.addIssue({ code: 'custom', path: ['releasesUrl'], message: 'required as an http(s):// URL when mirror.torrents is set: the public URL of releasesBucket, which the torrents name as their web seed' });
  }
  checkUploaders(e as any, ctx);
});

const profile = z.object({
  $comment: comment,
  systems: z.array(nonEmpty).min(1, 'a profile needs at least one system'),
  dockerSystems: z.array(nonEmpty).default([]),
  /** Release tests (issue 26): flake attributes (`.#releaseTests.x86_64-linux.nativeBuild`) `build`
   *  realises after the release jobs; one failing stops the build before release/ is laid out. */
  releaseTests: z.array(nonEmpty).default([]),
}).strict();

/** How `build` runs Nix (issue 26; Lix's create_release.xsh: --workers 4, --max-jobs 2, --cores 16).
 *  The flags --workers, --max-jobs and --cores override these. */
const buildSettings = z.object({
  $comment: comment,
  /** nix-eval-jobs --workers (ignored, with a note, when releng evaluates with nix eval). */
  workers: z.number().int().positive().optional(),
  /** nix-store --realise --max-jobs. */
  maxJobs: z.union([z.number().int().nonnegative(), z.literal('auto')]).optional(),
  /** nix-store --realise --cores (0: all of the machine's). */
  cores: z.number().int().nonnegative().optional(),
}).strict();

const releaseJobs = z.union([
  /** A flake attribute; the profile name is appended (`.#release-jobs.all`). */
  z.object({
    flake: argvSafe('a flake attribute like .#release-jobs'),
    /** nix-eval-jobs --force-recurse: reach `build.SYSTEM` in sets without recurseForDerivations (Lix passes it). */
    forceRecurse: z.boolean().default(true),
    /** Which job holds what (lib/nix/release-jobs.ts); defaults: the README's contract. */
    jobs: releaseJobsMappingSchema.optional(),
  }).strict(),
  /** A plain Nix file taking `{ profile }` (or a function returning the jobs). */
  z.object({ file: argvSafe('a Nix file path'), args: z.record(z.string(), z.string()).default({}), jobs: releaseJobsMappingSchema.optional() }).strict(),
]);

const linkBase = z.string().url('expected an http(s):// URL');

/** `build --from-hydra` (issue 15): the Hydra that builds the release jobs, its binary cache, and the only keys trusted for it. */
export const hydraBuildConfigSchema = z.object({
  $comment: comment,
  /** Base URL of the Hydra (needed for --hydra-json, whose file names a build id only). */
  url: z.string().url('expected the http(s):// base URL of the Hydra').optional(),
  /** Binary cache holding what that Hydra built (Lix: https://cache.lix.systems). */
  cache: argvSafe('a binary cache URL'),
  /** The cache's public keys (`NAME:BASE64`); `nix copy --from` trusts these and no others. */
  trustedPublicKeys: z.array(z.string().regex(/^[^:\s]+:[A-Za-z0-9+/=]+$/, 'expected NAME:BASE64, as in trusted-public-keys')).min(1, 'name at least one key'),
  /** Jobset input whose revision must be tag VERSION's commit (default: the flake's rev, else the one git input). */
  input: argvSafe('an input name').optional(),
  /** The jobset's job names, when they are not releaseJobs.jobs' (Lix's Hydra evaluates release.nix:
   *  build.SYSTEM, binaryTarball.SYSTEM, dockerImage.SYSTEM as an image description; issue 26). */
  jobs: releaseJobsMappingSchema.optional(),
}).strict();

/** Where prepare finds fragments and writes notes, and the bases of the links it renders (issue 3). */
const releaseNotes = z.object({
  /** Fragments: `*.md` files with YAML front matter (dot-files ignored). */
  fragmentsDir: nonEmpty.default('doc/manual/rl-next'),
  /** `handle: {display_name?, forgejo?, github?}` for the credits line. */
  changeAuthorsFile: nonEmpty.default('doc/manual/change-authors.yml'),
  /** Where `rl-MAJOR.md` lives. */
  notesDir: nonEmpty.default('doc/manual/src/release-notes'),
  /** The manual's table of contents; a new rl-MAJOR.md gets a line after the marker. */
  summaryFile: nonEmpty.default('doc/manual/src/SUMMARY.md'),
  summaryMarker: nonEmpty.default('<!-- RELENG-AUTO-INSERTION-MARKER'),
  /** `normalized`: fj#N is shown as FORGE#N and gh#N as nix#N, what Lix's build-release-notes.py prints
   *  since e00ee5954 ("maintainers: unify issue references", 2.96); `as-written` keeps the id as the
   *  fragment wrote it, as that script did before (up to 2.95). Bare numbers are FORGE#N either way. */
  referenceStyle: z.enum(['normalized', 'as-written']).default('normalized'),
  /** URL prefixes; an id N links to `PREFIX/N`, a handle to `PROFILES/handle`. Unset ones are an error when a fragment needs them. */
  links: z.object({
    /** The project's own forge: bare numbers, `lix#N`, `fj#N`. */
    forgeIssues: linkBase.optional(),
    forgePulls: linkBase.optional(),
    /** Upstream GitHub: `gh#N`, `nix#N`. */
    githubIssues: linkBase.optional(),
    githubPulls: linkBase.optional(),
    /** Gerrit changes (`cls`), shown as `cl/N`. */
    gerritChanges: linkBase.optional(),
    forgeProfiles: linkBase.optional(),
    githubProfiles: linkBase.default('https://github.com/'),
  }).strict().default({ githubProfiles: 'https://github.com/' }),
}).strict();

export const configSchema = z.object({
  $schema: z.string().optional(),
  $comment: comment,
  /** Project name: release prefix `<project>/<project>-VERSION/`, manual dir, artifact names. */
  project: z.string().max(64, 'is longer than 64 characters (it is part of every artifact name)').regex(/^[a-z][a-z0-9-]*$/, 'expected a lowercase name like lix'),
  /** Display name in release notes headings (default: project). */
  displayName: nonEmpty.optional(),
  versionFile: argvSafe('a file path').default('version.json'),
  releaseJobs,
  /** Where the HTML manual lives inside the `manual` job's output. */
  manualPath: argvSafe('a path inside the manual job\'s output').optional(),
  profiles: z.record(z.string(), profile).refine((p) => Object.keys(p).length > 0, 'define at least one profile'),
  defaultProfile: nonEmpty,
  /** Branch that maintenance releases are compared against (for `latest`). */
  mainBranch: argvSafe('a branch name').default('main'),
  releaseNotes: releaseNotes.default(() => releaseNotes.parse({})),
  channels: channelsConfigSchema.optional(),
  /** Where `build --from-hydra` takes the release jobs' outputs from (docs/hydra.md). */
  hydra: hydraBuildConfigSchema.optional(),
  /** `releng lock`: its review branches, review metadata, ref bumps, signing (lib/config/lock.ts, docs/lock.md). */
  lock: lockSettingsSchema.default(() => lockSettingsSchema.parse({})),
  /** Nix's knobs for `build` (workers, max jobs, cores). */
  build: buildSettings.optional(),
  environments: z.record(z.string().regex(/^[a-z][a-z0-9-]*$/, 'environment names are lowercase'), environment)
    .refine((e) => Object.keys(e).length > 0, 'define at least one environment'),
}).strict().superRefine((c, ctx) => {
  if (!(c.defaultProfile in c.profiles)) {
    ctx.addIssue({ code: 'custom', path: ['defaultProfile'], message: `"${c.defaultProfile}" is not one of the profiles (${Object.keys(c.profiles).join(', ')})` });
  }
});

export type Config = z.infer<typeof configSchema>;
export type Environment = z.infer<typeof environment>;
export type DockerTarget = z.infer<typeof dockerTarget>;
export type Profile = z.infer<typeof profile>;
export type S3Settings = z.infer<typeof s3>;
export type MirrorSettings = z.infer<typeof mirrorSettings>;
export type TorrentSettings = z.infer<typeof torrentSettings>;
export type PromoteSettings = z.infer<typeof promoteSettings>;
export type ReleaseNotesSettings = z.infer<typeof releaseNotes>;

export interface LoadedConfig {
  config: Config;
  /** Absolute path of releng.json. */
  file: string;
  /** Directory of releng.json: the released project's root. */
  root: string;
}

/** Finds releng.json: the --config flag, else ./releng.json. */
export function configPath(flag: string | undefined, cwd = process.cwd()): string {
  return path.resolve(cwd, flag ?? 'releng.json');
}

/** Reads and validates releng.json; every error names the file and the field. */
export async function loadConfig(file: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e: any) {
    throw new ReleaseError(`cannot read config ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`,
      'run releng from the project root (where releng.json is) or pass --config FILE');
  }
  const config = parseWith(configSchema, parseJsonText(text, file), file, 'see the configuration reference in the releng README');
  return { config, file, root: path.dirname(file) };
}

/** Looks up an environment by name, or says which ones exist. */
export function environmentNamed(loaded: LoadedConfig, name: string): Environment {
  const env = loaded.config.environments[name];
  if (!env) {
    throw new ReleaseError(`${loaded.file}: no environment "${name}"`,
      `use --environment with one of: ${Object.keys(loaded.config.environments).join(', ')}`);
  }
  return env;
}

/**
 * Splits `s3://bucket/some/prefix` into bucket and prefix ('' or ending in '/'). A `file:///dir`
 * URL names a filesystem bucket: the absolute directory is the bucket, the prefix is ''.
 */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  if (url.startsWith('file://')) return { bucket: decodeURIComponent(new URL(url).pathname).replace(/\/+$/, '') || '/', prefix: '' };
  const rest = url.slice('s3://'.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return { bucket: rest, prefix: '' };
  const prefix = rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  return { bucket: rest.slice(0, slash), prefix: prefix ? `${prefix}/` : '' };
}
