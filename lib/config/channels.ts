// The `channels` section of releng.json: which channel names exist (patterns, not code), where
// each publishes its release prefix, which git branch it moves and which Hydra products it mirrors.
import { z } from 'zod';
import { argvSafe } from './argv-safe.ts';

const nonEmpty = z.string().min(1, 'must not be empty');
const regex = nonEmpty.refine((s) => { try { new RegExp(s); return true; } catch { return false; } }, 'not a valid regular expression');

/** A channel-side alias: `{channel}/NAME` redirecting to a file of the release prefix. */
const productRedirect = z.object({
  /** Key below the channel, e.g. `nixexprs.tar.xz` or `latest-nixos-minimal-x86_64-linux.iso` (templated). */
  name: nonEmpty,
  /** Appended to the target, e.g. `?rev={rev}&lastModified={lastModified}` (what Nix's tarball fetcher reads). */
  query: z.string().regex(/^\?[^#\s]*$/, 'must start with ? and hold no spaces or #').optional(),
  /** Also redirect NAME.sha256 to the file's .sha256. */
  sha256: z.boolean().default(false),
}).strict();

/** One Hydra product to mirror into the release prefix. */
const product = z.object({
  /** Hydra job name in the evaluation (templated), e.g. `nixos.channel`. */
  job: nonEmpty,
  /** Destination file name in the release prefix (templated); default: the product's own file name. */
  file: nonEmpty.optional(),
  /** Only products of this Hydra type (the first word of a hydra-build-products line: `file`, `doc`, `nix-build`). */
  type: nonEmpty.optional(),
  /** Only products of this subtype (second word: `source-dist`, `json-br`, `iso`, `ova`, ...). */
  subtype: z.string().optional(),
  /** Only products whose file name matches this regex (e.g. `\\.tar\\.zst$` when a job has a .tar.xz and a .tar.zst). */
  fileMatches: regex.optional(),
  /** Only for channels whose whole name matches this regex (per-series rules: `nixos-2[0-3]\\.[0-9]{2}`); default: every channel of the kind. */
  channelMatches: regex.optional(),
  /** A missing job or product is skipped (logged) instead of failing the run. */
  optional: z.boolean().default(false),
  redirects: z.array(productRedirect).default([]),
}).strict();

/** A fixed file of the release prefix the channel also points at (git-revision, store-paths.xz). */
const fileRedirect = z.object({
  name: nonEmpty,
  file: nonEmpty,
  query: z.string().regex(/^\?[^#\s]*$/, 'must start with ? and hold no spaces or #').optional(),
}).strict();

/**
 * command-not-found's database and the debug-info index, as the NixOS mirror makes them (issue 27):
 * programs.sqlite is generated from the release's packages file and the binary cache's NAR
 * listings, put into the channel tarballs (repacked, new .sha256 files), and `debuginfo/BUILDID`
 * entries are written into the environment's cacheBucket. docs/channel.md, "programs.sqlite".
 */
const programsIndex = z.object({
  /** Systems whose programs are indexed (the mirror: x86_64-linux and aarch64-linux). */
  systems: z.array(nonEmpty).min(1, 'name at least one system'),
  /** The release file listing the channel's packages (nixpkgs' packages.json.br). */
  packages: nonEmpty.default('packages.json.br'),
  /** Release files repacked with programs.sqlite (those this release has; the first one present is unpacked). */
  tarballs: z.array(nonEmpty.regex(/\.tar\.(xz|zst)$/, 'expected a .tar.xz or .tar.zst file name')).min(1).default(['nixexprs.tar.xz', 'nixexprs.tar.zst']),
  /** Write `debuginfo/BUILDID` entries for the debug outputs of the evaluation's store paths into the environment's cacheBucket. */
  debuginfo: z.boolean().default(true),
  /** NAR listings (`.ls`) and narinfos fetched at once from binaryCacheUrl. */
  listingConcurrency: z.number().int().min(1).max(256).default(32),
}).strict();

/** A channel pattern: every channel whose name matches `match` publishes this way. */
const channelKind = z.object({
  /** Regex the whole channel name must match; named groups become template variables. */
  match: regex,
  /** Release prefix directory (templated); the release name is appended: `nixos/{series}` → `nixos/24.11/nixos-24.11.1.abc`. */
  prefix: nonEmpty,
  /** Evaluation input whose revision is the release's commit (NixOS: `nixpkgs`). Flake jobsets: taken from `flake`. */
  gitInput: nonEmpty.default('nixpkgs'),
  git: z.object({
    /** Where the channel branch is pushed (URL or path). */
    remote: argvSafe('a remote URL or path'),
    /** Branch to move (templated; default: the channel name). */
    branch: argvSafe('a branch name').default('{channel}'),
    /** Where to fetch the revision from (default: the evaluation input's URI). */
    fetchFrom: argvSafe('a repository URL or path').optional(),
  }).strict(),
  /** Written to `binary-cache-url` in the release; also where products are downloaded from. */
  binaryCacheUrl: z.string().url('expected an http(s):// URL'),
  /** Commit link in the HTML page (templated with {rev}). */
  commitUrl: nonEmpty.default('https://github.com/NixOS/nixpkgs/commit/{rev}'),
  products: z.array(product).default([]),
  /** Channel aliases of fixed files (the channel object itself is always written, last). */
  redirects: z.array(fileRedirect).default([]),
  /** programs.sqlite in the channel tarballs and the debug-info index (NixOS channels; issue 27). */
  programs: programsIndex.optional(),
}).strict();

/** `channels` in releng.json. */
export const channelsConfigSchema = z.object({
  /** Hydra base URL: evaluation links, and where --hydra-json builds are looked up. */
  hydraUrl: z.string().url('expected an http(s):// URL'),
  /** Where runs keep their lock files, staged downloads and git mirror (relative to releng.json; default .releng). */
  stateDir: nonEmpty.default('.releng'),
  /** Parallel product downloads. */
  downloadConcurrency: z.number().int().min(1).max(64).default(4),
  /** Channel patterns, first match wins. */
  kinds: z.array(channelKind).min(1, 'define at least one channel kind'),
}).strict();

export type ChannelsConfig = z.infer<typeof channelsConfigSchema>;
export type ChannelKind = z.infer<typeof channelKind>;
export type ChannelProduct = z.infer<typeof product>;
export type ProgramsIndexConfig = z.infer<typeof programsIndex>;
