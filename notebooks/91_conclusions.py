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
# # Conclusions: what replicated, what did not, what remains open
#
# This chapter writes its verdicts from the results files of this build — the same files the
# verdict table reads — so every sentence below changes when a chapter is rerun with other
# parameters. Every claim of the paper is computed with the paper's own statistic (its sites,
# pairs, sample, variance and aggregation) and sorted **by the paper's own bar**, never by ours:
#
# - **replicated**: our value meets the paper's criterion as the paper says its value does, and
#   our stricter checks of it pass (or we have none);
# - **holds on the paper's terms; fails ours**: the paper's statistic replicates, but our
#   stricter check (held-out rows, a calibrated test, a baseline) fails — not a failed replication;
# - **did not replicate on the paper's terms**: the paper's own statistic, in our data, does not
#   come out the way the paper reports;
# - **open**: what this build could not test (listed at the end, with the reason).
#
# Each sentence gives the paper's reported number, ours with its statistic, our check, and the
# paper's section or function that defines the statistic.

# %% tags=["parameters"]
results_dir = ""     # empty: the results folder of this build
profile = "quick"

# %%
from IPython.display import Markdown, display

from polyrot_utils.book.report import claims_table, conclusion_groups, open_questions
from polyrot_utils.book.results import ChapterResults

rows = claims_table(results_dir or None, exclude=("00_findings", "90_verdict", "91_conclusions"))
groups = conclusion_groups(rows)
results = ChapterResults("91_conclusions", params=dict(profile=profile))
results.record("group_sizes", {k: len(v) for k, v in groups.items()})
results.record("paper_claim_counts", {k: len(groups[k]) for k in ("replicated", "paper_only", "failed")})

# %% [markdown]
# At a glance: how the paper's claims, and our own instrument checks, fall into the groups below.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Where every claim recorded by this build lands: the paper's claims by the paper's own bar (replicated, holds on the paper's terms only, did not replicate on its terms), and our own checks (pass, fail).", "name": "fig-91-groups"}, "image": {"alt": "Five horizontal bars counting claims per group."}}
from polyrot_utils.book import figures

labels = {"replicated": "replicated", "paper_only": "paper's terms only", "failed": "not on paper's terms",
          "checks_passed": "our checks: pass", "checks_failed": "our checks: fail"}
colors = ["#2e7d32", "#f9a825", "#c62828", "#90caf9", "#6a1b9a"]
fig, ax = figures.column_figure(height=2.8)
ax.barh([labels[k] for k in labels], [len(groups[k]) for k in labels], color=colors)
ax.invert_yaxis()
ax.set_xlabel("number of recorded claims")
figures.show(fig)

# %% [markdown]
# ## Replicated
# Claims that hold in our data under the paper's criterion and under ours.

# %% tags=["hide-input"]
display(Markdown(groups["replicated"] and "\n".join(f"- {r}" for r in groups["replicated"]) or "*None.*"))

# %% [markdown]
# ## Holds on the paper's terms; fails ours
# The paper's statistic replicates in our data, but our stricter check of the same claim — a
# calibrated test with measured power, held-out rows, a baseline or a control — fails.

# %% tags=["hide-input"]
display(Markdown(groups["paper_only"] and "\n".join(f"- {r}" for r in groups["paper_only"]) or "*None.*"))

# %% [markdown]
# ## Did not replicate on the paper's terms
# Claims whose own statistic, computed as the paper computes it, does not come out in our data
# the way the paper reports.

# %% tags=["hide-input"]
display(Markdown(groups["failed"] and "\n".join(f"- {r}" for r in groups["failed"]) or "*None.*"))

# %% [markdown]
# ## Our instrument checks
# Not claims of the paper: our stricter versions of its claims (each with why it is stricter)
# and the planted answers and controls that must pass for the comparisons above to mean
# anything.

# %% tags=["hide-input"]
checks = groups["checks_failed"] + groups["checks_passed"]
display(Markdown("\n".join(f"- {r}" for r in checks) or "*None recorded.*"))

# %% [markdown]
# ## Open
# What this build did not or could not test.

# %% tags=["hide-input"]
questions = open_questions(rows, profile=profile)
results.record("open_questions", questions)
display(Markdown("\n".join(f"- {q}" for q in questions)))
