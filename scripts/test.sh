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
# Static checks over the whole package (configured in pyproject.toml): lint, format, types.
# They run first and all of them run; a failure is reported and fails the script after pytest.
# POLYROT_LINT=0 skips them (e.g. while iterating on one test).
lint_failed=()
if [ "${POLYROT_LINT:-1}" != "0" ]; then
  "$POLYROT_PYTHON_BIN" -m ruff check polyrot_utils/ || lint_failed+=("ruff check")
  "$POLYROT_PYTHON_BIN" -m ruff format --check polyrot_utils/ || lint_failed+=("ruff format --check")
  "$POLYROT_PYTHON_BIN" -m mypy polyrot_utils/ || lint_failed+=("mypy")
fi
rc=0
"$POLYROT_PYTHON_BIN" -m pytest "$@" || rc=$?
if [ "${#lint_failed[@]}" -gt 0 ]; then
  echo "[polyrot] static checks failed: ${lint_failed[*]} (see above)" >&2
  [ "$rc" -eq 0 ] && rc=1
fi
exit "$rc"
