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
# # Performance: what this build cost, and how our tools compare
#
# A student reruns the book on a laptop; a researcher reruns a chapter at paper scale on one
# GPU. This page reports figures **measured on the machine that built it**: the wall time of
# every chapter of this build (written by the book runner itself), and small versions of the
# three benchmarks in `bench/` — streaming Procrustes against scipy and against the hardware
# floor, our activation collection against TransformerLens's `run_with_cache`, and our SAE
# trainer against SAELens's. Full-size runs: `bash bench/run_all.sh`.
#
# **What would be a failure:** a streaming fit slower than scipy's in-memory solve or far above
# the floor (one GEMM + one SVD), or an SAE trainer slower than SAELens at equal quality.

# %% tags=["parameters"]
n_fit_rows = 65536       # [int >= 1] rows for the rotation-fit timing
d_fit = 512              # [int >= 1] width for the rotation-fit timing (Pythia-70m's d_model)
sae_tokens = 100000      # [int >= 1] SAE training budget for the trainer comparison
repeats = 3              # [int >= 1] best of this many interleaved runs
seed = 0  # [int >= 0]
device = "auto"

# %% tags=["hide-input"]
import json

import pandas as pd
import torch
from IPython.display import Markdown, display

from polyrot_utils.book import figures, perf
from polyrot_utils.book.results import ChapterResults, results_dir

figures.use_book_style()

# every method runs with the same threads (torch's and BLAS's defaults: all cores), so ratios compare like with like
results = ChapterResults("92_performance", params=dict(n_fit_rows=n_fit_rows, d_fit=d_fit, sae_tokens=sae_tokens,
                                                       repeats=repeats, seed=seed))
machine = perf.machine_info()
results.record("machine", machine)
display(figures.format_table(pd.Series(machine, name="this build's machine"), sig=3))

# %% [markdown]
# ## This build, chapter by chapter
# The runner writes `timings.json` as it goes, so this table holds every chapter executed before
# this one. A *cold* build starts from an empty artifact cache (everything is trained); a *warm*
# one loads models and SAEs from it.

# %% tags=["hide-input"]
timings_path = results_dir().parent / "timings.json"
timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
nb_times = {k: v["seconds"] for k, v in timings.get("notebooks", {}).items()}
cache_state = "cold (empty cache)" if timings.get("cache_entries_at_start", 1) == 0 else "warm (cache in use)"
if nb_times:
    display(Markdown(f"Profile **{timings.get('profile')}**, cache **{cache_state}**, "
                     f"{len(nb_times)} chapters so far, **{sum(nb_times.values()):.0f} s** of notebook execution."))
    results.record("chapter_seconds", nb_times)
    results.record("total_seconds_before_this_chapter", sum(nb_times.values()))
else:
    display(Markdown("*This chapter ran alone (no timings file from a book build).*"))

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Wall time of every chapter executed before this page in this build, kernel start and imports included.", "name": "fig-92-chapter-times"}, "image": {"alt": "Horizontal bar chart of wall seconds per chapter of this build, in reading order."}}
if nb_times:  # the figure's own cell: MyST-NB captions every output of a cell with figure metadata
    fig, ax = figures.column_figure(height=0.3 * len(nb_times) + 1.2)
    ax.barh(list(nb_times), list(nb_times.values()), color="#546e7a")
    ax.invert_yaxis()
    ax.set_xlabel("wall seconds (kernel start and imports included)")
    ax.set_title(f"Chapter wall time ({timings.get('profile')} profile, {cache_state})")
    figures.show(fig)

# %% [markdown]
# ## Fitting a rotation: streaming vs in memory vs the floor
# The streaming fit accumulates $X^\top Y$ batch by batch (float32 GEMMs into a float64 sum) and
# solves one $d\times d$ SVD at the end; memory stays $O(d^2)$ however many tokens. Look for a
# ratio to the floor close to 1 and a ratio to scipy below 1.

# %% tags=["hide-input"]
fit = perf.rotation_fit_timing(n=n_fit_rows, d=d_fit, repeats=repeats, seed=seed)
gemm = perf.matmul_gflops(d=d_fit)
display(figures.format_table(pd.DataFrame({"seconds": fit["seconds"]}).T, sig=3))
display(Markdown(f"Streaming / floor = {fit['streaming_over_floor']:.2f}, streaming / scipy = {fit['streaming_over_scipy']:.2f}; "
                 f"accumulation {fit['accumulate_gflops']:.1f} GFLOP/s against this machine's float32 GEMM {gemm:.1f} GFLOP/s; "
                 f"memory {fit['memory_streaming_mb']:.1f} MB (streaming) against {fit['memory_in_memory_mb']:.0f} MB (data in memory)."))
