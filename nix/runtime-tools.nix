# The programs releng runs, pinned on the wrapper's PATH (and in the dev shell). `programs` maps
# each program name the code executes to the nixpkgs package providing it:
# test/unit/nix-package.test.ts scans lib/, scripts/ and bin/ for every program executed and fails
# when one is missing here; `releng check` lists the same tools (lib/phases/check.ts).
{ pkgs }:
let
  programs = with pkgs; {
    git = git;
    nix = nix; nix-build = nix; nix-instantiate = nix; nix-store = nix; nix-env = nix; # nix-env: the channel's packages (programs.sqlite)
    skopeo = skopeo; # container images
    docker-registry = docker-distribution; # the embedded registry (local environment, serve): linked by `aliases`
    xz = xz; zstd = zstd; bzip2 = bzip2; gzip = gzip; tar = gnutar; # tarballs, cache compressions
    chmod = coreutils; dirname = coreutils; readlink = coreutils; head = coreutils; sleep = coreutils; # build; bin/releng; the registry watcher
    find = findutils; # bin/releng (is the bundle older than the sources?)
    flock = util-linux; # one run per checkout, one channel run at a time
    gpg = gnupg; gpgv = gnupg; gpgconf = gnupg; gpg-connect-agent = gnupg; # signed APT repositories; the agent gpg starts is stopped
    dpkg = dpkg; dpkg-deb = dpkg; apt-ftparchive = apt; # Debian packages and their indexes
    rsync = rsync; # mirrors
    ssh-keygen = openssh; # lock: SSH-signed commits (git's gpg.format=ssh)
    bash = bash; # zx's $ (the flake's apps, scripts/*.mjs)
    sh = bash; # the embedded registry runs under a watching sh (lib/local/registry-server.ts)
  } // (if pkgs ? nix-eval-jobs then { nix-eval-jobs = pkgs.nix-eval-jobs; } else { });
  # Each package once, in a stable order.
  packages = builtins.foldl' (acc: p: if builtins.elem p acc then acc else acc ++ [ p ]) [ ] (builtins.attrValues programs);
in
{
  inherit programs packages;
  # Shell commands making DIR/NAME links for programs releng calls by their Debian name.
  aliases = dir: "ln -s ${pkgs.docker-distribution}/bin/registry ${dir}/docker-registry";
}
