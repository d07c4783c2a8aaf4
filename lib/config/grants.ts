// releng.json, issue 12: uploaders (who may write what, where, how big, for how long), how an
// environment mints grants, and its APT repository. Imported by lib/config/config.ts (additive fields).
import { z } from 'zod';
import { argvSafe } from './argv-safe.ts';

const nonEmpty = z.string().min(1, 'must not be empty');
const s3Url = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^\s]*)?$/, 'expected s3:// URL (s3://BUCKET or s3://BUCKET/PREFIX)');

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
/** `90s`, `15m`, `1h`, `2d` → seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration like 15m, 1h or 2d`);
  return Number(m[1]) * UNITS[m[2]!]!;
}
export const durationSchema = z.string().regex(/^\d+(s|m|h|d)$/, 'expected a duration like 15m, 1h or 2d')
  // zod runs this even when the regex refused the text: then it is the regex's issue alone.
  .refine((s) => { try { return parseDuration(s) > 0; } catch { return true; } }, 'must be longer than 0s');

const SIZE_UNITS: Record<string, number> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, KB: 1e3, MB: 1e6, GB: 1e9 };
/** `64MiB`, `1GiB`, `512` → bytes. */
export function parseSize(text: string | number): number {
  if (typeof text === 'number') return text;
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)?$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a size like 64MiB`);
  return Math.floor(Number(m[1]) * SIZE_UNITS[m[2] ?? '']!);
}
const sizeSchema = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+(\.\d+)?\s*(B|KiB|MiB|GiB|KB|MB|GB)?$/, 'expected bytes or a size like 64MiB'),
]).transform((v) => parseSize(v));

/** A key prefix template: `incoming/{name}/{version}/`. Only {name} and {version}; no `..`. */
const prefixTemplate = z.string()
  .regex(/^([A-Za-z0-9._~+-]|\{name\}|\{version\})+(\/([A-Za-z0-9._~+-]|\{name\}|\{version\})+)*\/$/,
    'expected a key prefix ending in "/" made of letters, digits, ._~+- and the placeholders {name} and {version}')
  .refine((p) => !p.split('/').some((s) => s === '..' || s === '.'), 'must not contain "." or ".." segments');

const fileRegex = nonEmpty.refine((s) => { try { new RegExp(s); return true; } catch { return false; } }, 'is not a valid regular expression')
  .refine((s) => s.startsWith('^') && s.endsWith('$'), 'must be anchored: start with ^ and end with $ (a name pattern, not a substring)');

const uploaderBase = {
  /** Where uploads land (the incoming area) and where `index` publishes: s3://BUCKET[/PREFIX]. */
  bucket: s3Url,
  /** Incoming prefix under the bucket URL; {name} is the uploader's name, {version} the grant's --version. */
  prefix: prefixTemplate,
  /** Allowed file names (anchored regexes); the server enforces a glob cover of each, index the regex. */
  files: z.array(fileRegex).min(1, 'list at least one allowed file name pattern'),
  maxSize: sizeSchema,
  /** Default lifetime of a grant (`releng grant --ttl` overrides, never beyond maxTtl). */
  ttl: durationSchema.default('1h'),
  maxTtl: durationSchema.default('12h'),
};

/** Installers built elsewhere (Lix's macOS installers): per-version prefix, SHA256SUMS, latest copies. */
const installersUploader = z.object({
  kind: z.literal('installers'),
  ...uploaderBase,
  /** Where accepted files go, with {version}: e.g. `lix/lix-{version}/`. */
  publish: prefixTemplate.refine((p) => p.includes('{version}'), 'must contain {version}'),
  /** Where the newest release's files are copied under the same names (e.g. `lix/`); omit for none. */
  latest: z.union([prefixTemplate, z.literal('')]).optional(),
  /** The per-version checksum file `index` regenerates (every installer of that version). */
  sumsFile: z.string().regex(/^[A-Za-z0-9._-]+$/, 'expected a plain file name').default('SHA256SUMS'),
  /** The HTML listing of every version's installers, under the bucket URL. */
  indexPage: z.string().regex(/^[A-Za-z0-9._/-]+\.html$/, 'expected a key ending in .html').default('installers.html'),
}).strict();

/** Debian packages for the environment's APT repository (`environments.E.apt`). */
const aptUploader = z.object({
  kind: z.literal('apt'),
  ...uploaderBase,
  /** The repository component these packages go to (one of apt.components). */
  component: nonEmpty.default('main'),
  /** The suite its packages go to (one of apt.suites; default apt.suite). Promote with `releng index --copy`. */
  suite: z.string().regex(/^[A-Za-z0-9.+-]+$/, 'expected a suite name like testing').optional(),
}).strict();

export const uploaderSchema = z.discriminatedUnion('kind', [installersUploader, aptUploader]);

/** How `releng grant` mints credentials in this environment. */
export const grantMethodSchema = z.discriminatedUnion('method', [
  /** STS AssumeRole with a session policy (AWS, Ceph RGW, MinIO): temporary keys + session token. */
  z.object({
    method: z.literal('sts'),
    /** The role the maintainer's credentials may assume; its own policy must allow at least the writes. */
    roleArn: nonEmpty,
    /** STS endpoint (default: the environment's S3 endpoint, as on RGW and MinIO). */
    endpoint: z.string().url('expected http(s):// URL').optional(),
  }).strict(),
  /** A presigned POST policy (any S3 with POST uploads): key starts-with, size range, expiry. */
  z.object({ method: z.literal('presigned-post') }).strict(),
  /** A command printing scoped short-lived credentials as JSON (Garage's key tool). */
  z.object({
    method: z.literal('command'),
    /** Argument array; {bucket} {prefix} {ttlSeconds} {grantId} {name} are replaced. */
    command: z.array(nonEmpty).min(1, 'must name a program').refine((c) => !c[0]!.startsWith('-'), 'starts with "-": the first element is the program to run'),
    accessKeyIdField: nonEmpty.default('id'),
    secretAccessKeyField: nonEmpty.default('secret_key'),
    sessionTokenField: nonEmpty.optional(),
    /** ISO date or seconds since the epoch; default: now + ttl. */
    expirationField: nonEmpty.optional(),
  }).strict(),
]);

const suiteName = z.string().regex(/^[A-Za-z0-9.+-]+$/, 'expected a suite name like stable');

/** The environment's APT repository that `releng index` regenerates. */
export const aptRepositorySchema = z.object({
  /** Root of the repository (holds pool/ and dists/): s3://BUCKET[/PREFIX]. */
  root: s3Url,
  /** The default suite: where uploads go unless their uploader names another. */
  suite: suiteName,
  codename: z.string().regex(/^[A-Za-z0-9.+-]+$/).optional(),
  components: z.array(z.string().regex(/^[a-z0-9][a-z0-9.+-]*$/)).min(1).default(['main']),
  architectures: z.array(z.string().regex(/^[a-z0-9][a-z0-9-]*$/)).min(1, 'list the architectures (amd64, arm64, ...)'),
  origin: nonEmpty.optional(),
  label: nonEmpty.optional(),
  description: nonEmpty.optional(),
  /** Every suite of the repository (dists/SUITE/), e.g. ["testing", "stable"]; default [suite]. They share pool/. */
  suites: z.array(suiteName).min(1, 'list at least one suite').optional(),
  /** How long a signed Release is valid (Valid-Until = Date + validFor); `releng index --refresh` re-signs before then. */
  validFor: durationSchema.default('7d'),
  /** Which versions stay in the indexes, and when files no index references are deleted. */
  retention: z.object({
    /** The newest N versions of each package and architecture stay in each suite; default: all. */
    keepVersions: z.number().int().min(1, 'keep at least 1 version').optional(),
    /** How long a pool or dists file no index references is kept before it is deleted; longer than validFor (default twice validFor). */
    grace: durationSchema.optional(),
  }).strict().default({}),
  /**
   * `also-in-each` (default, as Debian): Architecture: all packages in binary-all/ and in every
   * binary-ARCH/Packages, with `No-Support-for-Architecture-all: Packages` so apt reads them once;
   * `binary-all-only`: only in binary-all/ (apt 1.2 and later read it; smaller indexes).
   */
  architectureAll: z.enum(['also-in-each', 'binary-all-only']).default('also-in-each'),
  /** Write Packages for an architecture with no package (apt needs none: it skips a listed architecture without indexes). */
  emptyIndexes: z.boolean().default(false),
  /** The repository's public http(s) URL (the page's .sources snippet); default the S3 endpoint's path-style URL of root. */
  url: z.string().regex(/^https?:\/\/[^\s]+$/, 'expected an http(s):// URL').optional(),
  /** Base name of the published public key: ROOT/NAME.gpg (binary) and ROOT/NAME.asc (armored); default PROJECT-archive-keyring. */
  keyName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'expected a plain file name without extension').optional(),
  /** The repository's HTML page under root: how to add it (deb822 .sources), suites, key. */
  indexPage: z.string().regex(/^[A-Za-z0-9._/-]+\.html$/, 'expected a key ending in .html').default('index.html'),
  /** OpenPGP key that signs Release (InRelease, Release.gpg): a key id or fingerprint in gnupgHome. */
  signingKey: z.object({
    /** Key id, fingerprint or user id; default: the only secret key of gnupgHome. */
    keyId: argvSafe('a key id, fingerprint or user id').optional(),
    /** GNUPGHOME (relative to the project root); default: gpg's own ($GNUPGHOME or ~/.gnupg). */
    gnupgHome: argvSafe('a directory path').optional(),
    /** The public key (binary, `gpg --export`), for verifying where the secret key is not (releng verify). */
    publicKeyFile: argvSafe('a file path').optional(),
  }).strict().default({}),
}).strict();

export type UploaderConfig = z.infer<typeof uploaderSchema>;
export type InstallersUploader = z.infer<typeof installersUploader>;
export type AptUploader = z.infer<typeof aptUploader>;
export type GrantMethod = z.infer<typeof grantMethodSchema>;
export type AptRepository = z.infer<typeof aptRepositorySchema>;

/** Additive fields of an environment (spread into lib/config/config.ts's environment object). */
export const grantEnvironmentFields = {
  /** Outside builders: `releng grant NAME`, `releng contribute`, `releng index` (docs/grants-and-index.md). */
  uploaders: z.record(z.string().regex(/^[a-z][a-z0-9-]*$/, 'uploader names are lowercase'), uploaderSchema).default({}),
  grants: grantMethodSchema.optional(),
  apt: aptRepositorySchema.optional(),
};

/** The literal part of a prefix template before its first {version} ({name} filled in). */
export function staticHead(template: string, name: string): string {
  const filled = template.replaceAll('{name}', name);
  const i = filled.indexOf('{version}');
  return i < 0 ? filled : filled.slice(0, i);
}

/** Cross-field checks of an environment's uploaders (an upload area must never be a published area). */
export function checkUploaders(
  env: { uploaders: Record<string, UploaderConfig>; apt?: AptRepository; grants?: GrantMethod },
  ctx: { addIssue(issue: { code: 'custom'; path: (string | number)[]; message: string }): void },
): void {
  const bucketOf = (url: string) => url.slice(5).split('/')[0]!;
  const prefixOf = (url: string) => { const rest = url.slice(5); const i = rest.indexOf('/'); const p = i < 0 ? '' : rest.slice(i + 1).replace(/^\/+|\/+$/g, ''); return p ? `${p}/` : ''; };
  const overlaps = (a: string, b: string) => a.startsWith(b) || b.startsWith(a);
  if (env.apt) checkAptRepository(env.apt, ctx);
  for (const [name, u] of Object.entries(env.uploaders)) {
    const incoming = prefixOf(u.bucket) + staticHead(u.prefix, name);
    if (u.kind === 'installers') {
      const publish = prefixOf(u.bucket) + staticHead(u.publish, name);
      if (overlaps(incoming, publish)) {
        ctx.addIssue({ code: 'custom', path: ['uploaders', name, 'prefix'], message: `the upload area "${u.prefix}" overlaps the published area "${u.publish}": a grant could overwrite published files; use a separate prefix such as incoming/{name}/{version}/` });
      }
    } else {
      if (!env.apt) {
        ctx.addIssue({ code: 'custom', path: ['uploaders', name, 'kind'], message: 'an "apt" uploader needs this environment\'s "apt" repository settings' });
        continue;
      }
      if (u.suite !== undefined && !aptSuites(env.apt).includes(u.suite)) {
        ctx.addIssue({ code: 'custom', path: ['uploaders', name, 'suite'], message: `"${u.suite}" is not one of the repository's suites (${aptSuites(env.apt).join(', ')}): add it to apt.suites` });
      }
      if (!env.apt.components.includes(u.component)) {
        ctx.addIssue({ code: 'custom', path: ['uploaders', name, 'component'], message: `"${u.component}" is not one of apt.components (${env.apt.components.join(', ')})` });
      }
      if (bucketOf(u.bucket) === bucketOf(env.apt.root) && overlaps(incoming, prefixOf(env.apt.root))) {
        ctx.addIssue({ code: 'custom', path: ['uploaders', name, 'prefix'], message: `the upload area "${u.prefix}" overlaps the APT repository ${env.apt.root}: use a prefix outside it` });
      }
    }
  }
}

