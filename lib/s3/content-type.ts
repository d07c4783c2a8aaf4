// Content type and encoding of each published file (prior art: the Lix scripts and the NixOS mirror).

export interface ContentHeaders {
  contentType: string;
  contentEncoding?: string;
}

const byName: Array<[RegExp, ContentHeaders]> = [
  [/\.json\.br$/, { contentType: 'application/json', contentEncoding: 'br' }],
  [/(^|\/)(SHA256SUMS|src-url|binary-cache-url|git-revision|nix-cache-info)$/, { contentType: 'text/plain' }],
  [/\.(sha256|txt|nix|narinfo|ls)$/, { contentType: 'text/plain' }],
  [/\.html?$/, { contentType: 'text/html' }],
  [/\.css$/, { contentType: 'text/css' }],
  [/\.m?js$/, { contentType: 'text/javascript' }],
  [/\.json$/, { contentType: 'application/json' }],
  [/\.svg$/, { contentType: 'image/svg+xml' }],
  [/\.png$/, { contentType: 'image/png' }],
  [/\.jpe?g$/, { contentType: 'image/jpeg' }],
  [/\.woff2$/, { contentType: 'font/woff2' }],
  [/\.tar\.xz$/, { contentType: 'application/x-xz' }],
  [/\.xz$/, { contentType: 'application/x-xz' }],
  [/\.tar\.gz$|\.tgz$/, { contentType: 'application/gzip' }],
  [/\.tar\.zst$|\.zst$/, { contentType: 'application/zstd' }],
  [/\.iso$/, { contentType: 'application/octet-stream' }],
  [/\.torrent$/, { contentType: 'application/x-bittorrent' }],
];

/** Headers for a key, by its file name; application/octet-stream when unknown. */
export function contentHeadersFor(key: string): ContentHeaders {
  for (const [re, h] of byName) if (re.test(key)) return h;
  return { contentType: 'application/octet-stream' };
}
