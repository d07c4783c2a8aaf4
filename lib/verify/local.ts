// Local knowledge (VerifyScope.local) gathered from several sources of one run: upload's cache
// staging (lib/upload/cache.ts cacheKnowledge), its release and docs puts. A key is answered by the
// first source that knows it; written() holds when any source saw the write acknowledged.
import type { LocalKnowledge } from './types.ts';

export function mergeKnowledge(...sources: (LocalKnowledge | undefined)[]): LocalKnowledge | undefined {
  const ks = sources.filter((k): k is LocalKnowledge => !!k);
  if (ks.length <= 1) return ks[0];
  return {
    md5: (b, k) => { for (const s of ks) { const m = s.md5(b, k); if (m) return m; } return undefined; },
    bytes: async (b, k) => {
      for (const s of ks) if (s.md5(b, k) && s.bytes) { const got = await s.bytes(b, k); if (got) return got; }
      return undefined;
    },
    written: (b, k) => ks.some((s) => s.written(b, k)),
    // Any source that vouches for bytes of this MD5 (whichever source gave them: the same bytes).
    signedBy: (b, k, md5) => { for (const s of ks) { const key = s.signedBy?.(b, k, md5); if (key) return key; } return undefined; },
  };
}
