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
# # Is this R Haar?
#
# The paper: the rotation between two seeds is **Haar-distributed** on SO(d) — a uniformly
# random rotation. Its evidence, on Pythia (d = 512): the *mean* $\|R - I\|_F$ over pairs and
# sites within 0.1 % of $\sqrt{2d}$, and a Kolmogorov–Smirnov test of the pooled |eigenangles|
# against Haar returning $p \approx 1$. On the toy (d = 64) it claims less: for the independent
# cohort $\|R - I\|_F \in [10.80, 11.25]$, within 5 % of $\sqrt{128} = 11.31$ (that is this
# chapter's paper claim), and for the shared-I/O cohort a range [9.4, 10.7] with no bar; it runs no
# KS on the toy. The Haar chapter showed that both Pythia criteria have almost no power (a signed
# permutation passes them); here they are our checks.
#
# Here we put the Dyck toy's fitted rotations through the calibrated tests of
# `polyrot_utils.core.haar` — per pair and site, and pooled per cohort — beside the paper's two
# numbers; the distance to the nearest signed permutation with its own Haar null; the fixed
# subspace of $R$ in the shared-I/O cohort against the shared embedding and readout; and cycle
# consistency $R_{AB} R_{BC} \approx R_{AC}$ across three seeds. Cohorts: shared I/O, independent
# (AdamW) and **SGD**: SGD with momentum commutes with rotations of the residual basis and the
# init is isotropic, so theory predicts Haar $R$ *only* there; Adam's per-coordinate scaling
# privileges the axes.
#
# **What would falsify "R is Haar":** calibrated p-values below α (pooled or per pair), a fixed
# subspace larger than Haar's, entries more concentrated than Haar's, or $R$ closer to a signed
# permutation than Haar matrices are. A rotation is only identified on the span of the
# activations, so we report each site's rank beside its test.

# %% tags=["parameters"]
seed = 0  # [int >= 0]
toy_profile = "quick"  # [str in {smoke, quick, paper}]
cohorts = ["shared_io", "independent", "sgd"]  # [list[str] in {shared_io, independent, same_init, sgd}]
n_seeds = 3                                # [int >= 2] 3 seeds: 3 pairs and one cycle per cohort
n_fit = 8192                               # [int >= 1] tokens each R is fitted on
n_null = 200                               # [int >= 1] Haar samples calibrating every test
alpha = 0.05  # [float > 0, < 1]
power_trials = 12      # [int >= 1] matrices per row of the size/power table at this chapter's d
fixed_tol = 0.1                            # [float > 0] angle (rad) below which an invariant plane counts as fixed
full_rank_frac = 0.9                       # [float > 0, <= 1] a site is "identified" if its activations' rank >= this × d
device = "auto"

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from polyrot_utils.experiments import analysis
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.core import haar
from polyrot_utils.tasks.dyck.cohorts import cohort_config, train_cohort
from polyrot_utils.tasks.dyck.suite import dyck_activations, short_site
from polyrot_utils.book.results import ChapterResults

results = ChapterResults("13_dyck_haar", params=dict(
    seed=seed, toy_profile=toy_profile, cohorts=cohorts, n_seeds=n_seeds, n_fit=n_fit, n_null=n_null, alpha=alpha,
    fixed_tol=fixed_tol, full_rank_frac=full_rank_frac, device=device))
trained = {c: train_cohort(cohort_config(c, profile=toy_profile, n_seeds=n_seeds, device=device)) for c in cohorts}
suites = {c: dyck_activations(t, "heldout", n_fit=n_fit, n_eval=256, seed=seed) for c, t in trained.items()}
sites = next(iter(suites.values())).sites
site_labels = [short_site(s) for s in sites]
d = next(iter(suites.values())).fit[next(iter(suites.values())).members[0]][sites[0]].shape[1]
acc = {c: {s: round(t.history["final"]["heldout"]["acc_all"], 4) for s, t in tr.members.items()} for c, tr in trained.items()}
results.record("heldout_acc_all", acc)
print("held-out accuracy (all readouts):", acc)

