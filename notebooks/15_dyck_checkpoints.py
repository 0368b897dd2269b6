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
# # Rotations across training checkpoints
#
# The paper's abstract: "the same rotation account holds across training checkpoints within a
# single run". Its evidence on Dyck-3 (§8.6): an SAE trained on a checkpoint about halfway through
# training (step 30,000 of 58,000) explains the final model's activations with EV 0.90–0.95 as
# they are, and 0.98–0.999 after a Procrustes rotation onto the checkpoint's frame, with
# $\|R - I\|_F$ falling from 10.4 at the embedding to 2.9 at the last sites
# ($\sqrt{2d} = 11.3$ at $d = 64$).
#
# Here each run of a small {term}`cohort <Cohort>` keeps its {term}`checkpoints <Checkpoint>`, and at
# every residual site we fit one SO(64) rotation $R$ (row vectors, $X_\text{earlier} R \approx
# X_\text{later}$) between **successive** checkpoints and between **each checkpoint and the final
# model**, on the same held-out strings, and ask three questions of it:
#
# - is it near the identity? $\|R - I\|_F/\sqrt{2d}$ (0 = identity, ≈ 1 = Haar *or any
#   orthogonal matrix with trace ≈ 0*);
# - is it {term}`Haar <Haar measure>`? the calibrated `haar_test` p-value;
# - does rotating help? the held-out {term}`explained variance <Explained variance>` of the later
#   checkpoint's activations from the earlier one's through the identity (no alignment), the
#   rotation, the rotation times one global scale, and a least-squares affine map (the ceiling of
#   any linear account).
#
# For scale, the same numbers between two seeds' final models. The analysis is the Pythia
# chapter's ({doc}`25_pythia_checkpoints`), function for function: only the activations differ.
#
# **What would falsify the claim:** if "the same account" means "a rotation restores the EV", a
# rotation EV far below the affine map's or no better than the identity's; if it means "a Haar
# rotation, as between seeds", a checkpoint-to-final $R$ near the identity or rejected by the test.

# %% tags=["parameters"]
seed = 0                 # [int >= 0] shuffles the strings; seeds the Haar null and the SAEs
toy_profile = "quick"    # [str in {smoke, quick, paper}] training recipe: polyrot_utils.tasks.dyck.cohorts.TOY_PROFILES
cohort = "independent"   # [str in {shared_io, independent, same_init, sgd}] cohort kind of the runs
n_seeds = 2              # [int >= 2] runs trained with checkpoints; their final models give the cross-seed reference
steps = None             # [int|None >= 1] None means the value of the profile
batch_size = None        # [int|None >= 1] None means the value of the profile
max_len = None           # [int|None >= 1] None means the value of the profile
n_fit = 4096             # [int >= 2] held-out tokens R (and the paper's SAE) are fitted on
n_eval = 2048            # [int >= 2] other held-out tokens every EV is measured on
n_null = 200             # [int >= 0] Haar samples calibrating each test (the smallest p is 1/(n_null + 1))
alpha = 0.05             # [float > 0, < 1] test level (Bonferroni over the sites where R is determined)
affine_margin = 0.05     # [float >= 0] ours: a rotation accounts for a change if its EV is within this of the affine map's
sae_expansion = 2        # [int >= 1] the paper's SAE on the earlier checkpoint: width in units of d_model
sae_k = 16               # [int >= 1] TopK: latents active per token
sae_n_tokens = 40_000    # [int >= 1] rows that SAE sees in training
device = "auto"

# %% tags=["hide-input"]
from dataclasses import replace

from IPython.display import display

from polyrot_utils.book import figures
from polyrot_utils.book.findings import premise_banner
from polyrot_utils.book.results import ChapterResults
from polyrot_utils.experiments import checkpoints
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.cohorts import cohort_config, train_cohort
from polyrot_utils.tasks.dyck.suite import dyck_activations, member_name
from polyrot_utils.tasks.dyck.training_checkpoints import cohort_timeline

figures.use_book_style()
experiment = dict(seed=seed, n_null=n_null, alpha=alpha, affine_margin=affine_margin,
                  sae_expansion=sae_expansion, sae_k=sae_k, sae_n_tokens=sae_n_tokens)
results = ChapterResults("15_dyck_checkpoints", params=dict(
    experiment, toy_profile=toy_profile, cohort=cohort, n_seeds=n_seeds, steps=steps,
    batch_size=batch_size, max_len=max_len, n_fit=n_fit, n_eval=n_eval, device=device))

