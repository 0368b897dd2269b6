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
# # The four pre-registered bars, across seeds
#
# The paper pre-registered four operational criteria for "two models implement the same
# mechanism" and reports them between seeds of the Dyck-3 toy (its §8):
#
# | bar | what is compared | the paper's threshold | the paper's cross-seed value |
# |---|---|---|---|
# | **B** behavioural | mean KL between the two seeds' output distributions | < 1e-4 nats | (a seed vs its hand-built spec: 1.74e-4) |
# | **P** parametric | max per-tensor, per-entry weight MSE after aligning the weights under the model's symmetries | < 1e-3 | 0.49–0.58 (Cohort A), 0.26–0.30 after a Cayley refinement; 6.8–8.6 (Cohort B) |
# | **C** causal | Pearson r between predicted (integrated gradients) and measured component effects | > 0.99 | 0.52–0.69 |
# | **Pr** predictive | Pearson r between predicted and measured single-component mean-ablation loss changes | > 0.99 | reported as the same number as C |
#
# By its own numbers, the paper's seeds fail P and C; this chapter measures all four on our
# cohorts, with the protocols written out (`polyrot_utils.tasks.dyck.bars`):
#
# - **B**: per readout and averaged over the three, on held-out strings, KL(anchor ‖ other).
# - **P**: one SO(64) rotation for the whole residual stream (Procrustes on every residual site's
#   centred activations stacked), then, cumulatively: *none* (gains folded only), *rotation*
#   (`rotate_residual(model_a, R)`), *permutation* (plus heads matched within a layer by their
#   OV and QK circuits and MLP neurons matched by their weights), *head_orthogonal* (plus one
#   orthogonal 16×16 change of basis per head for the QK pair and one for the OV pair).
# - **C**: components = 8 heads and 2 MLPs. Clean held-out strings; each corrupted by swapping one
#   bracket. Measured effect = change of the summed readout loss (clean labels) when a component's
#   activation is patched from the corrupted run; predicted = attribution patching (gradient ×
#   difference) and integrated gradients (midpoint rule). Within a seed: r(IG, measured) checks
#   the instrument. Cross-seed: r(anchor's IG prediction, other seed's measured effect), heads
#   matched by weights (never by effects).
# - **Pr**: mean ablation of each component; cross-seed r(anchor's measured profile, other seed's
#   measured profile), matched components.
#
# **What would falsify "same function, rotated basis":** B above its bar (different functions);
# **what would falsify "same mechanism up to symmetry":** P, C or Pr failing their bars after the
# symmetries are aligned. Where our models *meet* a bar the paper reports its own seeds missing
# (P, cross-seed C ≡ Pr), the verdict ({doc}`90_verdict`) files the claim as "meets a bar the
# paper reports missing", not as a failed replication.

# %% tags=["parameters"]
seed = 0                               # [int >= 0] seeds the corruption of the causal strings
toy_profile = "quick"                  # [str in {smoke, quick, paper}] training recipe: polyrot_utils.tasks.dyck.cohorts.TOY_PROFILES
cohorts = ["shared_io", "independent"] # [list[str] in {shared_io, independent, same_init, sgd}] cohort kinds (the paper's Cohort A and B)
n_seeds = 3                            # [int >= 2] seeds per cohort; the first is the anchor of every pair (paper: 5)
steps = None                           # [int|None >= 1] None means the value of the profile
batch_size = None                      # [int|None >= 1] None means the value of the profile
max_len = None                         # [int|None >= 1] None means the value of the profile
n_agreement_strings = 1000             # [int >= 1] held-out strings for bar B
n_rotation_strings = 300               # [int >= 1] held-out strings to fit the residual rotation R
n_causal_strings = 32                  # [int >= 1] held-out strings for bars C and Pr
n_mean_strings = 256                   # [int >= 1] held-out strings for the mean activations of mean ablation
ig_steps = 4                           # [int >= 1] integrated-gradients points per component
device = "auto"

# %% tags=["hide-input"]
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from scipy.stats import spearmanr

from polyrot_utils.tasks.dyck import bars, language as dyck
from polyrot_utils.core import haar
from polyrot_utils.core.intervals import Interval, seed_interval
from polyrot_utils.tasks.dyck.cohorts import cohort_config, train_cohort
from polyrot_utils.book import figures
from polyrot_utils.book.results import ChapterResults

