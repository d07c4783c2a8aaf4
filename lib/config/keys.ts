// What a bucket name, a prefix or an object key may hold (issue 9). S3 servers and the HTTP
// stack between them resolve `.` and `..` in request paths (`s3://rel/../cache` would publish into
// bucket `cache`), and `%`, `?`, `#`, backslashes and control characters mean different things to
// different clients (Nix's HTTP binary cache, browsers, CDNs). Such values are refused where they
// enter: the config when it loads, the plan before any write.

/** Why a single key or prefix segment is refused, or undefined when it is fine. */
export function segmentProblem(seg: string): string | undefined {
  if (seg === '') return 'an empty segment (two slashes in a row)';
  if (seg === '.' || seg === '..') return `a "${seg}" segment`;
  // eslint-disable-next-line no-control-regex
  const control = /[\u0000-\u001f\u007f]/.exec(seg);
  if (control) return control[0] === '\u0000' ? 'a NUL byte' : `a control character (U+${control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')})`;
  const bad = /[%?#\\]/.exec(seg);
  if (bad) return `"${bad[0]}"`;
  return undefined;
}

/** Why an object key is refused: a problem in any of its `/`-separated segments. */
export function keyProblem(key: string): string | undefined {
  if (key === '') return 'an empty key';
  for (const seg of key.split('/')) {
    const p = segmentProblem(seg);
    if (p) return `${p} in ${JSON.stringify(key)}`;
  }
  return undefined;
}

/** Why a prefix (as written after the bucket in an s3:// URL) is refused; one trailing slash is allowed. */
export function prefixProblem(prefix: string): string | undefined {
  if (prefix === '' || prefix === '/') return undefined;
  return keyProblem(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}

/** Why a bucket name is refused (S3's naming rules: 3–63 of a-z 0-9 . -, no `..`, not an IP address). */
export function bucketProblem(bucket: string): string | undefined {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) return `bucket name ${JSON.stringify(bucket)} is not 3–63 characters of a-z, 0-9, "." and "-"`;
  if (bucket.includes('..')) return `bucket name ${JSON.stringify(bucket)} contains ".."`;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return `bucket name ${JSON.stringify(bucket)} looks like an IP address`;
  return undefined;
}

/** Why an `s3://BUCKET[/PREFIX]` URL is refused. */
export function s3UrlProblem(url: string): string | undefined {
  if (!url.startsWith('s3://')) return 'expected s3:// URL (s3://BUCKET or s3://BUCKET/PREFIX)';
  const rest = url.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const b = bucketProblem(bucket);
  if (b) return b;
  if (slash < 0) return undefined;
  const p = prefixProblem(rest.slice(slash + 1));
  return p ? `the prefix has ${p}` : undefined;
}
