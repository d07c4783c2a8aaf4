// `releng check`: the doctor. Everything an upload needs, checked without a build: the config,
// credentials, every bucket reachable and writable (a probe object written and removed), registry
// logins, the signing key (present, a Nix secret key, matching cache.publicKey), the git remote,
// and every external tool with its version. One line each; exit 1 when anything is wrong.
import { createHash } from 'node:crypto';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BareRun } from '../config/context.ts';
import { configPath, environmentNamed, loadConfig, parseS3Url, type Config, type Environment, type LoadedConfig } from '../config/config.ts';
import { capEchoedValues, describeError, ReleaseError, UsageError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import { gitAt } from '../git/git.ts';
import { gitReader, resolveRemote } from '../git/push.ts';
import type { Logger } from '../core/log.ts';

export type CheckStatus = 'ok' | 'problem' | 'note';

export interface CheckLine {
  /** Environment name, or "" for the config and the tools. */
  environment: string;
  what: string;
  status: CheckStatus;
  detail: string;
}

export interface CheckResult {
  ok: boolean;
  problems: number;
  lines: CheckLine[];
}

/** A program releng runs: how to ask its version, and whether this config needs it. */
interface Tool {
  name: string;
  /** The nixpkgs attribute providing it (nix/runtime-tools.nix puts each on the wrapper's PATH). */
  nixpkgs: string;
  args: string[];
  debian: string;
  neededBy: string;
  required(c: Config): boolean;
}

const anyDocker = (c: Config) => Object.values(c.environments).some((e) => e.docker.length > 0);
const anyEmbeddedRegistry = (c: Config) => Object.values(c.environments).some((e) => e.docker.some((d) => d.registry === 'embedded'));
const always = () => true;
const optional = () => false;

export const tools: Tool[] = [
  { name: 'git', nixpkgs: 'git', args: ['--version'], debian: 'git', neededBy: 'prepare, tag, build, upload', required: always },
  { name: 'nix', nixpkgs: 'nix', args: ['--version'], debian: 'nix-bin', neededBy: 'build, upload (signing, cache)', required: always },
  { name: 'xz', nixpkgs: 'xz', args: ['--version'], debian: 'xz-utils', neededBy: 'build (tarballs)', required: always },
  { name: 'zstd', nixpkgs: 'zstd', args: ['--version'], debian: 'zstd', neededBy: 'upload (zstd cache compression), channel (.tar.zst with programs.sqlite)', required: (c) => Object.values(c.environments).some((e) => e.cache?.compression === 'zstd') || !!c.channels?.kinds.some((k) => k.programs?.tarballs.some((t) => t.endsWith('.zst'))) },
  { name: 'skopeo', nixpkgs: 'skopeo', args: ['--version'], debian: 'skopeo', neededBy: 'upload (container images)', required: anyDocker },
  { name: 'docker-registry', nixpkgs: 'docker-distribution', args: ['--version'], debian: 'docker-registry', neededBy: 'the embedded registry (local environment, serve)', required: anyEmbeddedRegistry },
  { name: 'flock', nixpkgs: 'util-linux', args: ['--version'], debian: 'util-linux', neededBy: 'build, upload, promote, index (one run per checkout), channel (one run per channel)', required: always },
  { name: 'nix-env', nixpkgs: 'nix', args: ['--version'], debian: 'nix-bin', neededBy: 'channel (programs.sqlite: the packages\' outputs)', required: (c) => !!c.channels?.kinds.some((k) => k.programs) },
  { name: 'tar', nixpkgs: 'gnutar', args: ['--version'], debian: 'tar', neededBy: 'channel (programs.sqlite into the tarballs)', required: (c) => !!c.channels?.kinds.some((k) => k.programs) },
  { name: 'nix-eval-jobs', nixpkgs: 'nix-eval-jobs', args: ['--version'], debian: 'nix-eval-jobs (nixpkgs)', neededBy: 'build (faster evaluation; nix-instantiate is the fallback)', required: optional },
  { name: 'gpg', nixpkgs: 'gnupg', args: ['--version'], debian: 'gnupg', neededBy: 'signed APT repositories (index)', required: optional },
  { name: 'gpgv', nixpkgs: 'gnupg', args: ['--version'], debian: 'gpgv', neededBy: 'verifying signed APT repositories (index)', required: optional },
  { name: 'apt-ftparchive', nixpkgs: 'apt', args: ['--version'], debian: 'apt-utils', neededBy: 'APT repository indexes (index)', required: optional },
  { name: 'bzip2', nixpkgs: 'bzip2', args: ['--help'], debian: 'bzip2', neededBy: 'verify --deep of bzip2 NARs (old caches)', required: optional },
  { name: 'dpkg', nixpkgs: 'dpkg', args: ['--version'], debian: 'dpkg', neededBy: 'Debian packages (index)', required: optional },
  { name: 'rsync', nixpkgs: 'rsync', args: ['--version'], debian: 'rsync', neededBy: 'mirrors', required: optional },
];

/** The public key of a Nix secret key (`NAME:BASE64` of libsodium's 64-byte seed+public key): its last 32 bytes. */
export function publicKeyOf(secretKey: string): string | undefined {
  const m = /^([^:\s]+):([A-Za-z0-9+/]+={0,2})$/.exec(secretKey.trim());
  if (!m) return undefined;
  const bytes = Buffer.from(m[2]!, 'base64');
  if (bytes.length !== 64) return undefined;
  return `${m[1]}:${bytes.subarray(32).toString('base64')}`;
}

async function toolVersion(t: Tool): Promise<string> {
  const { stdout, stderr } = await run(t.name, t.args, { timeout: 20_000 });
  return (stdout || stderr).split('\n')[0]!.trim();
}

/** A file:// bucket: the directory exists and takes a file (probe written, read back, removed). */
async function probeDirectory(url: string, runId: string): Promise<[CheckStatus, string]> {
  const { fsUrlPath } = await import('../fs/store.ts');
  const dir = fsUrlPath(url);
  const st = await stat(dir).catch((e: NodeJS.ErrnoException) => e);
  if (st instanceof Error) {
    return ['problem', st.code === 'ENOENT' ? `the directory ${dir} does not exist: create it (mkdir -p ${dir}) or fix the URL` : `cannot read ${dir}: ${st.code ?? st.message}`];
  }
  if (!st.isDirectory()) return ['problem', `${dir} is not a directory`];
  const probe = path.join(dir, `.releng-check-${runId}`);
  const text = `releng check ${runId}\n`;
  try {
    await writeFile(probe, text, { flag: 'wx' });
    const back = await readFile(probe, 'utf8');
    await rm(probe);
    if (back !== text) return ['problem', `the probe ${probe} read back different bytes`];
    return ['ok', 'directory present, writable (probe written and removed)'];
  } catch (e) {
    await rm(probe, { force: true }).catch(() => {});
    const err = e as NodeJS.ErrnoException;
    return ['problem', `cannot write in ${dir} (${err.code ?? err.message}): releng writes releases there; check its owner and mode`];
  }
}

/** Checks one environment; every finding goes through `add`. */
async function checkEnvironment(loaded: LoadedConfig, name: string, runId: string, add: (what: string, status: CheckStatus, detail: string) => void, log: Logger): Promise<void> {
  const env: Environment = environmentNamed(loaded, name);
  const root = loaded.root;
  const { resolveCredentials } = await import('../s3/credentials.ts');
  const { createS3Client, s3Store } = await import('../s3/store.ts');
  const closers: (() => Promise<void>)[] = [];
  try {
    const urls = [...new Set([env.releasesBucket, env.cacheBucket, env.docsBucket, ...(env.channelsBucket ? [env.channelsBucket] : [])])];
    const fileUrls = urls.filter((u) => u.startsWith('file://'));
    const s3Urls = urls.filter((u) => !u.startsWith('file://'));
    // Credentials (only S3 buckets need them)
    let credentials;
    if (!s3Urls.length) add('credentials', 'ok', 'not needed (every bucket is a file:// directory)');
    else try {
      credentials = await resolveCredentials(name, env);
      const c = env.credentials;
      add('credentials', 'ok', c.source === 'env' ? `from $${c.accessKeyIdVar} and $${c.secretAccessKeyVar}` : c.source === 'command' ? `from \`${c.command[0]}\`` : 'the embedded server\'s');
    } catch (e) {
      add('credentials', 'problem', describeError(e));
    }
    // Directories (file:// buckets): present, and writable (a probe file written, read back, removed)
    for (const url of fileUrls) add(`bucket ${url}`, ...(await probeDirectory(url, runId)));
    // Buckets: reachable and writable (probe written, read back, removed)
    const buckets = s3Urls.map((u) => [u, parseS3Url(u)] as const);
    let endpoint = env.s3?.endpoint ?? 'file://';
    if (endpoint === 'embedded' && buckets.length) {
      const { startLocalS3 } = await import('../local/s3-server.ts');
      const { localDataDir } = await import('../environment/open.ts');
      const s3 = await startLocalS3({ dir: path.join(localDataDir(root), 's3'), buckets: [...new Set(buckets.map(([, b]) => b.bucket))] });
      closers.push(() => s3.stop());
      endpoint = s3.endpoint;
      add('S3 endpoint', 'ok', `embedded (data in ${path.relative(root, s3.dir) || s3.dir})`);
    }
    if (credentials && env.s3) {
      const store = s3Store(createS3Client({ ...env.s3, endpoint }, credentials), endpoint);
      for (const [url, { bucket, prefix }] of buckets) {
        const key = `${prefix}.releng-check/${runId}`;
        const text = `releng check ${runId}\n`;
        try {
          await store.checkBucket(bucket);
          await store.put({ bucket, key, body: { text }, size: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex'), contentType: 'text/plain' });
          await store.delete(bucket, key);
          const left = await store.head(bucket, key);
          if (left) add(`bucket ${url}`, 'problem', `the probe ${key} could not be removed`);
          else add(`bucket ${url}`, 'ok', 'reachable, writable (probe written and removed)');
        } catch (e) {
          add(`bucket ${url}`, 'problem', describeError(e).split('\n')[0]!);
        }
      }
    } else {
      for (const [url] of buckets) add(`bucket ${url}`, 'problem', 'not checked: no credentials');
    }
    // Mirror modules (issue 28): a stock quick-fedora-mirror finds MDIR/fullfiletimelist-MDIR, so a
    // module's directory is best named like the module (docs/mirrors.md).
    for (const [module, m] of Object.entries(env.mirror?.fileLists ?? {})) {
      const dir = m.root.replace(/\/+$/, '').split('/').pop();
      if (dir === module) add(`mirror module ${module}`, 'ok', `${m.root}: a stock quick-fedora-mirror finds ${module}/fullfiletimelist-${module}, fullfilelist and imagelist-${module}`);
      else add(`mirror module ${module}`, 'note', `${m.root} is a directory named ${dir}, but the lists are named for ${module}: a stock quick-fedora-mirror looks for ${dir}/fullfiletimelist-${dir}; rename the module to ${dir} (environments.${name}.mirror.fileLists) or set FILELIST on the mirrors`);
    }
    // Registries: every login (pull and push on the repository)
    if (env.docker.length) {
      const { openRegistry } = await import('../oci/open.ts');
      let embeddedHost: string | undefined;
      if (env.docker.some((d) => d.registry === 'embedded')) {
        try {
          const { startLocalRegistry } = await import('../local/registry-server.ts');
          const { localDataDir } = await import('../environment/open.ts');
          const reg = await startLocalRegistry({ dir: path.join(localDataDir(root), 'registry') });
          closers.push(() => reg.stop());
          embeddedHost = reg.host;
        } catch (e) {
          add('registry embedded', 'problem', describeError(e).split('\n')[0]!);
        }
      }
      for (const d of env.docker) {
        if (d.registry === 'embedded' && !embeddedHost) continue;
        try {
          const r = await openRegistry(d, { root, embeddedHost });
          add(`registry ${d.registry}/${d.repository}`, 'ok', r.auth === 'anonymous' ? 'reachable, no login needed' : `login accepted (${r.auth}, from ${r.authFile})`);
        } catch (e) {
          add(`registry ${d.registry}/${d.repository}`, 'problem', describeError(e).split('\n')[0]!);
        }
      }
    }
    // Signing key: present, a Nix secret key, and matching cache.publicKey when given
    if (env.cache) {
      const field = `environments.${name}.cache.signingKeyFile`;
      const file = path.resolve(root, env.cache.signingKeyFile);
      const secret = await readFile(file, 'utf8').catch((e) => e as NodeJS.ErrnoException);
      if (typeof secret !== 'string') {
        if (secret.code === 'ENOENT' && name === 'local') add('signing key', 'ok', `${env.cache.signingKeyFile} does not exist yet; the first upload to local generates it`);
        else add('signing key', 'problem', `cannot read ${file} (${field}): ${secret.code ?? secret.message}`);
      } else {
        const pub = publicKeyOf(secret);
        if (!pub) add('signing key', 'problem', `${file} (${field}) is not a Nix secret key (NAME:BASE64 of 64 bytes); generate one with \`nix key generate-secret --key-name NAME\``);
        else if (env.cache.publicKey && env.cache.publicKey !== pub) add('signing key', 'problem', `${file} signs as ${pub}, but environments.${name}.cache.publicKey is ${env.cache.publicKey}`);
        else add('signing key', 'ok', `${env.cache.signingKeyFile}: ${pub}${env.cache.publicKey ? ' (matches cache.publicKey)' : ' (set cache.publicKey to have it compared)'}`);
      }
    }
    // Git remote: reachable (ls-remote)
    if (env.git) {
      try {
        const reader = gitReader(gitAt(root));
        const remote = await resolveRemote(reader, name, env.git);
        const refs = await reader.lsRemote(remote, ['HEAD']);
        add('git remote', 'ok', `${remote} reachable${refs.size ? '' : ' (empty)'}`);
      } catch (e) {
        add('git remote', 'problem', describeError(e).split('\n')[0]!);
      }
    }
  } finally {
    for (const close of closers) await close().catch((e) => log.warn(`stopping an embedded server: ${(e as Error).message}`));
  }
}

export async function check(io: BareRun): Promise<CheckResult> {
  const { log, flags } = io;
  const runId = flags.runId ?? Date.now().toString(36);
  const lines: CheckLine[] = [];
  let current = '';
  const add = (what: string, status: CheckStatus, detail: string) => {
    // A finding quotes config values and answers: capped like every error (issue 25).
    what = capEchoedValues(what);
    detail = capEchoedValues(detail);
    lines.push({ environment: current, what, status, detail });
    const mark = status === 'ok' ? log.colour('green', '✔') : status === 'note' ? log.colour('yellow', '!') : log.colour('red', '✖');
    log.info(`${mark} ${current ? `${current}: ` : ''}${what}: ${detail}`);
  };
  if (flags.extra.all && flags.environment) throw new UsageError('give either --environment NAME or --all, not both');
  const file = configPath(io.configFlag, io.cwd);
  let loaded: LoadedConfig | undefined;
  try {
    loaded = await loadConfig(file);
    add('config', 'ok', `${path.relative(io.cwd, file) || file} is valid (project ${loaded.config.project}; environments ${Object.keys(loaded.config.environments).join(', ')})`);
  } catch (e) {
    add('config', 'problem', describeError(e));
  }
  if (loaded) {
    const names = flags.extra.all ? Object.keys(loaded.config.environments)
      : [flags.environment ?? ('local' in loaded.config.environments ? 'local' : Object.keys(loaded.config.environments)[0]!)];
    for (const name of names) {
      current = name;
      try {
        await checkEnvironment(loaded, name, runId, add, log);
      } catch (e) {
        add('environment', 'problem', describeError(e));
      }
    }
  }
  current = '';
  for (const t of tools) {
    try {
      add(`tool ${t.name}`, 'ok', await toolVersion(t));
      // Nix on PATH is not Nix that builds: no build users, or a store this user cannot write (issue 23).
      if (t.name === 'nix') {
        const { nixBuildReadiness } = await import('../nix/readiness.ts');
        const r = await nixBuildReadiness();
        add('nix builds', r.ok ? 'ok' : 'problem', r.detail);
      }
    } catch {
      const needed = loaded ? t.required(loaded.config) : t.name === 'git' || t.name === 'nix';
      add(`tool ${t.name}`, needed ? 'problem' : 'note', `not on PATH (Debian: ${t.debian}; needed by ${t.neededBy})`);
    }
  }
  const problems = lines.filter((l) => l.status === 'problem').length;
  const result: CheckResult = { ok: problems === 0, problems, lines };
  if (problems) throw new CheckFailed(result);
  log.info(`${log.colour('green', 'all checks passed')}`);
  return result;
}

/** check found problems (each already printed on its line): exit 1 with a one-line summary. */
export class CheckFailed extends ReleaseError {
  /** Every line, for --json (the entry script prints `result` of a failure that has one). */
  constructor(readonly result: CheckResult) {
    super(`check found ${result.problems} problem${result.problems === 1 ? '' : 's'} (the lines marked ✖ above)`, 'fix them and run `releng check` again');
  }
}
