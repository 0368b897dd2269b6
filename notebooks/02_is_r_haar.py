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
# # Is R Haar? Testing a rotation honestly
#
# The paper says the rotation $R$ between two seeds is *Haar-distributed* ({term}`Haar measure`) on
# $\mathrm{SO}(d)$, on two pieces of evidence: $\|R - I\|_F$ matches $\sqrt{2d}$ to 0.1 %, and a
# Kolmogorov–Smirnov test of $R$'s eigenangles against the Haar one-angle density returns
# $p \approx 1$. This chapter tests the **tests**, before any trained model is involved: we
# feed them matrices whose answer we know — Haar samples, and rotations that are plainly *not*
# Haar (signed permutations, block rotations, near-identity rotations, few Givens rotations) —
# and measure how often each test says "not Haar" (its {term}`size <Size and power>` on Haar
# samples, its power on the rest).
#
# **What would falsify our reading:** if the paper's two checks rejected the non-Haar
# alternatives as often as our {term}`calibrated <Calibrated p-value>` tests do, they would be evidence after all; and if our
# calibrated tests rejected Haar samples more often than their level $\alpha$, they would be
# no better.

# %% tags=["parameters"]
seed = 0               # [int >= 0] seeds every null sample, alternative and trial
dims = [64, 512]       # [list[int] >= 2] dimensions to study (512 is Pythia-70m's d_model)
n_null = 150           # [int >= 1] Haar samples per d used to calibrate every test
n_trials = 24          # [int >= 1] matrices per row of the size/power table
alpha = 0.05           # [float > 0, < 1] test level
device = "auto"        # unused: everything here is CPU linear algebra on d x d matrices

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from polyrot_utils.book import figures
from polyrot_utils.core import haar
from polyrot_utils.core.device import default_device
from polyrot_utils.book.results import ChapterResults

figures.use_book_style()
dims = [int(d) for d in dims]
d_big = max(dims)
results = ChapterResults(
    "02_is_r_haar",
    params=dict(seed=seed, dims=dims, n_null=n_null, n_trials=n_trials, alpha=alpha, device=str(default_device(device))),
)

