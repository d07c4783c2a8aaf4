# Release jobs of the example project, in plain Nix: no nixpkgs, only builtins.derivation and
# the host's /bin/sh, tar, xz and gzip (Debian's Nix runs with sandbox = false).
#
# releng calls this with the profile's systems:  import ./release.nix { systems = [...]; dockerSystems = [...]; }
# and reads these jobs (the contract, see releng's README):
#   build.SYSTEM          the program itself: what manifest.nix points at
#   binaryTarball.SYSTEM  an output holding one hello-VERSION-SYSTEM.tar.xz (+ hydra-build-products)
#   dockerImage.SYSTEM    an output holding image.tar.gz, a docker-archive skopeo can read
#   manual                share/doc/hello/manual/ (HTML)
# and, for `releng grant` / `contribute` / `index` (docs/grants-and-index.md):
#   deb.SYSTEM            an output holding hello_VERSION_ARCH.deb (dpkg-deb runs in the build)
#
# Only the host's system can really be built here. The jobs of the other systems are built on
# the host too, but named for their target (and the image config carries the target's
# architecture), so the whole multi-system release flow runs on one machine.
{ systems ? [ "x86_64-linux" "aarch64-linux" ], dockerSystems ? systems }:
let
  meta = builtins.fromJSON (builtins.readFile ./version.json);
  version = meta.version;
  host = builtins.currentSystem;
  hostPath = "/usr/bin:/bin";
  src = builtins.path { path = ./src; name = "hello-src"; };

  run = name: env: script: builtins.derivation ({
    inherit name;
    system = host;
    builder = "/bin/sh";
    args = [ "-e" "-c" script ];
    PATH = hostPath;
  } // env);

  # Reproducible tar: sorted names, fixed mtime and owner.
  tarFlags = "--sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner";

  ociArch = system: {
    x86_64-linux = "amd64";
    aarch64-linux = "arm64";
    i686-linux = "386";
    armv7l-linux = "arm";
  }.${system} or (throw "no OCI architecture for ${system}");

  build = system: run "hello-${version}-${system}" { inherit src version; targetSystem = system; } ''
    mkdir -p $out/bin
    sed -e "s/@version@/$version/" -e "s/@system@/$targetSystem/" $src/hello.sh > $out/bin/hello
    chmod 0555 $out/bin/hello
  '';

  binaryTarball = system: let b = build system; in run "hello-binary-tarball-${version}-${system}" { build = b; inherit version; targetSystem = system; } ''
    mkdir -p $out/nix-support
    name=hello-$version-$targetSystem
    tar ${tarFlags} -C / -cf - "''${build#/}" | xz -T1 -6 > $out/$name.tar.xz
    echo "file binary-dist $out/$name.tar.xz" > $out/nix-support/hydra-build-products
  '';

  dockerImage = system: let b = build system; in run "hello-docker-image-${version}-${system}" {
    build = b; inherit version; arch = ociArch system; targetSystem = system;
  } ''
    work=$(pwd)/image
    mkdir -p $work/rootfs $out/nix-support
    # The layer: the program's closure under /nix/store.
    tar ${tarFlags} -C / -cf $work/layer.tar "''${build#/}"
    layer=$(sha256sum $work/layer.tar | cut -d' ' -f1)
    mkdir -p $work/archive/$layer
    mv $work/layer.tar $work/archive/$layer/layer.tar
    cat > $work/config.json <<JSON
    {"architecture":"$arch","os":"linux","created":"1970-01-01T00:00:01Z",
     "config":{"Cmd":["$build/bin/hello"],"Env":["PATH=$build/bin"],
       "Labels":{"org.opencontainers.image.title":"hello","org.opencontainers.image.version":"$version",
                 "org.opencontainers.image.description":"The releng example project","org.opencontainers.image.source":"https://example.invalid/hello"}},
     "rootfs":{"type":"layers","diff_ids":["sha256:$layer"]},
     "history":[{"created":"1970-01-01T00:00:01Z","created_by":"release.nix"}]}
    JSON
    config=$(sha256sum $work/config.json | cut -d' ' -f1)
    mv $work/config.json $work/archive/$config.json
    printf '[{"Config":"%s.json","RepoTags":["hello:%s"],"Layers":["%s/layer.tar"]}]' $config $version $layer > $work/archive/manifest.json
    tar ${tarFlags} -C $work/archive -cf - manifest.json $config.json $layer | gzip -n -6 > $out/image.tar.gz
    echo "file docker-image $out/image.tar.gz" > $out/nix-support/hydra-build-products
  '';

  manual = run "hello-manual-${version}" { inherit src version; } ''
    dir=$out/share/doc/hello/manual
    mkdir -p $dir $out/nix-support
    cp -r $src/manual/. $dir/
    chmod -R u+w $dir
    for f in $(find $dir -name '*.html'); do sed -i "s/@version@/$version/g" $f; done
    echo "doc manual $dir" > $out/nix-support/hydra-build-products
  '';

  debArch = system: {
    x86_64-linux = "amd64";
    aarch64-linux = "arm64";
  }.${system} or (throw "no Debian architecture for ${system}");

  # A Debian package of hello, built with the host's dpkg-deb (sandbox off); timestamps from
  # SOURCE_DATE_EPOCH, so the same version builds the same .deb.
  deb = system: let b = build system; in run "hello-deb-${version}-${system}" {
    build = b; inherit version; arch = debArch system; SOURCE_DATE_EPOCH = "1";
  } ''
    root=$(pwd)/deb
    mkdir -p $root/DEBIAN $root/usr/bin $out
    cp $build/bin/hello $root/usr/bin/hello
    chmod 0755 $root/DEBIAN $root/usr $root/usr/bin $root/usr/bin/hello
    printf 'Package: hello\nVersion: %s\nArchitecture: %s\nMaintainer: releng example <hello@example.invalid>\nDescription: the releng example program\n' "$version" "$arch" > $root/DEBIAN/control
    dpkg-deb --root-owner-group -Zxz --build $root "$out/hello_''${version}_''${arch}.deb" >/dev/null
  '';

  forAll = list: f: builtins.listToAttrs (map (s: { name = s; value = f s; }) list);
in
{
  build = forAll systems build;
  binaryTarball = forAll systems binaryTarball;
  dockerImage = forAll dockerSystems dockerImage;
  inherit manual;
  deb = forAll systems deb;
}
