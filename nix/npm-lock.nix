# Gives every package of package-lock.json its `resolved` tarball URL on an npm registry, so
# nixpkgs' importNpmLock can fetch it. Our lock file has no `resolved` URLs (npm's
# omit-lockfile-registry-resolved): where the tarballs come from is a parameter, not a fact of the
# lock. Builtins only, so releng's tests evaluate it with the Nix that is here.
{ lock, registry }:
let
  valid = builtins.isString registry && builtins.match "https?://[^ ]+" registry != null;
  base = if valid then builtins.head (builtins.match "(.*[^/])/*" registry) else "";
  lastOf = list: builtins.elemAt list (builtins.length list - 1);
  # node_modules/a/node_modules/@scope/name -> REGISTRY/@scope/name/-/name-VERSION.tgz (npm's tarball layout)
  tarballUrl = path: module:
    let
      parts = builtins.filter builtins.isString (builtins.split "node_modules/" path);
      name = lastOf parts;
      short = lastOf (builtins.filter builtins.isString (builtins.split "/" name));
    in "${base}/${name}/-/${short}-${module.version}.tgz";
  needsUrl = path: module: path != "" && !(module ? resolved) && !(module.link or false) && module ? integrity;
  missing = builtins.any (p: needsUrl p lock.packages.${p}) (builtins.attrNames lock.packages);
in
if missing && !valid then
  throw ''
    releng (nix/package.nix): npmRegistry is ${builtins.toJSON registry}, not the http(s) URL of an npm registry.
    package-lock.json has no `resolved` URLs, so releng must be told where the npm tarballs are. Either
      nix run github:OWNER/releng#releng -- --help                       (default: https://registry.npmjs.org)
      RELENG_NPM_REGISTRY=https://npm.example/ nix run --impure .#releng  (a mirror, from the environment)
      releng.override { npmRegistry = "https://npm.example/"; }          (in a flake or overlay)''
else
  lock // {
    packages = builtins.mapAttrs (path: module:
      if needsUrl path module then module // { resolved = tarballUrl path module; } else module) lock.packages;
  }
