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
# # The universality paradox
#
# The paper's paradox: the standard SAE-universality metric ({term}`Decoder cosine`: decoder
# rows of two {term}`sparse autoencoders <Sparse autoencoder>` matched across seeds by cosine)
# reads **98 %**, while an SAE trained on one seed reconstructs another seed's activations at
# **negative** {term}`explained variance <Explained variance>`. Its resolution: the dictionaries
# agree, but the residual bases differ by a rotation $R$, so seed A's encoder reads seed B's
# stream in the wrong frame.
#
# We train one TopK SAE per seed per residual site of the {term}`Dyck-3` toy, for Cohort A
# (shared I/O) and Cohort B (independent), and measure on held-out strings, for every pair of
# seeds and every site, the three things an interpretability reader would check before reusing
# an SAE across seeds:
#
# - the **within-seed {term}`ceiling <Ceiling>`**: each seed's own SAE on its own held-out rows;
# - **cross-seed transfer without alignment**: seed A's SAE, unchanged, on seed B's rows;
# - **feature matching across seeds**: the one-to-one matched decoder cosine on
#   {term}`live latents <Live latent>` (latents that fire on held-out rows), before and after
#   rotating A's decoder by the {term}`Procrustes` $R$ fitted on other rows.
#
# Each is read against references: two unrelated random dictionaries (the floor), the same
# model's activations with an SAE from another SAE seed (what "the same features" scores), and
# an untrained model of the same architecture (the control). Every headline is a mean over the
# pairs of seeds with a bootstrap interval over seeds.
#
# **What would falsify the paper's reading:** a matched cosine at the random floor that does not
# rise with $R$ (the dictionaries do not agree), or an unaligned EV that is not negative (there
# is no paradox to resolve). The paper's own statistics (its sites, anchor pairs, scalar-variance
# EV, signed many-to-one cosine over all latents) are computed its way in the summary.

# %% tags=["parameters"]
seed = 0                                   # [int >= 0] string sampling, SAE seeds, random dictionaries
toy_profile = "quick"                      # [str in {smoke, quick, paper}] training recipe (polyrot_utils.tasks.dyck.cohorts.TOY_PROFILES)
cohorts = ["shared_io", "independent"]     # [list[str] in {shared_io, independent, same_init, sgd}] cohort kinds compared
n_seeds = 3                                # [int >= 2] models per cohort (paper: 5)
n_fit = 8192                               # [int >= 1] held-out tokens the SAEs and R are fitted on
n_eval = 4096                              # [int >= 1] other held-out tokens everything is scored on
sae_expansion = 2                          # [float > 0] SAE width in units of d_model (2 → 128 latents)
sae_k = 8                                  # [int >= 1] TopK: latents active per token
sae_n_tokens = 16_384                      # [int >= 1] rows each SAE sees in training
sae_batch_size = 256                       # [int >= 1] SAE training batch
shared_seed_demo = True                    # [bool] also train one seed's SAEs with the anchor's SAE seed
device = "auto"

# %% tags=["hide-input"]
from IPython.display import display

from polyrot_utils.book import figures
from polyrot_utils.book.findings import premise_banner
from polyrot_utils.book.results import ChapterResults
from polyrot_utils.experiments import universality
from polyrot_utils.tasks.dyck.cohorts import cohort_config, train_cohort
from polyrot_utils.tasks.dyck.suite import dyck_activations

figures.use_book_style()
sae = dict(sae_expansion=sae_expansion, sae_k=sae_k, sae_n_tokens=sae_n_tokens, sae_batch_size=sae_batch_size)
results = ChapterResults("11_dyck_universality", params=dict(
    seed=seed, toy_profile=toy_profile, cohorts=cohorts, n_seeds=n_seeds, n_fit=n_fit, n_eval=n_eval,
    shared_seed_demo=shared_seed_demo, device=device, **sae))

# %% [markdown]
# ## The seeds and their activations
# The cohorts of chapter 10 (loaded, not retrained), their residual stream at every site on a
# fit batch and a disjoint eval batch of held-out strings, and an untrained control. First: do
# these models meet the paper's premise (seeds that compute the same function)?

# %% tags=["hide-input"]
suites = {c: dyck_activations(train_cohort(cohort_config(c, profile=toy_profile, n_seeds=n_seeds, device=device)),
                              "heldout", n_fit=n_fit, n_eval=n_eval, seed=seed, controls=("untrained",))
          for c in cohorts}
for acts in suites.values():
    display(premise_banner(acts))

