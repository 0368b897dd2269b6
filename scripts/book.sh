#!/usr/bin/env bash
# Build the book: sets up the environment from nothing, executes every chapter with a profile
# (default quick) and renders the HTML into _build/html. Extra arguments go to
# `python -m polyrot_utils.book build` (e.g. `--profile paper`, `-p 01_planted_rotations d 128`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec "$POLYROT_PYTHON_BIN" -m polyrot_utils.book build "$@"
