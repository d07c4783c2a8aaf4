// `releng init`: a first releng.json for the repository in the current directory. JSON has no
// comments, so the notes live in "$comment" fields (JSON Schema's convention), which the schema
// accepts and ignores. A local environment that works as written (embedded S3, a key generated on
// first upload), and staging/production skeletons whose endpoints, buckets and key files say
// example.invalid until someone fills them in (`releng check --environment staging` shows what is left).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BareRun } from '../config/context.ts';
import { configPath, configSchema } from '../config/config.ts';
import { ReleaseError, UsageError } from '../core/errors.ts';
import { run } from '../core/exec.ts';

const projectName = /^[a-z][a-z0-9-]*$/;

/** The project name: `pname = "..."` in flake.nix, else the directory's name made lowercase. */
export async function guessProjectName(dir: string): Promise<string> {
  const flake = await readFile(path.join(dir, 'flake.nix'), 'utf8').catch(() => '');
  const pname = /\bpname\s*=\s*"([A-Za-z][A-Za-z0-9-]*)"/.exec(flake)?.[1]?.toLowerCase();
  if (pname && projectName.test(pname)) return pname;
  const fromDir = path.basename(path.resolve(dir)).toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+/, '').replace(/-+$/, '');
  return projectName.test(fromDir) ? fromDir : 'project';
}

/** The Nix system of this machine (the starting profile builds only it). */
export function currentSystem(arch = process.arch, platform = process.platform): string {
  const cpu = arch === 'arm64' ? 'aarch64' : arch === 'x64' ? 'x86_64' : arch;
  return `${cpu}-${platform === 'darwin' ? 'darwin' : 'linux'}`;
}

export interface InitFacts {
  project: string;
  system: string;
  /** Whether the repository has a flake.nix (release jobs from `.#release-jobs`), else release.nix. */
  flake: boolean;
  /** `git remote get-url origin`, when there is one. */
  origin?: string;
  branch: string;
}

/** The starting configuration (plain data; a golden test pins it). */
export function startingConfig(f: InitFacts): Record<string, unknown> {
  const p = f.project;
  const remote = (env: string) => (f.origin ? { git: { remote: f.origin, gerrit: false } } : { $comment: `add "git": { "remote": "URL" } so upload pushes the branch and tag to ${env}` });
  const shared = (env: string, colour: string, vars: string) => ({
    colour,
    releasesBucket: `s3://${p}-${env}-releases`,
    cacheBucket: `s3://${p}-${env}-cache`,
    docsBucket: `s3://${p}-${env}-docs`,
    s3: { endpoint: `https://s3.${env}.example.invalid`, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' },
    credentials: { source: 'env', accessKeyIdVar: `${vars}_AWS_ACCESS_KEY_ID`, secretAccessKeyVar: `${vars}_AWS_SECRET_ACCESS_KEY` },
    cache: { signingKeyFile: `/run/secrets/${p}-${env}-cache.key`, compression: 'zstd' },
  });
  const skeleton = (env: string, colour: string, vars: string) => {
    const { $comment: gitNote, ...git } = remote(env) as Record<string, unknown>;
    return {
      $comment: [
        `A skeleton: replace s3.endpoint, the buckets and cache.signingKeyFile with ${env}'s, then run \`releng check --environment ${env}\`.`,
        `Credentials come from $${vars}_AWS_ACCESS_KEY_ID / $${vars}_AWS_SECRET_ACCESS_KEY (or "source": "command", see the README); never write keys here.`,
        ...(gitNote ? [gitNote as string] : []),
      ],
      ...shared(env, colour, vars),
      ...git,
      docker: [],
    };
  };
  return {
    $comment: [
      `releng.json for ${p}, written by \`releng init\`. Fields: the releng README, "Configuration". "$comment" fields are notes, ignored by releng.`,
      'Next: `releng check` (the local environment works as written), then `releng release --dry-run`.',
    ],
    project: p,
    versionFile: 'version.json',
    releaseJobs: f.flake ? { flake: '.#release-jobs' } : { file: 'release.nix' },
    profiles: {
      default: { $comment: 'the systems `releng build` builds; add more (and dockerSystems for container images)', systems: [f.system], dockerSystems: [] },
    },
    defaultProfile: 'default',
    mainBranch: f.branch,
    environments: {
      local: {
        $comment: 'Needs nothing running: releng starts an S3 server with its data under .releng/local/ and makes a signing key on the first upload.',
        colour: 'blue',
        releasesBucket: 's3://local-releases',
        cacheBucket: 's3://local-cache',
        docsBucket: 's3://local-docs',
        s3: { endpoint: 'embedded', region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' },
        credentials: { source: 'embedded' },
        cache: { signingKeyFile: '.releng/local/cache-signing.key', compression: 'zstd' },
        docker: [],
        confirm: false,
      },
      staging: skeleton('staging', 'yellow', 'STAGING'),
      production: skeleton('production', 'red', 'PRODUCTION'),
    },
  };
}

async function gitOut(cwd: string, args: string[]): Promise<string | undefined> {
  try { return (await run('git', args, { cwd })).stdout.trim() || undefined; } catch { return undefined; }
}

export async function init(io: BareRun): Promise<{ file: string; project: string }> {
  const file = configPath(io.configFlag, io.cwd);
  const dir = path.dirname(file);
  const given = io.flags.extra.project;
  if (given !== undefined && (typeof given !== 'string' || !projectName.test(given))) {
    throw new UsageError(`--project ${String(given)}: expected a lowercase name like lix (letters, digits, dashes)`);
  }
  const facts: InitFacts = {
    project: (given as string | undefined) ?? await guessProjectName(dir),
    system: currentSystem(),
    flake: await readFile(path.join(dir, 'flake.nix')).then(() => true, () => false),
    origin: await gitOut(dir, ['remote', 'get-url', 'origin']),
    branch: (await gitOut(dir, ['symbolic-ref', '--short', 'HEAD'])) ?? 'main',
  };
  const config = startingConfig(facts);
  configSchema.parse(config); // what we write must load
  const text = JSON.stringify(config, null, 2) + '\n';
  try {
    await writeFile(file, text, { flag: 'wx' });
  } catch (e: any) {
    if (e.code === 'EEXIST') throw new ReleaseError(`${file} already exists; releng init never overwrites it`, 'edit it, or move it away and run `releng init` again');
    throw new ReleaseError(`cannot write ${file}: ${e.code ?? e.message}`);
  }
  io.log.info(`wrote ${file} (project "${facts.project}", release jobs from ${facts.flake ? 'the flake (.#release-jobs)' : 'release.nix'}, environments local, staging, production)`);
  io.log.info('next: fill in the staging and production skeletons, then `releng check --all`');
  return { file, project: facts.project };
}
