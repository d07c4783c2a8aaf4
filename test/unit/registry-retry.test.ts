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

describe('registry writes (issue 25): retried like reads', () => {
  it('a manifest PUT after a 503 and a reset lands; a blob upload whose POST answers 500 and whose PUT answers 502 starts a new session and lands', async () => {
    const t = scripted([503, 'reset']);
    expect(await registryClient({ host: 'r.example', scheme: 'http', transport: t }).putManifest('x/y', 'sha256:abc', Buffer.from('{}'), 'application/json')).toBe('sha256:abc');
    expect(t.calls.map((c) => c.method)).toEqual(['PUT', 'PUT', 'PUT']);
    // POST 500, POST 202 (Location), PUT 502, POST 202, PUT 201.
    const calls: HttpRequest[] = [];
    const answers: HttpResponse[] = [
      { status: 500, headers: {}, body: Buffer.alloc(0) },
      { status: 202, headers: { location: '/v2/x/y/blobs/uploads/u1?_state=a' }, body: Buffer.alloc(0) },
      { status: 502, headers: {}, body: Buffer.alloc(0) },
      { status: 202, headers: { location: 'http://r.example/v2/x/y/blobs/uploads/u2?_state=b' }, body: Buffer.alloc(0) },
      { status: 201, headers: { 'docker-content-digest': 'sha256:d' }, body: Buffer.alloc(0) },
    ];
    const transport: Transport = async (req) => { calls.push(req); return answers.shift()!; };
    await registryClient({ host: 'r.example', scheme: 'http', transport }).uploadBlob('x/y', 'sha256:d', '/dev/null', 0);
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      'POST http://r.example/v2/x/y/blobs/uploads/',
      'POST http://r.example/v2/x/y/blobs/uploads/',
      'PUT http://r.example/v2/x/y/blobs/uploads/u1?_state=a&digest=sha256%3Ad',
      'POST http://r.example/v2/x/y/blobs/uploads/',
      'PUT http://r.example/v2/x/y/blobs/uploads/u2?_state=b&digest=sha256%3Ad',
    ]);
  });

  it('a 400 on a blob upload is not retried and names the URL', async () => {
    const calls: HttpRequest[] = [];
    const answers: HttpResponse[] = [
      { status: 202, headers: { location: '/v2/x/y/blobs/uploads/u1' }, body: Buffer.alloc(0) },
      { status: 400, headers: {}, body: Buffer.from('{"errors":[{"code":"DIGEST_INVALID"}]}') },
    ];
    const transport: Transport = async (req) => { calls.push(req); return answers.shift()!; };
    await expect(registryClient({ host: 'r.example', scheme: 'http', transport }).uploadBlob('x/y', 'sha256:d', '/dev/null', 0))
      .rejects.toThrow('registry r.example: PUT http://r.example/v2/x/y/blobs/uploads/u1 (blob upload x/y@sha256:d) answered HTTP 400: {"errors":[{"code":"DIGEST_INVALID"}]}');
    expect(calls).toHaveLength(2);
  });
});
