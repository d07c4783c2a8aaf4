#!/usr/bin/env zx
// `nix run .#release -- --environment staging [flags]`: the doctor first (`releng check` for the
// environment, no build needed), then the whole release (`releng release`, same flags). Thin on
// purpose: everything is releng's; this only strings the two commands together for the flake's app.
import { fileURLToPath } from 'node:url';

const releng = process.env.RELENG_BIN ?? fileURLToPath(new URL('../bin/releng', import.meta.url));
const args = process.argv.slice(process.argv.findIndex((a) => a.endsWith('release.mjs')) + 1);
if (args.includes('-h') || args.includes('--help')) {
  echo('Usage: nix run .#release -- [--environment NAME] [releng release flags]');
  echo('Runs `releng check` for the environment, then `releng release` with the same flags.');
  process.exit(0);
}
// The flags `check` shares with `release`: the environment and the config.
const checkArgs = [];
for (const name of ['--environment', '--config']) {
  const i = args.indexOf(name);
  if (i >= 0 && args[i + 1]) checkArgs.push(name, args[i + 1]);
}
$.verbose = false;
const check = await $({ stdio: 'inherit', nothrow: true })`${releng} check ${checkArgs}`;
if (check.exitCode !== 0) {
  echo(`release: \`releng check\` found problems (above); nothing was released.`);
  process.exit(check.exitCode ?? 1);
}
const release = await $({ stdio: 'inherit', nothrow: true })`${releng} release ${args}`;
process.exit(release.exitCode ?? 1);
