"""Every glossary term the book uses resolves, and the glossary defines the terms the chapters rely on.

Sphinx would only warn (and only in a full build) about a ``{term}`` role with no entry; this
test reads the sources directly, so it runs in a second and names the file and the term.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = ROOT / "book" / "glossary.md"
TERM_ROLE = re.compile(r"\{term\}`([^`]+)`")


def glossary_terms(text: str) -> set[str]:
    """Terms of every ```{glossary} block: the unindented, non-blank lines (lower-cased, as Sphinx matches)."""
    terms: set[str] = set()
    for block in re.findall(r"```\{glossary\}\n(.*?)\n```", text, flags=re.S):
        for line in block.splitlines():
            if line.strip() and not line[0].isspace() and not line.startswith(":"):
                terms.add(line.strip().lower())
    return terms


def referenced_terms(text: str) -> list[str]:
    """Targets of ``{term}`X``` and ``{term}`text <X>``` roles."""
    out = []
    for body in TERM_ROLE.findall(text):
        m = re.match(r".*<([^<>]+)>\s*$", body, flags=re.S)
        out.append((m.group(1) if m else body).strip())
    return out


def _sources() -> list[Path]:
    return sorted(ROOT.glob("notebooks/*.py")) + sorted(ROOT.glob("book/*.md"))


def test_parsers_on_handmade_text():
    text = "```{glossary}\nGap\n  defined\n\nBar B\nBar-B\n  two names\n```\nsee {term}`the gap <Gap>` and {term}`Bar B`"
    assert glossary_terms(text) == {"gap", "bar b", "bar-b"}
    assert referenced_terms(text) == ["Gap", "Bar B"]


def test_every_referenced_term_resolves():
    terms = glossary_terms(GLOSSARY.read_text())
    assert terms, "no glossary block found"
    missing = [(p.relative_to(ROOT).as_posix(), t) for p in _sources() for t in referenced_terms(p.read_text())
               if t.lower() not in terms]
    assert not missing, f"{{term}} roles with no glossary entry: {missing}"


@pytest.mark.parametrize("term", ["gap", "ceiling", "map_ev", "sae_ev", "regime", "four bars", "bar b", "bar p",
                                  "bar c", "bar pr", "fixed subspace", "cohort", "explained variance"])
def test_glossary_defines_the_terms_the_chapters_use(term):
    assert term in glossary_terms(GLOSSARY.read_text())


def test_fixed_subspace_has_one_definition_with_a_tolerance():
    text = GLOSSARY.read_text()
    entry = text.split("\nFixed subspace\n", 1)[1].split("\n\n", 1)[0]
    assert "eigenvalue $+1$" in entry and "tolerance" in entry and "0.1" in entry
    assert text.count("\nFixed subspace\n") == 1
