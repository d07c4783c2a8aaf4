// A released examples/hello in a staging environment (s3rver), and destinations of every kind:
// file trees (production, a second mirror) and S3 buckets on the same endpoint (server-side copy).
// Shared by the promote tests; one build per file.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Writers } from '../../lib/actions/index.ts';
import type { Context, Flags } from '../../lib/config/context.ts';
import { upload } from '../../lib/phases/upload.ts';
import { promote, type PromoteDeps, type PromoteSummary } from '../../lib/phases/promote.ts';
import { describeError } from '../../lib/core/errors.ts';
import { releng } from './cli.ts';
import { contextIn } from './in-process.ts';
import { scratchProject, type ScratchProject } from './project.ts';
import { startTestS3, type TestS3 } from './s3.ts';
import { tagLikeReleng } from './tagged.ts';
import { startLocalRegistry, type LocalRegistry } from '../../lib/local/registry-server.ts';
import { requireTool } from './tools.ts';

export const stagingBuckets = ['staging-releases', 'staging-cache', 'staging-docs'];
export const prodS3Buckets = ['prods3-releases', 'prods3-cache', 'prods3-docs'];

export interface PromoteFixture {
  p: ScratchProject;
  s3: TestS3;
  /** Root of the file trees: TREES/production/{releases,cache,docs}, TREES/mirror/... */
  trees: string;
  registries: { staging: LocalRegistry; production: LocalRegistry };
  keys: { staging: string; production: string };
  build: any;
  ctx(flags?: Partial<Flags>, sink?: (s: string) => void): Promise<Context>;
  /** Runs promote in-process; errors come back as the text the CLI would print. */
  promote(version: string, flags: Partial<Flags>, deps?: PromoteDeps): Promise<{ ok: boolean; summary?: PromoteSummary; error?: string; log: string }>;
  uploadStaging(): Promise<void>;
  upload(environment: string): Promise<import('../../lib/phases/upload.ts').UploadSummary>;
  cleanup(): Promise<void>;
}

export function nixKey(name: string): { secret: string; pub: string } {
  const secret = execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'generate-secret', '--key-name', name], { encoding: 'utf8' });
  const pub = execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'key', 'convert-secret-to-public'], { input: secret, encoding: 'utf8' }).trim();
  return { secret, pub };
}

