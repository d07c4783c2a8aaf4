# `nix flake check`: the unit tests (with git, which they run, and the dev dependencies), the
# help of the built package, and the Nix expressions that need no network.
{ pkgs, releng }:
let
  dev = releng.override { withDevDependencies = true; };
in
{
  inherit releng;
  unit-tests = pkgs.runCommand "releng-unit-tests" { nativeBuildInputs = [ pkgs.nodejs_20 pkgs.nix pkgs.git ]; } ''
    cp -r ${dev}/lib/releng src
    chmod -R u+w src
    cd src
    cp -r ${../test} test
    cp ${../vitest.config.ts} vitest.config.ts
    export HOME=$TMPDIR GIT_AUTHOR_NAME=check GIT_AUTHOR_EMAIL=check@example.invalid GIT_COMMITTER_NAME=check GIT_COMMITTER_EMAIL=check@example.invalid
    export NIX_CONFIG="experimental-features = nix-command flakes"
    node_modules/.bin/vitest run test/unit
    touch $out
  '';
  help = pkgs.runCommand "releng-help" { } ''
    ${releng}/bin/releng --version > $out
    ${releng}/bin/releng --help >> $out
    ${releng}/bin/releng upload --help >> $out
    grep -q 'Usage: releng upload' $out
  '';
}