# %% [markdown]
# ## Fitted rotations, and how much of each one the data determine
# One SO(d) Procrustes fit (and an O(d) one, as the paper fits) per pair of seeds and site. The
# `rank` is the number of directions the site's activations use: at `b0.resid_pre` (9 tokens +
# 6 positional features) R is only pinned down on about 11 of 64 directions — the rest of R is
# whatever the SVD returns for a near-zero cross-covariance, and a Haar test of it tests the
# linear-algebra library, not the models.

# %%
maps, rots, rots_O, geo = {}, {}, {}, []
for c, s in suites.items():
    pairs = analysis.all_pairs(s.members)
    maps[c] = analysis.fit_maps(s.fit, pairs, sites, methods=("rotation", "rotation_O"))
    rots[c] = analysis.rotations_from_maps(maps[c], "rotation", pairs=pairs)
    rots_O[c] = analysis.rotations_from_maps(maps[c], "rotation_O", pairs=pairs)
    geo += [{"cohort": c, **r} for r in analysis.site_geometry(s.fit, sites, models=s.members)]
geo = pd.DataFrame(geo)
rank = geo.groupby(["cohort", "site"])["rank"].min()
identified = {(c, st): bool(rank[(c, st)] >= full_rank_frac * d) for c in cohorts for st in sites}
geo_tab = geo.assign(site=geo.site.map(short_site)).pivot_table(index="cohort", columns="site", values="rank", aggfunc="min", sort=False)[site_labels]
results.record("site_rank", geo_tab.reset_index().to_dict(orient="records"))
geo_tab

# %% [markdown]
# ## Per pair and site: the paper's numbers beside the calibrated tests
# `frob` = ‖R − I‖_F/√(2d) (paper: 1 within 0.1 %); `ks_iid_p` = the paper's per-matrix KS
# (angles treated as independent); the calibrated p-values (Monte Carlo against n_null Haar
# samples of the same d) of the KS statistic, entry kurtosis, largest entry, Diaconis–Shahshahani
# traces and fixed dimension, and their calibrated combination `p`; `perm_dist` = the distance to
# the nearest signed permutation (scaled like frob) with its Haar-null p (small = closer to a
# permutation than a Haar rotation would be). Look at `p` against α and at the `identified` column.

# %%
hrows = []
for c in cohorts:
    for r in analysis.haar_table(rots[c], n_null=n_null, seed=seed, perm_null=n_null):
        hrows.append({"cohort": c, "identified": identified[(c, r["site"])], **r})
ht = pd.DataFrame(hrows)
ht["site"] = ht.site.map(short_site)
ht["pair"] = ht.source + "→" + ht.target
results.record("haar_rows", ht.to_dict(orient="records"))
show = ht[["cohort", "site", "pair", "identified", "frobenius_ratio", "ks_pvalue_iid", "ks_pvalue_calibrated", "kurtosis_pvalue",
           "max_entry_pvalue", "trace_pvalue", "fixed_dim_pvalue", "pvalue", "signed_perm_distance", "signed_perm_pvalue"]]
show.rename(columns={"frobenius_ratio": "frob", "ks_pvalue_iid": "ks_iid_p", "ks_pvalue_calibrated": "ks_cal_p",
                     "kurtosis_pvalue": "kurt_p", "max_entry_pvalue": "maxent_p", "trace_pvalue": "trace_p",
                     "fixed_dim_pvalue": "fixed_p", "pvalue": "p", "signed_perm_distance": "perm_dist",
                     "signed_perm_pvalue": "perm_p"}).round(3)

# %% [markdown]
# ## Pooled per cohort
# The paper's pooled KS (|eigenangles| of the O(d) fits, conjugate pairs counted twice, against
# as many Haar samples) beside the calibrated pooled test (Fisher's combination of the per-matrix
# calibrated p's, its null simulated), over all sites and over the identified sites only. The
# Frobenius line: how often a *Haar* matrix of this d meets the paper's 0.1 % criterion at all.

