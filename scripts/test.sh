#!/usr/bin/env bash
# The test command (README, .ci/run): install what is needed, typecheck, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
npx tsc --noEmit
npx vitest run "$@"
