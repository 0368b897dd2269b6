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
# Every chapter of this book recorded its measurements of the paper's claims into a results
# file, with the paper's threshold and, where we have one, a stricter version of it. This page
# **reads those files only** — it computes nothing new and copies no number — and lays every
# claim side by side. A rebuild with other parameters (say, the `paper` profile) rewrites every
# row. The four pre-registered bars themselves are measured in {doc}`16_dyck_four_bars`.
#
# **How to read a row.** *Claim* links to the chapter that measured it. *Provenance* says whose
# claim it is: **the paper's claim** (its own statistic: its sites, pairs, sample and threshold),
# **our stricter version** of one (with the one-line reason it is stricter), **our own check**
# (planted answers, controls, baselines), or **our test of the paper's test** (a check that the
# paper's instrument can see what it is meant to see). *The paper reports* is the paper's number
# and whether it says it meets its own bar. *Ours* is this build's value with the criterion and
# its verdict (and the calibrated p-value of the test behind it, when there is one). *Across
# seeds* is the headline's interval across seeds when the chapter computed one (method below),
# "—" when it did not. *Premise* says whether the models under the row compute the same function,
# as the paper assumes — a failure on models that do not is a statement about those models, not
# about the paper.
#
# **What "pass" means.** For the paper's claims and our checks, *pass* means the criterion is
# met. For **our tests of the paper's tests** it is the other way round: those claims say "the
# paper's test accepts a matrix we built to be *not* Haar" (a signed permutation, a rotation with
# two invariant halves), so a *pass* there means **the paper's test failed to detect it** — bad
# news for the test. Those rows read "blind" or "detects", never "pass", and are drawn dark red
# when blind.
#
# **How the paper's claims are grouped**, by the paper's own bar, never by ours:
# *replicated* (our value comes out on the paper's bar the way the paper reports, and none of our
# stricter checks contradicts it); *holds on the paper's terms; fails ours* (a stricter check of
# ours, or the calibrated p-value attached to the claim, rejects); *meets a bar the paper reports
# missing* (the paper reports its seeds failing its own bar — P, cross-seed C ≡ Pr — and ours
# pass: better than the paper, not a failed replication); *did not replicate on the paper's
# terms*; *not computed in this build*.

# %% tags=["parameters"]
results_dir = ""     # [str] empty: the results folder of this build
profile = "quick"    # [str] the profile this build ran (written into the results file)

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from polyrot_utils.book import figures, findings, report
from polyrot_utils.book.results import ChapterResults, load_all_results

figures.use_book_style()
SYNTHESIS = ("00_findings", "90_verdict", "91_conclusions")
rows = report.claims_table(results_dir or None, exclude=SYNTHESIS)
premise = findings.premise(load_all_results(results_dir or None))
results = ChapterResults("90_verdict", params=dict(profile=profile))
counts = report.verdict_counts(rows)
methods = report.interval_methods(rows)
n_iv = sum(1 for r in rows if r.get("interval"))

# %% [markdown]
# ## The premise under each rung
# The paper's premise is that the seeds compute the same function. Each rung's row below is
# repeated, shortened, in the *premise* column of its tables.

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
prem_rows = [(name, findings.premise_note(premise, name)) for _, name in report.RUNGS
             if any(r["rung"] == name for r in rows)]
display(Markdown("| rung | functional agreement, and the paper's premise |\n|---|---|\n"
                 + "\n".join(f"| {n} | {report.md_escape(t)} |" for n, t in prem_rows)))
results.record("premise", {n: t for n, t in prem_rows})

# %% [markdown]
# ## Counts
# Per rung: the paper's claims by the paper's own bar; our checks by outcome; and our tests of
# the paper's tests on planted answers, where "accepted" means the paper's test was blind.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Every claim this build recorded, per rung. The paper's claims are counted by the paper's own bar (green: replicated; amber: holds on the paper's terms but fails our stricter check; light green, hatched: our models meet a bar the paper reports its own seeds missing; red: did not replicate on the paper's terms; grey: not computed). Our own checks are counted apart (blue: pass; purple: fail). Tests of the paper's tests on matrices built not to be Haar are counted apart again: dark red, cross-hatched, where the paper's test accepted the non-Haar matrix (it is blind there) — never counted as a pass.", "name": "fig-90-counts"}, "image": {"alt": "Horizontal stacked bars, one per rung and kind of claim, counting claims by status; the planted rung's tests of the paper's tests are mostly dark red (blind)."}}
if counts:
    figures.show(report.counts_figure(counts))
results.record("verdict_counts", counts)

# %% [markdown]
# ## Every claim, by rung and group
# Each paper claim is followed by our stricter versions of it (same group); our tests of the
# paper's tests follow; our own checks (planted answers, controls, baselines) are folded under
# each rung — open them to see every one. Groups longer than 15 rows continue in a second table.

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
if methods:
    display(Markdown(f"*Across seeds*: {n_iv} claim(s) carry an interval; method: "
                     + "; ".join(report.md_escape(m) for m in methods) + " (the seeds resampled with "
                     "replacement; with 3–5 seeds it says how much the headline moves with the choice of "
                     "seeds, not a population interval)."))
else:
    display(Markdown("*Across seeds*: no claim of this build carries an interval across seeds."))
tables = report.verdict_tables(rows, lambda rung: findings.premise_short(premise, rung))
for rung in dict.fromkeys(t[0] for t in tables):
    shown = [f"**{report.md_escape(h)}**\n\n{md}" for r, kind, h, md in tables if r == rung and kind != "check"]
    folded = [f"**{report.md_escape(h)}**\n\n{md}" for r, kind, h, md in tables if r == rung and kind == "check"]
    n_checks = sum(md.count("\n") - 1 for r, kind, _, md in tables if r == rung and kind == "check")
    display(Markdown(f"### {rung}\n\n" + "\n\n".join(shown)
                     + (f"\n\n:::{{dropdown}} Our own checks on this rung ({n_checks}; open them)\n"
                        + "\n\n".join(folded) + "\n:::" if folded else "")))
if not rows:
    display(Markdown("*No chapter has recorded a claim yet: build the other chapters first.*"))

# %% [markdown]
# ## Sources
# The section of the paper, and the file and function of its repository, that define each paper
# claim's statistic (folded: open it to check a row against the paper).

# %% tags=["hide-input"] mystnb={"markdown_format": "myst"}
view = report.paper_claims_view(rows)
items = "\n".join(f"- {report.md_escape(v['claim'])} ({report.chapter_link({'chapter': v['chapter']})}): "
                  f"{report.md_escape(v['source'])}" for v in view)
display(Markdown(f":::{{dropdown}} Sources of the {len(view)} paper claims\n{items or '*none*'}\n:::"))
results.record("paper_claims_view", view)
results.record("n_claims", len(rows))
results.record("n_paper_claims", len(view))
for key in ("replicated", "paper_terms_only", "exceeds", "failed", "not_computed"):
    results.record(f"n_paper_claims_{key}", sum(c[key] for c in counts.values()))
