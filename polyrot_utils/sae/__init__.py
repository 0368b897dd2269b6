"""Sparse autoencoders: the model, trainers, rotation transfer and SAELens-format I/O.

Import rule: this layer may import from its own layer and core; ``tests/test_layers.py`` checks
it.
"""

__all__ = ["autoencoder"]
