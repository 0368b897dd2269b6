"""The analyses (universality, alignment, Haar tables, steering transfer, checkpoints, controls),
over activations from either rung.

Import rule: this layer may import from its own layer and core, sae, models, tasks;
``tests/test_layers.py`` checks it.
"""

__all__ = ["alignment", "analysis", "checkpoints", "controls", "steering"]
