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
# single run". Its evidence (§8.6, Dyck-3): a checkpoint about halfway through training against
# the final one, naive explained variance 0.90–0.95, after a Procrustes rotation 0.98–0.999, and
# $\|R - I\|_F$ falling from 10.4 to 2.9 with depth ($\sqrt{2d} = 11.3$ at $d = 64$).
#
# Here, for one training run, we fit an SO(64) rotation $R$ between the residual activations of
# two checkpoints on the same strings, at every residual site, for **successive** checkpoints and
# for **each checkpoint against the final model**, and ask three questions of each $R$:
#
# - is it near the identity? $\|R - I\|_F/\sqrt{2d}$ (0 = identity, ≈ 1 = Haar *or any
#   orthogonal matrix with trace ≈ 0*) and $\mathrm{tr} R / d$;
# - is it Haar? the calibrated `haar_test` p-value (Monte-Carlo min-p over five statistics);
# - does rotating help? held-out EV of the later checkpoint by the earlier one mapped with the
#   identity (no alignment), the rotation, and a least-squares affine map (the ceiling).
#
# For comparison, the same numbers for two *different seeds'* final models.
#
# **What would falsify the claim:** if "the same account" means "a Haar rotation, as between
# seeds", a checkpoint-to-final $R$ that is near the identity or rejected by the calibrated test;
# if it means "a rotation restores the EV", a rotation EV far below the affine ceiling or barely
# above the identity EV.

# %% tags=["parameters"]
seed = 0                     # [int >= 0] seeds the Haar null sample
toy_profile = "quick"        # [str in {smoke, quick, paper}] training recipe: polyrot_utils.tasks.dyck.cohorts.TOY_PROFILES
cohort = "independent"       # [str in {shared_io, independent, same_init, sgd}] cohort kind of the run (its first seed) and of the cross-seed reference
n_seeds = 2                  # [int >= 2] members of the cohort loaded (the first is the run; two give the cross-seed reference)
steps = None                 # [int|None >= 1] None means the value of the profile
batch_size = None            # [int|None >= 1] None means the value of the profile
max_len = None               # [int|None >= 1] None means the value of the profile
n_fit_strings = 150          # [int >= 1] held-out strings to fit R on
n_eval_strings = 100         # [int >= 1] other held-out strings to evaluate the maps on
n_null = 200                 # [int >= 1] Haar samples calibrating each test, the smallest p is 1 over n_null plus 1
d_sae = 128                  # [int >= 1] width of the SAE on the earlier checkpoint (the paper's statistic), 2 × d_model
k = 8                        # [int >= 1] TopK: latents active per token
sae_tokens = 16_384          # [int >= 1] tokens that SAE sees in training
device = "auto"

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

torch.set_num_threads(1)
from polyrot_utils.experiments import analysis
from polyrot_utils.experiments import checkpoints as ck
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.cohorts import cohort_config, train_cohort
from polyrot_utils.tasks.dyck.suite import distinct_resid_sites, short_site
from polyrot_utils.book.results import ChapterResults

t_start, cpu_start = time.perf_counter(), time.process_time()
results = ChapterResults(
    "15_dyck_checkpoints",
    params=dict(seed=seed, toy_profile=toy_profile, cohort=cohort, n_seeds=n_seeds, steps=steps, batch_size=batch_size,
                max_len=max_len, n_fit_strings=n_fit_strings, n_eval_strings=n_eval_strings, n_null=n_null, d_sae=d_sae,
                k=k, sae_tokens=sae_tokens, device=device),
)
# checkpoints need a training run: the committed reference weights (the other Dyck chapters'
# converged cohorts) carry no checkpoints, so this chapter trains its own run of the profile's recipe
run = train_cohort(cohort_config(cohort, profile=toy_profile, n_seeds=n_seeds, steps=steps, batch_size=batch_size,
                                 data_max_len=max_len, device=device, source="train"))
run_seed = run.seeds[0]
member = run.members[run_seed]
ck_steps = sorted(member.checkpoints)
models = {f"step{s}": m for s, m in ck.checkpoint_models(member).items()}
if len(run.seeds) > 1:
    models[f"seed{run.seeds[1]}"] = run.models[run.seeds[1]]
