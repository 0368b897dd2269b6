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
# Look at the *verdict* and *strict verdict* columns: a claim that passes the paper's bar but
# fails ours is one the paper's own test could not have told apart from its alternatives.

# %%
if table.empty:
    display(Markdown("*No chapter has recorded a claim yet: build the other chapters first.*"))
else:
    cols = ["rung", "kind", "chapter", "description", "paper", "ours", "criterion", "verdict",
            "strict_criterion", "strict_verdict", "p_value"]
    display(table[cols].style.hide(axis="index").map(
        lambda v: "color: #b00020; font-weight: bold" if v == "FAIL" else ("color: #1b5e20" if v == "pass" else ""),
        subset=["verdict", "strict_verdict"]))

# %% [markdown]
# ## Counts
# How many of each rung's claims clear the paper's bar, and ours.

# %%
counts = verdict_counts(rows)
display(pd.DataFrame(counts).T if counts else Markdown("*nothing recorded*"))
results.record("verdict_counts", counts)
results.record("n_claims", len(rows))
results.record("n_pass_paper_bar", sum(r["verdict"] == "pass" for r in rows))
results.record("n_pass_strict_bar", sum(r["strict_verdict"] == "pass" for r in rows))