# %% [markdown]
# ## 1. The one-angle law, checked against samples
# A rotation in $\mathrm{SO}(d)$ has eigenvalues $e^{\pm i\theta_j}$, $j = 1..\lfloor d/2 \rfloor$,
# plus a forced $1$ when $d$ is odd. The density of one angle $\theta_j$ differs between even and
# odd $d$ (the docstring of `polyrot_utils.core.haar`). Look for the histogram of angles from independent Haar samples lying on
# the curve, for both parities — including the dip at $\theta = 0$ for odd $d$, where the forced
# eigenvalue repels the others.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Histograms of all eigenangles of independent Haar rotations against the exact one-angle density $\\rho(\\theta)$, for two even and two odd dimensions; the odd-$d$ density vanishes at $\\theta = 0$, the even-$d$ one does not.", "name": "fig-02-one-angle"}, "image": {"alt": "Four panels (d = 8, 9, 64, 65): sampled eigenangle histograms lie on the closed-form density curve."}}
rng = np.random.default_rng(seed)
shown = [8, 9, 64, 65]
fig, axes = figures.column_figure(2, 2, height=4.6, sharex=True)
axes = axes.ravel()
grid = np.linspace(0, np.pi, 400)
for ax, d in zip(axes, shown):
    angles = haar.eigenangles(haar.sample_haar(d, max(100, 8000 // d), rng=rng)).ravel()
    ax.hist(angles, bins=40, density=True, alpha=0.5, label="Haar samples")
    ax.plot(grid, haar.eigenangle_density(grid, d), "k", lw=1.5, label="density ρ(θ)")
    ax.set_title(f"d = {d} ({'odd' if d % 2 else 'even'})")
for ax in axes[2:]:
    ax.set_xlabel("eigenangle θ (rad)")
for ax in axes[::2]:
    ax.set_ylabel("density")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
figures.show(fig)

# %% [markdown]
# ## 2. The paper's two checks, on matrices that are not Haar
# For one matrix of each kind at the largest $d$ we compute the paper's statistics — the ratio
# $\|R-I\|_F/\sqrt{2d}$ and the KS $p$-value of the angles treated as iid — beside our calibrated
# verdict. Look at the first two columns: they barely move between a Haar sample, a signed
# permutation and a block-diagonal rotation with two invariant halves.

# %% tags=["hide-input"]
kinds = {"haar": lambda g: haar.sample_haar(d_big, rng=g), **haar.default_alternatives(d_big)}
null_big = haar.null_features(d_big, n_null, seed)
one = {name: make(np.random.default_rng([seed, 1, i])) for i, (name, make) in enumerate(kinds.items())}
tests_one = {name: haar.haar_test(R, n_null=n_null, seed=seed, null=null_big) for name, R in one.items()}
table_one = pd.DataFrame(
    {
        name: {
            "‖R−I‖/√(2d) (paper)": t.frobenius_ratio,
            "KS p, iid (paper)": t.ks_pvalue_iid,
            "KS p, calibrated": t.ks_pvalue_calibrated,
            "kurtosis √d·R": t.kurtosis,
            "fixed dim": t.fixed_dim,
            "verdict p, calibrated": t.pvalue,
        }
        for name, t in tests_one.items()
    }
).T
results.record(f"single_matrix_tests_d{d_big}", {name: t.as_dict() for name, t in tests_one.items()})
figures.format_table(table_one, sig=3, formats={"fixed dim": "{:.0f}"})

# %% [markdown]
# The paper's own pooled test — two-sample KS of all $|$eigenangles$|$ (pairs counted twice)
# against a pooled Haar sample — on four matrices of each kind. Look for $p$-values near 1 for
# the permutations and the two-block rotations as well as for Haar.

# %% tags=["hide-input"]
paper_ks = {}
for i, (name, make) in enumerate(kinds.items()):
    g = np.random.default_rng([seed, 2, i])
    paper_ks[name] = haar.paper_ks_test([make(g) for _ in range(4)], seed=seed)
paper_table = pd.DataFrame({n: {"KS statistic": r.statistic, "p": r.pvalue} for n, r in paper_ks.items()}).T
results.record(f"paper_ks_test_d{d_big}", {n: {"statistic": r.statistic, "pvalue": r.pvalue} for n, r in paper_ks.items()})
figures.format_table(paper_table, sig=3)

# %% tags=["hide-input"]
names = list(tests_one)
y = np.arange(len(names))
p_floor = 10.0 ** np.floor(np.log10(min(0.2 / (n_null + 1), alpha / 10)))  # below the smallest calibrated p
p_iid = np.clip([tests_one[n].ks_pvalue_iid for n in names], p_floor, 1)
p_cal = np.clip([tests_one[n].pvalue for n in names], p_floor, 1)
dev_floor = 1e-3
dev = np.clip([100 * abs(tests_one[n].frobenius_ratio - 1) for n in names], dev_floor, None)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "One matrix of each kind. Left: the paper's iid KS $p$ and our calibrated verdict $p$ (log scale, clipped at its floor; left of the red line = rejected at $\\alpha$). Right: how far the paper's Frobenius ratio is from 1, in per cent (log scale, clipped); left of the green line passes the paper's 0.1 % criterion. A signed permutation and a two-block rotation look like a Haar sample on both of the paper's checks; only the calibrated verdict separates them.", "name": "fig-02-paper-checks"}, "image": {"alt": "Two horizontal bar charts per kind of matrix: p-values against alpha, and Frobenius deviation against the 0.1 percent band."}}
fig, (ax1, ax2) = figures.column_figure(1, 2, height=0.42 * len(names) + 1.5, sharey=True)
for off, p, lab, col in ((-0.17, p_iid, "iid KS (paper)", "#757575"), (0.17, p_cal, "calibrated verdict", "#1565c0")):
    ax1.hlines(y + off, p_floor, p, color=col, lw=2)
    ax1.plot(p, y + off, "o", color=col, label=lab)
ax1.axvline(alpha, color="r", ls="--", lw=1, label=f"α = {alpha}")
ax1.set(xscale="log", xlim=(p_floor, 1.5))
ax1.set_yticks(y, names)
ax1.invert_yaxis()
ax1.set_xlabel(f"p-value (clipped at {p_floor:.0e})")
ax1.set_title(f"p-values, d = {d_big}")
ax2.hlines(y, dev_floor, dev, color="#546e7a", lw=2)
ax2.plot(dev, y, "o", color="#546e7a", label="|ratio − 1|")
ax2.axvline(0.1, color="g", ls="--", lw=1.2, label="paper's 0.1 % bound")
ax2.set(xscale="log", xlim=(dev_floor, 200), xlabel="|‖R−I‖/√(2d) − 1| (%)", title="Frobenius check")
handles = [h for ax in (ax1, ax2) for h in ax.get_legend_handles_labels()[0]]
fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncols=3)
figures.show(fig)

