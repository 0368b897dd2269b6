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
# # The universality paradox on Pythia-architecture seeds
#
# The paper's headline paradox, on Pythia-70m: {term}`sparse autoencoders <Sparse autoencoder>`
# trained on different seeds look *universal* by the standard metric ({term}`Decoder cosine`:
# their decoder directions match across seeds), yet an SAE trained on one seed reconstructs
# another seed's residual stream at *negative* {term}`explained variance <Explained variance>`
# (worse than predicting the mean). The paper's explanation: the dictionaries hold the same
# features in bases that differ by a rotation; the cosine metric is computed on decoder rows and
# misses it.
#
# This chapter runs the analysis of chapter 11, the same function with the same parameters, on
# the seeds of chapter 20 (same parameters, same cached models): one TopK SAE per seed per
# residual site, and on held-out text, for every pair of seeds and every site,
#
# - the **within-seed {term}`ceiling <Ceiling>`**: each seed's own SAE on its own held-out rows;
# - **cross-seed transfer without alignment**: seed A's SAE, unchanged, on seed B's rows;
# - **feature matching across seeds**: the one-to-one matched decoder cosine on
#   {term}`live latents <Live latent>`, before and after rotating A's decoder by the
#   {term}`Procrustes` $R$ fitted on other text.
#
# References: two unrelated random dictionaries (the floor), the anchor's own activations with
# an SAE from another SAE seed (what "the same features" scores), and the suite's controls (an
# untrained model; one trained on shuffled tokens). Every headline is a mean over the pairs of
# seeds with a bootstrap interval over seeds.
#
# **What would falsify the paradox here:** a cross-seed decoder cosine at the random floor (the
# dictionaries do not look universal), or unaligned cross-seed EV that is not negative (an SAE
# transfers without any alignment). **What would make the metric uninformative:** decoder
# cosines against the untrained control as high as those between seeds.

# %% tags=["parameters"]
suite_profile = "quick"  # [str in {smoke, quick, paper, hub}] the models: SUITE_PROFILES in polyrot_utils.tasks.pythia.suite
suite_overrides = {}     # [dict] any argument of suite_config, e.g. {"n_seeds": 6} or {"allow_download": true}
seed = 0                 # [int >= 0] SAE seeds, random dictionaries
device = "auto"
anchor = "seed1"         # the paper's anchor seed: its statistics use pairs (anchor, seedk)
n_fit_seqs = 64          # [int >= 1] held-out windows for SAE training / map fitting
n_eval_seqs = 32         # [int >= 1] further held-out windows, for every number reported
skip_positions = 0       # [int >= 0] drop each window's first positions (0: keep all, as the paper)
sae_expansion = 2        # [float > 0] SAE width in units of d_model
sae_k = 16               # [int >= 1] TopK: latents active per token
sae_n_tokens = 40_000    # [int >= 1] rows each SAE sees in training
sae_batch_size = 512     # [int >= 1] SAE training batch
shared_seed_demo = True  # [bool] also train one seed's SAEs with the anchor's SAE seed

# %% tags=["hide-input"]
from IPython.display import display

from polyrot_utils.book import figures
from polyrot_utils.book.findings import premise_banner
from polyrot_utils.book.results import ChapterResults
from polyrot_utils.experiments import universality
from polyrot_utils.models.neox import standin_suite
from polyrot_utils.tasks.pythia.suite import pythia_activations, suite_from_parameters

figures.use_book_style()
sae = dict(sae_expansion=sae_expansion, sae_k=sae_k, sae_n_tokens=sae_n_tokens, sae_batch_size=sae_batch_size)
results = ChapterResults("21_pythia_universality", params=dict(
    suite_profile=suite_profile, suite_overrides=suite_overrides, seed=seed, device=device, anchor=anchor,
    n_fit_seqs=n_fit_seqs, n_eval_seqs=n_eval_seqs, skip_positions=skip_positions,
    shared_seed_demo=shared_seed_demo, **sae))

