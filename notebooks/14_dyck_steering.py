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
# # Steering vectors across seeds
#
# A diff-of-means {term}`steering vector <Steering vector>` $v = \bar x_A - \bar x_B$ (residual activations at one site,
# positions of class A minus class B) pushes a model's readout from B towards A when
# $\alpha v$ is added to its residual stream. The paper moves such vectors between seeds and
# reports **three regimes** in the shared-I/O cohort: *clean* when the vector is pinned by the
# shared output weights, *partial* when it overlaps the rotated subspace, *inverted* otherwise —
# predicted by the vector's overlap with the fixed (invariant) subspace of the cross-seed
# rotation $R$; and with no shared I/O, **universal inversion**. The rotation account predicts
# something simpler: the source vector carried through $R$ ($v R$) steers the target like the
# target's own vector.
#
# We test three contrasts of the Dyck-3 task — *closer* (closing vs opening bracket token, read
# by the type readout), *depth* (depth ≥ 3 vs ≤ 1, depth readout), *invalid* (broken vs valid
# prefix, invalid readout) — at two residual sites, for every ordered pair of seeds of the
# shared-I/O cohort (the paper's Cohort A) and of the independent cohort. On the target model we
# add $\alpha u$ at every position and measure the mean change of the readout's logit difference
# (A classes minus B classes) at the B positions, for $u$ = the target's own vector (*native*),
# the source's vector as is (*unaligned*: the paper's protocol), and $vR$ (*transferred*). The
# regime is `classify_transfer` of the ratio to native: clean ≥ 0.7, partial ≥ 0.2, none
# $|r|<0.2$, inverted ≤ −0.2. Because seeds' residual streams differ in scale, we also rescale
# every foreign vector to the native vector's norm (*norm-matched*), which separates a wrong
# direction from a wrong dose.
#
# **What would falsify the paper's claims:** fewer than three regimes among the shared-I/O
# unaligned transfers; independent-cohort transfers that are not inverted; regimes that do not
# follow the fixed-subspace overlap. **What would falsify the rotation account:** transferred
# vectors $vR$ that steer much less than, or opposite to, the target's own vector.

# %% tags=["parameters"]
seed = 0                                               # [int >= 0] (no randomness beyond the cached models; kept for the runner)
toy_profile = "quick"                                  # [str in {smoke, quick, paper}] training recipe: polyrot_utils.tasks.dyck.cohorts.TOY_PROFILES
cohorts = ["shared_io", "independent"]                 # [list[str] in {shared_io, independent, same_init, sgd}] cohort kinds (the paper's Cohort A and B)
n_seeds = 3                                            # [int >= 2] seeds per cohort (paper: 5)
steps = None                                           # [int|None >= 1] None means the value of the profile
batch_size = None                                      # [int|None >= 1] None means the value of the profile
max_len = None                                         # [int|None >= 1] None means the value of the profile
sites = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_mid"]  # the paper steers at resid_mid of layer 1
contrasts = ["closer", "depth", "invalid"]             # keys of polyrot_utils.experiments.steering.DYCK_CONTRASTS
n_fit_strings = 400                                    # [int >= 1] held-out strings for the vectors and for R
n_eval_strings = 128                                   # [int >= 1] other held-out strings to measure steering on
alpha = 1.0                                            # [float] steering strength, in units of the vector
fixed_tol = 0.5                                        # [float > 0] fixed subspace of R: directions moved by at most this fraction
clean_ratio = 0.7                                      # [float >= 0, <= 1] classify_transfer thresholds
none_ratio = 0.2  # [float >= 0, <= 1]
paper_alphas = [0.5, 1.0, 2.0, 4.0]                    # [list[float]] the paper's α grid (exp2_steering.py)
device = "auto"

# %%
import time
from itertools import permutations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

torch.set_num_threads(1)
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.experiments import steering
from polyrot_utils.tasks.dyck.cohorts import cohort_config, train_cohort
from polyrot_utils.book.results import ChapterResults