# %%
null_frob = haar.null_features(d, n_null, seed)["frobenius_ratio"]
haar_frob_pass = float((np.abs(null_frob - 1) <= 1e-3).mean())
prow = []
for c in cohorts:
    paper = haar.paper_ks_test(list(rots_O[c].values()))
    cal = haar.haar_test_pooled(list(rots[c].values()), n_null=n_null, seed=seed)
    ident = [R for (a, b, st), R in rots[c].items() if identified[(c, st)]]
    cal_id = haar.haar_test_pooled(ident, n_null=n_null, seed=seed) if ident else None
    sub = ht[ht.cohort == c]
    prow.append({"cohort": c, "n_matrices": len(rots[c]), "paper_ks_stat": paper.statistic, "paper_ks_p": paper.pvalue,
                 "calibrated_p_all": cal.pvalue, "n_identified": len(ident),
                 "calibrated_p_identified": cal_id.pvalue if cal_id else float("nan"),
                 "frob_dev_max": float((sub.frobenius_ratio - 1).abs().max()),
                 "per_pair_rejected": int((sub.pvalue <= alpha).sum()),
                 **{f"component_p_{k}": v for k, v in cal.component_pvalues.items()}})
pooled = pd.DataFrame(prow)
results.record("pooled", pooled.to_dict(orient="records"))
results.record("haar_frobenius_pass_fraction", haar_frob_pass)
print(f"Haar SO({d}) samples meeting |frob − 1| <= 0.1 %: {haar_frob_pass:.1%} (the criterion's own size at this d)")
pooled.round(4)

# %% [markdown]
# Per site: the calibrated combined p of each pair (dots) for each cohort, against α; hollow
# markers are sites where the activations leave R unidentified.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
xs = np.arange(len(site_labels))
for ci, c in enumerate(cohorts):
    sub = ht[ht.cohort == c]
    for j, st in enumerate(site_labels):
        ps = sub[sub.site == st]
        face = f"C{ci}" if bool(ps.identified.iloc[0]) else "none"
        axes[0].scatter(np.full(len(ps), j + 0.12 * (ci - 1)), ps.pvalue, edgecolors=f"C{ci}", facecolors=face, s=30,
                        label=c if j == 0 else None)
        axes[1].scatter(np.full(len(ps), j + 0.12 * (ci - 1)), ps.signed_perm_distance, edgecolors=f"C{ci}",
                        facecolors=face, s=30, label=c if j == 0 else None)
axes[0].axhline(alpha, color="red", ls="--", lw=1, label=f"α = {alpha}")
axes[0].set_yscale("log"); axes[0].set_ylabel("calibrated combined p (per pair)")
axes[0].set_title("Haar test per pair and site")
null_perm = analysis.signed_permutation_distance_null(d, n_null, seed)
axes[1].axhspan(np.quantile(null_perm, 0.025), np.quantile(null_perm, 0.975), color="grey", alpha=0.3,
                label="Haar SO(d): 95 % range")
axes[1].set_ylabel("‖R − P_best‖_F / √(2d)"); axes[1].set_title("Distance to the nearest signed permutation")
for ax in axes:
    ax.set_xticks(xs, site_labels, fontsize=8); ax.set_xlabel("residual site"); ax.legend(fontsize=7)
plt.tight_layout(); plt.show()
print("Figure: left, calibrated Haar p per pair (hollow: R not identified by the data); right, distance of R to "
      "the nearest signed permutation against the Haar range.")

# %% [markdown]
# ## The fixed subspace of R, and what pins it
# In the shared-I/O cohort every seed has the same embedding $W_E$ and readout $W_U$; in *every*
# cohort every model has the same frozen positional table $W_{pos}$ (the paper's structured,
# non-learned features on 6 coordinates). Where the models agree, $R$ must leave shared inputs in
# place. Per cohort and site: the dimension of R's fixed subspace (invariant planes turned by less
# than `fixed_tol`) beside the Haar mean of that count, and the fraction of each span that lies
# inside it (Haar: ≈ fixed_dim / d ≈ 0.04). $W_E$ and $W_U$ are the first seed's — shared only in
# the shared-I/O cohort.

# %%
fx_rows = []
for c in cohorts:
    m0 = next(iter(trained[c].models.values()))
    used = torch.unique(dyck.make_split(trained[c].config.train.data, "heldout").tokens)
    spans = {"W_pos": analysis.span_basis(m0.W_pos.detach().T), "W_E": analysis.span_basis(m0.W_E.detach()[used].T),
             "W_U": analysis.span_basis(m0.W_U.detach())}
    fx_rows += [{"cohort": c, **r} for r in analysis.fixed_subspace_table(rots[c], spans, tol=fixed_tol, n_null=n_null, seed=seed)]
