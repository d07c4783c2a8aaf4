# releng as a Nix package: the production npm dependencies from package-lock.json (importNpmLock:
# no npm hash to compute), the esbuild bundle (`npm run build`), and a wrapper whose PATH has every
# program a releng command runs.
{ lib, pkgs, buildNpmPackage, importNpmLock, nodejs_20, makeWrapper
  # Where the npm tarballs are (package-lock.json has no `resolved` URLs; nix/npm-lock.nix).
  # Default: $RELENG_NPM_REGISTRY when evaluated with --impure, else the public npm registry.
, npmRegistry ? (let fromEnv = builtins.getEnv "RELENG_NPM_REGISTRY"; in if fromEnv != "" then fromEnv else "https://registry.npmjs.org")
  # Keep devDependencies and the TypeScript sources (nix/checks.nix runs the unit tests with them).
, withDevDependencies ? false
}:
let
  packageJSON = lib.importJSON ../package.json;
  withResolved = import ./npm-lock.nix { lock = lib.importJSON ../package-lock.json; registry = npmRegistry; };
  tools = import ./runtime-tools.nix { inherit pkgs; };
  runtimePath = lib.makeBinPath (tools.packages ++ [ nodejs_20 ]);
in
buildNpmPackage {
  pname = "releng";
  inherit (packageJSON) version;
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [ ../package.json ../package-lock.json ../tsconfig.json ../bin ../lib ../scripts ../nix ];
  };
  nodejs = nodejs_20;
  npmDeps = importNpmLock { npmRoot = ../.; packageLock = withResolved; };
  npmConfigHook = importNpmLock.npmConfigHook;
  # `npm run build`: esbuild bundles scripts/releng.ts into dist/lib/ (bin/releng runs the bundle).
  npmBuildScript = "build";
  nativeBuildInputs = [ makeWrapper ];
  installPhase = ''
    runHook preInstall
    ${lib.optionalString (!withDevDependencies) "npm prune --omit=dev --offline --no-audit --no-fund"}
    mkdir -p $out/lib/releng/scripts $out/bin
    cp -r package.json bin dist nix node_modules $out/lib/releng/
    cp lib/local/s3rver-child.mjs $out/lib/releng/dist/lib/
    cp scripts/*.mjs $out/lib/releng/scripts/
    ${lib.optionalString withDevDependencies "cp -r lib scripts tsconfig.json $out/lib/releng/"}
    # Programs releng runs under another name than nixpkgs gives them (docker-registry: distribution's `registry`).
    mkdir -p $out/lib/releng/tools
    ${tools.aliases "$out/lib/releng/tools"}
    wrap() { makeWrapper "$1" "$2" --prefix PATH : "$out/lib/releng/tools:${runtimePath}" "''${@:3}"; }
    wrap $out/lib/releng/bin/releng $out/bin/releng
    # The flake's apps: zx entry scripts (scripts/*.mjs) that shell out to releng and nix.
    wrap ${nodejs_20}/bin/node $out/bin/releng-release --add-flags "$out/lib/releng/node_modules/zx/build/cli.js $out/lib/releng/scripts/release.mjs" --prefix PATH : $out/bin
    runHook postInstall
  '';
  meta = {
    description = "Release engineering for Nix projects: plan every publish, then apply it";
    mainProgram = "releng";
    license = lib.licenses.mit;
  };
}
