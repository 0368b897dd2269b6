"""Activation collection: polyrot_utils.models.activations vs a naive run_with_cache of every hook.

    python bench/bench_activations.py [--model dyck|neox|both] [--n-seqs 512] [--repeats 3]

For the Dyck-3 toy model and the GPT-NeoX stand-in architecture (random weights: speed does not
depend on training), collect the residual sites the chapters use, over the same token batch,
two ways: ``collect_activations`` (forward hooks on the requested sites only, stopping after the
last block a site needs) and ``model.run_with_cache`` (caches every hook), keeping the same sites.
Reports tokens/s (best of ``--repeats``) and the ratio; writes JSON + markdown under
``bench/results/``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from polyrot_utils.models.activations import collect_activations, resid_sites
from polyrot_utils.tasks.dyck.toy import build_toy

ROOT = Path(__file__).resolve().parent.parent


def _neox_model():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from polyrot_utils.models.loading import hooked_from_hf

    cfg = GPTNeoXConfig(vocab_size=4096, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=512, max_position_embeddings=128, rotary_pct=0.25,
                        use_parallel_residual=True, tie_word_embeddings=False)
    torch.manual_seed(0)
    return hooked_from_hf(GPTNeoXForCausalLM(cfg).eval())


def _naive(model, tokens, sites, batch_size):
    out = {s: [] for s in sites}
    with torch.no_grad():
        for start in range(0, tokens.shape[0], batch_size):
            _, cache = model.run_with_cache(tokens[start:start + batch_size])
            for s in sites:
                out[s].append(cache[s].reshape(-1, cache[s].shape[-1]))
    return {s: torch.cat(v) for s, v in out.items()}


def bench_one(name: str, model, tokens: torch.Tensor, sites: list[str], batch_size: int, repeats: int) -> dict:
    n_tokens = tokens.numel()
    methods = {"polyrot collect_activations": lambda: collect_activations(model, tokens, sites, batch_size=batch_size),
               "run_with_cache (every hook)": lambda: _naive(model, tokens, sites, batch_size)}
    times: dict[str, list[float]] = {k: [] for k in methods}
    for fn in methods.values():
        fn()  # warm-up
    for _ in range(repeats):  # interleaved, so load changes hit both methods alike
        for label, fn in methods.items():
            times[label].append(_timed(fn))
    rows = {label: {"seconds": min(t), "tokens_per_second": n_tokens / min(t)} for label, t in times.items()}
    ours, naive = rows["polyrot collect_activations"], rows["run_with_cache (every hook)"]
    return {"model": name, "n_tokens": n_tokens, "sites": sites, "batch_size": batch_size, "results": rows,
            "speedup": ours["tokens_per_second"] / naive["tokens_per_second"]}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("dyck", "neox", "both"), default="both")
    ap.add_argument("--n-seqs", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: stable timings on a shared machine)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = []
    if args.model in ("dyck", "both"):
        model = build_toy(0).eval()
        tokens = torch.randint(3, 9, (args.n_seqs, 32))
        runs.append(bench_one("dyck-3 toy (d=64, 2 layers)", model, tokens, resid_sites(model), args.batch_size, args.repeats))
    if args.model in ("neox", "both"):
        from polyrot_utils.models.loading import pythia_sites

        model = _neox_model()
        tokens = torch.randint(0, 4096, (args.n_seqs // 4, 128))
        runs.append(bench_one("GPT-NeoX stand-in (d=128, 2 layers)", model, tokens, pythia_sites(model), args.batch_size // 4, args.repeats))
    machine = {"platform": platform.platform(), "cpus": torch.get_num_threads(), "torch": torch.__version__,
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_activations.json").write_text(json.dumps({"machine": machine, "runs": runs}, indent=2))
    lines = ["# Activation collection: tokens per second", "",
             f"Machine: {machine['platform']}, torch threads {machine['cpus']}, torch {machine['torch']}, {machine['date']}.", "",
             "| model | method | tokens/s | seconds | speed-up |", "|---|---|---:|---:|---:|"]
    for run in runs:
        for label, r in run["results"].items():
            sp = f"{run['speedup']:.2f}x" if label.startswith("polyrot") else ""
            lines.append(f"| {run['model']} | {label} | {r['tokens_per_second']:,.0f} | {r['seconds']:.3f} | {sp} |")
    (args.out / "bench_activations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
