"""Figures and tables that a reader can take in at the book's column width.

The rendered book (sphinx-book-theme, window 1280 px) gives a chapter's content a column of
about 690 px. Figures are drawn at :data:`DPI` = 100, so a figure :data:`COLUMN_WIDTH_IN` = 6.6 in
wide (plus the 0.1 in padding of the inline backend's tight bounding box, ~680 px) is shown at
its own pixel size: a 9-pt tick label stays 9 pt. A wider figure is shrunk by
the browser, and its text with it; :func:`legibility_problems` computes the text size *after*
that shrinking, and :func:`show` refuses a figure whose smallest text would fall below
:data:`MIN_FONT_PT`, or whose axes hold several labelled lines but no legend naming them.

Tables: :func:`format_table` drops all-NaN columns, writes numbers to a few significant digits
(thousands separators for large ones, no ``104630.799103``), and refuses more than
``max_rows`` rows — a page shows a summary; full tables belong in the results file or a folded
cell.

Typical chapter use::

    from polyrot_utils.book import figures
    figures.use_book_style()
    fig, ax = figures.column_figure(height=3.2)
    ...
    figures.show(fig)
    figures.format_table(df, sig=3)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = [
    "BOOK_RC",
    "COLUMN_WIDTH_IN",
    "DPI",
    "MIN_FONT_PT",
    "column_figure",
    "format_number",
    "format_table",
    "glue_outputs",
    "legibility_problems",
    "show",
    "use_book_style",
]

COLUMN_WIDTH_IN: float = 6.6
"""Width of the book's content column, in inches at :data:`DPI` (660 px plus padding, of ~688)."""
DPI: int = 100
"""Dots per inch of every inline figure (matplotlib's default; pinned by :func:`use_book_style`)."""
MIN_FONT_PT: float = 9.0
"""Smallest text size, in points at the column width, that :func:`show` accepts."""

BOOK_RC: dict[RcKeyType, Any] = {
    "figure.dpi": DPI,
    "savefig.dpi": "figure",
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
    "figure.constrained_layout.use": True,
}


def use_book_style() -> None:
    """Set matplotlib's rcParams for the book: :data:`DPI`, text ≥ 9 pt, constrained layout."""
    import matplotlib as mpl

    mpl.rcParams.update(BOOK_RC)


def column_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    height: float | None = None,
    width_fraction: float = 1.0,
    **subplots_kw: Any,
):
    """``plt.subplots`` sized for the column: width ``width_fraction * COLUMN_WIDTH_IN`` inches.

    Args:
        nrows, ncols: the subplot grid.
        height: figure height in inches (default: 3.0 per row, 3.4 for a single row).
        width_fraction: in (0, 1]; a small single plot looks better at 0.7.
        **subplots_kw: passed to ``plt.subplots`` (``sharey``, ``gridspec_kw``, ...).

    Returns ``(fig, axes)`` as ``plt.subplots`` does.
    """
    import matplotlib.pyplot as plt

    if not 0 < width_fraction <= 1:
        raise ValueError(f"width_fraction must be in (0, 1], got {width_fraction!r}")
    if nrows < 1 or ncols < 1:
        raise ValueError(f"nrows and ncols must be ≥ 1, got nrows={nrows!r}, ncols={ncols!r}")
    if height is None:
        height = 3.4 if nrows == 1 else 3.0 * nrows
    if height <= 0:
        raise ValueError(f"height must be positive, got {height!r}")
    subplots_kw.setdefault("layout", "constrained")
    return plt.subplots(
        nrows, ncols, figsize=(COLUMN_WIDTH_IN * width_fraction, height), dpi=DPI, **subplots_kw
    )


