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
# # Rotations along one training run
#
# The paper says "the same rotation account holds across training checkpoints within a single
# run": activations of one run at two {term}`checkpoints <Checkpoint>` differ by a rotation. On
# Pythia-70m it reports one pair, seed1 `step3000` → `step143000` (§8.6): an SAE trained on the
# early checkpoint explains the final model's activations with EV −0.86 as they are and +0.73
# after a Procrustes rotation onto the checkpoint's frame, with $\|R - I\|_F = 16.81$ (that is
# 0.53 × $\sqrt{2d}$: far from both the identity, 0, and a {term}`Haar <Haar measure>` rotation, ≈ 1).
#
# Here, for a few runs, $R$ is fitted (row vectors, $X_\text{earlier} R \approx X_\text{later}$)
# between **successive** checkpoints and between **each checkpoint and the final model**, at
# every residual site, on held-out text, and we ask what it is: near the identity
# ($\|R - I\|_F/\sqrt{2d}$ ≈ 0), Haar (≈ 1 and the calibrated test does not reject), or neither;
# and how much it explains: the held-out {term}`explained variance <Explained variance>` of the
# later checkpoint's activations from the earlier one's through the identity, the rotation, the
# rotation times one global scale, and a least-squares affine map. For scale, the same numbers
# between the seeds' final models. The analysis is the Dyck chapter's
# ({doc}`15_dyck_checkpoints`), function for function: only the activations differ.
#
# **What would falsify the rotation account along training:** a rotation that explains much less
# than the affine map (the representation changes by more than a change of basis), or no better
# than the identity. **What would make "Haar" the wrong word:** $R$ near the identity between
# nearby checkpoints (a drift, not a random rotation), or a calibrated test rejecting.
#
# Checkpoints are the stand-ins' saved ones (a Pythia-like schedule: step 0, powers of two, even
# steps), each loaded through `load_model` like a PolyPythia revision; with the `hub` suite the
# same code reads `step<k>` revisions of the real seeds.

# %% tags=["parameters"]
suite_profile = "quick"  # [str in {smoke, quick, paper, hub}] the models: SUITE_PROFILES in polyrot_utils.tasks.pythia.suite
suite_overrides = {}     # [dict] any argument of suite_config, e.g. {"n_seeds": 6} or {"allow_download": true}
seed = 0                 # [int >= 0] seeds the suite, the Haar null and the SAEs
device = "auto"
# this chapter
ckpt_seeds = ["seed1", "seed2"]  # [list[str]] the runs whose checkpoints are compared
ckpt_steps = []          # [list[int] >= 0] checkpoint steps; empty: every saved one (hub: hub_steps)
hub_steps = [0, 1000, 3000, 10000, 33000, 143000]   # [list[int] >= 0] with the hub suite and no ckpt_steps
n_fit_seqs = 32          # [int >= 1] held-out windows R (and the paper's SAE) are fitted on
n_eval_seqs = 16         # [int >= 1] further held-out windows every EV is measured on
skip_positions = 0       # [int >= 0] drop each window's first positions (0: keep all, as the paper)
sae_expansion = 2        # [int >= 1] the paper's SAE on the earlier checkpoint: width in units of d_model
sae_k = 16               # [int >= 1] TopK: latents active per token
sae_n_tokens = 40_000    # [int >= 1] rows that SAE sees in training
n_null = 200             # [int >= 0] Haar samples calibrating each test (the smallest p is 1/(n_null + 1))
alpha = 0.05             # [float > 0, < 1] test level (Bonferroni over the sites where R is determined)
affine_margin = 0.05     # [float >= 0] ours: a rotation accounts for a change if its EV is within this of the affine map's

# %% tags=["hide-input"]
from IPython.display import display

from polyrot_utils.book import figures
from polyrot_utils.book.findings import premise_banner
from polyrot_utils.book.results import ChapterResults
from polyrot_utils.experiments import checkpoints
from polyrot_utils.models.neox import standin_suite
from polyrot_utils.tasks.pythia.suite import checkpoint_activations, pythia_activations, suite_from_parameters