t_start, cpu_start = time.perf_counter(), time.process_time()
results = ChapterResults(
    "14_dyck_steering",
    params=dict(seed=seed, toy_profile=toy_profile, cohorts=cohorts, n_seeds=n_seeds, steps=steps, batch_size=batch_size,
                max_len=max_len, sites=sites, contrasts=contrasts, n_fit_strings=n_fit_strings,
                n_eval_strings=n_eval_strings, alpha=alpha, fixed_tol=fixed_tol, clean_ratio=clean_ratio,
                none_ratio=none_ratio, paper_alphas=list(paper_alphas), device=device),
)
trained = {k: train_cohort(cohort_config(k, profile=toy_profile, n_seeds=n_seeds, steps=steps, batch_size=batch_size,
                                         data_max_len=max_len, device=device)) for k in cohorts}
print({k: list(c.seeds) for k, c in trained.items()})

# %% [markdown]
# ## The contrasts
# Each contrast names the two groups of positions and the readout it should move; the counts
# are positions in the fit strings (the vectors are means over these).

# %%
heldout = dyck.make_split(next(iter(trained.values())).config.train.data, "heldout")
fit_split = heldout.subset(slice(0, n_fit_strings))
eval_split = heldout.subset(slice(n_fit_strings, n_fit_strings + n_eval_strings))
spec = []
for c in contrasts:
    ma, mb = steering.dyck_contrast_masks(fit_split, c)
    _, mb_eval = steering.dyck_contrast_masks(eval_split, c)
    spec.append({"contrast": c, "readout": steering.DYCK_CONTRASTS[c]["readout"], "n_A_fit": int(ma.sum()),
                 "n_B_fit": int(mb.sum()), "n_measured_eval": int(mb_eval.sum()),
                 "description": steering.DYCK_CONTRASTS[c]["description"]})
pd.DataFrame(spec)

# %% [markdown]
# ## Transfers
# One row per cohort × site × contrast × ordered pair (source → target). `overlap` is the
# fraction of the source vector's norm inside $R$'s approximately fixed subspace (`fixed_dim`
# dimensions), `norm_ratio` = ‖v_src‖/‖v_tgt‖, the `ratio_*` columns are effects over the native
# effect. Look at whether `ratio_transferred` sits near 1, and at what moves `ratio_unaligned`.

# %%
rows = []
for k, c in trained.items():
    pairs = list(permutations(c.seeds, 2))
    for site in sites:
        for r in steering.steering_transfer_rows(c.models, fit_split, eval_split, site, pairs, contrasts, alpha=alpha,
                                                 fixed_tol=fixed_tol, clean_ratio=clean_ratio, none_ratio=none_ratio):
            rows.append({"cohort": k, **r})
table = pd.DataFrame(rows)
results.record("transfers", table.to_dict(orient="records"))
show = ["cohort", "site", "contrast", "source", "target", "overlap", "rotation_cosine", "norm_ratio", "native",
        "ratio_unaligned", "ratio_transferred", "ratio_unaligned_normed", "ratio_transferred_normed",
        "regime_unaligned", "regime_transferred"]
table[show].round(3)

# %% [markdown]
# ## Regime counts
# How many transfers fall in each regime, per cohort and protocol. The paper's claim is about
# the *unaligned* column (the same vector applied to another seed): three regimes in the
# shared-I/O cohort, all inverted in the independent one.

# %%
variants = ["unaligned", "unaligned_normed", "transferred", "transferred_normed"]
long = table.melt(id_vars=["cohort", "site", "contrast"], value_vars=[f"regime_{v}" for v in variants],
                  var_name="protocol", value_name="regime")
long["protocol"] = long.protocol.str.replace("regime_", "")
counts = (long.groupby(["cohort", "protocol", "regime"]).size().unstack("regime", fill_value=0)
          .reindex(columns=["clean", "partial", "none", "inverted", "n/a"], fill_value=0))
