"""Benchmark: polyrot_utils.sae.autoencoder.train_sae vs SAELens's TopK trainer on the same activations.

Same activations (synthetic sparse data with a known dictionary, or ``--acts`` path to an
``.npz`` / ``.safetensors`` holding an (n, d) matrix), same width, same k, same batch size, same
number of training tokens, same learning rate (ours' default unless ``--lr``). Reports training
tokens/s and final explained variance (on a held-out 20% split) side by side, as JSON and
markdown under ``bench/results/``. Not run by the tests.

    .venv/bin/python bench/bench_sae.py --d 64 --d-sae 512 --k 16 --n-tokens 500000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from polyrot_utils.core.metrics import explained_variance, matched_cosine  # noqa: E402
from polyrot_utils.sae.autoencoder import train_sae  # noqa: E402


def synthetic(n: int, d: int, m: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k-sparse positive codes over a random unit-norm dictionary D (m, d), plus an offset and noise."""
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(m, d, generator=g)
    D /= D.norm(dim=1, keepdim=True)
    idx = torch.rand(n, m, generator=g).argsort(dim=1)[:, :k]
    codes = torch.zeros(n, m).scatter_(1, idx, 1 + torch.rand(n, k, generator=g))
    x = codes @ D + 0.5 * torch.randn(d, generator=g) + 0.01 * torch.randn(n, d, generator=g)
    return x, D


def load_acts(path: Path) -> torch.Tensor:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            key = "acts" if "acts" in z.files else z.files[0]
            arr = z[key]
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        t = load_file(str(path))
        arr = (t["acts"] if "acts" in t else next(iter(t.values()))).numpy()
    else:
        raise ValueError(f"--acts must be .npz or .safetensors, got {path}")
    arr = arr.reshape(-1, arr.shape[-1]).astype(np.float32)
    return torch.from_numpy(arr)


from polyrot_utils.book.perf import run_saelens  # noqa: E402  (shared with the Performance chapter)


def run_ours(x_train: torch.Tensor, x_eval: torch.Tensor, *, d_sae: int, k: int, n_tokens: int, batch_size: int, lr: float | None, seed: int) -> dict:
    t0 = time.perf_counter()
    sae, hist = train_sae(x_train, d_sae=d_sae, k=k, n_tokens=n_tokens, batch_size=batch_size, lr=lr, seed=seed, eval_activations=x_eval)
    total = time.perf_counter() - t0
    return {
        "name": "polyrot_utils.sae.autoencoder.train_sae (TopK, AuxK)",
        "train_seconds": hist["train_seconds"],
        "wall_seconds_incl_init_and_eval": total,
        "tokens": hist["n_tokens_seen"],
        "tokens_per_second": hist["tokens_per_second"],
        "eval_ev": hist["final_ev"],
        "lr": hist["lr"],
        "W_dec": sae.W_dec.detach(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acts", type=Path, default=None, help=".npz/.safetensors (n, d) activations; default synthetic")
    ap.add_argument("--n", type=int, default=60_000, help="synthetic rows")
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--m-true", type=int, default=256, help="synthetic dictionary size")
    ap.add_argument("--k-true", type=int, default=8, help="synthetic code sparsity")
    ap.add_argument("--d-sae", type=int, default=512)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--n-tokens", type=int, default=500_000)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=None, help="both trainers (default: ours' auto lr)")
    ap.add_argument("--saelens-lr", type=float, default=None, help="SAELens's lr if different from ours (e.g. its default 3e-4)")
    ap.add_argument("--ours-token-fracs", type=str, default="0.25,0.5",
                    help="also train ours on these fractions of the tokens (tokens needed to match SAELens's EV)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-saelens", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.acts is not None:
        x, D = load_acts(args.acts), None
        source = str(args.acts)
    else:
        x, D = synthetic(args.n, args.d, args.m_true, args.k_true, args.seed)
        source = f"synthetic n={args.n} d={args.d} m_true={args.m_true} k_true={args.k_true}"
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(args.seed))
    n_eval = max(2, x.shape[0] // 5)
    x_eval, x_train = x[perm[:n_eval]].contiguous(), x[perm[n_eval:]].contiguous()

    common = dict(d_sae=args.d_sae, k=args.k, n_tokens=args.n_tokens, batch_size=args.batch_size, seed=args.seed)
    ours = run_ours(x_train, x_eval, lr=args.lr, **common)
    lr = ours["lr"] if args.lr is None else args.lr
    runs = [ours]
    saelens_error = None
    if not args.skip_saelens:
        try:
            runs.append(run_saelens(x_train, x_eval, lr=args.saelens_lr or lr, **common))
        except ImportError as exc:  # pragma: no cover
            saelens_error = f"sae_lens not importable: {exc}"
    fracs = [float(f) for f in args.ours_token_fracs.split(",") if f.strip()]
    for frac in fracs:
        sub = run_ours(x_train, x_eval, lr=args.lr, **{**common, "n_tokens": int(frac * args.n_tokens)})
        sub["name"] = f"polyrot_utils.sae.autoencoder.train_sae, {frac:g} x tokens"
        runs.append(sub)
    for r in runs:
        W = r.pop("W_dec")
        r["dictionary_matched_cosine"] = float(matched_cosine(W, D)) if D is not None else None

    result = {
        "source": source,
        "d_in": int(x.shape[1]),
        "n_train": int(x_train.shape[0]),
        "n_eval": int(x_eval.shape[0]),
        **common,
        "lr": lr,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "runs": runs,
        "saelens_error": saelens_error,
        "saelens_lr": (args.saelens_lr or lr) if saelens_error is None and not args.skip_saelens else None,
        "speedup_tokens_per_second": (runs[0]["tokens_per_second"] / runs[1]["tokens_per_second"]) if (len(runs) > 1 and runs[1]["name"].startswith("sae_lens")) else None,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bench_sae_d{x.shape[1]}_w{args.d_sae}_k{args.k}_t{args.n_tokens}" + (f"_sllr{args.saelens_lr:g}" if args.saelens_lr else "")
    (args.out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# SAE trainer benchmark ({source})",
        "",
        f"d_in={x.shape[1]}, d_sae={args.d_sae}, k={args.k}, tokens={args.n_tokens}, batch={args.batch_size}, lr={lr:.3g}, "
        f"threads={args.threads}, torch {torch.__version__}, CPU. EV on a held-out {n_eval}-row split."
        + (f" SAELens lr={result['saelens_lr']:.3g}." if result["saelens_lr"] is not None else ""),
        "",
        "| trainer | tokens | tokens/s | train s | eval EV | dict. matched cos |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        mc = "—" if r["dictionary_matched_cosine"] is None else f"{r['dictionary_matched_cosine']:.3f}"
        lines.append(f"| {r['name']} | {r['tokens']:,} | {r['tokens_per_second']:,.0f} | {r['train_seconds']:.1f} | {r['eval_ev']:.4f} | {mc} |")
    if result["speedup_tokens_per_second"]:
        lines += ["", f"Speed-up (tokens/s, ours / SAELens): {result['speedup_tokens_per_second']:.2f}x"]
    (args.out_dir / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