# %% [markdown]
# ## The seeds and their residual streams
# The suite of chapter 20 (trained there, loaded from the cache here) and its residual stream at
# every site on two disjoint batches of held-out text: SAEs and $R$ are fitted on the *fit*
# batch, every number below is measured on the *eval* batch. First: do these models meet the
# paper's premise (seeds that compute the same function)?

# %% tags=["hide-input"]
suite_cfg = suite_from_parameters(suite_profile, suite_overrides, seed=seed, device=device)
suite = standin_suite(suite_cfg)
acts = pythia_activations(suite, suite_cfg, n_fit_seqs=n_fit_seqs, n_eval_seqs=n_eval_seqs,
                          controls=[c for c in ("untrained", "shuffled") if c in suite.controls],
                          skip_positions=skip_positions)
display(premise_banner(acts))

# %% [markdown]
# ## One SAE per model per site
# TopK SAEs, each model with its own SAE seed (SAEs sharing a seed start from the same decoder,
# and latents that never fire keep it: the last section measures what that does). The table:
# per site, means over the pairs of seeds of the mean max cosine (all latents), the one-to-one
# matched cosine (live latents) before and after $R$, the ceiling and the unaligned EV. The
# paradox is a high cosine beside a *negative* unaligned EV.

# %%
measured = [universality.measure(acts, anchor=anchor, seed=seed, shared_seed_demo=shared_seed_demo, **sae)]

# %% tags=["hide-input", "remove-output"]
figures.glue_outputs(universality.chapter_outputs(measured, figures.column_figure))

# %% [markdown]
# ```{glue} site_table
# ```
#
# ## The paradox, site by site
# Look at the gap between the solid and the dashed line on the left (what the rotation adds to
# the feature match), and on the right at where seed A's SAE lands between the ceiling and zero.
#
# ```{glue:figure} paradox_figure
# :name: fig-21-paradox
# :alt: Per residual site, decoder cosines across seeds against references, and the EV of an SAE on its own seed versus on another seed.
#
# Left: one-to-one matched decoder cosine (live latents) between the SAEs of two seeds, before
# and after rotating seed A's decoder by the Procrustes R, beside two SAEs of the same model, the
# untrained control and two random dictionaries. Right: held-out EV of each seed's own SAE (the
# ceiling) and of seed A's SAE used unchanged on seed B. Markers: mean over pairs of seeds; bars:
# range over pairs.
# ```
#
# ## Headline numbers, with their spread across seeds
# Means over the internal sites (every site but the embedding) and the pairs of seeds; the
# interval is a 90 % bootstrap over seeds. Read each cosine against the two reference rows.
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
# when the second seed's SAE is trained from the anchor's SAE seed. Matched cosine over *all*
# latents: if the shared seed scores much higher, the metric is reading identical, never-trained
# rows rather than learned features.
#
# ```{glue} shared_seed_table
# ```

# %% [markdown]
# ## The paper's claims and our checks
# Computed as the paper's code computes them (`analysis.paper_*`, its `panel_a_decoder_cosine`
# and `pythia_panel_c_fast`): the fraction of one seed's latents whose maximum signed decoder
# cosine with another seed's exceeds 0.5, over *all* pairs of seeds, per site, ≥ 99 % at the
# intermediate sites, with the final site (the final LayerNorm's output) reported apart; the
# mean max cosine, 0.91–0.93; the *identity-map* EV of another seed's activations for the
# anchor's (no SAE, one batch), negative from `layer2_resid_post` on. Our checks beside them
# (the same as chapter 11's): one-to-one matching on live latents against the random floor, the
# seeds against the untrained control, and the unaligned SAE on held-out rows, every pair.

# %% tags=["hide-input"]
figures.format_table(universality.record(results, measured))

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — The paper's 98 %
# The paper's public code computes its "98 %" as the fraction of latents whose best decoder
# match exceeds 0.5. Why can that fraction be high while the mean matched cosine is modest?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# A threshold statistic counts every latent above 0.5 the same, whether its match is 0.51 or
# 0.99, and in moderate dimension many random pairs already exceed modest cosines. The mean
# matched cosine and the random-dictionary floor show how much of the number is structure.
# :::
