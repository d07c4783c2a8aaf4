// Registry reads are retried like writes (issue 9): 5xx, 429 and dropped connections, bounded and
// jittered; the final error names the URL. A scripted Transport is the registry here (the client
// takes any Transport; the real docker-registry is exercised in test/integration/images.test.ts).
import { describe, expect, it } from 'vitest';
import { registryClient, type HttpRequest, type HttpResponse, type Transport } from '../../lib/oci/registry.ts';

function scripted(answers: Array<number | 'reset'>): Transport & { calls: HttpRequest[] } {
  const calls: HttpRequest[] = [];
  const t = (async (req: HttpRequest): Promise<HttpResponse> => {
    calls.push(req);
    const a = answers.shift() ?? 200;
    if (a === 'reset') throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    return { status: a, headers: a === 200 ? { 'docker-content-digest': 'sha256:abc', 'content-type': 'application/vnd.oci.image.index.v1+json', 'content-length': '42' } : {}, body: Buffer.alloc(0) };
  }) as Transport & { calls: HttpRequest[] };
  t.calls = calls;
  return t;
}

describe('registry reads', () => {
  it('HEAD of a manifest after 503, a reset and 429: answered', async () => {
    const transport = scripted([503, 'reset', 429]);
    const head = await registryClient({ host: 'r.example', scheme: 'http', transport }).headManifest('x/y', '1.0');
    expect(head).toEqual({ digest: 'sha256:abc', mediaType: 'application/vnd.oci.image.index.v1+json', size: 42 });
    expect(transport.calls).toHaveLength(4);
  });

  it('a 404 is an answer, not a failure; a 400 is not retried', async () => {
    const t404 = scripted([404]);
    expect(await registryClient({ host: 'r.example', scheme: 'http', transport: t404 }).headManifest('x/y', '1.0')).toBeUndefined();
    const t400 = scripted([400]);
    await expect(registryClient({ host: 'r.example', scheme: 'http', transport: t400 }).getManifest('x/y', '1.0')).rejects.toThrow('answered HTTP 400');
    expect(t400.calls).toHaveLength(1);
  });

  it('gives up after 5 attempts, naming the URL', async () => {
    const transport = scripted([500, 500, 500, 500, 500]);
    const err = await registryClient({ host: 'r.example', scheme: 'http', transport }).headManifest('x/y', '1.0').then(() => undefined, (e) => e);
    expect(err?.message).toContain('reading HEAD http://r.example/v2/x/y/manifests/1.0; gave up after 5 attempts');
    expect(transport.calls).toHaveLength(5);
  });
});
