"""Reference weights of the converged Dyck cohorts: train once, commit, load, verify.

The default (``quick``) book does not train its Dyck cohorts: it loads Cohort A
(``shared_io``, seeds 0..4) and Cohort B (``independent``, seeds 100..104) from
``reference/dyck/`` — models trained by this project's own recipe
(:data:`REFERENCE_RECIPE`, the paper's task at content lengths 2..12 on CPU) to the paper's
convergence criterion. The folder holds one ``<cohort>_seed<seed>.safetensors`` per model
(every named parameter of the toy ``HookedTransformer``, zero biases and ``W_pos`` included)
and ``manifest.json``: the recipe, the code commit it was trained from, the command, the
SHA-256 of every weight file, the per-seed convergence records and the accuracy-vs-tokens curve.

Retrain from scratch (overwrites the folder; about an hour on one CPU core)::

    python -m polyrot_utils.reference_dyck train

Check the hashes and re-measure every seed on the three evaluation sets::

    python -m polyrot_utils.reference_dyck verify
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import cache
from .cohort_training import EnsembleRecipe, MemberSpec, ensemble_accuracy, paper_cohort_members, train_members
from .convergence import ConvergenceRule, min_accuracy
from .dyck_paper import PaperTaskConfig, eval_sets
from .ensemble import stack_models
from .models import build_toy, load_parameter_dict

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference" / "dyck"
MANIFEST = "manifest.json"
#: the recipe the committed weights were trained with (see the module docstring)
REFERENCE_RECIPE = EnsembleRecipe(
    task=PaperTaskConfig(min_len=2, max_len=12),
    batch_size=128,
    lr=1e-2,
    warmup_steps=200,
    rule=ConvergenceRule(threshold=0.9999, eval_every=250, extra_steps=300, max_steps=3_500, eval_size=2_048),
)
RETRAIN_COMMAND = "python -m polyrot_utils.reference_dyck train"


def file_name(cohort: str, seed: int) -> str:
    return f"{cohort}_seed{int(seed)}.safetensors"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:  # noqa: BLE001 - not a git checkout
        return "unknown"


def _write_manifest(out: Path, recipe: EnsembleRecipe, records: list[dict], curve: list[dict], seconds: float,
                    complete: bool, threads: int, commit: str) -> None:
    files = {r_file: sha256(out / r_file) for r_file in sorted(p.name for p in out.glob("*.safetensors"))}
    manifest = {
        "description": "Dyck-3 toy cohorts (paper task) trained to the paper's convergence criterion",
        "recipe": recipe.to_dict(),
        "code_commit": commit,
        "command": RETRAIN_COMMAND,
        "torch": torch.__version__,
        "threads": threads,
        "complete": complete,
        "train_seconds": round(seconds, 1),
        "files": files,
        "convergence": records,
        "curve": curve,
    }
    cache.atomic_write_json(out / MANIFEST, manifest)


def train_reference(out: Path | str = REFERENCE_DIR, recipe: EnsembleRecipe = REFERENCE_RECIPE, n_seeds: int = 5,
                    threads: int = 1, max_seconds: float | None = None, verbose: bool = True) -> dict:
    """Train Cohorts A and B from scratch into ``out`` (weights written as each seed stops,
    the manifest rewritten after each); returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for p in list(out.glob("*.safetensors")) + [out / MANIFEST]:
        if p.exists():
            p.unlink()
    t0 = time.perf_counter()
    commit = _git_commit()  # the code the run starts from
    records: list[dict] = []

    def on_stop(spec: MemberSpec, record: dict, state: dict[str, torch.Tensor]) -> None:
        cache.atomic_save_safetensors(out / file_name(spec.cohort, spec.seed), state,
                                      {"cohort": spec.cohort, "seed": str(spec.seed)})
        records.append(record)
        _write_manifest(out, recipe, records, [], time.perf_counter() - t0, False, threads, commit)

    run = train_members(paper_cohort_members(n_seeds), recipe, threads=threads, verbose=verbose, on_stop=on_stop,
                        max_seconds=max_seconds)
    _write_manifest(out, recipe, run.records, run.curve, run.seconds, len(run.records) == 2 * n_seeds, threads, commit)
    return load_manifest(out)


