// Every test runs with the Nix settings of this offline machine (see scripts/env.sh).
process.env.NIX_CONFIG = 'substituters =\nexperimental-features = nix-command flakes';
