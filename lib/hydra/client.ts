// A read-only Hydra client: JSON only (Accept: application/json), redirects followed
// (/eval/ID/job/NAME and .../latest-finished answer with one), and errors that name the URL.
import type { z } from 'zod';
import { ReleaseError } from '../core/errors.ts';
import { parseWith } from '../core/zod-errors.ts';
import { buildSchema, evalBuildsSchema, evalSchema, storePathsSchema, type HydraBuild, type HydraEval } from './schemas.ts';

/** What the channel planner reads from Hydra (an interface, so tests can point it at any server). */
export interface HydraReader {
  /** Base URL of the Hydra instance (no trailing slash), e.g. https://hydra.nixos.org. */
  readonly base: string;
  build(id: number): Promise<HydraBuild>;
  /** A build by URL (a /build/ID URL, or one that redirects to it); returns the final URL too. */
  buildAt(url: string): Promise<{ build: HydraBuild; url: string }>;
  evaluation(id: number): Promise<HydraEval>;
  storePaths(evalId: number): Promise<string[]>;
  /** The build of job NAME in evaluation ID (Hydra redirects /eval/ID/job/NAME to it). */
  jobInEval(evalId: number, job: string): Promise<HydraBuild>;
}

/** What `build --from-hydra` reads besides (issue 15). */
export interface HydraEvalReader extends HydraReader {
  /** An evaluation by URL: /eval/ID, or /jobset/P/J/latest-eval (Jobset.pm redirects it to the
   *  newest evaluation with new builds and none unfinished); returns the final URL too. */
  evaluationAt(url: string): Promise<{ evaluation: HydraEval; url: string }>;
  /** Every build of evaluation ID in one request (JobsetEval.pm all_builds, GET /eval/ID/builds). */
  evalBuilds(evalId: number): Promise<HydraBuild[]>;
}

export type FetchLike = typeof fetch;

/** Hydra answered with an HTTP error status (404: no such build/job, 5xx: Hydra is failing). */
export class HydraHttpError extends ReleaseError {
  constructor(readonly url: string, readonly status: number) {
    super(`Hydra answered HTTP ${status} for ${url}`,
      status === 404 ? 'check the build URL / job name; nothing was published' : 'Hydra is failing: retry later; nothing was published');
    this.name = 'HydraHttpError';
  }
}

/** How Hydra reads are retried: bounded attempts, exponential backoff with jitter, a timeout per attempt. */
export interface HydraRetry {
  /** Attempts in all (1 = no retry). */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Per attempt, headers and body together. */
  timeoutMs: number;
  /** Called before each retry (the phase logs it). */
  onRetry?: (message: string) => void;
}

export const defaultHydraRetry: HydraRetry = { attempts: 4, baseDelayMs: 500, maxDelayMs: 8000, timeoutMs: 60_000 };

