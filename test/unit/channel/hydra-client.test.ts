// Hydra reads: which failures are retried (5xx, resets, timeouts, cut-off or unparsable bodies) and
// which are not (4xx, HTML, schema mismatches); the count is bounded; errors name URL and expectation.
import { describe, expect, it } from 'vitest';
import { getHydraJson } from '../../../lib/hydra/client.ts';
import { buildSchema } from '../../../lib/hydra/schemas.ts';

const build = { id: 5, finished: 1, buildstatus: 0, nixname: 'nixos-26.05.1.a', project: 'nixos', jobset: 'j', job: 'tested', jobsetevals: [7], buildoutputs: {}, buildproducts: {} };
const retry = { baseDelayMs: 1, maxDelayMs: 2, attempts: 3 };

/** A fetch answering from a script of responses (Response objects or thrown errors), counting calls. */
function scripted(answers: Array<() => Response>) {
  let calls = 0;
  const f = (async () => answers[Math.min(calls++, answers.length - 1)]!()) as unknown as typeof fetch;
  return { f, calls: () => calls };
}
const json = (body: unknown, status = 200) => () => new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
const reset = () => { throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } }); };

describe('getHydraJson', () => {
  it('retries 5xx and resets, then returns the document', async () => {
    const s = scripted([json({}, 502), reset, json(build)]);
    const retries: string[] = [];
    const r = await getHydraJson('http://h/build/5', buildSchema, s.f, { retry: { ...retry, onRetry: (m) => retries.push(m) }, expected: 'a build' });
    expect(r.data.id).toBe(5);
    expect(s.calls()).toBe(3);
    expect(retries[0]).toMatch(/^Hydra answered HTTP 502 for http:\/\/h\/build\/5; retrying in \d+ ms \(attempt 2 of 3\)$/);
    expect(retries[1]).toContain('cannot reach Hydra at http://h/build/5 (ECONNRESET)');
  });

  it('gives up after the bounded number of attempts, naming the URL and what was expected', async () => {
    const s = scripted([json('{"id": 5, "nixna')]);
    await expect(getHydraJson('http://h/build/5', buildSchema, s.f, { retry, expected: 'a Hydra build' }))
      .rejects.toThrow(/^Hydra answered invalid JSON for http:\/\/h\/build\/5 \(.*\): expected a Hydra build; the body was probably cut off \(3 attempts\)$/);
    expect(s.calls()).toBe(3);
  });

  it('does not retry 4xx, HTML or a schema mismatch', async () => {
    for (const answer of [json({ error: 'nope' }, 404), () => new Response('<html></html>', { headers: { 'content-type': 'text/html' } }), json({ id: 'five' })]) {
      const s = scripted([answer]);
      await expect(getHydraJson('http://h/build/5', buildSchema, s.f, { retry, expected: 'a Hydra build' })).rejects.toThrow('http://h/build/5');
      expect(s.calls()).toBe(1);
    }
  });

  it('a read that hangs times out and is retried', async () => {
    let calls = 0;
    const hanging = ((_url: string, init: RequestInit) => {
      calls++;
      if (calls === 2) return Promise.resolve(json(build)());
      return new Promise((_resolve, reject) => init.signal!.addEventListener('abort', () => reject(init.signal!.reason)));
    }) as unknown as typeof fetch;
    const retries: string[] = [];
    const r = await getHydraJson('http://h/build/5', buildSchema, hanging, { retry: { ...retry, timeoutMs: 50, onRetry: (m) => retries.push(m) } });
    expect(r.data.id).toBe(5);
    expect(retries).toHaveLength(1);
    expect(retries[0]).toContain('cannot reach Hydra at http://h/build/5 (timed out)');
  });
});
