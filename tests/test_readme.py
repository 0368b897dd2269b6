"""The README's "Use it on your own models" example runs, and shows what it says: on a planted
pair (a toy and its exactly rotated copy) the public API recovers R, reports a gap of ~0 at
every site, and moves an SAE that encodes model B's activations as the original encodes A's."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parent.parent / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_readme_api_example_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYROT_CACHE", str(tmp_path / "cache"))  # the Haar null is cached there
    torch.set_num_threads(1)
    blocks = re.findall(r"```pycon\n(.*?)```", section("Use it on your own models"), re.S)
    assert len(blocks) == 1 and blocks[0].count(">>>") >= 10
    test = doctest.DocTestParser().get_doctest(blocks[0], {}, "README", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    res = runner.summarize(verbose=False)
    assert res.attempted >= 10 and res.failed == 0, f"{res.failed} README example lines failed"
