#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install the pinned requirements.
# Sourced by scripts/test.sh and scripts/book.sh; needs only Python 3.11 and pip on PATH.
#   POLYROT_PYTHON  interpreter used to create the venv (default: python3.11, else python3)
#   POLYROT_VENV    where the venv lives (default: <repo>/.venv)
# The install is skipped when requirements*.txt and pyproject.toml have not changed since the
# last successful install (a hash stamp inside the venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${POLYROT_VENV:-$ROOT/.venv}"
PY="${POLYROT_PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[polyrot] creating virtual environment in $VENV with $("$PY" --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.polyrot-install.sha256"
want="$(cat "$ROOT"/requirements.txt "$ROOT"/requirements-nodeps.txt "$ROOT"/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[polyrot] installing pinned requirements (first run: a few minutes, ~2 GB)"
  t0=$(date +%s)
  log="$VENV/.polyrot-install.log"
  : > "$log"
  pipi() { "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >>"$log" 2>&1 \
             || { echo "[polyrot] pip install $* failed; the last lines of $log:" >&2; tail -40 "$log" >&2; exit 1; }; }
  pipi "pip==26.3"
  pipi -r "$ROOT/requirements.txt"
  pipi --no-deps -r "$ROOT/requirements-nodeps.txt"
  pipi --no-deps --no-build-isolation -e "$ROOT"
  echo "$want" > "$stamp"
  echo "[polyrot] environment ready in $(( $(date +%s) - t0 )) s ($(du -sh "$VENV" | cut -f1))"
fi
export PATH="$VENV/bin:$PATH"
export POLYROT_PYTHON_BIN="$VENV/bin/python"
# Never reach for a model hub at run time: every model is built locally or read from a local cache.
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
export HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}"
export WANDB_MODE="${WANDB_MODE:-disabled}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
