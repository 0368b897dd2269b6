"""Numerical building blocks: Procrustes/alignment solvers, the calibrated Haar test, metrics,
bases, synthetic planted rotations, the artifact cache and device helpers.

Import rule: this layer imports nothing else from polyrot_utils; ``tests/test_layers.py`` checks
it.
"""

__all__ = ["basis", "cache", "device", "haar", "metrics", "procrustes", "synthetic"]