export async function promoteFixture(): Promise<PromoteFixture> {
  requireTool('nix-build', 'nix-bin');
  requireTool('zstd', 'zstd');
  requireTool('skopeo', 'skopeo');
  requireTool('docker-registry', 'docker-registry');
  const s3 = await startTestS3([...stagingBuckets, ...prodS3Buckets]);
  const trees = await mkdtemp(path.join(os.tmpdir(), 'releng-trees-'));
  // Staging's and production's registries: two docker-registry processes.
  const registries = { staging: await startLocalRegistry({ dir: path.join(trees, 'registry-staging') }), production: await startLocalRegistry({ dir: path.join(trees, 'registry-production') }) };
  const docker = (r: LocalRegistry) => [{ registry: r.host, repository: 'hello', tags: ['{version}', '{major}'], latest: true, tlsVerify: false }];
  for (const t of ['production', 'mirror', 'direct']) for (const b of ['releases', 'cache', 'docs']) await mkdir(path.join(trees, t, b), { recursive: true });
  const p = await scratchProject();
  const staging = nixKey('hello-staging-1');
  const production = nixKey('hello-production-1');
  await mkdir(path.join(p.dir, 'keys'), { recursive: true });
  await writeFile(path.join(p.dir, 'keys', 'staging.key'), staging.secret, { mode: 0o600 });
  await writeFile(path.join(p.dir, 'keys', 'production.key'), production.secret, { mode: 0o600 });
  const cache = (key: string) => ({ signingKeyFile: key, compression: 'zstd', storeOptions: { 'write-nar-listing': 'true' } });
  const s3Settings = { endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, checksums: 'WHEN_REQUIRED' };
  const tree = (t: string) => ({ releasesBucket: `file://${trees}/${t}/releases`, cacheBucket: `file://${trees}/${t}/cache`, docsBucket: `file://${trees}/${t}/docs` });
  await p.editConfig((c) => {
    c.environments = {
      staging: { releasesBucket: 's3://staging-releases', cacheBucket: 's3://staging-cache', docsBucket: 's3://staging-docs', s3: s3Settings, credentials: { source: 'embedded' }, cache: cache('keys/staging.key'), confirm: false, docker: docker(registries.staging) },
      production: {
        colour: 'red', ...tree('production'), cache: cache('keys/production.key'), confirm: true, docker: docker(registries.production),
        git: { remote: '../remote.git', gerrit: false },
        mirror: { fileLists: { hello: { root: `file://${trees}/production`, checksums: ['SHA256SUMS', 'manifest.nix'] } }, latestLinks: true },
      },
      mirror: { ...tree('mirror'), cache: cache('keys/production.key'), confirm: false, promote: { resign: false } },
      prods3: {
        releasesBucket: 's3://prods3-releases', cacheBucket: 's3://prods3-cache', docsBucket: 's3://prods3-docs', s3: s3Settings, credentials: { source: 'embedded' }, cache: cache('keys/production.key'), confirm: false,
        mirror: { latestLinks: true, fileLists: { releases: { root: 's3://prods3-releases', checksums: ['SHA256SUMS'] } } },
      },
      // upload straight to a file tree (no promote): the same planners and skip rules.
      direct: { ...tree('direct'), cache: cache('keys/production.key'), confirm: false, mirror: { latestLinks: true, fileLists: { direct: { root: `file://${trees}/direct/releases` } } } },
    };
  });
  p.git('add', '-A');
  p.git('commit', '-q', '-m', 'environments for promote');
  p.git('push', '-q', 'origin', 'main');
  await tagLikeReleng(p);
  const r = await releng(['build', '--json'], { cwd: p.dir });
  if (r.code !== 0) throw new Error(`build failed: ${r.stderr}`);
  const build = JSON.parse(r.stdout).result;
  const ctx = (flags: Partial<Flags> = {}, sink?: (s: string) => void) => contextIn(p.dir, flags, sink);
  return {
    p, s3, trees, registries, keys: { staging: staging.pub, production: production.pub }, build, ctx,
    async promote(version, flags, deps) {
      let log = '';
      try {
        const summary = await promote(await ctx({ noconfirm: true, ...flags }, (s) => { log += s; }), [version], deps);
        return { ok: true, summary, log };
      } catch (e) {
        return { ok: false, error: describeError(e), log };
      }
    },
    async uploadStaging() { await upload(await ctx({ environment: 'staging' })); },
    async upload(environment: string) { return upload(await ctx({ environment })); },
    async cleanup() {
      await registries.staging.stop();
      await registries.production.stop();
      await s3.stop();
      await p.cleanup();
      await rm(trees, { recursive: true, force: true });
    },
  };
}

/** Wraps the real writers; counts writes by key and throws (before writing) at the Nth write. */
export function countingWriters(failAt?: number) {
  const keys: string[] = [];
  const wrap = (real: Writers): Writers => ({
    ...real,
    s3: {
      put: async (req) => { if (failAt !== undefined && keys.length + 1 === failAt) throw new Error(`killed at ${req.key}`); keys.push(req.key); return real.s3!.put(req); },
      delete: async (b, k) => { keys.push(`delete ${k}`); return real.s3!.delete(b, k); },
      copy: async (a, b, o) => { if (failAt !== undefined && keys.length + 1 === failAt) throw new Error(`killed at ${b.key}`); keys.push(b.key); return real.s3!.copy(a, b, o); },
    },
  });
  return { keys, wrap };
}
