# The programs releng runs, pinned on the wrapper's PATH (and in the dev shell): `releng check`
# lists the same set (lib/phases/check.ts).
{ pkgs }:
{
  packages = with pkgs; [
    git nix skopeo xz zstd gnutar gzip coreutils
    util-linux # flock: one channel run at a time
    docker-distribution # the embedded registry of the local environment and `releng serve`
    gnupg dpkg rsync # signed APT repositories, Debian packages, mirrors
  ] ++ lib.optional (pkgs ? nix-eval-jobs) nix-eval-jobs;
  # Shell commands making DIR/NAME links for programs releng calls by their Debian name.
  aliases = dir: "ln -s ${pkgs.docker-distribution}/bin/registry ${dir}/docker-registry";
}
