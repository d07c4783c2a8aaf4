# `nix flake check`: the unit tests and the Nix expressions that need no network.
{ pkgs, releng }:
{
  inherit releng;
  unit-tests = pkgs.runCommand "releng-unit-tests" { nativeBuildInputs = [ pkgs.nodejs_20 pkgs.nix ]; } ''
    cp -r ${releng}/lib/releng src
    chmod -R u+w src
    cd src
    cp -r ${../test} test
    cp ${../vitest.config.ts} vitest.config.ts
    export HOME=$TMPDIR
    node_modules/.bin/vitest run test/unit
    touch $out
  '';
  help = pkgs.runCommand "releng-help" { } ''
    ${releng}/bin/releng --help > $out
    grep -q 'releng upload' $out || ${releng}/bin/releng upload --help >> $out
  '';
}