results.record("regime_counts", {f"{a}|{b}": row.to_dict() for (a, b), row in counts.iterrows()})
counts

# %% [markdown]
# ## Does the fixed-subspace overlap predict the regime?
# Each point is one transfer; the x-axis is the source vector's overlap with $R$'s fixed
# subspace, the y-axis the effect ratio to native. Dotted lines mark the regime thresholds. If
# the paper's account held, the unaligned ratios (left) would rise with the overlap from
# inverted (< −0.2) through partial to clean (≥ 0.7).

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
markers = {"closer": "o", "depth": "s", "invalid": "^"}
panels = [("ratio_unaligned", "unaligned (same vector, paper's protocol)"),
          ("ratio_unaligned_normed", "unaligned, norm-matched to native"),
          ("ratio_transferred", "transferred through R (v R)")]
for ax, (col, title) in zip(axes, panels):
    for ci, k in enumerate(cohorts):
        for con in contrasts:
            sub = table[(table.cohort == k) & (table.contrast == con)]
            ax.scatter(sub.overlap, sub[col], marker=markers.get(con, "o"), color=f"C{ci}", alpha=0.75,
                       label=f"{k}, {con}")
    for y in (clean_ratio, none_ratio, -none_ratio):
        ax.axhline(y, color="grey", ls=":", lw=1)
    ax.axhline(1.0, color="black", lw=0.6)
    ax.set_xlabel("overlap of v_src with R's fixed subspace"); ax.set_title(title, fontsize=10)
axes[0].set_ylabel("effect on target / native effect")
axes[0].legend(fontsize=7, ncol=2, loc="upper left")
plt.tight_layout(); plt.show()
print("Figure: steering effect ratio vs fixed-subspace overlap, one point per transfer "
      "(colour = cohort, marker = contrast); dotted lines: clean 0.7, partial 0.2, inverted −0.2.")

# %% [markdown]
# The same transfers against the two quantities that could explain the unaligned ratio: how
# well the source vector points along the target's own (`cos_native`) and its relative size
# (`norm_ratio`). A pure dose effect lies on the line ratio = norm_ratio × cos_native.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ci, k in enumerate(cohorts):
    sub = table[table.cohort == k]
    axes[0].scatter(sub.cos_native, sub.ratio_unaligned_normed, color=f"C{ci}", alpha=0.75, label=k)
    axes[1].scatter(sub.norm_ratio * sub.cos_native, sub.ratio_unaligned, color=f"C{ci}", alpha=0.75, label=k)
axes[0].plot([-0.2, 1], [-0.2, 1], "k--", lw=0.8, label="ratio = cos")
lim = max(1.2, float((table.norm_ratio * table.cos_native).max()) * 1.05)
axes[1].plot([0, lim], [0, lim], "k--", lw=0.8, label="ratio = norm ratio × cos")
axes[0].set_xlabel("cos(v_src, v_tgt)"); axes[0].set_ylabel("norm-matched unaligned ratio")
axes[1].set_xlabel("‖v_src‖/‖v_tgt‖ × cos(v_src, v_tgt)"); axes[1].set_ylabel("unaligned ratio (paper's protocol)")
axes[0].set_title("Direction: norm-matched transfer"); axes[1].set_title("Direction and dose: raw transfer")
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout(); plt.show()
print("Figure: what the unaligned effect ratio follows — the cosine between the two seeds' vectors "
      "(left, norm-matched) and the norm ratio times that cosine (right, raw).")

# %% [markdown]
# ## Claims
# The paper's steering claims against our measurements; the overlap test is a Spearman rank
# correlation between overlap and the unaligned ratio over the shared-I/O transfers.

# %%
def frac(df, col, regime):
    return float((df[col] == regime).mean()) if len(df) else float("nan")