/** A failure worth another attempt (5xx, reset, timeout, cut-off or unparsable body); the last one is thrown. */
class Retryable extends Error {
  constructor(readonly error: ReleaseError) { super(error.message); }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Fetches and validates one JSON document; every failure names the URL, and `expected` says what the
 * document should have been (e.g. "a Hydra build (Builds.pm as_json)"). 5xx answers, dropped or reset
 * connections, timeouts and bodies that are cut off or not valid JSON are retried (bounded, with
 * jitter); 4xx, HTML and schema mismatches are not (another try would answer the same).
 */
export async function getHydraJson<T extends z.ZodType>(url: string, schema: T, fetchImpl: FetchLike = fetch,
  opts: { retry?: Partial<HydraRetry>; expected?: string } = {}): Promise<{ data: z.infer<T>; url: string }> {
  const retry = { ...defaultHydraRetry, ...opts.retry };
  const expected = opts.expected ?? 'Hydra JSON';
  const attempts = Math.max(1, retry.attempts);
  for (let attempt = 1; ; attempt++) {
    try {
      return await getOnce(url, schema, fetchImpl, retry.timeoutMs, expected);
    } catch (e) {
      if (!(e instanceof Retryable)) throw e;
      if (attempt >= attempts) {
        const err = e.error;
        throw new ReleaseError(`${err.message} (${attempts} attempt${attempts === 1 ? '' : 's'})`, err.hint, { cause: err });
      }
      const delay = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      retry.onRetry?.(`${e.error.message}; retrying in ${Math.round(delay)} ms (attempt ${attempt + 1} of ${attempts})`);
      await sleep(delay);
    }
  }
}

function networkCode(e: any): string {
  if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') return 'timed out';
  return e?.cause?.code ?? e?.cause?.errors?.[0]?.code ?? e?.code ?? e?.cause?.message ?? e?.message ?? String(e);
}

async function getOnce<T extends z.ZodType>(url: string, schema: T, fetchImpl: FetchLike, timeoutMs: number, expected: string): Promise<{ data: z.infer<T>; url: string }> {
  const hintLater = 'Hydra or the network is failing: retry later; nothing was published';
  let res: Response;
  try {
    res = await fetchImpl(url, { headers: { Accept: 'application/json' }, redirect: 'follow', signal: AbortSignal.timeout(timeoutMs) });
  } catch (e: any) {
    throw new Retryable(new ReleaseError(`cannot reach Hydra at ${url} (${networkCode(e)})`, 'check the URL and that Hydra is up; nothing was published'));
  }
  const type = res.headers.get('content-type') ?? '';
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    const err = new HydraHttpError(url, res.status);
    if (res.status >= 500 || res.status === 429) throw new Retryable(err);
    throw err;
  }
  let text: string;
  try {
    text = await res.text();
  } catch (e: any) {
    const length = res.headers.get('content-length');
    throw new Retryable(new ReleaseError(`Hydra's answer for ${url} was cut off (${networkCode(e)}${length ? `; it announced ${length} bytes` : ''}): expected ${expected}`, hintLater));
  }
  if (!/json/i.test(type)) {
    const what = /html/i.test(type) || /^\s*</.test(text) ? 'HTML' : `"${type || 'no content type'}"`;
    throw new ReleaseError(`Hydra answered ${what} instead of JSON for ${url} (expected ${expected})`,
      'point releng at a Hydra API URL (e.g. https://hydra.example/build/ID); a proxy or login page may be in the way; nothing was published');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const tail = text.length > 60 ? `…${text.slice(-60)}` : text;
    throw new Retryable(new ReleaseError(`Hydra answered invalid JSON for ${url} (${(e as Error).message}; ${Buffer.byteLength(text)} bytes ending ${JSON.stringify(tail)}): expected ${expected}; the body was probably cut off`, hintLater));
  }
  return { data: parseWith(schema, json, `Hydra JSON from ${url} (expected ${expected})`, 'is this a Hydra of a supported version? nothing was published'), url: res.url || url };
}

const expectations = new Map<z.ZodType, string>([
  [buildSchema, 'a Hydra build (JSON object with id, nixname, jobsetevals, buildproducts)'],
  [evalSchema, 'a Hydra evaluation (JSON object with id and jobsetevalinputs)'],
  [evalBuildsSchema, "the evaluation's builds (a JSON array of Hydra builds)"],
  [storePathsSchema, "the evaluation's store paths (a JSON array of /nix/store paths)"],
]);

/** The base URL of the Hydra that serves an /eval/ID or /jobset/P/J[/latest-eval] URL (anything before it). */
export function hydraBaseOfEval(url: string): string | undefined {
  return /^(https?:\/\/.+?)\/(eval\/\d+|jobset\/[^/]+\/[^/]+(\/latest-eval)?)\/?$/.exec(url)?.[1];
}

/** The base URL of the Hydra that serves a /build/ID URL (anything before /build/). */
export function hydraBaseOf(buildUrl: string): string | undefined {
  const m = /^(https?:\/\/.+?)\/build\/\d+\/?$/.exec(buildUrl);
  return m?.[1];
}

export function hydraClient(base: string, fetchImpl: FetchLike = fetch, retry?: Partial<HydraRetry>): HydraEvalReader {
  const root = base.replace(/\/+$/, '');
  const get = <T extends z.ZodType>(url: string, schema: T) => getHydraJson(url, schema, fetchImpl, { retry, expected: expectations.get(schema) });
  return {
    base: root,
    async build(id) { return (await get(`${root}/build/${id}`, buildSchema)).data; },
    async buildAt(url) {
      const r = await get(url, buildSchema);
      return { build: r.data, url: r.url };
    },
    async evaluation(id) { return (await get(`${root}/eval/${id}`, evalSchema)).data; },
    async storePaths(evalId) { return (await get(`${root}/eval/${evalId}/store-paths`, storePathsSchema)).data; },
    async jobInEval(evalId, job) {
      return (await get(`${root}/eval/${evalId}/job/${encodeURIComponent(job)}`, buildSchema)).data;
    },
    async evaluationAt(url) {
      const r = await get(url, evalSchema);
      return { evaluation: r.data, url: r.url };
    },
    async evalBuilds(evalId) { return (await get(`${root}/eval/${evalId}/builds`, evalBuildsSchema)).data; },
  };
}