# %% [markdown]
# ## The runs and their activations
# In the default build the runs are Cohort B's reference seeds and the checkpoints the reference
# training run kept (after 250 … 3,000 updates, then the final weights); where the profile has no
# reference weights (smoke) or another cohort is asked for, this chapter trains its own runs with
# the profile's recipe, saving weights at evenly spaced steps. Every checkpoint of every run
# reads the same held-out strings (fit and evaluation strings disjoint), so rows pair across
# checkpoints and seeds. The box says how well the final models are trained.

# %% tags=["hide-input"]
cfg = cohort_config(cohort, profile=toy_profile, n_seeds=n_seeds, steps=steps, batch_size=batch_size,
                    data_max_len=max_len, device=device)
run = train_cohort(cfg if cfg.source == "reference" and cohort == "independent" else replace(cfg, source="train"))
split = dyck.make_split(run.config.train.data, "heldout")
rows = dict(n_fit=n_fit, n_eval=n_eval, seed=seed)
acts = dyck_activations(run, split, **rows)  # the final models, with their premise
models_by_step = (cohort_timeline(run)[0] if run.config.source == "reference" else
                  checkpoints.cohort_checkpoint_models({member_name(s): run.members[s] for s in run.seeds}))
by_step = {step: dyck_activations(models, split, **rows) for step, models in models_by_step.items()}
display(premise_banner(acts))

# %% [markdown]
# The analysis in one call: every pair of checkpoints and every two seeds' final models at
# every site, and the paper's SAE statistic. Its table and figure are placed in the section
# below.

# %% tags=["hide-input", "remove-output"]
res = checkpoints.checkpoint_analysis(by_step, acts, rung="dyck", **experiment)
figures.glue_outputs(checkpoints.chapter_outputs(res, figures.column_figure))

# %% [markdown]
# ## One rotation per pair of checkpoints and site
# The analysis fits every pair (successive, checkpoint → final, and the two seeds' final models)
# at every site, and trains the paper's SAE on the checkpoint nearest the paper's point in
# training (30,000 of 58,000 steps). The table shows, per site, the means over runs: look at how
# far $R$ from that checkpoint to the final model is from the identity, next to the same number
# between two seeds, and at whether the rotation's EV reaches the affine map's. The full per-pair
# table is in the results file.
#
# ```{glue} site_summary
# ```
#
# Caveat: at `b0.resid_pre` the activations are the embeddings of a few tokens and positions —
# a subspace of about 15 dimensions — so $R$ is determined only on that span; the analysis leaves
# such rank-deficient sites out of its Haar claim.
#
# In the figure, look for where the top curves sit between the identity (0) and the seed-to-seed
# level, and, below, for the gap between the rotation's EV and the affine map's.
#
# ```{glue:figure} checkpoints_figure
# :name: fig-15-checkpoints
# :alt: Two stacked line plots against training step: the distance of R from the identity falls towards zero as checkpoints approach the final model; the EV curves of rotation and affine map rise towards 1.
#
# Top: distance from the identity of the rotation from each checkpoint to the final model, per site
# (mean over runs), against the rotation between two seeds' final models (dotted) and a Haar
# rotation (grey). Bottom: held-out EV of the final model's activations from each checkpoint's
# through the identity, the rotation, the scaled rotation and the affine map (mean over sites and
# runs; clipped below at −1); the grey vertical line marks the checkpoint the paper's statistic
# uses.
# ```

# %% [markdown]
# ## The claims
# The paper's two claims use its own statistic (an SAE trained on the earlier checkpoint, scored
# on one batch of the final model's activations before and after an in-sample rotation); the
# paper also says $\|R-I\|_F$ falls with depth. Ours are stricter versions on held-out rows
# without an SAE, the claim that successive checkpoints differ by a rotation (affine EV minus
# rotation EV at most `affine_margin`), and whether the checkpoint-to-final $R$ looks Haar. Each
# value is a mean over runs, with its interval over seeds.

# %% tags=["hide-input"]
figures.format_table(checkpoints.record_claims(results, res), sig=3)

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — Near identity
# Why must the rotation between two late checkpoints of one run be near the identity, and what does that imply for a claim that it is Haar?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Late in training the parameters move little between checkpoints, so the residual basis barely changes: activations at step $t$ and $t+\Delta$ are nearly equal and Procrustes returns nearly $I$. A Haar rotation is almost never near $I$ in high dimension ($\lVert R - I \rVert_F \approx \sqrt{2d}$), so checkpoint rotations cannot be Haar.
# :::
