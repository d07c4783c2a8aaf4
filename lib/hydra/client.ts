// A read-only Hydra client: JSON only (Accept: application/json), redirects followed
// (/eval/ID/job/NAME and .../latest-finished answer with one), and errors that name the URL.
import type { z } from 'zod';
import { ReleaseError } from '../errors.ts';
import { parseWith } from '../zod-errors.ts';
import { buildSchema, evalSchema, storePathsSchema, type HydraBuild, type HydraEval } from './schemas.ts';

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

export type FetchLike = typeof fetch;

/** Hydra answered with an HTTP error status (404: no such build/job, 5xx: Hydra is failing). */
export class HydraHttpError extends ReleaseError {
  constructor(readonly url: string, readonly status: number) {
    super(`Hydra answered HTTP ${status} for ${url}`,
      status === 404 ? 'check the build URL / job name; nothing was published' : 'Hydra is failing: retry later; nothing was published');
    this.name = 'HydraHttpError';
  }
}

/** Fetches and validates one JSON document; every failure names the URL and what to check. */
export async function getHydraJson<T extends z.ZodType>(url: string, schema: T, fetchImpl: FetchLike = fetch): Promise<{ data: z.infer<T>; url: string }> {
  let res: Response;
  try {
    res = await fetchImpl(url, { headers: { Accept: 'application/json' }, redirect: 'follow' });
  } catch (e: any) {
    const code = e?.cause?.code ?? e?.cause?.errors?.[0]?.code ?? e?.cause?.message ?? e?.message;
    throw new ReleaseError(`cannot reach Hydra at ${url} (${code})`, 'check the URL and that Hydra is up; nothing was published');
  }
  const type = res.headers.get('content-type') ?? '';
  if (!res.ok) {
    await res.body?.cancel();
    throw new HydraHttpError(url, res.status);
  }
  const text = await res.text();
  if (!/json/i.test(type)) {
    const what = /html/i.test(type) || /^\s*</.test(text) ? 'HTML' : `"${type || 'no content type'}"`;
    throw new ReleaseError(`Hydra answered ${what} instead of JSON for ${url}`,
      'point releng at a Hydra API URL (e.g. https://hydra.example/build/ID); a proxy or login page may be in the way; nothing was published');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ReleaseError(`Hydra answered invalid JSON for ${url}: ${(e as Error).message}`, 'retry later; nothing was published');
  }
  return { data: parseWith(schema, json, `Hydra JSON from ${url}`, 'is this a Hydra of a supported version? nothing was published'), url: res.url || url };
}

/** The base URL of the Hydra that serves a /build/ID URL (anything before /build/). */
export function hydraBaseOf(buildUrl: string): string | undefined {
  const m = /^(https?:\/\/.+?)\/build\/\d+\/?$/.exec(buildUrl);
  return m?.[1];
}

export function hydraClient(base: string, fetchImpl: FetchLike = fetch): HydraReader {
  const root = base.replace(/\/+$/, '');
  const get = <T extends z.ZodType>(url: string, schema: T) => getHydraJson(url, schema, fetchImpl);
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
  };
}
