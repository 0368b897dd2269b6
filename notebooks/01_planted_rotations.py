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
# # Planted rotations: can one Procrustes fit find a rotation we hid?
#
# Before we ask whether two trained transformers differ by a rotation, we check the instrument.
# We **plant** an answer: draw a rotation $R_\star$ uniformly from $\mathrm{SO}(d)$, rotate a
# batch of synthetic "activations" with it, and ask the orthogonal {term}`Procrustes` fit
# ({term}`Procrustes`; the book's convention: row vectors, $X_\text{src} R \approx X_\text{tgt}$) to give it back.
#
# **What would falsify the instrument:** a recovered $\hat R$ that differs from $R_\star$ by
# more than float precision on noiseless data, or a fit that needs far more samples than
# dimensions. If that happened, nothing later in the book could be trusted.

# %% tags=["parameters"]
seed = 0            # [int >= 0] governs the planted rotation, the data and the noise
d = 64              # [int >= 2] dimension of the "residual stream"
n_fit = 2000        # [int >= 1] samples used to fit R
n_eval = 2000       # [int >= 1] held-out samples used to score it
noise_levels = [0.0, 0.01, 0.03, 0.1, 0.3, 1.0]  # [list[float] >= 0] target noise, relative to the signal's scale
sample_sizes_factor = [1.1, 1.5, 2, 4, 16]         # [list[float] > 0] fit sizes, as multiples of d (for the curve)
device = "auto"

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from polyrot_utils.book import figures
from polyrot_utils.core import haar, procrustes, synthetic
from polyrot_utils.book.results import ChapterResults
from polyrot_utils.core.synthetic import planted_pair

figures.use_book_style()

results = ChapterResults(
    "01_planted_rotations",
    params=dict(seed=seed, d=d, n_fit=n_fit, n_eval=n_eval, noise_levels=noise_levels),
)

# %% [markdown]
# ## The planted answer
# `planted_pair` draws anisotropic activations with a non-zero mean (real residual streams have
# both), a Haar rotation $R_\star$, and the target $Y = X R_\star + \text{noise}$.
# We fit on one batch and keep a second, held-out batch for scoring.

# %% tags=["hide-input"]
rng = np.random.default_rng(seed)
R_star = haar.sample_haar(d, rng=rng)
X_fit, Y_fit = planted_pair(R_star, n_fit, noise=0.0, rng=rng)
X_eval, Y_eval = planted_pair(R_star, n_eval, noise=0.0, rng=rng)
R_hat = procrustes.fit_rotation(X_fit, Y_fit)
err = float(np.abs(R_hat - R_star).max())
results.record("max_abs_error_noiseless", err)
results.record("det_R_hat", float(np.linalg.det(R_hat)))
# (Markdown outputs are rendered as CommonMark: no $…$ maths, so Unicode here)
display(Markdown(f"With d = {d} and {n_fit} fitting samples: max |R̂ − R⋆| = {err:.1e}, det R̂ = {np.linalg.det(R_hat):+.6f}."))

# %% [markdown]
# Look for an error at the level of float64 round-off (around $10^{-13}$): the fit recovers the
# planted rotation exactly, not approximately. The left and middle panels should be
# indistinguishable; the right panel is their difference on a scale a million times finer.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "A Haar rotation $R_\\star$ (left), its Procrustes recovery $\\hat R$ from noiseless data (middle), and their difference on its own, far finer colour scale (right).", "name": "fig-01-recovery"}, "image": {"alt": "Three heatmaps: the planted rotation and the recovered one look identical; their difference is round-off noise."}}
fig, axes = figures.column_figure(1, 3, height=2.6)
lim = np.abs(R_star).max()
for ax, mat, title in zip(axes[:2], (R_star, R_hat), ("planted $R_\\star$", "recovered $\\hat R$")):
    im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(title)
    ax.set_xlabel("target coord.")
axes[0].set_ylabel("source coordinate")
fig.colorbar(im, ax=axes[:2], shrink=0.8, label="entry")
diff = R_hat - R_star
im2 = axes[2].imshow(diff, cmap="RdBu_r", vmin=-np.abs(diff).max() - 1e-300, vmax=np.abs(diff).max() + 1e-300)
axes[2].set_title("$\\hat R - R_\\star$")
axes[2].set_xlabel("target coord.")
cb = fig.colorbar(im2, ax=axes[2], shrink=0.8, label="error")
cb.formatter.set_powerlimits((0, 0))
figures.show(fig)

# %% [markdown]
# ## Noise: how gracefully does the fit degrade?
# Real activations are not an exact rotation of each other. We add isotropic Gaussian noise to
# the target, at a scale relative to the signal's, and measure two things on held-out data:
# how far $\hat R$ is from $R_\star$ (Frobenius norm, relative to $\sqrt{2d}$, the distance of a
# random rotation), and how much of the held-out target the fitted map explains (EV).
# Look for the EV to follow the noise ceiling $1/(1+\sigma^2)$ closely: the fit itself adds
# almost nothing to the error.

# %% tags=["hide-input"]
sweep = synthetic.planted_noise_sweep(R_star, noise_levels, n_fit=n_fit, n_eval=n_eval, seed=seed)
results.record("noise_sweep", sweep)
figures.format_table(
    pd.DataFrame(sweep).set_index("noise")[["rel_error", "ev", "ev_ceiling"]].rename(
        columns={"rel_error": "‖R̂ − R⋆‖_F / √(2d)", "ev": "held-out EV", "ev_ceiling": "EV ceiling 1/(1+σ²)"}),
    sig=4)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Procrustes under target noise: the distance of the fit from the planted rotation grows smoothly with the noise (left), and the held-out explained variance of the fitted rotation sits on the noise ceiling $1/(1+\\sigma^2)$ (right).", "name": "fig-01-noise"}, "image": {"alt": "Left: relative error rising with noise. Right: held-out EV of the fit overlapping the dashed ceiling curve."}}
