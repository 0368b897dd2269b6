"""Issue 15: bad values, interrupted runs and damaged caches give a clear error or a recovery,
never a quiet wrong answer. Each test plants the fault for real (a truncated file, a real
SIGINT to a real runner, a kernel that dies mid-chapter) and checks the message and the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from polyrot_utils.book import runner as book, results
from polyrot_utils.core import cache
from polyrot_utils.tasks.dyck import language as dyck
from polyrot_utils.tasks.dyck.cohorts import cohort_config
from polyrot_utils.core.procrustes import CrossCovariance, fit_rotation

ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYROT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "polyrot_utils.book", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, **kw)


def _errlines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip() and "IPKernelApp" not in ln]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ============================================================================ parameters
@pytest.mark.parametrize("value, why", [("-3", "out of range"), ("0", "out of range"), ("1", "out of range"),
                                        ("abc", "expected an integer"), ("2.5", "expected an integer")])
def test_bad_n_seeds_refused_before_any_kernel(value, why):
    proc = _cli("run", "10_dyck_model_and_cohorts", "--profile", "smoke", "-p", "n_seeds", value)
    assert proc.returncode == 2
    lines = _errlines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    for part in ("10_dyck_model_and_cohorts", "n_seeds", value, why, "accepted: int >= 2"):
        assert part in lines[0], part
    assert "Traceback" not in proc.stderr


def test_parameter_specs_cover_types_bounds_and_choices():
    specs = book.parameter_specs("10_dyck_model_and_cohorts")
    assert specs["n_seeds"].problem(2) is None and specs["n_seeds"].problem(1) == "out of range"
    assert specs["steps"].problem(None) is None and specs["steps"].problem(0) == "out of range"
    assert specs["cohorts"].problem(["independent"]) is None
    assert "not one of the choices" in specs["cohorts"].problem(["indep"])
    assert specs["toy_profile"].problem("paper") is None and specs["toy_profile"].problem("fast") is not None
    p02 = book.parameter_specs("02_is_r_haar")
    assert p02["alpha"].problem(0.05) is None and p02["alpha"].problem(1.5) == "out of range"
    assert p02["dims"].problem([64, 1]).startswith("element 1")
    with pytest.raises(book.BookError, match=r"n_fit = 0 is refused \(out of range\); accepted: int >= 1"):
        book.resolve_parameters("01_planted_rotations", "smoke", {"n_fit": 0})
    # every profile satisfies every notebook's specs
    for stem in book.toc_notebooks():
        for prof in ("smoke", "quick", "paper"):
            book.resolve_parameters(stem, prof)


def test_spec_parser_reads_the_documented_forms():
    spec = book._parse_spec("x", 0.5, "# [float > 0, <= 1] a fraction", "nb")
    assert spec.problem(1.0) is None and spec.problem(0) == "out of range" and spec.problem(True) is not None
    assert book._parse_spec("n", 3, "# plain comment", "nb").problem("3") is not None  # type from the default
    with pytest.raises(book.BookError, match="cannot read"):
        book._parse_spec("n", 3, "# [int ~ 2]", "nb")
    with pytest.raises(book.BookError, match="violates its own spec"):
        book._parse_spec("n", 1, "# [int >= 2]", "nb")


def test_unknown_name_refused_in_every_p_form(tmp_path):
    proc = _cli("build", "--profile", "smoke", "--no-render", "--build-dir", str(tmp_path), "-p", "*", "n_seedz", "3")
    assert proc.returncode == 2
    (line,) = _errlines(proc.stderr)
    assert "-p '*' n_seedz" in line and "did you mean 'n_seeds'" in line
    assert not (tmp_path / "executed").exists()  # nothing ran
    proc = _cli("build", "--profile", "smoke", "--no-render", "--build-dir", str(tmp_path),
                "-p", "10_dyck_model_and_cohorts", "n_seedz", "3")
    assert proc.returncode == 2 and "has no parameter 'n_seedz'" in proc.stderr
    # a bad value for one notebook stops the build before the first kernel
    proc = _cli("build", "--profile", "smoke", "--no-render", "--build-dir", str(tmp_path), "-p", "*", "n_seeds", "0")
    assert proc.returncode == 2 and "n_seeds = 0 is refused" in proc.stderr
    assert not (tmp_path / "executed").exists()


def test_params_specs_lists_what_each_parameter_accepts():
    proc = _cli("params", "10_dyck_model_and_cohorts", "--specs")
    assert proc.returncode == 0, proc.stderr
    specs = json.loads(proc.stdout)
    assert specs["n_seeds"] == {"default": 5, "accepts": "int >= 2"}
    assert specs["device"]["accepts"] == "str"


def test_run_accepts_the_build_form_of_p_for_its_own_notebook():
    # parsed (then refused for its value, so no kernel starts): the form itself is understood
    proc = _cli("run", "01_planted_rotations", "--profile", "smoke", "-p", "01_planted_rotations", "d", "1")
    assert proc.returncode == 2 and "parameter d = 1 is refused" in proc.stderr
    proc = _cli("run", "01_planted_rotations", "--profile", "smoke", "-p", "02_is_r_haar", "d", "3")
    assert proc.returncode == 2
    assert "this command runs 01_planted_rotations, not 02_is_r_haar" in proc.stderr


@pytest.mark.parametrize("profile", ["../../x", "params/smoke", "/etc/passwd", "smoke.yaml"])
def test_profile_is_a_name_not_a_path(profile):
    proc = _cli("run", "01_planted_rotations", "--profile", profile)
    assert proc.returncode == 2 and "not a path" in proc.stderr and "smoke" in proc.stderr


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "3"])
def test_cohort_config_refuses_bad_n_seeds(n):
    with pytest.raises(ValueError, match="n_seeds must be a positive integer"):
        cohort_config("independent", n_seeds=n)
    assert len(cohort_config("independent", n_seeds=2).seeds) == 2
    assert len(cohort_config("independent").seeds) == 5


# ============================================================================ interrupted runs
def _run_01(build: Path, seed: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "polyrot_utils.book", "run", "01_planted_rotations", "--profile", "smoke",
         "--build-dir", str(build), "-p", "seed", str(seed), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.slow
def test_sigint_keeps_previous_complete_outputs(tmp_path):
    build = tmp_path / "build"
    first = _run_01(build, 0)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    res = build / "results" / "01_planted_rotations.json"
    nb = build / "executed" / "notebooks" / "01_planted_rotations.ipynb"
    assert json.loads(res.read_text())["complete"] is True and book.notebook_is_complete(nb)
    before = (_md5(res), _md5(nb))

    # seconds of work after the results object exists, so the interrupt lands mid-chapter on a
    # quiet machine too (at the smoke sizes the rest of the chapter takes milliseconds)
    # (a long noise sweep: it runs after the results object is created, unlike a larger d or n,
    # which also slows the cells before it)
    sweep = "[" + ", ".join(f"{0.001 * i:.3f}" for i in range(3000)) + "]"
    second = _run_01(build, 1, "-p", "noise_levels", sweep)
    staged = build / "partial" / "results" / "01_planted_rotations.json"
    t0 = time.time()
    while not staged.exists() and second.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    assert staged.exists(), "the chapter never started"
    second.send_signal(signal.SIGINT)  # mid-chapter: results object created, cells still to run
    out, err = second.communicate(timeout=120)
    assert second.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]  # the kernel's own chatter goes to its log
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "interrupted while executing 01_planted_rotations" in lines[0] and "untouched" in lines[0]
    assert (_md5(res), _md5(nb)) == before


def _mini_repo(root: Path, body: str, stem: str = "chapter") -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "params").mkdir()
    (root / "book").mkdir()
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/{stem}\n")
    (root / "params" / "smoke.yaml").write_text("notebooks: {}\n")
    (root / "notebooks" / f"{stem}.py").write_text('# %% tags=["parameters"]\nx = 1  # [int >= 0]\n\n' + body)
    return root


@pytest.mark.slow
def test_kernel_killed_mid_chapter_changes_no_results_file(tmp_path):
    """Fault injection: the kernel records a value, then dies (SIGKILL) before the chapter ends."""
    body = (
        "# %%\nfrom polyrot_utils.book.results import ChapterResults\n"
        "r = ChapterResults('chapter', params=dict(x=x))\nr.record('half', 1.0)\n\n"
        "# %%\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n\n"
        "# %%\nr.record('never', 2.0)\n"
    )
    root = _mini_repo(tmp_path / "repo", body)
    build = tmp_path / "build"
    previous = {"chapter": "chapter", "values": {"complete_value": 3.0}, "claims": {}, "complete": True}
    cache.atomic_write_json(build / "results" / "chapter.json", previous)
    before = {p.name: _md5(p) for p in (build / "results").iterdir()}
    with pytest.raises(book.BookError) as info:
        book.run_notebook("chapter", "smoke", build_dir=build, root=root)
    msg = str(info.value)
    assert "did not finish" in msg and "kernel stopped" in msg and "untouched" in msg
    assert {p.name: _md5(p) for p in (build / "results").iterdir()} == before
    assert not (build / "executed" / "notebooks" / "chapter.ipynb").exists()
    # what it had measured is kept apart, marked incomplete
    partial = json.loads((build / "partial" / "results" / "chapter.json").read_text())
    assert partial["values"] == {"half": 1.0} and partial["complete"] is False


@pytest.mark.slow
def test_render_and_verdict_refuse_incomplete_outputs(tmp_path, monkeypatch):
    body = "# %%\nfrom polyrot_utils.book.results import ChapterResults\nChapterResults('chapter').record('v', 1.0)\n"
    root = _mini_repo(tmp_path / "repo", body)
    build = tmp_path / "build"
    book.run_notebook("chapter", "smoke", build_dir=build, root=root)
    res = build / "results" / "chapter.json"
    assert json.loads(res.read_text())["complete"] is True
    book.stage_sources(build, root)  # complete: accepted
    # a results file without the marker (an old or interrupted run) is refused by render ...
    data = json.loads(res.read_text())
    data["complete"] = False
    cache.atomic_write_json(res, data)
    with pytest.raises(book.BookError, match="not marked complete"):
        book.stage_sources(build, root)
    # ... and by the verdict chapters' table
    from polyrot_utils.book.report import claims_table

    with pytest.raises(results.IncompleteResultsError, match="not marked complete"):
        claims_table(build / "results")
    assert claims_table(build / "results", require_complete=False) == []
    # an executed notebook without the completion marker is refused too
    data["complete"] = True
    cache.atomic_write_json(res, data)
    import nbformat

    nbp = build / "executed" / "notebooks" / "chapter.ipynb"
    nb = nbformat.read(str(nbp), as_version=4)
    del nb.metadata["polyrot"]
    nbformat.write(nb, str(nbp))
    with pytest.raises(book.BookError, match="chapter.ipynb is not marked complete"):
        book.stage_sources(build, root)


def test_failed_chapter_keeps_traceback_apart(tmp_path):
    root = _mini_repo(tmp_path / "repo", '# %%\nraise RuntimeError("planted failure")\n')
    with pytest.raises(book.BookError) as info:
        book.run_notebook("chapter", "smoke", build_dir=tmp_path / "build", root=root)
    kept = tmp_path / "build" / "partial" / "chapter.ipynb"
    assert str(kept) in str(info.value) and "planted failure" in kept.read_text()
    assert not (tmp_path / "build" / "executed" / "notebooks" / "chapter.ipynb").exists()


# ============================================================================ cache
TINY_DATA = dyck.DyckConfig(max_len=12, ood_min_len=14, ood_max_len=18, n_train=1000, n_heldout=200, n_ood=100,
                            depth_after_invalid="ignore")


def _tiny_toy_config():
    from polyrot_utils.tasks.dyck.training import ToyTrainConfig

    return ToyTrainConfig(steps=10, batch_size=16, lr=1e-2, warmup_steps=2, eval_every=100, eval_size=50,
                          n_checkpoints=1, data=TINY_DATA)


@pytest.mark.parametrize("victim", ["model.safetensors", "history.json", "ckpt_000000.safetensors"])
def test_truncated_toy_model_is_reported_and_retrained(tmp_cache, victim):
    from polyrot_utils.tasks.dyck.training import load_toy, train_toy

    cfg = _tiny_toy_config()
    first = train_toy(cfg)
    assert (first.path / cache.MANIFEST_FILENAME).exists()
    ref = {k: v.clone() for k, v in first.model.state_dict().items()}
    _truncate(first.path / victim)
    with pytest.raises(FileNotFoundError, match=f"damaged cached toy model: .*{victim}"):
        load_toy(cfg)
    with pytest.warns(cache.CacheRepairWarning, match=f"damaged cache entry {first.path}.*{victim}"):
        again = train_toy(cfg)
    assert not again.from_cache
    for k, v in again.model.state_dict().items():
        torch.testing.assert_close(v.cpu(), ref[k].cpu(), rtol=0, atol=0)  # same seed, same weights
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train_toy(cfg).from_cache  # repaired: loads quietly


def test_legacy_entry_without_manifest_is_adopted_or_rebuilt(tmp_cache):
    from polyrot_utils.tasks.dyck.training import train_toy

    cfg = _tiny_toy_config()
    path = train_toy(cfg).path
    (path / cache.MANIFEST_FILENAME).unlink()  # as written before manifests existed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train_toy(cfg).from_cache
    assert (path / cache.MANIFEST_FILENAME).exists()
    (path / cache.MANIFEST_FILENAME).unlink()
    _truncate(path / "model.safetensors")
    with pytest.warns(cache.CacheRepairWarning, match="do not load"):
        assert not train_toy(cfg).from_cache


def test_truncated_haar_null_is_reported_and_recomputed(tmp_cache):
    from polyrot_utils.core.haar import null_features

    a = null_features(6, n_null=20, seed=3)
    (entry,) = (tmp_cache / "haar_null").iterdir()
    _truncate(entry / "features.npz")
    with pytest.warns(cache.CacheRepairWarning, match="features.npz"):
        b = null_features(6, n_null=20, seed=3)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert cache.verify_entry(entry) is None


def test_truncated_cached_json_is_rebuilt(tmp_cache):
    calls = []
    value = cache.cached_json("thing", {"a": 1}, lambda: calls.append(1) or {"x": list(range(50))})
    (entry,) = (tmp_cache / "thing").iterdir()
    _truncate(entry / "result.json")
    with pytest.warns(cache.CacheRepairWarning, match="result.json"):
        assert cache.cached_json("thing", {"a": 1}, lambda: calls.append(1) or {"x": list(range(50))}) == value
    assert len(calls) == 2


def _sae_dir(tmp_path: Path) -> Path:
    from polyrot_utils.sae import autoencoder as S

    sae = S.SAE(S.SAEConfig(d_in=6, d_sae=12, architecture="topk", k=2))
    return S.save_sae(sae, tmp_path / "sae")


def test_load_sae_names_a_damaged_file(tmp_path):
    from polyrot_utils.sae.autoencoder import load_sae

    d = _sae_dir(tmp_path)
    cfg_text = (d / "cfg.json").read_text()
    _truncate(d / "cfg.json")
    with pytest.raises(ValueError, match=r"cfg.json is damaged .*delete"):
        load_sae(d)
    (d / "cfg.json").write_text(cfg_text)
    _truncate(d / "sae_weights.safetensors")
    with pytest.raises(ValueError, match=r"sae_weights.safetensors is damaged .*delete"):
        load_sae(d)


def test_load_sae_rejects_unknown_dtype(tmp_path):
    from polyrot_utils.sae.autoencoder import load_sae

    d = _sae_dir(tmp_path)
    raw = json.loads((d / "cfg.json").read_text())
    raw["dtype"] = "float8"
    (d / "cfg.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="dtype 'float8' is not supported"):
        load_sae(d)


def test_damaged_cached_sae_is_retrained(tmp_cache):
    from polyrot_utils.sae.autoencoder import train_sae_cached

    x = torch.randn(256, 6, generator=torch.Generator().manual_seed(0))
    kw = dict(d_sae=12, k=2, n_tokens=512, batch_size=64, seed=0)
    sae, hist = train_sae_cached(x, **kw)
    assert hist["cache_hit"] is False
    (entry,) = (tmp_cache / "sae").iterdir()
    _truncate(entry / "sae_weights.safetensors")
    with pytest.warns(cache.CacheRepairWarning, match="sae_weights.safetensors"):
        sae2, hist2 = train_sae_cached(x, **kw)
    assert hist2["cache_hit"] is False
    torch.testing.assert_close(sae2.W_enc, sae.W_enc, rtol=0, atol=0)
    assert train_sae_cached(x, **kw)[1]["cache_hit"] is True


def test_concurrent_builds_of_one_entry_run_once(tmp_cache):
    calls = []

    def build(entry: Path) -> None:
        calls.append(threading.get_ident())
        time.sleep(0.3)
        cache.atomic_write_json(entry / "out.json", {"v": 1})

    errors, paths = [], []

    def worker() -> None:
        try:
            paths.append(cache.cached_entry("race", {"k": 1}, build, ("out.json",)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(calls) == 1 and len(set(paths)) == 1 and len(paths) == 6
    assert cache.verify_entry(paths[0], ("out.json",)) is None


def test_cache_files_follow_the_umask(tmp_cache):
    old = os.umask(0o022)
    try:
        p = cache.atomic_write_json(tmp_cache / "x.json", {"a": 1})
        q = cache.atomic_save_npz(tmp_cache / "y.npz", a=np.zeros(3))
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644 and stat.S_IMODE(q.stat().st_mode) == 0o644


# ============================================================================ load_model
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from test_loading import _tiny_hf

    path = tmp_path_factory.mktemp("tiny") / "neox"
    model = _tiny_hf()
    model.save_pretrained(str(path))
    model.save_pretrained(str(path / "step8"))
    return path


def test_missing_local_revision_lists_existing(tiny_dir):
    from polyrot_utils.models.loading import load_model

    with pytest.raises(ValueError, match=r"revision 'step9' does not exist in .*its revisions are step8"):
        load_model(tiny_dir, revision="step9")
    assert load_model(tiny_dir, revision="step8").polyrot_source["path"].endswith("step8")


def test_mistyped_local_path_gets_one_message_for_both_readings(tmp_path, monkeypatch):
    from polyrot_utils.models.loading import ModelNotAvailableError, load_model

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError) as info:
        load_model("models/pythia-mine")
    msg = str(info.value)
    for part in ("no local directory 'models/pythia-mine'", "not in the local HF cache", "save_pretrained",
                 "huggingface-cli download", "allow_download=False"):
        assert part in msg, part
    with pytest.raises(ModelNotAvailableError) as info:
        load_model("models/pythia-mine", allow_download=True)
    assert "allow_download=True" in str(info.value) and "allow_download=False" not in str(info.value)
    assert "unset HF_HUB_OFFLINE" in str(info.value) and "call load_model(..., allow_download=True)" not in str(info.value)
    with pytest.raises(ModelNotAvailableError, match="neither an existing directory"):
        load_model("not a name")


def test_damaged_model_files_are_named(tiny_dir, tmp_path):
    import shutil

    from polyrot_utils.models.loading import load_model

    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir, bad, ignore=shutil.ignore_patterns("step*"))
    good_cfg = (bad / "config.json").read_text()
    _truncate(bad / "config.json")
    with pytest.raises(ValueError, match=r"config.json is damaged"):
        load_model(bad)
    (bad / "config.json").write_text(good_cfg)
    _truncate(bad / "model.safetensors", 0.9)
    with pytest.raises(ValueError, match=r"model.safetensors is damaged .*save_pretrained"):
        load_model(bad)


def test_damaged_downloaded_weights_say_how_to_remove(tiny_dir, tmp_path, monkeypatch):
    from polyrot_utils.models.loading import load_model

    repo = tmp_path / "hub" / "models--EleutherAI--pythia-70m-seed1"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        data = (tiny_dir / f).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f).symlink_to(blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_model("EleutherAI/pythia-70m-seed1").cfg.d_model == 32
    blob = (snap / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0xFF  # same size, one flipped byte: only the hash can tell
    blob.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"model.safetensors is damaged .*SHA-256.*rm -r {repo}"):
        load_model("EleutherAI/pythia-70m-seed1")


# ============================================================================ numerics
def test_cross_covariance_exact_for_float16_with_large_mean():
    rng = np.random.default_rng(0)
    d, n = 8, 1000
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    q *= np.sign(np.linalg.det(q))
    x = rng.standard_normal((n, d))
    xs = (x + 100).astype(np.float16)
    xt = (x @ q + 100).astype(np.float16)
    acc = CrossCovariance()
    for i in range(0, n, 250):
        acc.update(xs[i:i + 250], xt[i:i + 250])
    ref = fit_rotation(xs.astype(np.float64), xt.astype(np.float64))
    # was "contains NaN or infinite values" (float16 column sums overflowed); now float32-GEMM accurate
    np.testing.assert_allclose(acc.rotation().numpy(), ref, atol=1e-5)


def test_cross_covariance_float32_offset_far_above_spread():
    rng = np.random.default_rng(1)
    d, n = 16, 4000
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    q *= np.sign(np.linalg.det(q))
    x = rng.standard_normal((n, d))
    xs = (x + 1e6).astype(np.float32)
    xt = (x @ q + 1e6).astype(np.float32)
    acc = CrossCovariance()
    for i in range(0, n, 1000):
        acc.update(torch.from_numpy(xs[i:i + 1000]), torch.from_numpy(xt[i:i + 1000]))
    ref = fit_rotation(xs.astype(np.float64), xt.astype(np.float64))
    assert np.linalg.norm(acc.rotation().numpy() - ref) < 1e-6  # was 1.3 before per-batch centring


def test_math_functions_accept_array_likes():
    from polyrot_utils.core.metrics import explained_variance

    rng = np.random.default_rng(2)
    a = rng.standard_normal((40, 4))
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    b = a @ q
    r_list = fit_rotation(a.tolist(), b.tolist())
    assert isinstance(r_list, np.ndarray)
    np.testing.assert_allclose(r_list, fit_rotation(a, b), atol=1e-12)
    acc = CrossCovariance().update(a.tolist(), tuple(map(tuple, b)))
    np.testing.assert_allclose(acc.rotation().numpy(), fit_rotation(a, b), atol=1e-9)
    assert explained_variance(b.tolist(), b.tolist()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="real numeric array_like"):
        fit_rotation([["a", "b"], ["c", "d"]], b)


def test_cross_covariance_finite_float32_whose_sums_overflow():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((200, 3))
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))
    big = (3e36 + 1e35 * x).astype(np.float32)  # finite, but 200 of them overflow a float32 sum
    tgt = (3e36 + 1e35 * (x @ q)).astype(np.float32)
    acc = CrossCovariance().update(big, tgt)
    ref = fit_rotation(big.astype(np.float64), tgt.astype(np.float64))
    np.testing.assert_allclose(acc.rotation().numpy(), ref, atol=1e-5)
    wide = (1e20 * x).astype(np.float32)  # centred, but b·σ² overflows a float32 GEMM
    acc = CrossCovariance().update(wide, (1e20 * (x @ q)).astype(np.float32))
    assert np.isfinite(acc.rotation().numpy()).all()
    with pytest.raises(ValueError, match="source_batch contains NaN"):
        CrossCovariance().update(np.full((4, 3), np.nan, np.float32), tgt[:4])


def test_concurrent_builds_in_separate_processes_run_once(tmp_cache, tmp_path):
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from polyrot_utils.core import cache\n"
        "def build(entry):\n"
        "    with open(sys.argv[1], 'a') as fh: fh.write('built\\n')\n"
        "    time.sleep(1.0)\n"
        "    cache.atomic_write_json(entry / 'out.json', {'v': 1})\n"
        "print(cache.cached_entry('race_proc', {'k': 2}, build, ('out.json',)))\n"
    )
    log = tmp_path / "builds.txt"
    env = {**os.environ, "POLYROT_CACHE": str(tmp_cache), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(log)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 1 and log.read_text().count("built") == 1


@pytest.mark.slow
def test_long_chapter_reports_progress_in_the_build_log(tmp_path, capsys):
    """A chapter's library calls report progress (core.progress); the runner echoes it to its
    own log while the chapter runs, and none of it reaches the executed notebook."""
    body = (
        "# %%\nimport time\nfrom polyrot_utils.core.progress import report\n"
        "for i in range(3):\n    report(f'step {i} of 3')\n    time.sleep(3.5)\n"
    )
    root = _mini_repo(tmp_path / "repo", body)
    rec = book.run_notebook("chapter", "smoke", build_dir=tmp_path / "build", root=root)
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("[polyrot]   chapter +")]
    assert len(lines) >= 2 and any(ln.endswith("step 2 of 3") for ln in lines), out
    nb = rec.output.read_text()
    assert "step 0 of 3" not in nb and "POLYROT_PROGRESS" not in nb
    assert not (tmp_path / "build" / "partial" / "chapter.progress").exists()
