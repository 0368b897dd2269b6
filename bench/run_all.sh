#!/usr/bin/env bash
# Run every benchmark at its default (full) size and write JSON + markdown to bench/results/.
# Not part of the tests. Run on an otherwise idle machine: the figures are wall-clock times.
#   bash bench/run_all.sh            # CPU, ~10-20 minutes on 2 cores
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
python bench/bench_procrustes.py --n 1000000 --d 512 --threads 1
python bench/bench_procrustes.py --n 1000000 --d 64 --threads 1
python bench/bench_sae.py --threads 1
python bench/bench_activations.py --threads 1
echo "results in bench/results/"