def _texts(fig) -> Iterable[tuple[str, Any]]:
    for ax in fig.axes:
        for lab in list(ax.get_xticklabels()) + list(ax.get_yticklabels()):
            yield "tick label", lab
        yield "x label", ax.xaxis.label
        yield "y label", ax.yaxis.label
        yield "title", ax.title
        leg = ax.get_legend()
        if leg is not None:
            for t in leg.get_texts():
                yield "legend", t
        for t in ax.texts:
            yield "annotation", t
    for leg in fig.legends:
        for t in leg.get_texts():
            yield "legend", t
    if getattr(fig, "_suptitle", None) is not None:
        yield "suptitle", fig._suptitle


def legibility_problems(
    fig,
    *,
    column_in: float = COLUMN_WIDTH_IN,
    min_pt: float = MIN_FONT_PT,
    min_annotation_pt: float = 7.0,
) -> list[str]:
    """What would be hard to read once ``fig`` is shown in the column (empty list: nothing).

    * the figure is wider than the column (the browser shrinks it by ``column_in / width``);
    * a tick label, axis label, title or legend entry is smaller than ``min_pt`` after that
      shrinking (annotations inside heatmap cells: ``min_annotation_pt``);
    * an axes holds two or more labelled lines/collections but no legend (figure legends count).
    """
    w_in = fig.get_size_inches()[0] * fig.dpi / DPI  # at DPI, the width on the page in inches
    scale = min(1.0, column_in / w_in)
    out: list[str] = []
    if w_in > column_in * 1.01:
        out.append(
            f"figure is {w_in:.1f} in wide at {DPI} dpi; the column is {column_in} in (shrunk "
            f"×{scale:.2f})"
        )
    smallest: dict[str, float] = {}
    for kind, t in _texts(fig):
        if not t.get_visible() or not t.get_text().strip():
            continue
        size = t.get_fontsize() * scale
        smallest[kind] = min(size, smallest.get(kind, math.inf))
    for kind, size in smallest.items():
        floor = min_annotation_pt if kind == "annotation" else min_pt
        if size < floor - 1e-9:
            out.append(f"{kind} text is {size:.1f} pt at the column width (minimum {floor} pt)")
    has_fig_legend = bool(fig.legends)
    for i, ax in enumerate(fig.axes):
        labelled = ax.get_legend_handles_labels()[1]  # what a legend of this axes would name
        if len(labelled) >= 2 and ax.get_legend() is None and not has_fig_legend:
            out.append(
                f"axes {i + 1} ('{ax.get_title()}') has {len(labelled)} labelled artists and no "
                "legend"
            )
    return out


def show(fig, **kwargs: Any) -> None:
    """Check :func:`legibility_problems` (``ValueError`` listing them), then display ``fig``."""
    import matplotlib.pyplot as plt

    problems = legibility_problems(fig, **kwargs)
    if problems:
        plt.close(fig)
        raise ValueError("figure not legible at the book's column width: " + "; ".join(problems))
    plt.show()


