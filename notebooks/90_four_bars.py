# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The verdict: every claim, the paper's bar and ours
#
# The paper pre-registered its criteria ("four bars": behavioural, parametric, causal,
# predictive) and reports headline numbers for each rung. Every chapter of this book recorded
# its own measurement of those claims into a results file, with the paper's threshold and, where
# we have one, a stricter version of it. This chapter **reads those files only** — it computes
# nothing new and copies no number — and lays them side by side.
#
# How to read the table: *paper* is the paper's reported value, *ours* is this build's
# measurement, *criterion* is the paper's own threshold and *verdict* whether our measurement
# meets it; *strict* columns apply our stricter criterion (calibrated tests, held-out data,
# baselines). A rebuild with other parameters (say, the `paper` profile) rewrites every row.

# %% tags=["parameters"]
results_dir = ""     # empty: the results folder of this build
profile = "quick"

# %%
import pandas as pd
from IPython.display import Markdown, display

from polyrot_utils.report import claims_table, verdict_counts
from polyrot_utils.results import ChapterResults

rows = claims_table(results_dir or None, exclude=("90_four_bars",))
table = pd.DataFrame(rows)
results = ChapterResults("90_four_bars", params=dict(profile=profile))

# %% [markdown]
# ## Every claim, by rung
# One table per rung: the paper's claims first, then our own instrument checks (planted answers,
# controls, the power of the tests) that the comparisons rest on. Look at the two verdict
# columns: a claim that passes the paper's bar but fails ours is one the paper's own test could
# not have told apart from its alternatives.

# %% tags=["hide-input"]
from polyrot_utils.report import RUNGS, compact_claims


def _style(frame):
    def colour(v):
        if isinstance(v, str) and v.startswith("FAIL"):
            return "color: #b00020; font-weight: bold"
        if isinstance(v, str) and v.startswith("pass"):
            return "color: #1b5e20"
        return ""
    return frame.style.hide(axis="index").map(colour, subset=["paper's bar", "our stricter bar"])


if table.empty:
    display(Markdown("*No chapter has recorded a claim yet: build the other chapters first.*"))
for _, rung in RUNGS:
    for kind, title in (("paper", "the paper's claims"), ("check", "our instrument checks")):
        part = compact_claims(rows, rung, kind)
        if part:
            display(Markdown(f"### {rung.capitalize()}: {title}"))
            display(_style(pd.DataFrame(part)))

# %% [markdown]
# ## Counts
# How many of each rung's claims clear the paper's bar, and ours.

# %% tags=["hide-input"]
counts = verdict_counts(rows)
display(pd.DataFrame(counts).T if counts else Markdown("*nothing recorded*"))

# %% [markdown]
# The same counts as a picture: for each rung, how many claims clear the paper's bar (left bar)
# and ours (right bar). Grey: claims that have no stricter version.

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np

if counts:
    rungs = list(counts)
    x = np.arange(len(rungs))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    p_pass = [counts[r]["pass"] for r in rungs]
    p_fail = [counts[r]["fail"] for r in rungs]
    s_pass = [counts[r]["strict_pass"] for r in rungs]
    s_fail = [counts[r]["strict_fail"] for r in rungs]
    s_none = [counts[r]["claims"] - counts[r]["strict_pass"] - counts[r]["strict_fail"] for r in rungs]
    ax.bar(x - 0.2, p_pass, 0.38, color="#2e7d32", label="pass")
    ax.bar(x - 0.2, p_fail, 0.38, bottom=p_pass, color="#c62828", label="fail")
    ax.bar(x + 0.2, s_pass, 0.38, color="#2e7d32")
    ax.bar(x + 0.2, s_fail, 0.38, bottom=s_pass, color="#c62828")
    ax.bar(x + 0.2, s_none, 0.38, bottom=np.add(s_pass, s_fail), color="#bdbdbd", label="no stricter test")
    ax.set_xticks(x, [f"{r}\n(paper's bar | ours)" for r in rungs])
    ax.set_ylabel("number of claims")
    ax.set_title("Claims clearing the paper's criterion and our stricter one, per rung")
    ax.legend(frameon=False)
    plt.show()
results.record("verdict_counts", counts)
results.record("n_claims", len(rows))
results.record("n_pass_paper_bar", sum(r["verdict"] == "pass" for r in rows))
results.record("n_pass_strict_bar", sum(r["strict_verdict"] == "pass" for r in rows))
