// The lean S3 path's encodings (issue 6): keys as S3 canonical URIs, listing XML back to strings.
import { describe, expect, it } from 'vitest';
import { encodeKey, unescapeXml } from '../../lib/s3/lean-put.ts';

describe('lean S3 encodings', () => {
  it('encodes keys as SigV4 canonical URIs: everything but unreserved characters and /', () => {
    expect(encodeKey('a b/c+d/é (1)!.html')).toBe('a%20b/c%2Bd/%C3%A9%20%281%29%21.html');
    expect(encodeKey("x/~y_z-1.2/*'q'")).toBe('x/~y_z-1.2/%2A%27q%27');
    expect(encodeKey('nar/abc.nar.zst')).toBe('nar/abc.nar.zst');
  });

  it('decodes the entities S3 uses in listing XML', () => {
    expect(unescapeXml('a&amp;b&lt;c&gt;d&quot;e&apos;f')).toBe('a&b<c>d"e\'f');
    expect(unescapeXml('&#233;&#x41;&#x1F600;')).toBe('éA😀');
    expect(unescapeXml('&amp;amp;')).toBe('&amp;');
  });

  it('takes the fast paths only where they give the same string: no entity, or a quoted ETag', () => {
    expect(unescapeXml('manual/index.html')).toBe('manual/index.html');
    expect(unescapeXml('&quot;0123abcd-3&quot;')).toBe('"0123abcd-3"');
    expect(unescapeXml('&quot;a&amp;b&quot;')).toBe('"a&b"');
    expect(unescapeXml('&quot;&quot;')).toBe('""');
    expect(unescapeXml('&quot;')).toBe('"');
    expect(unescapeXml('&quot;x&lt;&quot;')).toBe('"x<"');
  });
});
