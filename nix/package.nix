# releng as a Nix package: the npm dependencies from package-lock.json (importNpmLock: no npm
# hash to compute), the TypeScript run by tsx, and a wrapper whose PATH has every tool releng runs.
{ lib, pkgs, buildNpmPackage, importNpmLock, nodejs_20, makeWrapper
  # Our package-lock.json is written without `resolved` URLs (npm's omit-lockfile-registry-resolved),
  # so importNpmLock is told where the tarballs live. Set it to your npm registry's base URL, e.g. with
  # `nix build --impure` and RELENG_NPM_REGISTRY in the environment, or `.override { npmRegistry = ...; }`.
, npmRegistry ? builtins.getEnv "RELENG_NPM_REGISTRY"
}:
let
  packageJSON = lib.importJSON ../package.json;
  lock = lib.importJSON ../package-lock.json;
  # node_modules/@scope/name -> REGISTRY/@scope/name/-/name-VERSION.tgz (the registry's tarball layout)
  tarballUrl = path: module:
    let
      name = lib.removePrefix "node_modules/" (lib.last (lib.splitString "/node_modules/" ("/" + path)));
      base = lib.last (lib.splitString "/" name);
    in "${lib.removeSuffix "/" npmRegistry}/${name}/-/${base}-${module.version}.tgz";
  withResolved = lock // {
    packages = lib.mapAttrs (path: module:
      if path == "" || module ? resolved || module.link or false || !(module ? integrity) then module
      else
        assert lib.assertMsg (npmRegistry != "") "releng: set npmRegistry (see nix/package.nix) to fetch npm dependencies";
        module // { resolved = tarballUrl path module; }) lock.packages;
  };
  runtimePath = lib.makeBinPath (import ./runtime-tools.nix { inherit pkgs; });
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
  dontNpmBuild = true;
  nativeBuildInputs = [ makeWrapper ];
  installPhase = ''
    runHook preInstall
    mkdir -p $out/lib/releng $out/bin
    cp -r package.json bin lib scripts nix node_modules $out/lib/releng/
    makeWrapper $out/lib/releng/bin/releng $out/bin/releng --prefix PATH : ${runtimePath}:${nodejs_20}/bin
    makeWrapper $out/lib/releng/bin/releng $out/bin/releng-release --add-flags release --prefix PATH : ${runtimePath}:${nodejs_20}/bin
    runHook postInstall
  '';
  meta = {
    description = "Release engineering for Nix projects: plan every publish, then apply it";
    mainProgram = "releng";
    license = lib.licenses.mit;
  };
}