shared = table[table.cohort == "shared_io"] if "shared_io" in cohorts else table.iloc[:0]
indep = table[table.cohort == "independent"] if "independent" in cohorts else table.iloc[:0]
n_regimes = len({r for r in shared.regime_unaligned if r in ("clean", "partial", "inverted")})
# The paper's statistic (exp2_steering.py; steering.paper_toy_steering): on the shared-I/O cohort,
# seed 0's three vectors at resid_mid of layer 1 (sticky-invalid at depth 4, subtracted; depth 5
# vs 4; closer vs opener), each applied unchanged; effect = conditional-accuracy drop of the
# target readout; ratio = mean cross-seed drop / within-seed drop. Its "inverted" regime is
# cross > within; the claim with a direction is the closer signal's, at α = 1.
paper_rows = []
if "shared_io" in trained:
    ca = trained["shared_io"]
    paper_rows = steering.paper_toy_steering(ca.models, ca.seeds[0], fit_split, "blocks.1.hook_resid_mid", paper_alphas)
results.record("paper_toy_steering", paper_rows)
closer_1 = [r for r in paper_rows if r["vector"] == "closer_signal" and r["alpha"] == 1.0]
depth_2 = [r for r in paper_rows if r["vector"] == "depth_4_to_5" and r["alpha"] == 2.0]
results.record("paper_depth_shift_ratio_alpha2", depth_2[0]["ratio"] if depth_2 else None)
results.record("paper_reported", {"depth_shift_ratio_alpha2": 1.02, "closer_signal_ratio_alpha1": 8.43,
                                  "sticky_invalid_dose_factor": "≈ 4"})
if closer_1:
    results.claim("closer_signal_inverted", value=float(closer_1[0]["ratio"]), threshold=1.0, op=">", kind="paper",
                  paper_value="cross/within = 8.43 at α = 1 (at α = 0.5: within 0, cross −0.183 accuracy): inverted",
                  source="§8.7 'three regimes (toy)'; experiments/cross_seed/exp2_steering.py:run",
                  description="shared-I/O cohort: seed 0's closer-vs-opener vector at b1.resid_mid, α = 1: mean cross-seed "
                              "/ within-seed drop of the token-type readout's accuracy at closers (> 1: inverted)")
results.claim("shared_io_three_regimes", value=n_regimes, threshold=3, op=">=", kind="check",
              description="ours, not the paper's protocol (its contrasts: depth 5 vs 4, sticky-invalid at depth 4, closer "
                          "signal; its ratio: cross-seed / within-seed effect of seed 0's vector; its 'inverted': ratio > 1): distinct regimes among {clean, partial, inverted} of the unaligned (same-vector) transfers "
                          "in the shared-I/O cohort (paper: all three)")
n_regimes_normed = len({r for r in shared.regime_unaligned_normed if r in ("clean", "partial", "inverted")})
results.record("shared_io_regimes_norm_matched", n_regimes_normed)
inv = frac(indep, "regime_unaligned", "inverted")
results.claim("independent_all_inverted", value=inv, threshold=1.0, op=">=", kind="check",
              description="ours, not a paper claim (the paper claims universal inversion for Pythia only, and its "
                          "'inverted' means a cross-seed effect larger than the within-seed one, not a sign flip): fraction of unaligned transfers between independent seeds classified inverted "
                          "(paper: universal inversion with no shared I/O)")
if len(shared) > 2:
    rho, p_rho = spearmanr(shared.overlap, shared.ratio_unaligned)
    rho_n, p_rho_n = spearmanr(shared.overlap, shared.ratio_unaligned_normed)
else:
    rho = p_rho = rho_n = p_rho_n = float("nan")
results.claim("overlap_predicts_regime", value=float(rho), threshold=0.5, op=">=", p_value=float(p_rho), kind="check",
              description="ours (the paper states the overlap account qualitatively and measures no correlation): Spearman rho between fixed-subspace overlap and unaligned effect ratio, shared-I/O cohort "
                          "(our operationalisation: rho >= 0.5)")