# %% [markdown]
# A rotation that fixes half the space *pointwise* (`half_fixed`) is not one of the invisible
# alternatives: it fails both of the paper's checks — ratio ≈ $1/\sqrt 2$ — so a "half-fixed"
# rotation that hides from them must be read as one with "two invariant halves".

# %% [markdown]
# ## 3. Size and power, measured
# For each $d$ we draw `n_trials` fresh Haar matrices (the row `haar`: its rejection rate is the
# test's **size**, which should be ≈ α) and `n_trials` matrices of each alternative (**power**,
# which should be near 1). Columns are tests: the paper's iid KS and its 0.1 % Frobenius criterion
# read as a test, then our calibrated components and their combined verdict.

# %% tags=["hide-input"]
tables = {}
for d in dims:
    tables[d] = pd.DataFrame(haar.size_and_power(d, n_trials=n_trials, alpha=alpha, seed=seed, n_null=n_null))
    results.record(f"size_power_d{d}", tables[d].to_dict(orient="list"))
summary_cols = {"ks_iid": "KS (paper)", "frobenius_0.1pct": "Frob. (paper)", "combined": "calibrated"}
size_power = pd.concat({f"d = {d}": t.set_index("alternative")[list(summary_cols)].rename(columns=summary_cols)
                        for d, t in tables.items()}, axis=1)
