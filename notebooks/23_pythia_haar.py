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
# # Is the seeds' rotation Haar?
#
# The paper says the rotation R between two Pythia-70m seeds is a uniformly random (Haar)
# element of SO(d), on two pieces of evidence: the mean ‖R − I‖_F over pairs and sites matches
# √(2d) to 0.1 %, and a KS test of the pooled |eigenphases| of R against Haar returns p ≈ 1.
# Chapter {doc}`02_is_r_haar` showed both checks have almost no power: a signed permutation passes
# them. Here we compute the paper's two checks the paper's way (O(d) fits onto the first seed, at
# its seven sites) beside the calibrated test of `polyrot_utils.core.haar` and its power at this
# d, the {term}`fixed subspace <Fixed subspace>` of R at tolerance `fixed_tol`, and a negative
# control — the same function as the Dyck chapter {doc}`13_dyck_haar`, on other activations.
#
# Then a check the paper skipped. Adam-trained language models grow *outlier dimensions*: a few
# residual coordinates with heavy-tailed activations, picked out by the optimiser's
# per-coordinate step sizes. If R maps one seed's most kurtotic coordinates onto the other's, the
# coordinate axes are privileged — and then R is not Haar, whatever its spectrum says.
#
# **What would falsify "R is Haar":** a calibrated test rejecting (per pair or pooled), or R
# mapping outlier dimensions onto outlier dimensions more than Haar rotations do. **What would
# support it:** calibrated p-values above α, and negative controls that the test *does* reject —
# otherwise "looks Haar" says nothing about the seeds.

# %% tags=["parameters"]
suite_profile = "quick"  # [str in {smoke, quick, paper, hub}] the models: SUITE_PROFILES in polyrot_utils.tasks.pythia.suite
suite_overrides = {}     # [dict] any argument of suite_config, e.g. {"n_seeds": 6} or {"allow_download": true}
seed = 0  # [int >= 0]
device = "auto"
n_fit_seqs = 64          # [int >= 1] held-out windows each R is fitted on (as chapters 21-22)
n_eval_seqs = 32         # [int >= 1] held-out windows (loaded with the fit batch; unused here)
skip_positions = 0       # [int >= 0] drop each window's first positions (0: keep all, as the paper)
n_null = 200             # [int >= 1] Haar samples calibrating every test
n_resample = 2000        # [int >= 1] resamples calibrating the pooled Fisher statistic
alpha = 0.05             # [float > 0, < 1] level of every test
power_trials = 12        # [int >= 1] matrices per row of the size/power table at this d
fixed_tol = 0.1          # [float > 0] fixed-subspace tolerance τ (radians), as in the glossary
full_rank_frac = 0.9     # [float > 0, <= 1] a site is identified if its rank >= this × d
n_outliers = 4           # [int >= 1] most kurtotic dimensions per seed for the outlier test
outlier_null = 500       # [int >= 1] Haar samples calibrating the outlier test

# %% tags=["hide-input"]
from IPython.display import display

from polyrot_utils.book import figures
from polyrot_utils.book.findings import premise_banner
from polyrot_utils.book.results import ChapterResults
from polyrot_utils.experiments import haar_test
from polyrot_utils.models.neox import standin_suite
from polyrot_utils.tasks.pythia.suite import pythia_activations, suite_from_parameters

figures.use_book_style()
params = dict(suite_profile=suite_profile, suite_overrides=suite_overrides, seed=seed,
              device=device, n_fit_seqs=n_fit_seqs, n_eval_seqs=n_eval_seqs,
              skip_positions=skip_positions, n_null=n_null, n_resample=n_resample, alpha=alpha,
              power_trials=power_trials, fixed_tol=fixed_tol, full_rank_frac=full_rank_frac,
              n_outliers=n_outliers, outlier_null=outlier_null)
results = ChapterResults("23_pythia_haar", params=params)

# %% [markdown]
# ## The experiment
# The seeds' activations (and an untrained model's, for the negative control) on `n_fit_seqs`
# held-out windows; then one call that fits every R and runs every test. The box says whether
# these models meet the paper's premise.

# %% tags=["hide-input"]
suite_cfg = suite_from_parameters(suite_profile, suite_overrides, seed=seed, device=device)
acts = pythia_activations(standin_suite(suite_cfg), suite_cfg, n_fit_seqs=n_fit_seqs,
                          n_eval_seqs=n_eval_seqs, controls=("untrained",),
                          skip_positions=skip_positions)