/** The suites of a repository: apt.suites, or the one apt.suite. */
export function aptSuites(repo: Pick<AptRepository, 'suite' | 'suites'>): string[] {
  return repo.suites ?? [repo.suite];
}

/** How long files no index references are kept (seconds): retention.grace, default twice validFor. */
export function aptGraceSeconds(repo: Pick<AptRepository, 'validFor' | 'retention'>): number {
  return repo.retention.grace ? parseDuration(repo.retention.grace) : 2 * parseDuration(repo.validFor);
}

/** Cross-field checks of an APT repository: its suites, and a grace longer than a Release is valid. */
function checkAptRepository(repo: AptRepository, ctx: { addIssue(issue: { code: 'custom'; path: (string | number)[]; message: string }): void }): void {
  if (Array.isArray(repo.suites) && !repo.suites.includes(repo.suite)) {
    ctx.addIssue({ code: 'custom', path: ['apt', 'suites'], message: `does not include apt.suite "${repo.suite}": list every suite, the default one too` });
  }
  if (Array.isArray(repo.suites) && new Set(repo.suites).size !== repo.suites.length) {
    ctx.addIssue({ code: 'custom', path: ['apt', 'suites'], message: 'lists a suite twice' });
  }
  // Runs on data other checks may have refused already: an unreadable duration is their issue, not one more here.
  const seconds = (d: unknown) => { try { return typeof d === 'string' ? parseDuration(d) : undefined; } catch { return undefined; } };
  const grace = seconds(repo.retention?.grace);
  const validFor = seconds(repo.validFor);
  if (grace !== undefined && validFor !== undefined && grace <= validFor) {
    ctx.addIssue({ code: 'custom', path: ['apt', 'retention', 'grace'], message: `${repo.retention.grace} is not longer than apt.validFor ${repo.validFor}: a client holding the previous Release (valid that long) could miss files deleted sooner; make grace longer than validFor` });
  }
}