# %% tags=["hide-input"]
figures.use_book_style()
t_start, cpu_start = time.perf_counter(), time.process_time()
results = ChapterResults(
    "16_dyck_four_bars",
    params=dict(seed=seed, toy_profile=toy_profile, cohorts=cohorts, n_seeds=n_seeds, steps=steps, batch_size=batch_size,
                max_len=max_len, n_agreement_strings=n_agreement_strings, n_rotation_strings=n_rotation_strings,
                n_causal_strings=n_causal_strings, n_mean_strings=n_mean_strings, ig_steps=ig_steps, device=device),
)

# %% tags=["hide-input"]
trained = {k: train_cohort(cohort_config(k, profile=toy_profile, n_seeds=n_seeds, steps=steps, batch_size=batch_size,
                                         data_max_len=max_len, device=device)) for k in cohorts}
pairs = {k: [(c.seeds[0], s) for s in c.seeds[1:]] for k, c in trained.items()}
heldout = dyck.make_split(next(iter(trained.values())).config.train.data, "heldout")
agree_split = heldout.subset(slice(0, n_agreement_strings))
rot_split = heldout.subset(slice(n_agreement_strings, n_agreement_strings + n_rotation_strings))
off = n_agreement_strings + n_rotation_strings
causal_batch = heldout.subset(slice(off, off + n_causal_strings))
mean_split = heldout.subset(slice(off + n_causal_strings, off + n_causal_strings + n_mean_strings))
print("pairs (anchor → other seed): "
      + "; ".join(f"{k}: " + ", ".join(f"{a} → {b}" for a, b in v) for k, v in pairs.items()))

# %% [markdown]
# (ch16-bar-b)=
# ## B — behavioural
# Mean KL (nats) from the anchor seed's output distribution to the other's, per readout and
# averaged; the paper's bar is 1e-4. Look at which readout carries the disagreement.

# %% tags=["hide-input"]
b_rows = []
for k, c in trained.items():
    for r in bars.behaviour_bar(c.models, agree_split, pairs[k]):
        b_rows.append({"cohort": k, **r})
b_table = pd.DataFrame(b_rows)
results.record("bar_B", b_table.to_dict(orient="records"))
b_view = b_table.assign(pair=[f"{k}: {a} → {b}" for k, a, b in zip(b_table.cohort, b_table.a, b_table.b)])
figures.format_table(b_view.pivot_table(index="pair", columns="readout", values="kl_ab", sort=False), sig=3)

# %% [markdown]
# (ch16-bar-p)=
# ## P — parametric
# The rotation $R$ of each pair, and the weight MSE per tensor at each alignment level. A rotation
# that fully explained the seeds' difference would take every tensor to ~0 at the *rotation* level
# (the planted check in the tests does: 1e-16). The table shows, per pair, the largest per-tensor
# MSE at each level; every tensor's numbers are in the results file (`bar_P`, `bar_P_summary`).

# %% tags=["hide-input"]
rotations, p_rows = {}, []
for k, c in trained.items():
    for a, b in pairs[k]:
        R = bars.stream_rotation(c.models[a], c.models[b], rot_split.tokens, rot_split.mask)
        rotations[(k, a, b)] = R
        for r in bars.parametric_bar(c.models[a], c.models[b], R):
            p_rows.append({"cohort": k, "a": a, "b": b, **r})
p_table = pd.DataFrame(p_rows)
results.record("bar_P", p_table.to_dict(orient="records"))
results.record("stream_rotation_frob_ratio", {f"{k}:{a}->{b}": haar.frobenius_ratio(R) for (k, a, b), R in rotations.items()})
p_summary = p_table.groupby(["cohort", "a", "b", "level"], sort=False).agg(
    max_mse=("mse", "max"), mean_mse=("mse", "mean"), max_rel_mse=("rel_mse", "max"), mean_rel_mse=("rel_mse", "mean"),
    worst_tensor=("mse", lambda s: p_table.loc[s.idxmax(), "tensor"])).reset_index()
results.record("bar_P_summary", p_summary.to_dict(orient="records"))
p_view = p_summary.assign(pair=[f"{k}: {a} → {b}" for k, a, b in zip(p_summary.cohort, p_summary.a, p_summary.b)])
p_wide = p_view.pivot_table(index="pair", columns="level", values="max_mse", sort=False)[list(bars.P_LEVELS)]
p_wide["worst tensor (fully aligned)"] = p_view[p_view.level == bars.P_LEVELS[-1]].set_index("pair").worst_tensor
figures.format_table(p_wide.rename(columns=lambda c: c if " " in c else f"max MSE: {c}"), sig=3)