fx = pd.DataFrame(fx_rows)
fx["site"] = fx.site.map(short_site)
fixed_df = fx.groupby(["cohort", "site"], sort=False)[["fixed_dim", "haar_fixed_dim", "overlap_W_pos", "overlap_W_E",
                                                       "overlap_W_U"]].mean().reset_index()
results.record("fixed_subspace", fixed_df.to_dict(orient="records"))
print(f"spans: W_pos {spans['W_pos'].shape[1]} dims, W_E (used rows) {spans['W_E'].shape[1]}, W_U {spans['W_U'].shape[1]}; d = {d}")
fixed_df.round(3)

# %% [markdown]
# ## Cycle consistency
# If each seed's basis is one rotation away from every other, $R_{AB} R_{BC} = R_{AC}$. The error
# ‖R_AB R_BC − R_AC‖_F/√(2d) is compared with the fit noise (the same distance between two fits of
# R_AC on disjoint halves of the rows): a ratio near 1 is as consistent as the data allow.

# %%
cyc = pd.DataFrame([{"cohort": c, **r} for c, s in suites.items() if len(s.members) >= 3
                    for r in analysis.cycle_consistency(s.fit, tuple(s.members[:3]), sites)])
if len(cyc):
    cyc["site"] = cyc.site.map(short_site)
    results.record("cycle_consistency", cyc.to_dict(orient="records"))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for ci, (c, sub) in enumerate(cyc.groupby("cohort", sort=False)):
        ax.plot(np.arange(len(sub)), sub.cycle_error, "o-", color=f"C{ci}", label=f"{c}: cycle error")
        ax.plot(np.arange(len(sub)), sub.fit_noise, "s:", color=f"C{ci}", label=f"{c}: fit noise (half batches)")
    ax.set_xticks(np.arange(len(site_labels)), site_labels, fontsize=8); ax.set_xlabel("residual site")
    ax.set_ylabel("‖·‖_F / √(2d)"); ax.set_title("R_AB R_BC vs R_AC"); ax.legend(fontsize=7)
    plt.tight_layout(); plt.show()
    print("Figure: cycle error against the fit-noise floor, per site and cohort.")
cyc.round(3) if len(cyc) else None

# %% [markdown]
# ## How much could these tests see? Size and power at this d
# A p-value means little without the test's power. Here the same calibrated tests run on
# fresh Haar samples (their size: the rejection rate should be near α) and on named non-Haar
# alternatives of this chapter's dimension (their power). Look for the paper's criteria (the
# `ks_iid` and `frobenius_0.1pct` columns) failing to tell the alternatives from Haar, and the
# calibrated `combined` column rejecting them.

# %%
power_table = pd.DataFrame(haar.size_and_power(64, n_trials=power_trials, alpha=alpha, seed=seed, n_null=n_null))
results.record("size_and_power", power_table.to_dict(orient="list"))
power_table[["alternative", "ks_iid", "frobenius_0.1pct", "ks_calibrated", "kurtosis", "max_entry", "traces",
             "fixed_dim", "combined"]].round(2)

# %% [markdown]
# ## Summary

# %%
# The paper's statistic (analysis.paper_transfer_table): R = O(d) Procrustes (no determinant fix)
# of each seed onto the anchor, fitted on one batch; ‖R − I‖_F per pair, mean over pairs per
# internal site. The paper's toy Frobenius claim is for the independent cohort ("to within 5 %");
# for the shared-I/O cohort it reports only the range [9.4, 10.7], which we record.
internal = analysis.paper_internal_sites(sites)
paper_frob = {}
for c, s in suites.items():
    rows_c = analysis.paper_transfer_table(s.fit, analysis.all_pairs(s.members, anchor=s.members[0]), internal)
    paper_frob[c] = analysis.site_means(rows_c, "frob", internal)
    results.record(f"paper_frob_by_site_{c}", paper_frob[c])