fig, (ax1, ax2) = figures.column_figure(1, 2, height=3.0)
ns = [r["noise"] for r in sweep]
ax1.plot(ns, [r["rel_error"] for r in sweep], "o-")
ax1.set_xscale("symlog", linthresh=0.01)
ax1.set_xlabel("noise scale σ (relative)")
ax1.set_ylabel("‖R̂ − R⋆‖_F / √(2d)")
ax1.set_title("Distance from $R_\\star$")
ax2.plot(ns, [r["ev"] for r in sweep], "o-", label="fitted rotation")
ax2.plot(ns, [r["ev_ceiling"] for r in sweep], "k--", label="ceiling 1/(1+σ²)")
ax2.set_xscale("symlog", linthresh=0.01)
ax2.set_xlabel("noise scale σ (relative)")
ax2.set_ylabel("held-out explained variance")
ax2.set_title("Held-out EV")
ax2.legend()
figures.show(fig)

# %% [markdown]
# ## How many samples does one fit need?
# The paper fits $R$ on "one batch". A rotation in $\mathrm{SO}(d)$ has $d(d-1)/2$ free
# parameters, but each sample gives $d$ equations, so a few times $d$ samples should pin it down.
# Look for the error at noise 0.1 to fall steeply once the batch exceeds $d$ samples.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Relative error of one Procrustes fit at noise 0.1 against the number of samples in the fitting batch; the dotted line marks $n = d$.", "name": "fig-01-sample-size"}, "image": {"alt": "Log-log plot: the error falls steeply once the batch exceeds d samples."}}
sizes = sorted({max(d + 1, int(f * d)) for f in sample_sizes_factor})  # a centred fit needs n > d
size_curve = synthetic.planted_sample_size_curve(R_star, sizes, noise=0.1, n_eval=n_eval, seed=seed)
results.record("sample_size_curve", size_curve)
fig, ax = figures.column_figure(height=3.0, width_fraction=0.75)
ax.loglog([r["n_fit"] for r in size_curve], [r["rel_error"] for r in size_curve], "o-")
ax.axvline(d, color="grey", ls=":", label="n = d")
ax.set_xlabel("samples in the fitting batch")
ax.set_ylabel("‖R̂ − R⋆‖_F / √(2d)")
ax.set_title(f"One fit vs batch size (d = {d}, noise 0.1)")
ax.legend()
figures.show(fig)

# %% [markdown]
# ## Summary
# The numbers below are read from this run's results file, so they change when the parameters do.

# %% tags=["hide-input"]
passed = results.claim(
    "planted_recovery_noiseless",
    value=err,
    threshold=1e-6,
    op="<=",
    description="a planted Haar rotation is recovered to float precision from noiseless data",
    kind="check",
)
lines = [f"- Noiseless recovery error {err:.1e}: {'below' if passed else '**above**'} the 1e-6 threshold, "
         f"so the instrument {'works' if passed else '**does not work**'}."]
if 0.1 in noise_levels:
    lines.append(f"- At noise 0.1 the fitted map explains {sweep[noise_levels.index(0.1)]['ev']:.4f} of the held-out target.")
lines.append(f"- With n = {size_curve[-1]['n_fit']} samples at noise 0.1 the relative error is {size_curve[-1]['rel_error']:.4f}.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 1 — the reflection trap
# Plant a matrix with determinant $-1$ (flip one column of $R_\star$) and fit it with
# `procrustes.fit_rotation(X, Y)` and with `special=False`. Which one recovers it, and why can the
# default not?
# :::
#
# :::{admonition} Solution
# :class: dropdown
# `special=True` (the default) restricts the fit to $\mathrm{SO}(d)$ by the Kabsch correction, so
# it returns the closest *proper* rotation: it flips the last singular direction and misses the
# planted reflection by a rank-one error. `special=False` fits over $\mathrm{O}(d)$ and recovers it
# exactly. The paper's public code fits over $\mathrm{O}(d)$ (no determinant fix), so some of its
# "rotations" are reflections.
# :::
#
# :::{admonition} Exercise 2 — why centre?
# Add a large common offset to the target only (`Y + 5`) and compare `fit_rotation(X, Y, center=False)`
# with the default `center=True` on held-out data.
# :::
#
# :::{admonition} Solution
# :class: dropdown
# Without centring, the fit must explain the offset with a rotation, which it cannot: the mean
# direction drags $\hat R$ away from $R_\star$. Centring removes each side's mean first, so the
# offset is handled by the means in `AlignmentMap.apply` and $\hat R$ is unaffected. A model's mean
# activation is not a rotation's business.
# :::
#
# :::{admonition} Exercise 3 — the sample-size curve
# Rerun this chapter with `-p d 256`. Does the error at $n = 2d$ change? Explain with the number of
# equations ($nd$) versus parameters ($d(d-1)/2$).
# :::
#
# :::{admonition} Solution
# :class: dropdown
# The relative error at a fixed ratio $n/d$ stays about the same: each sample gives $d$ equations,
# so $n$ samples give $nd$ equations for $d(d-1)/2$ unknowns, a ratio of about $2n/d$ that does
# not depend on $d$ once $n$ scales with $d$.
# :::