def load_manifest(folder: Path | str = REFERENCE_DIR) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no reference manifest at {path}; run `{RETRAIN_COMMAND}`")
    return json.loads(path.read_text())


def check_hashes(folder: Path | str = REFERENCE_DIR) -> dict[str, bool]:
    """``{file: sha256 matches the manifest}`` for every file the manifest lists."""
    folder = Path(folder)
    man = load_manifest(folder)
    return {f: (folder / f).exists() and sha256(folder / f) == h for f, h in man["files"].items()}


def load_reference_models(cohort: str, folder: Path | str = REFERENCE_DIR, seeds: tuple[int, ...] | None = None,
                          verify: bool = True) -> dict[int, object]:
    """``{seed: HookedTransformer}`` (CPU, eval mode) of one reference cohort, in manifest order.

    ``verify`` checks each file's SHA-256 against the manifest first (``ValueError`` if not)."""
    folder = Path(folder)
    man = load_manifest(folder)
    rows = [r for r in man["convergence"] if r["cohort"] == cohort]
    if not rows:
        raise ValueError(f"cohort {cohort!r} not in the reference manifest; cohorts: "
                         f"{sorted({r['cohort'] for r in man['convergence']})}")
    want = [r["seed"] for r in rows] if seeds is None else list(seeds)
    out = {}
    for s in want:
        f = file_name(cohort, s)
        if f not in man["files"]:
            raise ValueError(f"seed {s} of cohort {cohort!r} is not in the reference manifest")
        if verify and sha256(folder / f) != man["files"][f]:
            raise ValueError(f"{folder / f}: SHA-256 does not match the manifest")
        m = build_toy(s)
        load_parameter_dict(m, cache.load_safetensors(folder / f))
        if cohort == "shared_io" and s != rows[0]["seed"]:
            for k in EnsembleRecipe().shared_io_keys:
                dict(m.named_parameters())[k].requires_grad_(False)
        out[int(s)] = m.eval()
    return out


def remeasure(folder: Path | str = REFERENCE_DIR) -> list[dict]:
    """Re-measure every reference seed on the recipe's three evaluation sets (CPU):
    rows ``{cohort, seed, min_accuracy, accuracy, recorded_min_accuracy}``."""
    man = load_manifest(folder)
    recipe = EnsembleRecipe.from_dict(man["recipe"])
    sets = eval_sets(recipe.task, recipe.rule.eval_size, recipe.eval_seed)
    rows = []
    for cohort in dict.fromkeys(r["cohort"] for r in man["convergence"]):
        models = load_reference_models(cohort, folder)
        st = stack_models(list(models.values()), list(models))
        accs = ensemble_accuracy(st.params, sets)
        for (s, _), acc in zip(models.items(), accs):
            rec = next(r for r in man["convergence"] if r["cohort"] == cohort and r["seed"] == s)
            rows.append({"cohort": cohort, "seed": s, "min_accuracy": min_accuracy(acc), "accuracy": acc,
                         "recorded_min_accuracy": rec["min_accuracy"], "converged": rec["converged"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m polyrot_utils.reference_dyck", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="retrain the reference cohorts from scratch")
    tr.add_argument("--out", default=str(REFERENCE_DIR))
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--max-seconds", type=float, default=None)
    sub.add_parser("verify", help="check hashes and re-measure every seed")
    args = ap.parse_args(argv)
    if args.cmd == "train":
        man = train_reference(args.out, threads=args.threads, max_seconds=args.max_seconds)
        for r in man["convergence"]:
            print(json.dumps({k: v for k, v in r.items() if k != "accuracy"}))
        return 0
    bad = [f for f, ok in check_hashes().items() if not ok]
    rows = remeasure()
    thr = EnsembleRecipe.from_dict(load_manifest()["recipe"]).rule.threshold
    for r in rows:
        print(f"{r['cohort']}/{r['seed']}: min accuracy {r['min_accuracy']:.6f} (recorded {r['recorded_min_accuracy']:.6f})")
    ok = not bad and all(r["min_accuracy"] >= thr for r in rows)
    print("hash mismatches:", bad or "none", "| all seeds meet the criterion:", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