results.record("overlap_spearman_norm_matched", {"rho": float(rho_n), "p": float(p_rho_n)})
if len(table) > 2:
    rho_c, p_c = spearmanr(table.cos_native, table.ratio_unaligned_normed)
else:
    rho_c = p_c = float("nan")
results.record("cos_native_spearman_norm_matched", {"rho": float(rho_c), "p": float(p_c)})
clean_t = frac(table, "regime_transferred", "clean")
clean_tn = frac(table, "regime_transferred_normed", "clean")
results.claim("rotated_transfer_clean_fraction", value=clean_t, threshold=0.9, op=">=", kind="check",
              description="ours (the paper does not transfer steering vectors through R): fraction of transfers through R (v R, source's size) that are clean, both cohorts")
results.claim("rotated_transfer_clean_fraction_norm_matched", value=clean_tn, threshold=0.9, op=">=", kind="check",
              description="ours (the paper does not transfer steering vectors through R): fraction of transfers through R, rescaled to the native vector's norm, that are clean")
rt = table.ratio_transferred_normed
results.record("ratio_transferred_normed_range", [float(rt.min()), float(rt.max())])
results.record("ratio_unaligned_range", {k: [float(g.ratio_unaligned.min()), float(g.ratio_unaligned.max())]
                                         for k, g in table.groupby("cohort")})
results.record("wall_seconds", time.perf_counter() - t_start)
results.record("cpu_seconds", time.process_time() - cpu_start)

# %% [markdown]
# ## Summary
# Every number below is read from this run.

# %%
c = results.data["claims"]
print(f"{len(table)} transfers ({', '.join(cohorts)}; {len(sites)} sites × {len(contrasts)} contrasts × ordered seed pairs), "
      f"alpha = {alpha}.")
for k, g in table.groupby("cohort"):
    print(f"{k}: unaligned ratio {g.ratio_unaligned.min():.2f}…{g.ratio_unaligned.max():.2f} "
          f"(regimes {({k: int(v) for k, v in g.regime_unaligned.value_counts().items()})}); norm-matched unaligned "
          f"{g.ratio_unaligned_normed.min():.2f}…{g.ratio_unaligned_normed.max():.2f}; through R "
          f"{g.ratio_transferred.min():.2f}…{g.ratio_transferred.max():.2f}, norm-matched through R "
          f"{g.ratio_transferred_normed.min():.2f}…{g.ratio_transferred_normed.max():.2f}.")
print(f"Paper: three regimes in shared I/O -> we see {n_regimes} of clean/partial/inverted "
      f"({'pass' if c['shared_io_three_regimes']['passed'] else 'FAIL'}); after norm matching {n_regimes_normed}.")
print(f"Paper: universal inversion without shared I/O -> inverted fraction {inv:.2f} "
      f"({'pass' if c['independent_all_inverted']['passed'] else 'FAIL'}).")
print(f"Paper: overlap with R's fixed subspace predicts the regime -> Spearman rho = {rho:.2f} (p = {p_rho:.2g}) "
      f"({'pass' if c['overlap_predicts_regime']['passed'] else 'FAIL'}); norm-matched rho = {rho_n:.2f}; "
      f"cos(v_src, v_tgt) vs norm-matched ratio: rho = {rho_c:.2f}.")
print(f"Rotation account: {clean_t:.0%} of transfers through R are clean ({clean_tn:.0%} norm-matched).")
print(f"Wall time {results['wall_seconds']:.1f} s, CPU time {results['cpu_seconds']:.1f} s.")

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — Dose vs direction
# A transferred vector has ratio 4 (transferred effect / native effect). Is that 'clean', 'partial' or 'inverted'? What single number would separate a dose difference from a direction difference?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# By sign it is a clean (same-direction) transfer with a larger dose. The cosine between the transferred vector and the target's native vector separates direction from dose: rescaling the transferred vector to the native norm (the chapter's *norm-matched* effects) removes the dose.
# :::
