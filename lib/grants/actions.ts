// The upload of a contribution through a presigned POST form (grant method `presigned-post`):
// plain data planned by `releng contribute`, executed only by apply.ts through a PostWriter.
import { openAsBlob } from 'node:fs';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { ApplyEnv, HandlerMap } from '../core/apply.ts';
import { humanBytes } from '../core/log.ts';

export interface GrantPost {
  kind: 'grant.post';
  /** Form URL (http://HOST/BUCKET); fields are the grant's, not shown. */
  url: string;
  bucket: string;
  key: string;
  file: string;
  size: number;
  sha256: string;
  grantId: string;
  /** Index of the grant's form whose glob covers this name. */
  form: number;
}

export type GrantAction = GrantPost;

/** What apply may do with POST forms. */
export interface PostWriter {
  post(a: GrantPost): Promise<void>;
}

export const grantRenderers = {
  'grant.post': (a: GrantPost) => `s3 POST s3://${a.bucket}/${a.key} (${humanBytes(a.size)}, sha256 ${a.sha256.slice(0, 12)}, grant ${a.grantId})`,
};

/** The writer presigned-POST uploads use (contribute). */
export interface PostWriters {
  post?: PostWriter;
}

export const grantHandlers: HandlerMap<GrantAction, PostWriters> = {
  'grant.post': async (a, env: ApplyEnv<PostWriters>) => {
    if (!env.writers.post) throw new Error('internal: plan has POST uploads but apply got no POST writer');
    await env.writers.post.post(a);
    env.onBytes(a.size);
  },
};

/** base64 MD5 of a file (POST forms carry Content-MD5; S3 checks it, RGW 16 ignores it). */
export async function md5Base64(file: string): Promise<string> {
  const h = createHash('md5');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('base64');
}

/** A PostWriter over fetch + FormData: the form's fields, then ours, then the file (last, as S3 requires). */
export function postWriter(forms: Array<{ url: string; fields: Record<string, string> }>, endpointOverride?: string): PostWriter {
  return {
    async post(a) {
      const form = forms[a.form]!;
      const fd = new FormData();
      for (const [k, v] of Object.entries(form.fields)) fd.append(k, v);
      fd.append('key', a.key);
      fd.append('Content-Type', 'application/octet-stream');
      fd.append('Content-MD5', await md5Base64(a.file));
      fd.append('x-amz-meta-sha256', a.sha256);
      fd.append('file', await openAsBlob(a.file), a.key.split('/').pop());
      let url = form.url;
      if (endpointOverride) url = endpointOverride.replace(/\/$/, '') + new URL(form.url).pathname;
      let res: Response;
      try {
        res = await fetch(url, { method: 'POST', body: fd });
      } catch (e: any) {
        throw Object.assign(new Error(`cannot reach ${new URL(url).origin}: ${e?.cause?.code ?? e.message}`), { retryable: true });
      }
      const body = await res.text();
      if (res.status >= 300) {
        const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? `HTTP${res.status}`;
        const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? '';
        throw Object.assign(new Error(`${code}${message ? `: ${message}` : ''}`), { name: code, $metadata: { httpStatusCode: res.status } });
      }
    },
  };
}
