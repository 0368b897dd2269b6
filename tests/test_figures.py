"""Column-width figures, legibility checks, number/table formatting, and the parameter-cell tidy."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, strategies as st  # noqa: E402

from polyrot_utils.book import figures  # noqa: E402
from polyrot_utils.book.presentation import INJECTED_HEADER, tidy_executed_notebook  # noqa: E402


@pytest.fixture(autouse=True)
def _style():
    with matplotlib.rc_context():
        figures.use_book_style()
        yield
    plt.close("all")


def test_column_figure_is_legible():
    fig, (a, b) = figures.column_figure(1, 2)
    a.plot([1, 2], label="one")
    a.plot([2, 1], label="two")
    a.legend()
    b.set_xlabel("x")
    assert fig.get_size_inches()[0] == pytest.approx(figures.COLUMN_WIDTH_IN)
    assert figures.legibility_problems(fig) == []


def test_a_wide_figure_shrinks_its_text():
    fig, ax = plt.subplots(figsize=(14, 3.2), dpi=100)
    ax.plot([1, 2])
    ax.set_xlabel("x")
    problems = figures.legibility_problems(fig)
    assert any("14.0 in wide" in p for p in problems)
    assert any("tick label text is 4.2 pt" in p for p in problems)  # 9 pt × 6.6/14


def test_unlabelled_lines_need_a_legend_and_show_refuses():
    fig, ax = figures.column_figure()
    ax.plot([1, 2], label="fit")
    ax.axhline(0.5, label="ceiling")
    assert any("no legend" in p for p in figures.legibility_problems(fig))
    with pytest.raises(ValueError, match="no legend"):
        figures.show(fig)


def test_small_legend_is_flagged():
    fig, ax = figures.column_figure()
    ax.plot([1, 2], label="a")
    ax.plot([1, 3], label="b")
    ax.legend(fontsize=7)
    assert any("legend text is 7.0 pt" in p for p in figures.legibility_problems(fig))


@pytest.mark.parametrize("x, want", [(104630.799103, "104,631"), (0.0066123, "0.00661"), (3e-5, "3.00e-05"),
                                      (12, "12"), (123456, "123,456"), (float("nan"), "–"), (None, "–"),
                                      (0.5, "0.500"), (12.345, "12.3"), (True, "yes"), (0.0, "0"), (-2.5, "-2.50")])
def test_format_number(x, want):
    assert figures.format_number(x) == want


def test_format_number_zero_below():
    assert figures.format_number(2.4e-16, zero_below=1e-9) == "0" and figures.format_number(2.4e-6, zero_below=1e-9) == "2.40e-06"


def test_format_number_of_one():
    assert figures.format_number(1.0) == "1.00"


@given(st.floats(min_value=1e-3, max_value=9999, allow_nan=False))
def test_format_number_keeps_three_significant_digits(x):
    s = figures.format_number(x)
    assert math.isclose(float(s.replace(",", "")), x, rel_tol=6e-3)


def test_format_table_drops_nan_columns_and_limits_rows():
    df = pd.DataFrame({"seconds": [104630.799103, 0.01234], "empty": [np.nan, np.nan], "n": [3, 4]})
    out = figures.format_table(df)
    assert list(out.columns) == ["seconds", "n"]
    assert out["seconds"].tolist() == ["104,631", "0.0123"]
    with pytest.raises(ValueError, match="max_rows"):
        figures.format_table(pd.DataFrame({"a": range(16)}))
    assert len(figures.format_table(pd.DataFrame({"a": range(16)}), max_rows=None)) == 16
    assert figures.format_table(df, formats={"n": "{:d} runs"})["n"].tolist() == ["3 runs", "4 runs"]


def _nb():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T"),
                nbformat.v4.new_code_cell("seed = 0  # the seed\nd = 64", metadata={"tags": ["parameters", "hide-input"]}),
                nbformat.v4.new_code_cell("# Parameters\nd = 16\n", metadata={"tags": ["injected-parameters", "hide-input"]}),
                nbformat.v4.new_code_cell("print(d)")]
    return nb


def test_tidy_merges_the_injected_cell_into_one_folded_cell():
    nb = tidy_executed_notebook(_nb())
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) == 2
    params = code[0]
    assert params.source.startswith("seed = 0  # the seed\nd = 64")
    assert params.source.endswith(INJECTED_HEADER + "\nd = 16")
    assert params.metadata["tags"] == ["parameters", "hide-input"]
    again = tidy_executed_notebook(nb)  # idempotent
    assert [c.source for c in again.cells] == [c.source for c in nb.cells]


def test_tidy_without_injection_only_folds():
    nb = _nb()
    del nb.cells[2]
    nb.cells[1].metadata["tags"] = ["parameters", "hide-output"]
    tidy_executed_notebook(nb)
    assert nb.cells[1].metadata["tags"] == ["parameters", "hide-input"]
    assert len(nb.cells) == 3
