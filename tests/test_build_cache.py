"""Incremental builds: the key changes exactly when a chapter's inputs change."""

from __future__ import annotations

from pathlib import Path

from polyrot_utils.book import build_cache


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "polyrot_utils").mkdir()
    (root / "polyrot_utils" / "mod.py").write_text("X = 1\n")
    (root / "notebooks" / "a.py").write_text("# %%\nprint(1)\n")
    (root / "notebooks" / "syn.py").write_text("# %%\nrows = report.claims_table()\n")
    build = tmp_path / "build"
    (build / "results").mkdir(parents=True)
    (build / "executed" / "notebooks").mkdir(parents=True)
    return root, build


def test_key_depends_on_source_parameters_profile_and_library(tmp_path):
    root, build = _tree(tmp_path)
    k0 = build_cache.chapter_key("a", "quick", {"n": 1}, root, build)
    assert build_cache.chapter_key("a", "quick", {"n": 1}, root, build) == k0
    assert build_cache.chapter_key("a", "quick", {"n": 2}, root, build) != k0
    assert build_cache.chapter_key("a", "smoke", {"n": 1}, root, build) != k0
    (root / "polyrot_utils" / "mod.py").write_text("X = 2\n")
    k1 = build_cache.chapter_key("a", "quick", {"n": 1}, root, build)
    assert k1 != k0
    (root / "notebooks" / "a.py").write_text("# %%\nprint(2)\n")
    assert build_cache.chapter_key("a", "quick", {"n": 1}, root, build) != k1


def test_other_results_are_inputs_only_of_chapters_that_read_them(tmp_path):
    root, build = _tree(tmp_path)
    ka = build_cache.chapter_key("a", "quick", {}, root, build)
    ks = build_cache.chapter_key("syn", "quick", {}, root, build)
    (build / "results" / "a.json").write_text('{"values": {"x": 1}}')
    assert build_cache.chapter_key("a", "quick", {}, root, build) == ka  # its own results do not count
    ks2 = build_cache.chapter_key("syn", "quick", {}, root, build)
    assert ks2 != ks
    (root / "notebooks" / "syn2.py").write_text("# %%\nrows = load_all_results()\n")  # another reader
    (build / "results" / "syn2.json").write_text('{"values": {}}')
    assert build_cache.chapter_key("syn", "quick", {}, root, build) == ks2  # readers do not depend on each other


def test_fresh_only_with_matching_stamp_and_outputs(tmp_path):
    root, build = _tree(tmp_path)
    key = build_cache.chapter_key("a", "quick", {}, root, build)
    assert build_cache.is_fresh("a", key, build) is None  # never executed
    (build / "executed" / "notebooks" / "a.ipynb").write_text("{}")
    (build / "results" / "a.json").write_text("{}")
    build_cache.write_stamp("a", key, build, 1.234, {})
    assert build_cache.is_fresh("a", key, build)["seconds"] == 1.23
    assert build_cache.is_fresh("a", "other-key", build) is None
    (build / "results" / "a.json").unlink()  # an output removed since: execute again
    assert build_cache.is_fresh("a", key, build) is None
    (build / "results" / "a.json").write_text("{}")
    (build / "executed" / "stamps" / "a.json").write_text("{trunc")  # damaged stamp: execute again
    assert build_cache.is_fresh("a", key, build) is None
