"""What is particular to each rung: ``tasks.dyck`` (language, toy model, training, cohorts, bars)
and ``tasks.pythia`` (the seed suite). The two rungs do not import each other.

Import rule: this layer may import from its own layer and core, sae, models;
``tests/test_layers.py`` checks it.
"""

__all__ = ["dyck", "pythia"]
