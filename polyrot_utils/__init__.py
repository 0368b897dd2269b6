"""polyrot_utils: the library under the polyrot book.

Conventions (see each module's docstring): activations are row vectors, a batch is an ``(n, d)``
matrix; a rotation ``R`` maps source activations onto target ones, ``X_src @ R ≈ X_tgt``.
Modules are imported lazily so ``import polyrot_utils`` stays fast.
"""

__version__ = "0.1.0"

import warnings as _warnings

# tqdm.auto warns in every kernel without ipywidgets; progress bars are off in rendered pages anyway
_warnings.filterwarnings("ignore", message="IProgress not found")
