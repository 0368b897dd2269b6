"""Small, in-process performance measurements the Performance chapter runs on every build.

The full-size benchmarks live in ``bench/`` (``bash bench/run_all.sh``); these functions measure
the same comparisons at a size that fits a book build, so the page always reports figures
measured on the machine that built it. Timings are the best of ``repeats`` interleaved runs.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from polyrot_utils.core.metrics import explained_variance
from polyrot_utils.core.procrustes import CrossCovariance
from polyrot_utils.models.activations import collect_activations
from polyrot_utils.sae.autoencoder import train_sae

__all__ = [
    "activation_collection_timing",
    "machine_info",
    "matmul_gflops",
    "rotation_fit_timing",
    "run_saelens",
    "sae_training_timing",
]


def machine_info() -> dict[str, Any]:
    """CPU count, torch threads and version, GPU name (if any), platform and load average."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1min": load,
    }


def _best(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def matmul_gflops(
    d: int = 512, n: int = 32768, dtype: torch.dtype = torch.float32, repeats: int = 3
) -> float:
    """Measured rate of one ``XᵀY`` product of two ``(n, d)`` matrices: the machine's ceiling."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randn(n, d, generator=g, dtype=dtype)
    t = _best({"gemm": lambda: x.T @ y}, repeats)["gemm"]
    return 2.0 * n * d * d / t / 1e9


def rotation_fit_timing(
    n: int = 131072, d: int = 512, batch: int = 16384, repeats: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Streaming :class:`~polyrot_utils.core.procrustes.CrossCovariance` + solve vs scipy's
    in-memory ``orthogonal_procrustes`` (after centring) vs the floor (one float32 GEMM ``XᵀY`` over
    the data plus one ``d×d`` SVD), on the same float32 activations held in memory."""
    from scipy.linalg import orthogonal_procrustes

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    y = (x.double() @ q).float() + 0.01 * torch.randn(n, d, generator=g)
    xn, yn = x.numpy(), y.numpy()

    def streaming():
        acc = CrossCovariance(d)
        for s in range(0, n, batch):
            acc.update(x[s : s + batch], y[s : s + batch])
        return acc.rotation(special=False)

    def scipy_fit():
        return orthogonal_procrustes(xn - xn.mean(0), yn - yn.mean(0))[0]

    def floor():
        m = (x.T @ y).double()
        u, _, vt = torch.linalg.svd(m)
        return u @ vt

    t = _best({"streaming": streaming, "scipy": scipy_fit, "floor": floor}, repeats)
    r_stream = np.asarray(streaming(), dtype=np.float64)
    r_scipy = scipy_fit()
    return {
        "n": n,
        "d": d,
        "batch": batch,
        "seconds": t,
        "streaming_over_floor": t["streaming"] / t["floor"],
        "streaming_over_scipy": t["streaming"] / t["scipy"],
        "accumulate_gflops": 2.0 * n * d * d / t["streaming"] / 1e9,
        "max_abs_diff_vs_scipy": float(np.abs(r_stream - r_scipy).max()),
        "memory_streaming_mb": 3 * d * d * 8 / 2**20,  # running sums: float64 d×d (+ means)
        "memory_in_memory_mb": 2 * n * d * 4 / 2**20,
    }


def activation_collection_timing(
    model, tokens: torch.Tensor, sites: list[str], batch_size: int = 128, repeats: int = 3
) -> dict[str, Any]:
    """Tokens/s of :func:`~polyrot_utils.models.activations.collect_activations` (hooks on the
    requested sites only) vs ``run_with_cache`` of every hook, keeping the same sites."""

    def naive():
        with torch.no_grad():
            for s in range(0, tokens.shape[0], batch_size):
                _, cache = model.run_with_cache(tokens[s : s + batch_size])
                [cache[k] for k in sites]

    t = _best(
        {
            "ours": lambda: collect_activations(model, tokens, sites, batch_size=batch_size),
            "run_with_cache": naive,
        },
        repeats,
    )
    n_tok = tokens.numel()
    return {
        "tokens": n_tok,
        "tokens_per_second": {k: n_tok / v for k, v in t.items()},
        "speedup": t["run_with_cache"] / t["ours"],
    }


def run_saelens(
    x_train: torch.Tensor,
    x_eval: torch.Tensor,
    *,
    d_sae: int,
    k: int,
    n_tokens: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> dict:
    """Train SAELens's own TopK SAE with its own trainer on the same rows (the reference our
    trainer is compared with). Requires ``sae-lens``."""
    import sae_lens
    from sae_lens import LoggingConfig, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer, SAETrainerConfig

    torch.manual_seed(seed)
    d = x_train.shape[1]
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=d_sae, k=k, device="cpu"))
    g = torch.Generator().manual_seed(seed)

    def provider():
        n = x_train.shape[0]
        while True:
            perm = torch.randperm(n, generator=g)
            for i in range(0, n - batch_size + 1, batch_size):
                yield x_train[perm[i : i + batch_size]]

    cfg = SAETrainerConfig(
        total_training_samples=n_tokens,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr,  # constant schedule then a linear decay to 0 over the last 20% (as ours)
        lr_decay_steps=int(0.2 * (n_tokens // batch_size)),
        device="cpu",
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(cfg, sae, provider())
    t0 = time.perf_counter()
    trainer.fit()
    secs = time.perf_counter() - t0
    sae.eval()
    with torch.no_grad():
        rec = torch.cat(
            [sae.decode(sae.encode(x_eval[i : i + 8192])) for i in range(0, x_eval.shape[0], 8192)]
        )
        W_dec = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)
    return {
        "name": f"sae_lens {sae_lens.__version__} TopKTrainingSAE + SAETrainer",
        "train_seconds": secs,
        "tokens": trainer.n_training_samples,
        "tokens_per_second": trainer.n_training_samples / secs,
        "eval_ev": float(explained_variance(x_eval, rec)),
        "W_dec": W_dec,
    }


def sae_training_timing(
    x: torch.Tensor,
    *,
    d_sae: int,
    k: int,
    n_tokens: int,
    batch_size: int = 1024,
    seed: int = 0,
    with_saelens: bool = True,
) -> dict[str, Any]:
    """Our TopK trainer vs SAELens's on the same activations, width, k and token budget:
    tokens/s and held-out EV (last 10% of rows). SAELens is skipped if it is not installed."""

    n_eval = max(1, x.shape[0] // 10)
    x_train, x_eval = x[:-n_eval], x[-n_eval:]
    out: dict[str, Any] = {"d_in": int(x.shape[1]), "d_sae": d_sae, "k": k, "n_tokens": n_tokens}
    sae, hist = train_sae(
        x_train, d_sae=d_sae, k=k, n_tokens=n_tokens, batch_size=batch_size, seed=seed
    )
    # the training loop's own rate, as SAELens's is measured around trainer.fit()
    out["ours"] = {
        "tokens_per_second": float(hist["tokens_per_second"]),
        "ev": float(explained_variance(x_eval, sae.reconstruct(x_eval))),
    }
    if with_saelens:
        try:
            res = run_saelens(
                x_train,
                x_eval,
                d_sae=d_sae,
                k=k,
                n_tokens=n_tokens,
                batch_size=batch_size,
                lr=float(hist["lr"]),
                seed=seed,
            )
            out["saelens"] = {
                "tokens_per_second": res["tokens_per_second"],
                "ev": res["eval_ev"],
                "name": res["name"],
            }
        except Exception as err:
            out["saelens"] = {"skipped": f"{type(err).__name__}: {err}"}
    return out
