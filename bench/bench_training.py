"""Benchmark: training throughput of the Dyck toy, per-seed loop vs the vectorised ensemble.

Same data for both: fresh batches of the paper's task (``--batch`` strings, content lengths
2..``--max-len``), member ``e`` reading the batches of data seed ``e``. The per-seed loop is
today's trainer step (:mod:`polyrot_utils.tasks.dyck.training`: a ``HookedTransformer``, ``readout_loss``,
``clip_grad_norm_``, ``torch.optim.AdamW``) run one model at a time with one thread; the
ensemble (:mod:`polyrot_utils.tasks.dyck.ensemble`) steps E = 1, 5, 10 models at once with ``--threads``.

Throughput is *training tokens per second per model*: non-PAD positions (BOS, content, EOS) of
the batches consumed, summed over the models trained, divided by wall time — i.e. how fast
model-tokens are produced, comparable between one model and an ensemble. Batch sampling is
excluded from the timing (batches are prepared beforehand). ``--json`` prints::

    {"per_seed_tokens_per_s": ..., "ensemble_tokens_per_s": {"1": ..., "5": ..., "10": ...}, ...}

    python bench/bench_training.py --quick --json        # < 2 minutes
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from polyrot_utils.tasks.dyck import paper_task as dp  # noqa: E402
from polyrot_utils.tasks.dyck import ensemble as en  # noqa: E402
from polyrot_utils.tasks.dyck.toy import build_toy  # noqa: E402
from polyrot_utils.tasks.dyck.training import readout_loss  # noqa: E402


def batches(n_models: int, n_steps: int, batch: int, cfg: dp.PaperTaskConfig) -> list[list]:
    """``[step][member]`` labelled batches (fixed in advance)."""
    rngs = [dp.batch_rng(e) for e in range(n_models)]
    return [[dp.sample_batch(batch, cfg, rngs[e]) for e in range(n_models)] for _ in range(n_steps)]


def per_seed(data: list[list], n_models: int, warmup: int) -> float:
    torch.set_num_threads(1)
    tokens, seconds = 0, 0.0
    for e in range(n_models):
        model = build_toy(e)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=1e-4)
        for i, step in enumerate(data):
            b = step[e]
            t0 = time.perf_counter()
            loss, _ = readout_loss(model(b.tokens), b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if i >= warmup:
                seconds += time.perf_counter() - t0
                tokens += int(b.mask.sum())
    return tokens / seconds


def ensemble(data: list[list], E: int, threads: int, warmup: int, device: str) -> float:
    torch.set_num_threads(threads)
    dev = torch.device(device)
    st = en.stack_models([build_toy(e) for e in range(E)], list(range(E)), device=dev)
    opt = en.EnsembleOptimizer(st)
    lr = torch.full((E,), 1e-3, dtype=torch.float64, device=dev)
    prepared = []
    for step in data:
        bs = step[:E]
        W = max(b.tokens.shape[1] for b in bs)
        pad = lambda t: torch.nn.functional.pad(t, (0, W - t.shape[1]))  # noqa: E731
        prepared.append((torch.stack([pad(b.tokens) for b in bs]).to(dev),
                         {k: torch.stack([pad(b.labels[k]) for b in bs]).to(dev) for k in bs[0].labels},
                         torch.stack([pad(b.mask) for b in bs]).to(dev)))
    tokens, seconds = 0, 0.0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    for i, (tok, lab, mask) in enumerate(prepared):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            logits = en.ensemble_logits(st.params, tok)
        loss, _ = en.member_losses(logits, lab, mask)
        opt.zero_grad()
        loss.sum().backward()
        opt.step(lr)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            seconds += time.perf_counter() - t0
            tokens += int(mask.sum())
    return tokens / seconds


def profile_ensemble(data: list[list], E: int, threads: int, top: int = 12) -> list[dict]:
    """Where one ensemble step's time goes: torch's profiler over the timed steps at ``E``
    members, the ``top`` operators by self CPU time, ``{op, self_ms_per_step, share}``."""
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    st = en.stack_models([build_toy(e) for e in range(E)], list(range(E)))
    opt = en.EnsembleOptimizer(st)
    lr = torch.full((E,), 1e-3, dtype=torch.float64)
    steps = []
    for step in data:
        bs = step[:E]
        W = max(b.tokens.shape[1] for b in bs)
        pad = lambda t: torch.nn.functional.pad(t, (0, W - t.shape[1]))  # noqa: E731
        steps.append((torch.stack([pad(b.tokens) for b in bs]),
                      {k: torch.stack([pad(b.labels[k]) for b in bs]) for k in bs[0].labels},
                      torch.stack([pad(b.mask) for b in bs])))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for tok, lab, mask in steps:
            loss, _ = en.member_losses(en.ensemble_logits(st.params, tok), lab, mask)
            opt.zero_grad()
            loss.sum().backward()
            opt.step(lr)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return [{"op": e.key, "self_ms_per_step": round(e.self_cpu_time_total / 1e3 / len(steps), 3),
             "share": round(e.self_cpu_time_total / total, 3)} for e in events[:top]]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=24)
    ap.add_argument("--steps", type=int, default=40, help="timed steps per model (after warm-up)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="threads of the ensemble (the per-seed loop uses 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="10 timed steps; per-seed loop on 3 models")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the E = 10 ensemble step (top operators by self CPU time)")
    args = ap.parse_args(argv)
    steps = 10 if args.quick else args.steps
    cfg = dp.PaperTaskConfig(min_len=2, max_len=args.max_len)
    data = batches(10, steps + args.warmup, args.batch, cfg)
    prev = torch.get_num_threads()
    try:
        out = {
            "per_seed_tokens_per_s": round(per_seed(data, 3 if args.quick else 5, args.warmup)),
            "ensemble_tokens_per_s": {str(E): round(ensemble(data, E, args.threads, args.warmup, args.device))
                                      for E in (1, 5, 10)},
            "ensemble_tokens_per_s_1_thread": {str(E): round(ensemble(data, E, 1, args.warmup, args.device))
                                               for E in (10,)} if args.threads != 1 else None,
        }
        if args.profile and args.device == "cpu":
            out["profile_E10"] = profile_ensemble(data, 10, args.threads)
    finally:
        torch.set_num_threads(prev)
    out["speedup_E10"] = round(out["ensemble_tokens_per_s"]["10"] / out["per_seed_tokens_per_s"], 2)
    out["config"] = dict(batch=args.batch, max_len=args.max_len, timed_steps=steps, threads=args.threads,
                         device=args.device, torch=torch.__version__, machine=platform.machine(),
                         load_avg=list(__import__("os").getloadavg()))
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
