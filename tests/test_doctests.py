"""The runnable examples in the library's docstrings are tests: they must run and print what
they show. (``python -m pytest --doctest-modules polyrot_utils/core/procrustes.py`` runs one
module's by hand.)"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "polyrot_utils.core.procrustes",
    "polyrot_utils.core.haar",
    "polyrot_utils.core.intervals",
    "polyrot_utils.core.validate",
    "polyrot_utils.core.basis",
    "polyrot_utils.core.schedule",
    "polyrot_utils.tasks.pythia.suite",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0, f"{name} has no docstring examples"
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring examples failed in {name}"