sites = distinct_resid_sites(member.model)
d = member.model.cfg.d_model
print(f"{cohort} seed {run_seed}: checkpoints at steps {ck_steps}; sites {[short_site(s) for s in sites]}")

# %% [markdown]
# ## Held-out accuracy at each checkpoint
# The run's own evaluations: what each checkpoint can do (all three readouts right at a position).

# %%
hist = pd.DataFrame(member.history["eval"])
print(hist[["step", "acc_type", "acc_depth", "acc_invalid", "acc_all"]].round(4).to_string(index=False))

# %% [markdown]
# ## Fitting R between checkpoints
# Activations of every checkpoint on the same held-out strings (fit and evaluation strings
# disjoint), then one rotation per pair and site.

# %%
split = dyck.make_split(run.config.train.data, "heldout")
fit, ev = ck.fit_eval_activations(models, split, sites, n_fit_strings, n_eval_strings)
pairs = {"successive": ck.checkpoint_pairs(ck_steps, "successive"), "to_final": ck.checkpoint_pairs(ck_steps, "to_final")}
rows = []
for kind, prs in pairs.items():
    rows += ck.rotation_table(fit, ev, [(f"step{a}", f"step{b}") for a, b in prs], sites, label=kind, n_null=n_null, seed=seed)
if len(run.seeds) > 1:
    rows += ck.rotation_table(fit, ev, [(f"step{ck_steps[-1]}", f"seed{run.seeds[1]}")], sites, label="cross_seed",
                              n_null=n_null, seed=seed)
table = pd.DataFrame(rows)
table["site"] = table.site.map(short_site)
table["step_a"] = table.a.str.replace("step", "").where(table.a.str.startswith("step")).astype(float)
results.record("rotations", table.to_dict(orient="records"))
first = next(iter(fit))
print(f"{len(models)} models; {fit[first][sites[0]].shape[0]} fit rows and {ev[first][sites[0]].shape[0]} evaluation rows per site")
table.drop(columns=["step_a"]).round(3)

# %% [markdown]
# Caveat before reading the table: at `b0.resid_pre` the activations are the token and position
# embeddings of 9 used tokens — a subspace of about 15 dimensions — so $R$ is only determined on
# that span and arbitrary on the rest; its $\|R-I\|$ and Haar p-value say nothing there.

# %% [markdown]
# ## As training proceeds
# Left: $\|R - I\|_F / \sqrt{2d}$ for each checkpoint against the final model (solid) and each
# against the next (dashed), per site; the grey band is the cross-seed value. Right: held-out EV
# of the final model's activations from the checkpoint's, without alignment (identity), with the
# rotation, and with an affine map. Look for where the curves meet the cross-seed level.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
site_names = [short_site(s) for s in sites]
for i, s in enumerate(site_names):
    tf = table[(table.pair_kind == "to_final") & (table.site == s)]
    sc = table[(table.pair_kind == "successive") & (table.site == s)]
    axes[0].plot(tf.step_a, tf.frob_ratio, "-o", color=f"C{i}", label=f"{s}")
    axes[0].plot(sc.step_a, sc.frob_ratio, "--", color=f"C{i}", alpha=0.6)
cs = table[table.pair_kind == "cross_seed"]
if len(cs):
    axes[0].axhspan(cs.frob_ratio.min(), cs.frob_ratio.max(), color="grey", alpha=0.25, label="cross-seed range")
