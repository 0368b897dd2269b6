"""The Dyck rung: the language, the toy transformer built for it, training, cohorts, suites and the
four bars.

Import rule: this layer may import from its own layer and core, sae, models (not from the
sibling rung); ``tests/test_layers.py`` checks it.
"""

__all__ = [
    "bars",
    "cohort_training",
    "cohorts",
    "convergence",
    "ensemble",
    "language",
    "paper_task",
    "reference",
    "suite",
    "toy",
    "training",
]