figures.format_table(size_power, sig=2)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Rejection rates of every test (columns) on every kind of matrix (rows), one panel per dimension. The first row (Haar) is each test's size and should read $\\approx \\alpha$; the other rows are power and should read $\\approx 1$. The paper's iid KS never rejects a signed permutation or a two-block rotation; its Frobenius criterion rejects genuine Haar samples (the ratio's own spread is $\\approx 1/(2d)$).", "name": "fig-02-size-power"}, "image": {"alt": "Heatmaps of rejection rates, tests by kinds of matrix, for each dimension; the paper's two tests have dark cells where power should be."}}
test_cols = {"ks_iid": "KS iid (paper)", "frobenius_0.1pct": "Frob. 0.1 % (paper)", "ks_calibrated": "KS calibr.",
             "kurtosis": "kurtosis", "max_entry": "max entry", "traces": "traces", "fixed_dim": "fixed dim",
             "combined": "verdict"}
fig, axes = figures.column_figure(len(dims), 1, height=2.9 * len(dims) + 0.6, sharex=True)
for ax, d in zip(np.atleast_1d(axes), dims):
    t = tables[d].set_index("alternative")[list(test_cols)]
    im = ax.imshow(t.values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(test_cols)), list(test_cols.values()), rotation=35, ha="right")
    ax.set_yticks(range(len(t)), t.index)
    for i in range(t.shape[0]):
        for j in range(t.shape[1]):
            ax.text(j, i, f"{t.values[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="w" if t.values[i, j] < 0.5 else "k")
    ax.set_title(f"Rejection rate at α = {alpha}, d = {d} ({n_trials} trials each)")
fig.colorbar(im, ax=axes, label="rejection rate", shrink=0.8)
figures.show(fig)

# %% [markdown]
# ## 4. Trace powers: the Diaconis–Shahshahani moments for SO(d)
# The trace statistic standardises $\operatorname{tr} R^k$ by its null mean and variance. For
# $\mathrm{O}(d)$ these are $1$ (even $k$) / $0$ (odd $k$) and $k$; look for the same values in
# our $\mathrm{SO}(d)$ null samples of both parities (finite-$d$ corrections appear for
# $k \gtrsim d/2$, far beyond the $K = 8$ used here).

# %% tags=["hide-input"]
moments = {}
for d in dims:
    tr = haar.null_features(d, n_null, seed)["traces"]
    moments[d] = pd.DataFrame({"k": np.arange(1, tr.shape[1] + 1), "mean": tr.mean(0), "predicted mean": (np.arange(1, tr.shape[1] + 1) % 2 == 0) * 1.0,
                               "var": tr.var(0, ddof=1), "predicted var": np.arange(1, tr.shape[1] + 1)})
results.record("trace_moments", {str(d): m.to_dict(orient="list") for d, m in moments.items()})
moment_table = pd.concat({f"d = {d}": m.set_index("k")[["mean", "var"]] for d, m in moments.items()}, axis=1)
moment_table[("predicted", "mean")] = moments[dims[0]].set_index("k")["predicted mean"]
moment_table[("predicted", "var")] = moments[dims[0]].set_index("k")["predicted var"]
figures.format_table(moment_table, sig=2)

# %% [markdown]
# ## 5. Claims
# The paper's criteria, evaluated on matrices we *know* are not Haar. Read the first four rows
# carefully: the claim "the criterion accepts a non-Haar matrix" *holding* is **bad news for the
# paper's test** — it means the criterion cannot see the difference (no power). The last rows
# are our calibrated test's size and power, where holding is good news for our test.

# %% tags=["hide-input"]
perm_big = tests_one["signed_permutation"]
blocks_big = tests_one["two_haar_blocks"]
results.claim(
    f"frobenius_within_0.1pct_signed_permutation_d{d_big}",
    value=abs(perm_big.frobenius_ratio - 1), threshold=1e-3, op="<=", paper_value=1e-3,
    description="A random signed permutation meets the paper's Haar criterion |‖R−I‖_F/√(2d) − 1| ≤ 0.1 %",
    kind="check",
)
results.claim(
    f"iid_ks_accepts_signed_permutation_d{d_big}",
    value=perm_big.ks_pvalue_iid, threshold=alpha, op=">", paper_value=1.0,
    description="The paper's iid KS of eigenangles does not reject a signed permutation",
    kind="check",
)

# %% tags=["hide-input"]
results.claim(
    f"iid_ks_accepts_two_haar_blocks_d{d_big}",
    value=blocks_big.ks_pvalue_iid, threshold=alpha, op=">", paper_value=1.0,
    description="The paper's iid KS does not reject a rotation with two invariant halves",
    kind="check",
)
results.claim(
    f"paper_pooled_ks_accepts_signed_permutations_d{d_big}",
    value=paper_ks["signed_permutation"].pvalue, threshold=alpha, op=">", paper_value=1.0,
    description="The paper's pooled two-sample KS does not reject four signed permutations",
    kind="check",
)

# %% tags=["hide-input"]
for d in dims:
    t = tables[d].set_index("alternative")
    slack = 2 * np.sqrt(alpha * (1 - alpha) * (1 / n_trials + 1 / n_null))
    results.claim(
        f"calibrated_size_d{d}", value=t.loc["haar", "combined"], threshold=alpha + slack, op="<=",
        description=f"Calibrated verdict's rejection rate on Haar samples ≤ α + 2 s.e. (d = {d}, {n_trials} trials)", kind="check",
    )
    results.claim(
        f"calibrated_power_signed_permutation_d{d}", value=t.loc["signed_permutation", "combined"], threshold=0.9,
        op=">=", description=f"Calibrated verdict rejects signed permutations (d = {d})", kind="check",
    )
    results.claim(
        f"calibrated_power_two_haar_blocks_d{d}", value=t.loc["two_haar_blocks", "combined"], threshold=0.9,
        op=">=", description=f"Calibrated verdict rejects two-invariant-block rotations (d = {d})", kind="check",
    )
    results.record(f"iid_ks_power_signed_permutation_d{d}", t.loc["signed_permutation", "ks_iid"])
    results.record(f"frobenius_rejects_haar_d{d}", t.loc["haar", "frobenius_0.1pct"])


# %% tags=["hide-input"]
def _meaning(name: str, holds: bool) -> str:
    if name.startswith(("frobenius_within", "iid_ks_accepts", "paper_pooled_ks_accepts")):
        return "✗ paper's test blind: accepts a non-Haar matrix" if holds else "paper's test rejects it"
    if name.startswith("calibrated_size"):
        return "our test's size is within α" if holds else "✗ our test rejects Haar samples too often"
    return "our test has the power" if holds else "✗ our test lacks power here"


claims = pd.DataFrame(results.claims()).T
claim_table = pd.DataFrame({
    "claim": claims["description"],
    "value": [figures.format_number(v, 3) for v in claims["value"]],
    "criterion": [f"{op} {figures.format_number(t, 3)}" for op, t in zip(claims["op"], claims["threshold"])],
    "what the outcome means": [_meaning(n, bool(h)) for n, h in zip(claims.index, claims["passed"])],
}).reset_index(drop=True)
figures.format_table(claim_table).style.hide(axis="index")  # a Styler: no truncation of the descriptions

# %% [markdown]
# ## Summary

# %% tags=["hide-input"]
tb = tables[d_big].set_index("alternative")
summary_text = (
    f"At d = {d_big}: a random signed permutation has ‖R−I‖_F/√(2d) = {perm_big.frobenius_ratio:.4f} and "
    f"iid-KS p = {perm_big.ks_pvalue_iid:.3f}; a two-invariant-block rotation {blocks_big.frobenius_ratio:.4f} and "
    f"p = {blocks_big.ks_pvalue_iid:.3f} — the paper's checks cannot tell them from Haar.\n"
    f"The paper's pooled KS gives p = {paper_ks['signed_permutation'].pvalue:.3f} on signed permutations and "
    f"p = {paper_ks['haar'].pvalue:.3f} on Haar samples.\n"
    f"Over {n_trials} trials, the iid KS rejects signed permutations at rate {tb.loc['signed_permutation', 'ks_iid']:.2f}; "
    f"the calibrated verdict (n_null = {n_null}) rejects them at {tb.loc['signed_permutation', 'combined']:.2f}, "
    f"two-block rotations at {tb.loc['two_haar_blocks', 'combined']:.2f}, and Haar samples at "
    f"{tb.loc['haar', 'combined']:.2f} (α = {alpha}).\n"
    f"The 0.1 % Frobenius criterion rejects genuine Haar samples at rate "
    + ", ".join(f"{tables[d].set_index('alternative').loc['haar', 'frobenius_0.1pct']:.2f} (d = {d})" for d in dims)
    + "."
)
display(Markdown(summary_text.replace("\n", "\n\n")))

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — a statistic without power
# Show that $\lVert R - I\rVert_F^2 = 2d - 2\,\mathrm{tr}\,R$ for any orthogonal $R$. What does this
# say about a test built on $\lVert R-I\rVert_F \approx \sqrt{2d}$?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# $\lVert R - I\rVert_F^2 = \mathrm{tr}(R^\top R) - 2\,\mathrm{tr}\,R + \mathrm{tr}\,I = 2d - 2\,\mathrm{tr}\,R$.
# The statistic only sees the trace. Any orthogonal matrix with trace near 0 — a random signed
# permutation, a rotation with two invariant halves — passes exactly like a Haar rotation, so
# matching $\sqrt{2d}$ "to 0.1%" carries almost no information about Haar-ness.
# :::
#
# :::{admonition} Exercise 2 — why the iid KS test says p ≈ 1
# The KS test assumes the $N$ angles are independent draws from $\rho$. Haar eigenangles repel
# each other. Would you expect the empirical CDF of one Haar matrix's angles to be *closer* to or
# *farther from* $\rho$ than $N$ independent draws? What does that do to the p-value?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Closer: repulsion spreads the angles evenly (their number variance grows only logarithmically),
# so the empirical CDF hugs $\rho$ much more tightly than iid draws would, and the KS statistic is
# far smaller than its iid null predicts. The p-value is then pushed towards 1 for Haar matrices —
# and for many non-Haar ones too. Calibrating the statistic against Haar samples of the same $d$
# fixes the null.
# :::
#
# :::{admonition} Exercise 3 — build an alternative the paper's tests cannot see
# Using `haar.block_diagonal_rotation` (or two independent Haar blocks), make a rotation that
# leaves two halves of the space invariant. Run `haar.haar_test` and `haar.paper_ks_test` on it.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Each block is Haar on its half, so the angle histogram and the trace look Haar: the paper's
# checks pass. The calibrated entry statistics see that half the entries are exactly 0 (the
# off-diagonal blocks), and the combined p-value rejects.
# :::