res = haar_test.haar_experiment(acts, n_null=n_null, n_resample=n_resample, alpha=alpha,
                                power_trials=power_trials, fixed_tol=fixed_tol,
                                full_rank_frac=full_rank_frac, n_outliers=n_outliers,
                                outlier_null=outlier_null, seed=seed)
display(premise_banner(acts))

# %% [markdown]
# Its tables, figure and verdict are placed in the sections below.

# %% tags=["hide-input", "remove-output"]
outputs = haar_test.chapter_outputs(res, figures.column_figure)
figures.glue_outputs({"power_table": outputs.pop("power_table")}, sig=2)
figures.glue_outputs(outputs)

# %% [markdown]
# ## The paper's checks beside the calibrated test
# The first two rows are the paper's numbers (its O(d) fits onto the first seed, at its seven
# sites): look at whether they sit inside the paper's bars while the calibrated p-values fall
# under α. `pairs × sites rejected` counts the per-matrix verdicts; `outlier p` is the
# outlier-dimension test; `controls` the negative control (the figure's lower panel);
# `cycle err / noise` ≈ 1 means $R_{AB}R_{BC} ≈ R_{AC}$ as far as the data can tell.
#
# ```{glue} groups_table
# ```
#
# In words (computed from the table above, at the identified sites):
# {glue:text}`rejection_sentence`

# %% [markdown]
# ## Per site
# The median calibrated p over pairs, the rank of the activations (R is identified where it is
# at least `full_rank_frac` × d), and the dimension of the fixed subspace beside the Haar mean of
# that count. Look for sites where the fixed subspace is far larger than Haar's.
#
# ```{glue} sites_table
# ```
#
# The same medians as a picture, above the negative controls. Look at whether the controls —
# rotations between clouds with nothing to align — also stay above α: where they do, a seed
# pair that "looks Haar" there says nothing about the seeds.
#
# ```{glue:figure} haar_figure
# :name: fig-23-haar-sites
# :alt: Two panels of calibrated p-values per residual site on a log axis with a dotted line at alpha: the seeds' pairs on top, the pair and the two controls below.
#
# Top: the calibrated Haar p-value of the seeds' rotations at each residual site (median over
# pairs); hollow markers are sites where the activations leave R unidentified. Bottom: the same
# test on R fitted from the first seed to a second seed, to an untrained model, and to its own
# rows with the token pairing shuffled. Below the dotted line: rejected at α.
# ```

# %% [markdown]
# ## The fixed subspace
# The mean fixed-subspace dimension at τ = `fixed_tol` beside Haar's. The seeds share no weights,
# and their embedding and unembedding span all d directions, so there is no shared span to test
# against (the toy's Cohort A has one).
#
# ```{glue} fixed_table
# ```

# %% [markdown]
# ## How much could these tests see? Size and power at this d
# The same tests on fresh Haar samples (row `haar`: the rejection rate should be near α) and on
# named non-Haar alternatives of this d (their power). Look for the paper's criteria (`ks_iid`,
# `frobenius_0.1pct`) failing to tell the alternatives from Haar — and rejecting genuine Haar
# samples — while the calibrated `combined` column rejects the alternatives.
#
# ```{glue} power_table
# ```

# %% [markdown]
# ## The claims
# The paper's two checks (value, its interval across seed pairs, pass/FAIL), then our calibrated
# versions and the negative control. The full per-pair tables are in the results file
# (`haar_pairs`, `haar_controls`, `haar_paper`, `haar_cycle`).

# %% tags=["hide-input"]
for name, value in res.records().items():
    results.record(f"haar_{name}", value)
figures.format_table(haar_test.record_claims(res, results, seed=seed), sig=3)

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — Outlier dimensions
# Suppose seed A's residual dimension 17 and seed B's dimension 301 carry huge, heavy-tailed activations. What does a Haar $R$ predict for $|R_{17, 301}|$, and what would a basis-privileging optimizer predict?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# A Haar $R$ spreads $e_{17}$ evenly: $|R_{17,301}| \approx 1/\sqrt{d} \approx 0.04$ at $d = 512$. If both seeds' outlier dimensions come from the same optimizer-induced mechanism, $R$ must map one onto the other, so $|R_{17,301}|$ near 1 — a signed-permutation-like block, and a decisive rejection of Haar.
# :::