# %% [markdown]
# ## One SAE per model per site
# **TopK** SAEs (Gao et al. 2024): $k$ fixes the sparsity exactly, so every seed's SAE has the
# same L0 and the comparison across seeds is at equal sparsity. Each model's SAE gets **its own
# SAE seed**: SAEs that share a seed share their random initial decoder, and latents that never
# learn keep it (the last section measures what that does). Look in the table below for a
# `ceiling EV` (each seed's own SAE on held-out tokens) well above zero at every site: an SAE that
# reconstructs nothing cannot show the paradox.

# %%
measured = [universality.measure(acts, cohort=c, seed=seed, shared_seed_demo=shared_seed_demo, **sae)
            for c, acts in suites.items()]

# %% tags=["hide-input", "remove-output"]
figures.glue_outputs(universality.chapter_outputs(measured, figures.column_figure))

# %% [markdown]
# ```{glue} site_table
# ```
#
# Per cohort and site, means over the pairs of seeds: `mean max cos` (each latent's best match,
# all latents), `matched cos` (one-to-one, live latents), `matched cos after R`, `ceiling EV`
# and `unaligned EV` (A's SAE on B). The paper's paradox is a high cosine beside a *negative*
# `unaligned EV`.
#
# ## The paradox in one figure
# Look at the gap between the solid and the dashed line on the left (what the rotation adds to
# the feature match), and on the right at where seed A's SAE lands between the ceiling and zero.
#
# ```{glue:figure} paradox_figure
# :name: fig-11-paradox
# :alt: Per residual site and cohort, decoder cosines across seeds against references, and the EV of an SAE on its own seed versus on another seed.
#
# Left: one-to-one matched decoder cosine (live latents) between the SAEs of two seeds, before
# and after rotating seed A's decoder by the Procrustes R, beside two SAEs of the same model, the
# untrained control and two random dictionaries. Right: held-out EV of each seed's own SAE (the
# ceiling) and of seed A's SAE used unchanged on seed B. Markers: mean over pairs of seeds; bars:
# range over pairs.
# ```
#
# ## Headline numbers, with their spread across seeds
# Means over the internal sites (every site but the embedding, which Cohort A's seeds share) and
# the pairs of seeds; the interval is a 90 % bootstrap over seeds. Read each cosine against the
# two reference rows under it.
#
# ```{glue} headline_table
# ```
#
# Unaligned EV is quoted three ways in this book; they are different statistics of the same
# table, named apart here: the mean (the figure), the largest per-site mean over pairs (what
# the paper reports per site), and the largest single pair at any site (what the check
# `unaligned_ev_max` tests, and the verdict lists).
#
# ```{glue} ev_statistics_table
# ```
#
# ## Does the "universality" number come from the SAE initialisation?
# The anchor's SAE against the second seed's, when the two SAEs have their own SAE seeds and
# when the second seed's SAE is trained from the anchor's SAE seed (as a pipeline that seeds
# everything with 0 would). Matched cosine over *all* latents: if the shared seed scores much
# higher, the metric is reading identical, never-trained rows rather than learned features.
#
# ```{glue} shared_seed_table
# ```

# %% [markdown]
# ## The paper's claims and our checks
# The paper's statistics, computed as its code computes them (`analysis.paper_*`): its "98 %" is
# the fraction of one seed's latents whose *maximum signed* decoder cosine with *any* anchor
# latent exceeds 0.5 (many-to-one, all latents), at the last block's `resid_post` of Cohort A,
# in every pair; its negative EV is the anchor's SAE on another seed's rows of one batch,
# EV = 1 − MSE / scalar variance, largest over the internal sites of the mean over pairs. Our
# checks beside them: held-out rows, per-dimension variance, one-to-one matching on live latents,
# every pair. Each value carries its interval across seed pairs.

# %% tags=["hide-input"]
figures.format_table(universality.record(results, measured))

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — A metric's floor
# Two *random* dictionaries of the same widths in $d = 64$ already have a matched cosine well
# above 0. Explain why, and why a universality number must be reported beside this floor.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# In low dimension, random unit vectors are not nearly orthogonal: with many candidates, each
# row finds a partner with cosine of order $\sqrt{2 \log m / d}$. The matched cosine of unrelated
# dictionaries is therefore far from 0 at $d=64$, and a reported similarity only means something
# relative to that floor.
# :::
#
# :::{admonition} Exercise 2 — Cosine without alignment
# If seed B's activations were exactly seed A's times a Haar rotation $R$, what matched decoder
# cosine would you expect between A's and B's SAEs, before and after multiplying A's decoder by
# $R$?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Before: about the random floor, because $R$ scatters every direction. After: close to the
# agreement of two SAEs trained on the same data (the "same model, another SAE seed" row),
# because $D_A R$ then lives in B's frame. A decoder cosine of 98 % *without* alignment is
# therefore evidence *against* a Haar rotation between the seeds.
# :::
