"""Numerical building blocks: Procrustes/alignment solvers, the calibrated Haar test, metrics,
bases and fixed subspaces, synthetic planted rotations, bootstrap intervals, the one input check
(``validate``), the checkpoint schedule, the artifact cache, device helpers and progress lines
for the build log.

Import rule: this layer imports nothing else from polyrot_utils; ``tests/test_layers.py`` checks
it.
"""

__all__ = [
    "basis",
    "cache",
    "device",
    "haar",
    "intervals",
    "metrics",
    "procrustes",
    "progress",
    "schedule",
    "synthetic",
    "validate",
]
