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
# verdict ({doc}`90_verdict`) reads — so every sentence below changes when a chapter is rerun
# with other parameters. Every claim of the paper is computed with the paper's own statistic (its
# sites, pairs, sample, variance and aggregation) and sorted **by the paper's own bar**, never by
# ours:
#
# - **replicated**: our value comes out on the paper's criterion the way the paper reports its
#   own does, and none of our stricter checks of it contradicts it;
# - **holds on the paper's terms; fails ours**: the paper's statistic replicates, but our
#   stricter check (held-out rows, a calibrated test, a baseline) or the calibrated p-value of
#   the claim's own test rejects — not a failed replication;
# - **meets a bar the paper reports missing**: the paper reports its own seeds failing one of
#   its bars (P, cross-seed C ≡ Pr) and ours pass it — better than the paper, not a failure;
# - **did not replicate on the paper's terms**: the paper's own statistic, in our data, does not
#   come out the way the paper reports;
# - **not computed**, and what this build could not test (the last section).
#
# Each sentence links to the chapter that measured it, says whose claim it is, and gives the
# paper's reported number, ours with its statistic, our check, the interval across seeds when
# the chapter computed one, and the premise of its rung: whether the models under it compute
# the same function, as the paper assumes. A failure on models that do not meet the premise is
# a statement about those models, not about the paper.
#
# **What "pass" means for a test of a test.** Chapter 02 checks the paper's own Haar tests on
# matrices built *not* to be Haar. There a claim that "holds" — "the paper's KS does not reject
# a signed permutation" — means the paper's test **failed to detect** what it exists to detect:
# bad news for the test. Those claims are listed apart, as *blind* or *detects*, never as passes.

# %% tags=["parameters"]
results_dir = ""     # [str] empty: the results folder of this build
profile = "quick"    # [str] the profile this build ran (written into the results file)

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from polyrot_utils.book import figures, findings, report
from polyrot_utils.book.results import ChapterResults, load_all_results

figures.use_book_style()
rows = report.claims_table(results_dir or None, exclude=("00_findings", "90_verdict", "91_conclusions"))
premise = findings.premise(load_all_results(results_dir or None))
groups = report.conclusion_groups(rows, premise_of=lambda rung: findings.premise_short(premise, rung))
results = ChapterResults("91_conclusions", params=dict(profile=profile))
results.record("group_sizes", {k: len(v) for k, v in groups.items()})
results.record("paper_claim_counts", {k: len(groups[k]) for k in
                                      ("replicated", "paper_only", "exceeds", "failed", "not_computed")})


def bullets(items, fold_over=None, what="claims"):
    """A MyST bullet list; longer than ``fold_over`` items (our checks), folded in a dropdown.
    The paper's claims are never folded."""
    body = "\n".join(f"- {s}" for s in items) or "*None in this build.*"
    if fold_over is not None and len(items) > fold_over:
        return f":::{{dropdown}} {len(items)} {what} (open the list)\n{body}\n:::"
    return body


# %% [markdown]
# At a glance: how the paper's claims, our checks, and our tests of the paper's tests fall into
# the groups below.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Where every claim recorded by this build lands. The paper's claims by the paper's own bar: replicated (green), holds on the paper's terms only (amber), ours meet a bar the paper reports missing (light green), did not replicate on its terms (red), not computed (grey). Our own checks: pass (blue), pass the paper's test while our calibrated test rejects (light orange), fail (purple). Our tests of the paper's Haar tests on matrices built not to be Haar: the paper's test detects it (dark blue) or is blind to it (dark red) — a blind test is bad news, never a pass.", "name": "fig-91-groups"}, "image": {"alt": "Horizontal bars counting claims per group: the paper's claims by status, our checks, and the paper's tests that were blind or detected the planted matrix."}}
labels = {"replicated": ("replicated", "#2e7d32"), "paper_only": ("paper's terms only", "#f9a825"),
          "exceeds": ("meets a bar the paper misses", "#81c784"), "failed": ("did not replicate", "#c62828"),
          "not_computed": ("not computed", "#9e9e9e"), "checks_passed": ("our checks: pass", "#64b5f6"),
          "checks_paper_bar_only": ("our checks: paper's test only", "#ffcc80"),
          "checks_failed": ("our checks: fail", "#6a1b9a"), "tests_detect": ("paper's test detects", "#1565c0"),
          "tests_blind": ("paper's test blind", "#8d0000")}
fig, ax = figures.column_figure(height=3.6)
ax.barh([lab for lab, _ in labels.values()], [len(groups[k]) for k in labels], color=[c for _, c in labels.values()])
for i, k in enumerate(labels):
    ax.text(len(groups[k]), i, f" {len(groups[k])}", va="center", fontsize=9)
ax.invert_yaxis()
ax.set_xlabel("number of recorded claims")
figures.show(fig)

# %% [markdown]
# ## Replicated
# The paper's claims that hold in our data under the paper's criterion and under ours.

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
display(Markdown(bullets(groups["replicated"])))

# %% [markdown]
# ## Holds on the paper's terms; fails ours
# The paper's statistic replicates in our data, but our stricter check of the same claim — a
# calibrated test with measured power, held-out rows, a baseline or a control — fails. Below
# them, our own checks that apply one of the paper's tests where the paper did not (so they are
# not counted among its claims) and pass it while our calibrated test rejects.

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
display(Markdown(bullets(groups["paper_only"]) + "\n\n**Our checks that pass the paper's test only:**\n\n"
                 + bullets(groups["checks_paper_bar_only"])))

# %% [markdown]
# ## Meets a bar the paper reports missing
# The paper reports its own seeds failing these bars; ours pass them. This is not a failed
# replication: on these bars our models look *more* alike than the paper's.

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
display(Markdown(bullets(groups["exceeds"])))

# %% [markdown]
# ## Did not replicate on the paper's terms
# Claims whose own statistic, computed as the paper computes it, does not come out in our data
# the way the paper reports. Read each beside its premise: on models that do not compute the
# same function, a failure says more about the models than about the paper.

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
display(Markdown(bullets(groups["failed"])))

# %% [markdown]
# ## The paper's tests, on answers we planted
# Our checks of the paper's Haar tests on matrices we built not to be Haar. *Blind* means the
# paper's test accepted the non-Haar matrix — it cannot see the difference — and is bad news for
# every conclusion the paper draws from that test.

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
display(Markdown("**Blind** (the paper's test accepts a non-Haar matrix):\n\n" + bullets(groups["tests_blind"])
                 + "\n\n**Detects** (the paper's test rejects it):\n\n" + bullets(groups["tests_detect"])))

# %% [markdown]
# ## Our other checks
# Not claims of the paper: our stricter versions of its claims (each with why it is stricter,
# also listed beside its claim above) and the planted answers and controls that must pass for
# the comparisons above to mean anything. Folded when long.

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
display(Markdown("**Fail:**\n\n" + bullets(groups["checks_failed"], fold_over=8, what="failing checks")
                 + "\n\n**Pass:**\n\n" + bullets(groups["checks_passed"], fold_over=8, what="passing checks")))

# %% [markdown]
# ## Open
# What this build did not or could not test, and the claims it could not compute.

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
questions = report.open_questions(rows, profile=profile)
results.record("open_questions", questions)
nc = groups["not_computed"] + groups["checks_not_computed"]
display(Markdown("\n".join(f"- {q}" for q in questions)
                 + ("\n\n**Not computed in this build:**\n\n" + bullets(nc) if nc else "")))
