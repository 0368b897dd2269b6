"""Book tooling: the chapter runner (``python -m polyrot_utils.book``), results, report, site
check, performance and the incremental-build cache.

Import rule: this layer may import from its own layer and core, sae, models, tasks, experiments;
``tests/test_layers.py`` checks it.
"""

__all__ = [
    "build_cache",
    "figures",
    "findings",
    "perf",
    "presentation",
    "report",
    "results",
    "runner",
    "site_check",
]