axes[0].axhline(1.0, color="black", lw=0.6)
axes[0].set_xlabel("step of the earlier checkpoint"); axes[0].set_ylabel("‖R − I‖_F / √(2d)")
axes[0].set_title("Distance of R from the identity (solid: to final; dashed: to next)")
axes[0].legend(fontsize=7)
mid_site = site_names[len(site_names) // 2]
tf = table[(table.pair_kind == "to_final") & (table.site == mid_site)]
for col, lab in [("ev_identity", "identity (no alignment)"), ("ev_rotation", "rotation R"), ("ev_affine", "affine map")]:
    axes[1].plot(tf.step_a, tf[col], "-o", label=lab)
axes[1].set_ylim(max(-1.0, float(tf[["ev_identity", "ev_rotation", "ev_affine"]].min().min()) - 0.05), 1.02)
axes[1].set_xlabel("step of the earlier checkpoint"); axes[1].set_ylabel("held-out EV of the final model's activations")
axes[1].set_title(f"Checkpoint → final at {mid_site}"); axes[1].legend(fontsize=8)
plt.tight_layout(); plt.show()
print("Figure: distance of the checkpoint rotations from the identity per site (left) and how much of the "
      f"final model's activations the checkpoint's explain at {mid_site} (right).")

# %% [markdown]
# ## Is the checkpoint-to-final rotation Haar?
# Calibrated p-values per site for each checkpoint against the final model, and for two seeds.
# The smallest possible value is 1/(n_null + 1).

# %%
pv = table.pivot_table(index="site", columns=["pair_kind", "a"], values="haar_p", sort=False)
pv.round(3)

# %% [markdown]
# ## Claims
# The paper's comparison is a checkpoint about halfway through training against the final one.
# We take the first checkpoint at or after half of the run. The Haar reading of "the same rotation
# account" is tested at every site but `b0.resid_pre` (R undetermined there), with a Bonferroni
# threshold 0.05 / number of sites.

# %%
half = next((s for s in ck_steps if s >= ck_steps[-1] / 2 and s != ck_steps[-1]), ck_steps[-2])
mid = table[(table.pair_kind == "to_final") & (table.a == f"step{half}")]
mid_tested = mid[mid.site != "b0.resid_pre"]
results.record("half_checkpoint_step", half)
results.record("half_to_final", mid.drop(columns=["step_a"]).to_dict(orient="records"))
# The paper's statistic (cross_ckpt.py variant a): an SAE trained on the *earlier* checkpoint's
# activations, scored on one batch (the eval rows) — on the final model's activations unchanged
# and after an in-sample O(d) rotation onto the earlier frame — with scalar-variance EV, at the
# paper's sites (distinct tensors); ‖R − I‖_F of that rotation, by depth.
psites = analysis.paper_toy_sites(sites)
early, final = f"step{half}", f"step{ck_steps[-1]}"
sae_early, _ = analysis.train_saes(fit, d_sae=d_sae, k=k, n_tokens=sae_tokens, batch_size=256, seed=seed,
                                   models=[early], sites=psites)
paper_ck = pd.DataFrame([{"site": short_site(st), **analysis.paper_checkpoint_transfer(sae_early[early][st], ev[early][st], ev[final][st])}
                         for st in psites])
results.record("paper_checkpoint_transfer", paper_ck.to_dict(orient="records"))
SRC_CK = "§8.6 'Cross-checkpoint rotation', variant (a); experiments/cross_checkpoint/cross_ckpt.py:variant_a_local_dyck"
results.claim("ckpt_post_rotation_sae_ev", value=float(paper_ck.ev_rot.min()), threshold=0.98, op=">=", kind="paper",
              paper_value="post-rotation EV in [0.98, 0.999] across all sites (step 30,000 → 58,000)", source=SRC_CK,
              description=f"SAE trained on checkpoint step {half}, applied to the final model's activations rotated onto "
                          "the checkpoint's frame (one batch, scalar variance): smallest over sites")
results.claim("ckpt_rotation_lifts_naive_sae_ev", value=float((paper_ck.ev_rot - paper_ck.ev_naive).min()), threshold=0.0,
              op=">", kind="paper", paper_value="naive EV [0.90, 0.95] → post-rotation [0.98, 0.999]", source=SRC_CK,
              description=f"the same SAE's EV after rotation − before (naive), checkpoint step {half} → final: smallest over sites")
results.claim("ckpt_frob_falls_with_depth", value=float(paper_ck.frob.iloc[-1] - paper_ck.frob.iloc[0]), threshold=0.0,
              op="<", kind="paper", paper_value="‖R − I‖_F falls with depth, 10.4 at the embedding → 2.9–3.0 at late sites",
              source=SRC_CK,
              description="‖R − I‖_F of the checkpoint → final rotation at the last paper site − at the first (the embedding)")
results.claim("ckpt_half_to_final_rotation_ev_min", value=float(mid.ev_rotation.min()), threshold=0.98, op=">=", kind="check",
              check_of="ckpt_post_rotation_sae_ev",
              why_stricter="map EV of the rotation on held-out rows (R fitted on other strings), per-dimension variance, "
                           "no SAE in between",
              description=f"held-out EV after rotation, checkpoint step {half} → final, worst site")
results.record("ckpt_half_to_final_identity_ev_range", [float(mid.ev_identity.min()), float(mid.ev_identity.max())])
gain = float((mid.ev_rotation - mid.ev_identity).min())
results.claim("ckpt_half_to_final_rotation_gain_min", value=gain, threshold=0.0, op=">", kind="check",
              check_of="ckpt_rotation_lifts_naive_sae_ev",
              why_stricter="held-out map EVs (rotation vs identity), per-dimension variance, no SAE in between",
              description="EV(rotation) − EV(identity), checkpoint → final, worst site: the rotation helps everywhere")
frob_by_site = {r.site: r.frob_ratio for r in mid.itertuples()}
results.record("ckpt_half_to_final_frob_ratio", frob_by_site)
results.record("paper_frob_ratio_range", [2.9 / np.sqrt(2 * 64), 10.4 / np.sqrt(2 * 64)])
pmin = float(mid_tested.haar_p.min()) if len(mid_tested) else float("nan")
n_tested = max(1, len(mid_tested))
results.claim("ckpt_half_to_final_haar_pmin", value=pmin, threshold=0.05 / n_tested, op=">", p_value=pmin, kind="check",
              description=f"ours, not a paper claim (the paper never says checkpoint rotations are Haar): smallest "
                          f"calibrated Haar p-value over {n_tested} sites, checkpoint step {half} → final "
                          f"(Bonferroni threshold 0.05/{n_tested})")
late = table[(table.pair_kind == "successive") & (table.b == f"step{ck_steps[-1]}") & (table.site != "b0.resid_pre")]
results.record("last_successive_frob_ratio_max", float(late.frob_ratio.max()) if len(late) else float("nan"))
cs_tested = cs[cs.site != "b0.resid_pre"] if len(cs) else cs
results.record("cross_seed_frob_ratio_range", [float(cs_tested.frob_ratio.min()), float(cs_tested.frob_ratio.max())] if len(cs) else None)
results.record("cross_seed_haar_p_range", [float(cs_tested.haar_p.min()), float(cs_tested.haar_p.max())] if len(cs) else None)
results.record("wall_seconds", time.perf_counter() - t_start)
results.record("cpu_seconds", time.process_time() - cpu_start)

# %% [markdown]
# ## Summary
# Every number below is read from this run.

# %%
c = results.data["claims"]
print(f"Run: {cohort} seed {run_seed}, checkpoints {ck_steps}; d = {d}; {len(sites)} sites.")
print(f"Checkpoint {half} → final: EV without alignment {mid.ev_identity.min():.3f}…{mid.ev_identity.max():.3f}, "
      f"with R {mid.ev_rotation.min():.3f}…{mid.ev_rotation.max():.3f}, affine ceiling "
      f"{mid.ev_affine.min():.3f}…{mid.ev_affine.max():.3f} (paper: 0.90–0.95 → 0.98–0.999) — rotated-EV claim "
      f"{'pass' if c['ckpt_half_to_final_rotation_ev_min']['passed'] else 'FAIL'}, rotation helps at every site: "
      f"{'pass' if c['ckpt_half_to_final_rotation_gain_min']['passed'] else 'FAIL'}.")
print(f"‖R − I‖_F/√(2d), checkpoint {half} → final, by site: "
      + ", ".join(f"{k} {v:.2f}" for k, v in frob_by_site.items())
      + f" (paper: 0.92 → 0.26 by depth); last successive pair ≤ {results['last_successive_frob_ratio_max']:.2f}.")
if len(cs):
    print(f"Two seeds' final models: ‖R − I‖_F/√(2d) {cs_tested.frob_ratio.min():.2f}…{cs_tested.frob_ratio.max():.2f}, "
          f"Haar p {cs_tested.haar_p.min():.3f}…{cs_tested.haar_p.max():.3f}.")
print(f"Haar test, checkpoint {half} → final: smallest p = {pmin:.3f} over {n_tested} sites "
      f"({'consistent with Haar' if c['ckpt_half_to_final_haar_pmin']['passed'] else 'Haar rejected'}).")
print(f"Wall time {results['wall_seconds']:.1f} s, CPU time {results['cpu_seconds']:.1f} s.")

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
