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
# parameters. It sorts each recorded claim into one of four groups:
#
# - **replicated**: passes the paper's criterion and our stricter one (or we have no stricter one);
# - **passes only the paper's bar**: the paper's test says yes, a calibrated test or a baseline
#   says the evidence cannot tell the claim from its alternatives;
# - **did not replicate**: fails the paper's own criterion in our data;
# - **open**: what this build could not test (listed at the end, with the reason).

# %% tags=["parameters"]
results_dir = ""     # empty: the results folder of this build
profile = "quick"

# %%
from IPython.display import Markdown, display

from polyrot_utils.report import claims_table, conclusion_groups, open_questions
from polyrot_utils.results import ChapterResults

rows = claims_table(results_dir or None, exclude=("90_four_bars", "91_conclusions"))
groups = conclusion_groups(rows)
results = ChapterResults("91_conclusions", params=dict(profile=profile))
results.record("group_sizes", {k: len(v) for k, v in groups.items()})

# %% [markdown]
# At a glance: how the paper's claims, and our own instrument checks, fall into the groups below.

# %% tags=["hide-input"]
import matplotlib.pyplot as plt

labels = {"replicated": "replicated", "paper_only": "paper's bar only", "failed": "did not replicate",
          "checks_passed": "our checks: pass", "checks_failed": "our checks: fail"}
colors = ["#2e7d32", "#f9a825", "#c62828", "#90caf9", "#6a1b9a"]
fig, ax = plt.subplots(figsize=(7, 2.8))
ax.barh([labels[k] for k in labels], [len(groups[k]) for k in labels], color=colors)
ax.invert_yaxis()
ax.set_xlabel("number of recorded claims")
ax.set_title("Where every recorded claim of this build lands")
plt.show()

# %% [markdown]
# ## Replicated
# Claims that hold in our data under the paper's criterion and under ours.

# %% tags=["hide-input"]
display(Markdown(groups["replicated"] and "\n".join(f"- {r}" for r in groups["replicated"]) or "*None.*"))

# %% [markdown]
# ## Passes the paper's bar, fails ours
# The paper's test is satisfied, but a calibrated test with measured power, a baseline, or a
# control shows that this evidence does not single out the paper's explanation.

# %% tags=["hide-input"]
display(Markdown(groups["paper_only"] and "\n".join(f"- {r}" for r in groups["paper_only"]) or "*None.*"))

# %% [markdown]
# ## Did not replicate
# Claims our measurements contradict under the paper's own criterion.

# %% tags=["hide-input"]
display(Markdown(groups["failed"] and "\n".join(f"- {r}" for r in groups["failed"]) or "*None.*"))

# %% [markdown]
# ## Our instrument checks
# Not claims of the paper: the planted answers and controls that must pass for the comparisons
# above to mean anything. A failure here would undercut every verdict of its rung.

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