figures.use_book_style()
experiment = dict(seed=seed, n_null=n_null, alpha=alpha, affine_margin=affine_margin,
                  sae_expansion=sae_expansion, sae_k=sae_k, sae_n_tokens=sae_n_tokens)
results = ChapterResults("25_pythia_checkpoints", params=dict(
    experiment, suite_profile=suite_profile, suite_overrides=suite_overrides, device=device,
    ckpt_seeds=list(ckpt_seeds), ckpt_steps=list(ckpt_steps), hub_steps=list(hub_steps),
    n_fit_seqs=n_fit_seqs, n_eval_seqs=n_eval_seqs, skip_positions=skip_positions))

# %% [markdown]
# ## The runs and their activations
# Every seed's final model, and every checkpoint of the runs in `ckpt_seeds`, read the same
# held-out windows (fit and evaluation windows disjoint), so rows pair across checkpoints and
# seeds. The box says how well the final models are trained.

# %% tags=["hide-input"]
suite_cfg = suite_from_parameters(suite_profile, suite_overrides, seed=seed, device=device)
suite = standin_suite(suite_cfg)
acts = pythia_activations(suite, suite_cfg, n_fit_seqs=n_fit_seqs, n_eval_seqs=n_eval_seqs, controls=(),
                          skip_positions=skip_positions)  # the final models, with their premise
steps = list(ckpt_steps) or (list(hub_steps) if suite.info["source"] == "hub" else None)
per_run = {run: checkpoint_activations(suite, run, acts.fit_tokens, acts.eval_tokens, acts.sites, steps=steps,
                                       skip_positions=skip_positions, device=device, skip_missing=suite_cfg.use_hub)
           for run in ckpt_seeds}
by_step = checkpoints.paired_by_step(per_run, acts.sites)
display(premise_banner(acts))

# %% [markdown]
# The analysis in one call: every pair of checkpoints and every two seeds' final models at
# every site, and the paper's SAE statistic. Its table and figure are placed in the section
# below.

# %% tags=["hide-input", "remove-output"]
res = checkpoints.checkpoint_analysis(by_step, acts, rung="pythia", **experiment)
figures.glue_outputs(checkpoints.chapter_outputs(res, figures.column_figure))

# %% [markdown]
# ## One rotation per pair of checkpoints and site
# The analysis fits every pair (successive, checkpoint → final, and every two seeds' final
# models) at every site, and trains the paper's SAE on the checkpoint nearest the paper's point
# in training (3,000 of 143,000 steps). The table shows, per site, the means over runs: look at
# how far $R$ from that checkpoint to the final model is from the identity, next to the same
# number between two seeds, and at whether the rotation's EV reaches the affine map's. The full
# per-pair table is in the results file.
#
# ```{glue} site_summary
# ```
#
# In the figure, look for where the top curves sit between the identity (0) and the seed-to-seed
# level, and, below, for the gap between the rotation's EV and the affine map's: residual norms
# grow during training, which a rotation cannot follow and the scaled rotation can.
#
# ```{glue:figure} checkpoints_figure
# :name: fig-25-checkpoints
# :alt: Two stacked line plots against training step on a symlog axis: the distance of R from the identity falls as checkpoints approach the final model; the EV curves show how much the identity, rotation, scaled rotation and affine map explain.
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
# The paper's three claims use its own statistic (an SAE trained on the early checkpoint at
# layer 3, scored on one batch of the final model's activations before and after an in-sample
# rotation). Ours are stricter versions on held-out rows without an SAE, the claim that
# successive checkpoints differ by a rotation (affine EV minus rotation EV at most
# `affine_margin`), and whether the checkpoint-to-final $R$ looks Haar. Each value is a mean over
# runs, with its interval over seeds.

# %% tags=["hide-input"]
figures.format_table(checkpoints.record_claims(results, res), sig=3)

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — Rotation plus scale
# Residual norms grow during training. Why does a rotation alone then fail to map an early checkpoint onto a late one, and what one extra parameter fixes much of it?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# A rotation preserves norms, so it cannot map small early activations onto large late ones; the EV it reaches is capped. A single global scale factor (rotation × scalar) absorbs the norm growth, which is why `rotation_scaled` closes most of the gap to the affine map.
# :::
