{
  description = "releng: release engineering for Nix projects (plan every publish, then apply it)";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05-small";
    nix2container = { url = "github:nlewo/nix2container"; flake = false; };
  };

  # Thin on purpose: the expressions live in nix/.
  outputs = { self, nixpkgs, nix2container }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: rec {
        releng = pkgs.callPackage ./nix/package.nix { };
        default = releng;
      });

      apps = forAll (pkgs:
        let releng = self.packages.${pkgs.stdenv.hostPlatform.system}.releng; in {
          releng = { type = "app"; program = "${releng}/bin/releng"; };
          # `nix run .#release -- --environment staging`: prepare → tag → build → upload.
          release = { type = "app"; program = "${releng}/bin/releng-release"; };
          default = self.apps.${pkgs.stdenv.hostPlatform.system}.releng;
        });

      checks = forAll (pkgs: import ./nix/checks.nix {
        inherit pkgs;
        releng = self.packages.${pkgs.stdenv.hostPlatform.system}.releng;
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = (import ./nix/runtime-tools.nix { inherit pkgs; }).packages ++ [ pkgs.nodejs_20 pkgs.rclone pkgs.openssl ];
        };
      });

      # For released projects: release jobs by profile, binary tarballs, container image tarballs.
      lib = import ./nix/release-jobs.nix {
        lib = nixpkgs.lib;
        nix2containerSrc = nix2container;
      };
    };
}