if "independent" in paper_frob:
    dev = max(abs(f / np.sqrt(2 * d) - 1) for f in paper_frob["independent"].values())
    results.claim("dyck_indep_frobenius_within_5pct", value=float(dev), threshold=0.05, op="<=", kind="paper",
                  paper_value="‖R − I‖_F in [10.80, 11.25] vs √(2·64) = 11.31: within 5 %",
                  source="§8.4 'Independent-init at toy scale'; experiments/independent_init/analyze_indep.py:run_rotation_audit",
                  description=f"independent cohort: |mean ‖R − I‖_F / √(2d) − 1| (O(d) fit onto the anchor, one batch; "
                              f"mean over pairs), largest over internal sites, d = {d}")
if "shared_io" in paper_frob:
    results.record("paper_frob_range_shared_io", [min(paper_frob["shared_io"].values()), max(paper_frob["shared_io"].values())])
    results.record("paper_reported_frob_range_shared_io", "[9.4, 10.7] across internal sites (§8.2)")
for c in cohorts:
    r = pooled[pooled.cohort == c].iloc[0]
    extra = dict(check_of="dyck_indep_frobenius_within_5pct",
                 why_stricter="the paper's 0.1 % is its Pythia (d = 512) criterion for a mean over pairs; here applied "
                              "to the worst single matrix at d = 64") if c == "independent" else {}
    results.claim(f"dyck_frobenius_ratio_dev_max_{c}", value=float(r.frob_dev_max), threshold=1e-3, op="<=", kind="check",
                  description=f"ours: {c}: largest |‖R − I‖_F/√(2d) − 1| over pairs and sites within 0.1 % "
                              f"(only {haar_frob_pass:.0%} of Haar SO({d}) samples meet it)", **extra)
    results.claim(f"dyck_paper_ks_p_{c}", value=float(r.paper_ks_p), threshold=alpha, op=">", kind="check",
                  p_value=float(r.calibrated_p_all),
                  description=f"ours: {c}: the paper's pooled KS (its O(d) pool, O(d) fits) applied to the toy — the "
                              "paper runs it on Pythia only; p_value = calibrated pooled p")
    results.claim(f"dyck_haar_calibrated_p_{c}", value=float(r.calibrated_p_all), threshold=alpha, op=">", kind="check",
                  p_value=float(r.calibrated_p_all),
                  description=f"ours: {c}: calibrated pooled Haar test (all pairs and sites), p > α")
    print(f"{c}: frob within {r.frob_dev_max:.4f} of 1; paper's KS p = {r.paper_ks_p:.3g}; calibrated pooled p = "
          f"{r.calibrated_p_all:.3g} (identified sites only: {r.calibrated_p_identified:.3g}); "
          f"{int(r.per_pair_rejected)} of {int(r.n_matrices)} pair×site tests reject at α = {alpha}.")
if "sgd" in cohorts:
    r = pooled[pooled.cohort == "sgd"].iloc[0]
    verdict = "rejects" if r.calibrated_p_identified <= alpha else "does not reject"
    print(f"Theory's prediction (only the rotation-equivariant optimiser gives Haar R): the calibrated test {verdict} "
          f"Haar for the SGD cohort at the identified sites (p = {r.calibrated_p_identified:.3g}); the shared, frozen "
          f"positional table is one coordinate-aligned input every cohort has in common (overlaps above).")
print(f"Only {haar_frob_pass:.1%} of Haar SO({d}) draws meet the paper's 0.1 % Frobenius criterion at this d.")
for c in cohorts:
    sub = fixed_df[fixed_df.cohort == c].set_index("site")
    print(f"{c}: R fixes {sub.fixed_dim.min():.1f}–{sub.fixed_dim.max():.1f} dims per site (Haar mean "
          f"{sub.haar_fixed_dim.iloc[0]:.2f}); inside it: {sub.overlap_W_pos.mean():.2f} of span(W_pos) (mean over sites), "
          f"{sub.overlap_W_E.iloc[0]:.2f} of span(W_E) at {site_labels[0]}, {sub.overlap_W_U.iloc[-1]:.2f} of span(W_U) at {site_labels[-1]}.")
