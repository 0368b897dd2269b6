#!/usr/bin/env bash
# Run the test suite: sets up the environment from nothing, then pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k procrustes`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
# The browser test drives the system's Chromium (never a downloaded one). Install it when we can.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[polyrot] installing Debian's chromium for the browser test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "[polyrot] could not install chromium; the browser test will be skipped"
fi
exec "$POLYROT_PYTHON_BIN" -m pytest "$@"
