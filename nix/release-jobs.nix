# Release jobs for projects released with releng (what Lix's releng/release-jobs.nix does, generalised).
# A flake exposes `release-jobs.PROFILE` = { build.SYSTEM; binaryTarball.SYSTEM; dockerImage.SYSTEM; manual; }
# and releng evaluates `.#release-jobs.PROFILE`. Everything that needs nixpkgs takes `pkgs`; the
# profile plumbing is builtins only, so releng's tests evaluate it with the Nix that is here.
#
#   release-jobs = releng.lib.releaseJobs {
#     profiles = releng.lib.lixProfiles;
#     build = system: self.packages.${system}.default;
#     binaryTarball = system: releng.lib.binaryTarball { pkgs = nixpkgs.legacyPackages.${system}; drv = self.packages.${system}.default; name = "lix-${version}-${system}"; };
#     dockerImage = system: releng.lib.dockerImage { pkgs = nixpkgs.legacyPackages.${system}; drv = ...; name = "lix"; tag = version; };
#     manual = self.packages.x86_64-linux.default.doc;
#   };
{ lib ? null, nix2containerSrc ? null }:
let
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  tarFlags = "--sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner";
in
rec {
  # Lix's profiles: `all` for a release, `x86_64-linux-only` to test the flow quickly.
  lixProfiles = {
    all = { systems = [ "x86_64-linux" "aarch64-linux" "aarch64-darwin" ]; dockerSystems = [ "x86_64-linux" "aarch64-linux" ]; };
    x86_64-linux-only = { systems = [ "x86_64-linux" ]; dockerSystems = [ "x86_64-linux" ]; };
  };

  # The jobs of every profile, from per-system functions. Keep profiles in sync with releng.json
  # (releng checks that every system of its profile has its jobs).
  releaseJobs = { profiles ? lixProfiles, build, binaryTarball, dockerImage ? null, manual }:
    builtins.mapAttrs (_: profile: {
      build = genAttrs profile.systems build;
      binaryTarball = genAttrs profile.systems binaryTarball;
      dockerImage = if dockerImage == null then { } else genAttrs (profile.dockerSystems or [ ]) dockerImage;
      inherit manual;
    }) profiles;

  # What Hydra's jobset exposes as `hydraJobs` for `releng build --from-hydra` (issue 15): one
  # profile's jobs, whose attribute paths become Hydra's job names (build.SYSTEM, binaryTarball.SYSTEM,
  # dockerImage.SYSTEM, manual), plus `release`, a Hydra aggregate job of all of them: it finishes
  # last and only when every constituent succeeded, so Hydra's RunCommand hangs on it (docs/hydra.md).
  #
  #   hydraJobs = releng.lib.hydraJobs { jobs = self.release-jobs.all; };
  hydraJobs = { jobs, system ? builtins.currentSystem or "x86_64-linux", name ? "release" }:
    let
      isDerivation = v: builtins.isAttrs v && (v.type or null) == "derivation";
      flatten = v: if isDerivation v then [ v ] else if builtins.isAttrs v then builtins.concatLists (map (n: flatten v.${n}) (builtins.attrNames v)) else [ ];
      constituents = flatten jobs;
    in
    jobs // {
      ${name} = builtins.derivation {
        inherit name system constituents;
        builder = "/bin/sh";
        args = [ "-c" "for c in $constituents; do echo $c; done > $out" ];
        _hydraAggregate = true;
      };
    };

  # A binary tarball of drv's closure with a registration file (as Nix's own installer tarballs),
  # its .sha256 and a Hydra build product.
  binaryTarball = { pkgs, drv, name }:
    pkgs.runCommand "${name}-binary-tarball" {
      nativeBuildInputs = [ pkgs.xz ];
      closure = pkgs.closureInfo { rootPaths = [ drv ]; };
    } ''
      mkdir -p $out/nix-support
      cp $closure/registration .reginfo
      tar ${tarFlags} --absolute-names --hard-dereference \
        --transform "s,^\./\.reginfo,${name}/.reginfo," \
        --transform "s,^/nix/store/,${name}/store/," \
        -cf - ./.reginfo $(cat $closure/store-paths) | xz -T0 -9 > $out/${name}.tar.xz
      sha256sum $out/${name}.tar.xz | cut -d' ' -f1 > $out/${name}.tar.xz.sha256
      echo "file binary-dist $out/${name}.tar.xz" >> $out/nix-support/hydra-build-products
    '';

  # A container image tarball (docker-archive, gzip) from a nix2container image, as Lix ships
  # lix-VERSION-docker-image-SYSTEM.tar.gz. Labels become the OCI index annotations on upload.
  dockerImage = { pkgs, drv, name, tag, labels ? { }, config ? { }, system ? pkgs.stdenv.hostPlatform.system }:
    let
      n2c = (import nix2containerSrc { inherit pkgs system; }).nix2container;
      image = n2c.buildImage {
        inherit name tag;
        copyToRoot = [ drv ];
        config = { Labels = labels; } // config;
      };
    in
    pkgs.runCommand "${name}-docker-image-${tag}" { nativeBuildInputs = [ pkgs.gzip ]; } ''
      mkdir -p $out/nix-support
      ${image.copyTo}/bin/copy-to docker-archive:$TMPDIR/image.tar:${name}:${tag}
      gzip -n -9 < $TMPDIR/image.tar > $out/image.tar.gz
      echo "file docker-image $out/image.tar.gz" >> $out/nix-support/hydra-build-products
    '';
}
