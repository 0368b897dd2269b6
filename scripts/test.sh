#!/usr/bin/env bash
# Run the test suite: sets up the environment from nothing, then pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k procrustes`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec "$POLYROT_PYTHON_BIN" -m pytest "$@"
