# Sourced by the quick start and the tests: Nix settings for this offline machine.
# No substituter is reachable (no cache.nixos.org), and flakes are experimental in Debian's Nix 2.8.
export NIX_CONFIG="substituters =
experimental-features = nix-command flakes"