results.record("rotation_fit", fit)
results.record("gemm_gflops_float32", gemm)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Time to fit one rotation three ways, best of the repeats: the streaming cross-covariance, scipy with all data in memory, and the floor of one matrix product plus one SVD.", "name": "fig-92-rotation-fit"}, "image": {"alt": "Horizontal bar chart of seconds for the streaming fit, scipy's in-memory fit and the GEMM-plus-SVD floor."}}
fig, ax = figures.column_figure(height=2.2, width_fraction=0.9)
labels = {"streaming": "streaming CrossCovariance", "scipy": "scipy, data in memory", "floor": "floor: one GEMM + one SVD"}
ax.barh([labels[k] for k in labels], [fit["seconds"][k] for k in labels], color=["#1565c0", "#9e9e9e", "#424242"])
ax.invert_yaxis()
ax.set_xlabel("seconds (best of repeats)")
ax.set_title(f"Fitting one rotation: n = {fit['n']:,} rows, d = {fit['d']}")
figures.show(fig)

# %% [markdown]
# ## Collecting activations
# Hooks on the requested residual sites only, stopping after the last block a site needs,
# against `run_with_cache` of every hook. Look for a speed-up above 1.

# %% tags=["hide-input"]
from polyrot_utils.models.activations import resid_sites
from polyrot_utils.tasks.dyck.toy import build_toy

toy = build_toy(seed).eval()
tokens = torch.randint(3, 9, (512, 32), generator=torch.Generator().manual_seed(seed))
coll = perf.activation_collection_timing(toy, tokens, resid_sites(toy), repeats=repeats)
display(Markdown(f"Dyck-3 toy: {coll['tokens_per_second']['ours']:,.0f} tokens/s (ours) against "
                 f"{coll['tokens_per_second']['run_with_cache']:,.0f} (`run_with_cache`): {coll['speedup']:.2f}× faster."))
results.record("activation_collection_toy", coll)

# %% [markdown]
# ## Training an SAE: ours vs SAELens
# The same synthetic activations (a planted sparse dictionary), width, $k$ and token budget for
# both trainers. Look at tokens per second *and* held-out EV: speed at worse quality is no gain.

# %% tags=["hide-input"]
g = torch.Generator().manual_seed(seed)
d_in, n_atoms, k_true = 64, 256, 8
atoms = torch.nn.functional.normalize(torch.randn(n_atoms, d_in, generator=g), dim=1)
idx = torch.rand(60000, n_atoms, generator=g).argsort(1)[:, :k_true]
codes = torch.zeros(60000, n_atoms).scatter_(1, idx, torch.rand(60000, k_true, generator=g) + 0.5)
x_sae = codes @ atoms + 0.01 * torch.randn(60000, d_in, generator=g)
sae_cmp = perf.sae_training_timing(x_sae, d_sae=512, k=16, n_tokens=sae_tokens, seed=seed)
rows = {name: v for name, v in sae_cmp.items() if isinstance(v, dict)}
sae_table = pd.DataFrame(rows).T.rename(columns={"tokens_per_second": "tokens / s", "ev": "held-out EV", "name": "implementation"})
display(figures.format_table(sae_table, sig=3))
results.record("sae_training", sae_cmp)

# %% [markdown]
# ## Summary

# %% tags=["hide-input"]
lines = [f"- Streaming rotation fit: {fit['streaming_over_floor']:.2f}× the GEMM+SVD floor and "
         f"{fit['streaming_over_scipy']:.2f}× scipy's in-memory time (n = {fit['n']:,}, d = {fit['d']})."]
lines.append(f"- Activation collection: {coll['speedup']:.2f}× faster than `run_with_cache`.")
if "tokens_per_second" in sae_cmp.get("saelens", {}):
    ratio = sae_cmp["ours"]["tokens_per_second"] / sae_cmp["saelens"]["tokens_per_second"]
    lines.append(f"- SAE training: {ratio:.2f}× SAELens's tokens/s, held-out EV {sae_cmp['ours']['ev']:.3f} "
                 f"(ours) vs {sae_cmp['saelens']['ev']:.3f} (SAELens).")
    results.record("sae_speed_ratio", ratio)
else:
    lines.append(f"- SAE training: SAELens not run ({sae_cmp.get('saelens', {}).get('skipped')}).")
if nb_times:
    lines.append(f"- This build: {sum(nb_times.values()):.0f} s of chapter execution before this page.")
display(Markdown("\n".join(lines)))
