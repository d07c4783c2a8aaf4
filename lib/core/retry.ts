// Bounded, jittered retries for every network call, reads as well as writes (issue 9): one place
// that says what is transient, used by apply.ts (writes), the S3 store (HEAD, LIST, GET, bucket
// checks), the registry client and git ls-remote. Kept apart from apply.ts so readers need not
// import the executor (and to avoid an import cycle through lib/s3/store.ts).

/** How many tries (first included) and the base of the exponential backoff. */
export interface RetryPolicy {
  attempts: number;
  backoffMs: number;
}

/** The default for reads and writes: 5 tries, 200 ms doubling, each delay jittered to 50–150 %. */
export const defaultRetry: RetryPolicy = { attempts: 5, backoffMs: 200 };

/** 5xx, SlowDown/throttling and dropped connections are worth another try; the rest is not. */
export function isRetryableS3Error(e: any): boolean {
  if (e?.retryable === true) return true;
  const status = e?.$metadata?.httpStatusCode;
  if (typeof status === 'number' && (status >= 500 || status === 429)) return true;
  const name = e?.name ?? '';
  if (['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'InternalError', 'ServiceUnavailable', 'TimeoutError', 'ConditionalRequestConflict', 'BadDigest', 'XAmzContentSHA256Mismatch'].includes(name)) return true;
  const code = e?.code ?? e?.cause?.code ?? '';
  return ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'].includes(code)
    || /socket hang up|other side closed|fetch failed/i.test(e?.message ?? '');
}

/** Is this failure worth another try? (5xx, throttling, dropped connections, timeouts; never 4xx). */
export function isRetryable(e: unknown): boolean {
  return isRetryableS3Error(e) || (e as any)?.retryable === true;
}

/** Runs `fn` up to `attempts` times while it fails with a retryable error. */
export async function withRetries<T>(fn: () => Promise<T>, attempts: number, backoffMs: number, onRetry?: (e: unknown, n: number) => void): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await fn();
    } catch (e) {
      if (n >= attempts || !isRetryable(e)) {
        if (n > 1 && e && typeof e === 'object') (e as any).attempts = n;
        throw e;
      }
      onRetry?.(e, n);
      const delay = backoffMs * 2 ** (n - 1);
      await new Promise((r) => setTimeout(r, delay / 2 + Math.random() * delay));
    }
  }
}

/**
 * A read, retried; its final failure says what was being read from where and how often it was
 * tried (`describe`: e.g. "HEAD s3://bucket/key at http://host").
 */
export function retriedRead<T>(describe: string, fn: () => Promise<T>, policy: RetryPolicy = defaultRetry): Promise<T> {
  return retried('reading', describe, fn, policy);
}

/**
 * A write that may be repeated (a PUT of the same bytes, a new upload session), retried as reads
 * are; its final failure says what was written where and how often it was tried.
 */
export function retriedWrite<T>(describe: string, fn: () => Promise<T>, policy: RetryPolicy = defaultRetry): Promise<T> {
  return retried('writing', describe, fn, policy);
}

/** fn retried; its final failure names what was being read or written, and how often it was tried. */
async function retried<T>(doing: 'reading' | 'writing', describe: string, fn: () => Promise<T>, policy: RetryPolicy): Promise<T> {
  try {
    return await withRetries(fn, policy.attempts, policy.backoffMs);
  } catch (e: any) {
    const n = e?.attempts;
    if (n > 1 && e instanceof Error && !e.message.includes('attempts')) {
      e.message = `${e.message} (${doing} ${describe}; gave up after ${n} attempts)`;
    }
    throw e;
  }
}
