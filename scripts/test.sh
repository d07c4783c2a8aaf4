#!/usr/bin/env bash
# The test command (README, .ci/run): install what is needed, typecheck, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Installs what is missing and builds the bundle the integration tests run (dist/lib/releng.mjs).
bash scripts/setup.sh
. scripts/env.sh
npx tsc --noEmit
mkdir -p .releng
results=.releng/test-results.json
rm -f "$results"
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$results" "$@" || status=$?
# A plain closing line ("N passed, N failed") that any CI can read, whatever the runner prints.
if [ -f "$results" ]; then
  node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));' "$results"
fi
exit $status
