#!/usr/bin/env bash
# The quick start: installs what it needs (scripts/setup.sh, bash: it runs before npm ci), then
# runs the zx script scripts/quickstart.mjs: a full release of examples/hello into the local environment.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/setup.sh"
. "$here/scripts/env.sh"
exec node "$here/node_modules/zx/build/cli.js" "$here/scripts/quickstart.mjs" "$@"