if len(cyc):
    print("Cycle error / fit noise: " + ", ".join(f"{c} {g.ratio.median():.2f}" for c, g in cyc.groupby("cohort", sort=False)) + " (median over sites).")

# %% [markdown]
# ## A negative control: does R between unrelated clouds also "look Haar"?
# A referee's question: if Procrustes between two clouds with **nothing** to align returns a
# Haar-looking R, then "R looks Haar" carries no information about the seeds. We fit R, exactly as
# above, between the first seed and (a) an untrained model of the same architecture on the same
# strings, (b) the same seed with its token pairing shuffled, beside the real pair, at the last
# site, and test each with the same calibrated test. Look at the controls' `map_ev` (≤ 0: nothing
# was aligned) and whether they "look Haar" too.

# %% tags=["hide-input"]
from polyrot_utils.experiments import controls

ctrl_suite = dyck_activations(trained[cohorts[0]], "heldout", n_fit=n_fit, n_eval=256, seed=seed, controls=("untrained",))
untrained_name = ctrl_suite.control("untrained")
a_name, b_name = ctrl_suite.members[:2]
neg = controls.haar_negative_controls(ctrl_suite.fit[a_name][sites[-1]], ctrl_suite.fit[untrained_name][sites[-1]],
                                      ctrl_suite.fit[b_name][sites[-1]], n_null=n_null, seed=seed, alpha=alpha)
neg_table = controls.controls_table(neg)
results.record("haar_negative_controls", {k: {f: v.as_dict()[f] for f in ("map_ev", "frobenius_ratio", "ks_pvalue_iid",
                                                                       "pvalue", "looks_haar")} for k, v in neg.items()})
results.claim("negative_controls_rejected", value=float(max(neg[k].pvalue for k in ("untrained", "shuffled"))),
              threshold=alpha, op="<=", kind="check",
              description=f"ours: the calibrated Haar test rejects R fitted to an untrained model and to shuffled "
                          f"pairs ({cohorts[0]}, {short_site(sites[-1])}): if not, 'looks Haar' is uninformative")
neg_table.style.format(precision=3)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Calibrated Haar p-values of R fitted between two seeds (pair) and between the first seed and its negative controls: an untrained model on the same strings, and the same seed with its token pairing shuffled. A control that also 'looks Haar' (p above α, right of the line) shows that passing the Haar test says nothing about the seeds by itself.", "name": "fig-13-negative-control"}, "image": {"alt": "Three horizontal bars of calibrated p-values on a log axis with a vertical line at alpha."}}
from polyrot_utils.book import figures

fig, ax = figures.column_figure(height=2.2)
names = list(neg)
ax.barh(names, [max(neg[k].pvalue, 1e-4) for k in names], color=["#4c72b0" if k == "pair" else "#8c8c8c" for k in names])
ax.axvline(alpha, color="#c44e52", ls="--", label=f"α = {alpha}")
ax.set_xscale("log")
ax.set_xlim(1e-4, 1.5)
ax.set_xlabel("calibrated Haar p-value (left of the line: rejected)")
ax.legend(loc="lower right")
figures.show(fig)

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — Undetermined rotations
# At a site where the activations span only 11 of 64 dimensions, how much of $R$ do the data determine, and what does the rest of the fitted matrix look like?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Only how $R$ acts on the 11-dimensional span (and where it sends it). On the 53-dimensional complement, Procrustes returns whatever the SVD's arbitrary completion gives — often close to a fixed structure, not a random rotation — so a Haar test there tests the solver, not the models. That is why the chapter reports the rank beside each test.
# :::
#
# :::{admonition} Exercise 2 — Cycle consistency
# If $A \to B$ and $B \to C$ are exact rotations $R_{AB}$ and $R_{BC}$, show that $R_{AC} = R_{AB} R_{BC}$, and explain why the measured error must be compared with the fit noise rather than with 0.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# $X_A R_{AB} = X_B$ and $X_B R_{BC} = X_C$ give $X_A R_{AB} R_{BC} = X_C$, so Procrustes on $(X_A, X_C)$ returns $R_{AB}R_{BC}$. With finite, noisy data each fit has its own error, so even a perfect rotation story leaves a cycle error of about the size of two refits' disagreement; only an error well above that refutes it.
# :::
