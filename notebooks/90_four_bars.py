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
# How to read the table: for every claim of the paper, three things side by side — what the
# paper reports, what this book gets computing the paper's own statistic, and our stricter
# check — sorted by the paper's own bar. A rebuild with other parameters (say, the `paper`
# profile) rewrites every row.

# %% tags=["parameters"]
results_dir = ""     # empty: the results folder of this build
profile = "quick"

# %%
import pandas as pd
from IPython.display import Markdown, display

from polyrot_utils.book.report import claims_table, verdict_counts
from polyrot_utils.book.results import ChapterResults

rows = claims_table(results_dir or None, exclude=("00_findings", "90_four_bars", "91_conclusions"))
table = pd.DataFrame(rows)
results = ChapterResults("90_four_bars", params=dict(profile=profile))

# %% [markdown]
# ## The paper's claims: the paper's number, ours with its statistic, our stricter check
# One row per claim the paper makes. *paper reports* is its number (copied from its text or its
# `docs/PAPER_NUMBERS.md`, with whether the paper says it meets its own bar); *this book,
# paper's statistic* is our measurement computed the way the paper's code computes it (same
# sites, pairs, sample, variance and aggregation), with the paper's criterion and its verdict;
# *our stricter check* is our own, separate version (held-out rows, calibrated tests, baselines)
# with the one-line reason it differs. Rows are sorted by the paper's own bar: a claim that
# fails only our check reads "holds on the paper's terms; fails ours", never "did not replicate".
# *source* names the paper's section and the function in its repository.

# %% tags=["hide-input"]
from polyrot_utils.book import findings
from polyrot_utils.book.report import RUNGS, compact_claims, paper_claims_view
from polyrot_utils.book.results import load_all_results


def _style(frame, cols):
    def colour(v):
        if isinstance(v, str) and ("FAIL" in v.split(" (")[0] or v.startswith("did not")):
            return "color: #b00020; font-weight: bold"
        if isinstance(v, str) and (v.startswith("pass") or v == "replicated"):
            return "color: #1b5e20"
        if isinstance(v, str) and v.startswith("holds on"):
            return "color: #e65100"
        return ""
    return frame.style.hide(axis="index").map(colour, subset=cols)


view = paper_claims_view(rows)
premise = findings.premise(load_all_results(results_dir or None))
for v in view:  # how far the models under each row meet the paper's premise (same function)
    v["premise (models under this row)"] = findings.premise_note(premise, v["rung"])
if table.empty:
    display(Markdown("*No chapter has recorded a claim yet: build the other chapters first.*"))
elif view:
    display(_style(pd.DataFrame(view), ["status"]))
results.record("paper_claims_view", view)

# %% [markdown]
# ## Our checks, by rung
# Not claims of the paper: our stricter versions of them (each names the paper claim it checks)
# and the instrument checks (planted answers, controls, the power of the tests) the comparisons
# rest on.

# %% tags=["hide-input"]
for _, rung in RUNGS:
    part = compact_claims(rows, rung, "check")
    if part:
        display(Markdown(f"### {rung.capitalize()}: our checks"))
        display(_style(pd.DataFrame(part), ["verdict"]))

# %% [markdown]
# ## Counts
# Per rung, the paper's claims counted by the paper's own bar, and our checks.

# %% tags=["hide-input"]
counts = verdict_counts(rows)
display(pd.DataFrame(counts).T if counts else Markdown("*nothing recorded*"))

# %% [markdown]
# The same counts as a picture: for each rung, the paper's claims by status on the paper's own
# bar (left bar) and our checks (right bar).

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np

if counts:
    rungs = list(counts)
    x = np.arange(len(rungs))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    rep = [counts[r]["replicated"] for r in rungs]
    only = [counts[r]["paper_terms_only"] for r in rungs]
    fail = [counts[r]["failed"] for r in rungs]
    ax.bar(x - 0.2, rep, 0.38, color="#2e7d32", label="replicated")
    ax.bar(x - 0.2, only, 0.38, bottom=rep, color="#f9a825", label="paper's terms only")
    ax.bar(x - 0.2, fail, 0.38, bottom=np.add(rep, only), color="#c62828", label="not on paper's terms")
    cp = [counts[r]["checks_pass"] for r in rungs]
    cf = [counts[r]["checks_fail"] for r in rungs]
    ax.bar(x + 0.2, cp, 0.38, color="#90caf9", label="our checks: pass")
    ax.bar(x + 0.2, cf, 0.38, bottom=cp, color="#6a1b9a", label="our checks: fail")
    ax.set_xticks(x, [f"{r}\n(paper's claims | our checks)" for r in rungs])
    ax.set_ylabel("number of claims")
    ax.set_title("The paper's claims by its own bar, and our checks, per rung")
    ax.legend(frameon=False, fontsize=7)
    plt.show()
results.record("verdict_counts", counts)
results.record("n_claims", len(rows))
results.record("n_paper_claims", sum(r["kind"] == "paper" for r in rows))
results.record("n_paper_claims_replicated", sum(v["status"] == "replicated" for v in view))
results.record("n_paper_claims_paper_terms_only", sum(v["status"].startswith("holds on") for v in view))