def glue_outputs(outputs: Mapping[str, Any], *, sig: int = 3) -> None:
    """Glue a chapter's named outputs (MyST-NB ``glue``) for its prose to place.

    The prose places each one where it explains it: a figure with ``{glue:figure} name`` (its
    caption and ``:name:`` in the directive), a table with ``{glue} name``, a number or word in
    a sentence with ``{glue:text}`name```. What each value becomes:

    - a matplotlib figure: checked by :func:`legibility_problems` (``ValueError`` listing them,
      as :func:`show`), glued as its image and closed;
    - a pandas DataFrame or Series: written by :func:`format_table` (``sig`` digits), glued as
      a table;
    - a number, string or bool: glued as text only (``display=False``), numbers written by
      :func:`format_number`;
    - ``None`` (an output this run did not compute): glued as a short italic note, so the page
      says so instead of failing to build.

    Figures and tables are also displayed in the cell, so the executed notebook shows them in
    Jupyter; the chapter tags that cell ``remove-output`` so that the book shows each only
    where the prose places it. Names are per chapter (MyST-NB scopes glue keys to their
    document), so twin chapters glue the same names.
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    from IPython.display import Markdown
    from matplotlib.figure import Figure
    from myst_nb import glue

    for name, value in outputs.items():
        if isinstance(value, Figure):
            problems = legibility_problems(value)
            if problems:
                plt.close(value)
                raise ValueError(
                    f"figure {name!r} not legible at the book's column width: "
                    + "; ".join(problems)
                )
            glue(name, value)
            plt.close(value)
        elif isinstance(value, pd.DataFrame | pd.Series):
            glue(name, format_table(value, sig=sig))
        elif value is None:
            glue(name, Markdown("*(not computed in this run)*"))
        elif isinstance(value, bool | str):
            glue(name, str(value), display=False)
        elif isinstance(value, int | float | np.integer | np.floating):
            glue(name, format_number(value, sig=sig), display=False)
        else:
            raise TypeError(
                f"glue_outputs: {name!r} is a {type(value).__name__}; expected a matplotlib "
                "figure, a pandas DataFrame or Series, a number, a string, a bool or None"
            )


# ----------------------------------------------------------------------------- numbers and tables
def format_number(x: Any, sig: int = 3, zero_below: float = 0.0) -> str:
    """One number for a reader: ``sig`` significant digits, thousands separators from 10 000,
    scientific notation below 1e-3, ``–`` for NaN/None. Integers are written in full. Values with
    ``|x| < zero_below`` are written ``0`` (for quantities that are zero up to round-off).

    >>> (format_number(104630.799103), format_number(0.0066123), format_number(3.0e-5),
    ...  format_number(12))
    ('104,631', '0.00661', '3.00e-05', '12')
    """
    if sig < 1:
        raise ValueError(f"sig must be ≥ 1, got {sig!r}")
    if x is None:
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}" if abs(int(x)) >= 10_000 else str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0 or abs(v) < zero_below:
        return "0"
    a = abs(v)
    if a >= 10_000:
        return f"{v:,.0f}"
    if a < 1e-3:
        return f"{v:.{sig - 1}e}"
    digits = max(0, sig - 1 - math.floor(math.log10(a)))
    return f"{v:.{digits}f}"


def _format_cell(v: Any, fmt: Any, sig: int, zero_below: float) -> Any:
    """One table cell for a reader: ``fmt`` is None (a number), a callable or a format string."""
    if fmt is None:
        return format_number(v, sig, zero_below)
    if callable(fmt):
        return fmt(v)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return fmt.format(v)


def format_table(
    df,
    *,
    sig: int = 3,
    max_rows: int | None = 15,
    drop_empty: bool = True,
    formats: dict[str, Any] | None = None,
    zero_below: float = 0.0,
):
    """A copy of ``df`` with every cell written for a reader (strings), ready to display.

    Args:
        df: a pandas DataFrame or Series (a Series becomes one column).
        sig: significant digits of non-integer numbers (see :func:`format_number`).
        max_rows: the most rows a page shows; more raises ``ValueError`` (summarise, or fold the
            cell and pass ``max_rows=None``).
        drop_empty: drop columns that are NaN/None in every row.
        formats: per-column override, a format string (``"{:.1%}"``) or a callable.
        zero_below: numbers smaller in magnitude are written ``0`` (see :func:`format_number`).
    """
    import pandas as pd

    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame or Series, got {type(df).__name__}")
    if max_rows is not None and len(df) > max_rows:
        raise ValueError(
            f"df has {len(df)} rows, more than max_rows={max_rows}: show a summary on the page "
            "(and the full table in a folded cell with max_rows=None)"
        )
    out = df.copy()
    if drop_empty:
        out = out.loc[:, [c for c in out.columns if not out[c].isna().all()]]
    formats = dict(formats or {})
    for col in out.columns:
        fmt = formats.get(col)
        out[col] = [_format_cell(v, fmt, sig, zero_below) for v in out[col].tolist()]
    return out
