"""polyrot_utils: the library under the polyrot book.

Conventions (see each module's docstring): activations are row vectors, a batch is an ``(n, d)``
matrix; a rotation ``R`` maps source activations onto target ones, ``X_src @ R ≈ X_tgt``.

The public API for your own TransformerLens models (README, "Use it on your own models"):
:func:`fit_rotations`, :func:`align_models`, :func:`move_sae`, with :func:`load_sae` /
:func:`save_sae` for SAELens-format files (:mod:`polyrot_utils.models.align`,
:mod:`polyrot_utils.sae.autoencoder`). They, and every module, are imported lazily, so
``import polyrot_utils`` stays fast.
"""

from __future__ import annotations

import importlib
import warnings as _warnings
from typing import Any

__version__ = "0.1.0"

# tqdm.auto warns in every kernel without ipywidgets; progress bars are off in rendered pages anyway
_warnings.filterwarnings("ignore", message="IProgress not found")

#: public name -> the module that defines it
_API = {
    "ModelAlignment": "polyrot_utils.models.align",
    "align_models": "polyrot_utils.models.align",
    "fit_rotations": "polyrot_utils.models.align",
    "move_sae": "polyrot_utils.models.align",
    "load_sae": "polyrot_utils.sae.autoencoder",
    "save_sae": "polyrot_utils.sae.autoencoder",
}

__all__ = ["ModelAlignment", "align_models", "fit_rotations", "load_sae", "move_sae", "save_sae"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'polyrot_utils' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