# %% [markdown]
# Per tensor, for the first pair of each cohort: MSE relative to the target tensor's mean square
# (1 = as far as predicting zero, 2 = unrelated weights of the same size). Look for the
# alignment level at which each tensor stops improving.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Bar P per weight tensor, for the first pair of each cohort: the MSE between the aligned weights, relative to the target tensor's mean square (1 = as far as predicting zero, 2 = unrelated weights of the same size), at each cumulative alignment level (none → residual rotation R → plus head and neuron permutations → plus per-head orthogonal maps); log scale, values below 1e-3 (a tensor the cohort shares, identical by construction) drawn at 1e-3. The paper's bar is an absolute MSE below 1e-3 for every tensor.", "name": "fig-16-bar-p"}, "image": {"alt": "Grouped bars per weight tensor, one panel per cohort: the relative MSE falls with each alignment level for some tensors and not for others."}}
fig, axes = figures.column_figure(len(trained), 1, height=2.9 * len(trained) + 0.6, squeeze=False)
for ax, k in zip(axes[:, 0], trained):
    a, b = pairs[k][0]
    sub = p_table[(p_table.cohort == k) & (p_table.a == a) & (p_table.b == b)]
    tensors = list(dict.fromkeys(sub.tensor))
    x = np.arange(len(tensors))
    for i, lv in enumerate(bars.P_LEVELS):
        vals = sub[sub.level == lv].set_index("tensor").loc[tensors, "rel_mse"]
        ax.bar(x + (i - 1.5) * 0.2, vals.clip(lower=1e-3), width=0.2, label=lv, color=f"C{i}")
    ax.set_xticks(x, [t.replace("blocks.", "b").replace("attn.", "").replace("mlp.", "") for t in tensors],
                  rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(bottom=8e-4)
    ax.set_ylabel("MSE / mean square")
    ax.set_title(f"{k}: seed {a} aligned to seed {b}")
fig.legend(*axes[0, 0].get_legend_handles_labels(), title="alignment level", ncol=4, loc="outside upper center",
           frameon=False)
figures.show(fig)

# %% [markdown]
# (ch16-bar-c)=
# ## C — causal (corrupted-input patching)
# Per model and component: measured effect of patching the corrupted activation into the clean
# run, and its AtP and IG predictions. Look at AtP: at a trained model's clean input the loss
# gradient is tiny, so first-order attribution misses effects that IG recovers. The table shows
# the anchor seed's measured patching effect per component; every model's effects and both
# predictions are in the results file (`bar_C_components`, `bar_Pr_components`).

# %% tags=["hide-input"]
corrupted = bars.corrupt_tokens(causal_batch.tokens, causal_batch.mask, seed=seed)
c_tables, pr_tables = {}, {}
for k, c in trained.items():
    for s, m in c.models.items():
        c_tables[(k, s)] = bars.causal_table(m, causal_batch, corrupted, n_steps=ig_steps)
        means = bars.component_means(m, mean_split)
        pr_tables[(k, s)] = bars.ablation_effects(m, causal_batch, means, n_steps=ig_steps)
c_long = pd.DataFrame([{"cohort": k, "seed": s, **r} for (k, s), t in c_tables.items() for r in t])
pr_long = pd.DataFrame([{"cohort": k, "seed": s, **r} for (k, s), t in pr_tables.items() for r in t])
results.record("bar_C_components", c_long.to_dict(orient="records"))
results.record("bar_Pr_components", pr_long.to_dict(orient="records"))

# %% tags=["hide-input"]
within = []
for name, long_t in (("C (patching)", c_long), ("Pr (mean ablation)", pr_long)):
    for (k, s), g in long_t.groupby(["cohort", "seed"], sort=False):
        within.append({"bar": name, "cohort": k, "seed": s, "r_ig": bars.pearson(g.ig, g.measured),
                       "r_atp": bars.pearson(g.atp, g.measured)})
within = pd.DataFrame(within)
results.record("within_seed_r", within.to_dict(orient="records"))
anchors = {k: c.seeds[0] for k, c in trained.items()}
c_anchor = c_long[[anchors[k] == s for k, s in zip(c_long.cohort, c_long.seed)]]
figures.format_table(c_anchor.pivot_table(index="component", columns="cohort", values="measured", sort=False)
                     .rename(columns=lambda k: f"{k} (seed {anchors[k]}): Δloss"), sig=3)

# %% [markdown]
# Within-seed agreement of the predictions with the measurements (the instrument check; the
# paper's per-seed bars report IG r > 0.9995): Pearson r of integrated gradients (IG) and of
# attribution patching (AtP) with the measured effects, per model.

# %% tags=["hide-input"]
w_wide = within.assign(model=[f"{k} seed {s}" for k, s in zip(within.cohort, within.seed)]).pivot_table(
    index="model", columns="bar", values=["r_ig", "r_atp"], sort=False)
w_wide.columns = [f"{bar}: r({'IG' if m == 'r_ig' else 'AtP'})" for m, bar in w_wide.columns]
figures.format_table(w_wide, sig=4)

# %% [markdown]
# (ch16-bar-pr)=
# ## C and Pr across seeds
# The anchor seed's prediction against the other seed's measurement, components matched by
# weights after rotating the anchor into the other's basis (`matched`), and, for comparison, by
# index (`identity`). The Pearson r over 10 components is dominated by the largest effects, so the
# Spearman rank correlation is shown too. The paper's statistic (C ≡ Pr) is *r (paper)*: the
# anchor's IG prediction of mean-ablation effects against the other seed's measured ones.

# %% tags=["hide-input"]
x_rows = []
for k, c in trained.items():
    for a, b in pairs[k]:
        for how in ("matched", "identity"):
            corr = bars.component_correspondence(c.models[a], c.models[b], rotations[(k, a, b)], how=how)
            ca, cb = c_tables[(k, a)], c_tables[(k, b)]
            pa, pb = pr_tables[(k, a)], pr_tables[(k, b)]
            mb_c = {r["component"]: r["measured"] for r in cb}
            mb_p = {r["component"]: r["measured"] for r in pb}
            x_rows.append({
                "cohort": k, "a": a, "b": b, "correspondence": how,
                "r_C": bars.cross_seed_r(ca, cb, corr, predicted="ig"),
                "rho_C": float(spearmanr([r["ig"] for r in ca], [mb_c[corr[r["component"]]] for r in ca])[0]),
                "r_Pr": bars.cross_seed_r(pa, pb, corr, predicted="measured"),
                "r_paper": bars.cross_seed_r(pa, pb, corr, predicted="ig"),
                "rho_Pr": float(spearmanr([r["measured"] for r in pa], [mb_p[corr[r["component"]]] for r in pa])[0]),
                "heads_moved": sum(1 for n, m in corr.items() if n != m),
            })
x_table = pd.DataFrame(x_rows)
results.record("cross_seed_r", x_table.to_dict(orient="records"))

# %% tags=["hide-input"]
x_view = x_table.assign(pair=[f"{k}: {a} → {b}" for k, a, b in zip(x_table.cohort, x_table.a, x_table.b)])
x_wide = x_view[x_view.correspondence == "matched"].set_index("pair")[
    ["r_paper", "r_C", "rho_C", "r_Pr", "rho_Pr", "heads_moved"]]
x_wide.insert(1, "r_paper_by_index", x_view[x_view.correspondence == "identity"].set_index("pair").r_paper)
figures.format_table(x_wide.rename(columns={
    "r_paper": "r (paper), matched", "r_paper_by_index": "r (paper), by index", "r_C": "C: r", "rho_C": "C: ρ",
    "r_Pr": "Pr: r", "rho_Pr": "Pr: ρ", "heads_moved": "heads moved"}), sig=3)

# %% [markdown]
# Each point is a component: the anchor seed's value (x) against the matched component of the
# other seed (y). On the diagonal, one seed's causal map predicts the other's exactly.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Cross-seed bars C (left: patching effects, the anchor's IG prediction) and Pr (right: mean-ablation effects, the anchor's measurement) against the other seed's measured effect of the matched component; one point per component, one colour per cohort, one marker per pair. The dashed diagonal is perfect prediction. Symmetric-log axes (linear within ±0.01).", "name": "fig-16-cross-seed"}, "image": {"alt": "Two scatter plots of component effects, anchor seed against other seed, with points near the diagonal."}}
fig, axes = figures.column_figure(1, 2, height=3.6)
for ci, k in enumerate(trained):
    c = trained[k]
    for pj, (a, b) in enumerate(pairs[k]):
        corr = bars.component_correspondence(c.models[a], c.models[b], rotations[(k, a, b)], how="matched")
        for ax, tabs, xkey in ((axes[0], c_tables, "ig"), (axes[1], pr_tables, "measured")):
            ta = {r["component"]: r[xkey] for r in tabs[(k, a)]}
            tb = {r["component"]: r["measured"] for r in tabs[(k, b)]}
            ax.scatter([ta[n] for n in ta], [tb[corr[n]] for n in ta], color=f"C{ci}", marker="os^D"[pj % 4],
                       alpha=0.75, label=f"{k}: {a} → {b}" if ax is axes[0] else None)
for ax, title, xl in ((axes[0], "C: patching", "anchor: IG-predicted Δloss"),
                      (axes[1], "Pr: mean ablation", "anchor: measured Δloss")):
    lo = min(ax.get_xlim()[0], ax.get_ylim()[0]); hi = max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xscale("symlog", linthresh=1e-2); ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_xlabel(xl); ax.set_title(title)
axes[0].set_ylabel("other seed: measured Δloss")
fig.legend(loc="outside lower center", ncol=min(2, sum(len(v) for v in pairs.values())), frameon=False)
figures.show(fig)

# %% [markdown]
# ## Claims
# Every bar with the paper's threshold and reported value beside ours (worst pair of each cohort,
# where the paper's statistic does not say otherwise). The verdict ({doc}`90_verdict`) shows each
# with the paper's number and links back to the section above that measured it.

# %% tags=["hide-input"]
PAPER_P = {"shared_io": "0.264–0.298 after Cayley refinement (0.49–0.58 before): fails the 1e-3 bar for every pair",
           "independent": "6.8–8.6: fails the 1e-3 bar for every pair"}
PAPER_B = {"shared_io": "3 of 4 pairs pass (5.28e-5, 1.90e-4, 2.63e-5, 2.35e-5)",
           "independent": "3 of 4 pairs pass (the failed pair at 1.67e-4)"}
SRC_B = {"shared_io": "§7 cross-seed table; verification/universality.py (bar_b)",
         "independent": "§8.4; experiments/independent_init/analyze_indep.py:run_cross_seed_bars"}
SRC_P = "§7 cross-seed table, §8.4; symmetry_search.py, experiments/bar_p_joint/joint_align.py"
# the paper's statistics: bar B per anchor pair (KL anchor → other, the three readouts averaged), the
# share of pairs under 1e-4; bar P after the full symmetry alignment, which the paper reports failing
# for every pair; cross-seed C ≡ Pr = the anchor's IG prediction of mean-ablation effects against
# the other seed's measured mean-ablation effects.
def spread(values: pd.Series, point: float, what: str) -> Interval:
    """The spread of a best- or worst-pair headline across the pairs of seeds: their range."""
    return Interval(point, float(values.min()), float(values.max()), len(values), 1.0, f"range over {what}")


# %% tags=["hide-input"]
for k in trained:
    kb = b_table[(b_table.cohort == k) & (b_table.readout == "mean")]
    passed = dict(zip(kb.b, (kb.kl_ab < bars.PAPER_BARS["B"]).astype(float), strict=True))
    results.claim(f"bar_B_cross_seed_{k}", value=float((kb.kl_ab < bars.PAPER_BARS["B"]).mean()), threshold=0.75,
                  op=">=", kind="paper", paper_value=PAPER_B[k], source=SRC_B[k],
                  interval=seed_interval(passed, seed=seed),
                  description=f"B across seeds, {k} cohort: share of anchor pairs whose mean KL (anchor → other, three "
                              "readouts averaged) is below 1e-4 (the paper: 3 of 4)")
    results.claim(f"bar_B_{k}", value=float(kb.kl_ab.max()), threshold=bars.PAPER_BARS["B"], op="<", kind="check",
                  check_of=f"bar_B_cross_seed_{k}", why_stricter="every pair must pass, not 3 of 4",
                  description=f"B: largest mean KL (nats, 3 readouts averaged) anchor → other seed, {k} cohort")

# %% tags=["hide-input"]
for k in trained:
    ps = p_summary[p_summary.cohort == k]
    aligned = ps[ps.level == "head_orthogonal"].max_mse
    results.claim(f"bar_P_aligned_{k}", value=float(aligned.min()),
                  interval=spread(aligned, float(aligned.min()), "anchor pairs"),
                  threshold=bars.PAPER_BARS["P"], op="<", kind="paper", paper_verdict=False,
                  paper_value=PAPER_P[k], source=SRC_P,
                  description=f"P across seeds, {k} cohort: max per-tensor weight MSE after R, head/neuron permutations "
                              "and per-head orthogonal maps, best pair (the paper: fails for every pair)")
    results.claim(f"bar_P_rotation_{k}", value=float(ps[ps.level == "rotation"].max_mse.max()),
                  threshold=bars.PAPER_BARS["P"], op="<", kind="check",
                  description=f"ours: P after the residual rotation R only (no head/neuron alignment), worst pair, {k}")

# %% tags=["hide-input"]
for k in trained:
    xm = x_table[(x_table.cohort == k) & (x_table.correspondence == "matched")]
    chk = "bar_C_Pr_cross_seed_shared_io" if k == "shared_io" else None
    if chk:
        results.claim(chk, value=float(xm.r_paper.max()), threshold=bars.PAPER_BARS["C"], op=">",
                      kind="paper", paper_verdict=False,
                      interval=spread(xm.r_paper, float(xm.r_paper.max()), "anchor pairs"),
                      paper_value="r = 0.694, 0.541, 0.631, 0.524 (fails; C and Pr bit-identical)",
                      source="§7 'Cross-seed Bar C ≡ Bar Pr'; verification/universality.py",
                      description="C ≡ Pr across seeds: Pearson r of the anchor's IG-predicted mean-ablation effects vs "
                                  "the other seed's measured mean-ablation effects over matched components, best pair")
    why = dict(check_of=chk, why_stricter="a different protocol: activation patching from corrupted strings, worst pair")
    results.claim(f"bar_C_cross_seed_{k}", value=float(xm.r_C.min()), threshold=bars.PAPER_BARS["C"], op=">",
                  kind="check", **(why if chk else {}),
                  description=f"ours: C by activation patching, anchor's IG-predicted vs other seed's measured patching "
                              f"effects, worst pair, {k}")
    why = dict(check_of=chk, why_stricter="the anchor's measured (not IG-predicted) ablation effects, worst pair")
    results.claim(f"bar_Pr_cross_seed_{k}", value=float(xm.r_Pr.min()), threshold=bars.PAPER_BARS["Pr"], op=">",
                  kind="check", **(why if chk else {}),
                  description=f"ours: Pr, anchor's vs other seed's measured mean-ablation loss changes, worst pair, {k}")

# %% tags=["hide-input"]
wc, wp = within[within.bar.str.startswith("C")], within[within.bar.str.startswith("Pr")]
primary = ("shared_io" if "shared_io" in trained else cohorts[0])
p_seed = trained[primary].seeds[0]
SRC_W = "§6 primary-seed table; verification/bar_causal.py, bar_predictive.py (IG predictor)"
for bar, w, what in (("C", wc, "patching"), ("Pr", wp, "mean-ablation")):
    point = float(w[(w.cohort == primary) & (w.seed == p_seed)].r_ig.iloc[0])
    results.claim(f"bar_{bar}_within_seed_primary", value=point,
                  interval=spread(w[w.cohort == primary].r_ig, point, f"the {primary} cohort's seeds"),
                  threshold=0.99, op=">", kind="paper", source=SRC_W,
                  paper_value=f"{'0.9996' if bar == 'C' else '0.9997'} (IG predictor; trivial by IG completeness)",
                  description=f"{bar} within the primary seed ({primary} seed {p_seed}): Pearson r of IG-predicted vs "
                              f"measured {what} effects")
    results.claim(f"bar_{bar}_within_seed_ig", value=float(w.r_ig.min()), threshold=0.99, op=">", kind="check",
                  check_of=f"bar_{bar}_within_seed_primary",
                  why_stricter="every model of every cohort, not the primary seed only",
                  description=f"{bar} within a seed: Pearson r of IG-predicted vs measured {what} effects, worst model")

# %% tags=["hide-input"]
data_cfg = trained[primary].config.train.data
label_b = bars.label_kl_bar(trained[primary].models[p_seed],
                            {w: dyck.make_split(data_cfg, w).subset(slice(0, n_agreement_strings)) for w in dyck.SPLITS},
                            weights={"train": 0.6, "heldout": 0.2, "ood": 0.2})
results.record("bar_B_within_seed_primary", label_b)
results.claim("bar_B_within_seed_primary", value=float(label_b["mean_kl"]), threshold=bars.PAPER_BARS["B"], op="<",
              kind="paper", paper_verdict=False,
              paper_value="1.74e-4: a near-miss, 1.74× the bar (depth 3.63e-4, tok 3.75e-5, valid 1.22e-4)",
              source="§6 primary-seed table; verification/bar_behavioral.py:run_bar_behavioral (ε = 1e-6 smoothed one-hot)",
              description=f"B within the primary seed ({primary} seed {p_seed}): mean KL(ε-smoothed true labels ‖ model) "
                          "over positions and readouts, train / held-out / OOD strings weighted 60/20/20 (the paper's "
                          "train / compositional / long mix)")
results.record("within_seed_atp_r_range", [float(within.r_atp.min()), float(within.r_atp.max())])
results.record("wall_seconds", time.perf_counter() - t_start)
results.record("cpu_seconds", time.process_time() - cpu_start)

# %% tags=["hide-input"]
claims = results.claims()
# where the verdict links each claim: the section (MyST target) that measured its bar
target = {"bar_B": "ch16-bar-b", "bar_P": "ch16-bar-p", "bar_C_Pr": "ch16-bar-pr", "bar_C_cross": "ch16-bar-pr",
          "bar_Pr_cross": "ch16-bar-pr", "bar_C_within": "ch16-bar-c", "bar_Pr_within": "ch16-bar-c"}
results.record("claim_meta", {n: {"target": next(t for pre, t in target.items() if n.startswith(pre))} for n in claims})
claim_view = pd.DataFrame([{"claim": n, "ours": v["value"], "criterion": f"{v['op']} {figures.format_number(v['threshold'])}",
                            "verdict": "pass" if v["passed"] else "FAIL", "kind": v["kind"]} for n, v in claims.items()])
display(Markdown("**The paper's claims** (the paper's reported values are in the verdict):"))
display(figures.format_table(claim_view[claim_view.kind == "paper"].drop(columns="kind").set_index("claim")))
display(Markdown("**Our checks** (stricter or different versions):"))
display(figures.format_table(claim_view[claim_view.kind == "check"].drop(columns="kind").set_index("claim")))

# %% [markdown]
# ## Summary
# Every number below is read from this run.

# %% tags=["hide-input"]
lines = []
for k in trained:
    cl = {n[: -len(k) - 1]: v for n, v in claims.items() if n.endswith(k)}
    f = figures.format_number
    lines.append(
        f"- **{k}**: B max KL {f(cl['bar_B']['value'])} ({'pass' if cl['bar_B']['passed'] else 'FAIL'} < 1e-4); "
        f"P max MSE {f(cl['bar_P_rotation']['value'])} after R, {f(cl['bar_P_aligned']['value'])} after all "
        f"alignments ({'pass' if cl['bar_P_aligned']['passed'] else 'FAIL'} < 1e-3; paper: {PAPER_P.get(k, '—')}); "
        f"C cross-seed r ≥ {f(cl['bar_C_cross_seed']['value'])}, Pr cross-seed r ≥ {f(cl['bar_Pr_cross_seed']['value'])} "
        "(bar 0.99; paper 0.52–0.69).")
lines.append(f"- Within a seed, IG predicts patching with r ≥ {f(wc.r_ig.min(), 4)} and mean ablation with "
             f"r ≥ {f(wp.r_ig.min(), 4)}; attribution patching (first order) gives r in "
             f"[{f(within.r_atp.min(), 2)}, {f(within.r_atp.max(), 2)}].")
lines.append(f"- Wall time {results['wall_seconds']:.1f} s, CPU time {results['cpu_seconds']:.1f} s.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — Attribution patching at a trained model
# Attribution patching is a first-order Taylor expansion of the effect of a patch. Why does it fail when the loss at the clean input is near its minimum?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# At a minimum the gradient is near zero, so the first-order term predicts almost no effect while the true effect is second order (curvature). Integrated gradients integrate the gradient along the path from clean to patched activations, capturing the curvature; hence its much higher correlation with measured effects.
# :::
