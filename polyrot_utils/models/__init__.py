"""Transformer plumbing: activation collection, model loading, GPT-NeoX stand-ins, the tokenizer
and corpus, and steering hook primitives.

Import rule: this layer may import from its own layer and core, sae; ``tests/test_layers.py``
checks it.
"""

__all__ = ["activations", "align", "corpus", "loading", "neox", "steering_hooks", "tokenizer"]
