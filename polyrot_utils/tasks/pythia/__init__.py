"""The Pythia rung: the PolyPythia seed suite and its activations.

Import rule: this layer may import from its own layer and core, sae, models (not from the
sibling rung); ``tests/test_layers.py`` checks it.
"""

__all__ = ["suite"]
