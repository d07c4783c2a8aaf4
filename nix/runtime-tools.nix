# The programs releng runs, pinned on the wrapper's PATH (and in the dev shell).
{ pkgs }:
with pkgs; [ git nix skopeo xz zstd gnutar gzip coreutils ]
  ++ lib.optional (pkgs ? nix-eval-jobs) nix-eval-jobs
