"""The package's layers: a module imports only from its own layer and the layers below.

Layers, lowest first (``book/architecture.md``)::

    core < sae < models < tasks (tasks.dyck | tasks.pythia) < experiments < book

The two rungs under ``tasks`` are siblings: neither imports the other. Every import is checked,
top-level and inside functions, absolute and relative. Every public module defines ``__all__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = "polyrot_utils"
ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / PKG
LAYERS = ["core", "sae", "models", "tasks", "experiments", "book"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def layer(mod: str) -> tuple[int, str] | None:
    """(rank, name) of a dotted module's layer; None for the package root and unknown names."""
    parts = mod.split(".")
    if len(parts) < 2 or parts[0] != PKG or parts[1] not in LAYERS:
        return None
    name = parts[1]
    if name == "tasks" and len(parts) > 2:
        name = f"tasks.{parts[2]}"
    return LAYERS.index(parts[1]), name


def is_module(dotted: str) -> bool:
    path = PACKAGE.joinpath(*dotted.split(".")[1:])
    return path.with_suffix(".py").exists() or path.is_dir()


def imported_modules(mod: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted module) for every intra-package import in the file."""
    is_pkg = path.name == "__init__.py"
    here = mod.split(".") if is_pkg else mod.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == PKG]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PKG:
                continue
            for a in node.names:  # `from polyrot_utils.core import haar` names a module
                sub = f"{target}.{a.name}"
                out.append((node.lineno, sub if is_module(sub) else target))
    return out


def violations() -> list[str]:
    found = []
    for mod, path in modules().items():
        own = layer(mod)
        if own is None:
            continue
        for line, target in imported_modules(mod, path):
            other = layer(target)
            if other is None:
                if target != PKG:
                    found.append(f"{path.relative_to(ROOT)}:{line}: {mod} imports {target}, which is in no layer")
                continue
            if other[0] > own[0]:
                found.append(f"{path.relative_to(ROOT)}:{line}: {mod} (layer {own[1]}) imports {target} "
                             f"(layer {other[1]}, above it)")
            elif own[1].startswith("tasks.") and other[1].startswith("tasks.") and own[1] != other[1]:
                found.append(f"{path.relative_to(ROOT)}:{line}: {mod} (rung {own[1]}) imports {target} "
                             f"(sibling rung {other[1]})")
    return found


def test_package_is_layered():
    mods = modules()
    flat = [m for m in mods if m.count(".") == 1 and layer(m) is None]
    assert not flat, f"modules outside the layers (move them under one): {flat}"
    assert {m.split(".")[1] for m in mods if "." in m} >= set(LAYERS)


def test_no_import_from_a_higher_layer():
    found = violations()
    assert not found, "imports against the layer order " + " < ".join(LAYERS) + ":\n" + "\n".join(found)


def test_the_checker_catches_an_upward_import(tmp_path, monkeypatch):
    """Planted answer: a core module importing the book must be reported with its line."""
    fake = tmp_path / PKG / "core"
    fake.mkdir(parents=True)
    (tmp_path / PKG / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text("import math\n\n\ndef f():\n    from polyrot_utils.book import runner\n")
    (tmp_path / PKG / "book").mkdir()
    (tmp_path / PKG / "book" / "runner.py").write_text("")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path / PKG)
    found = violations()
    assert len(found) == 1 and "bad.py:5" in found[0] and "layer core" in found[0] and "layer book" in found[0]


def public_modules() -> list[tuple[str, Path]]:
    return [(m, p) for m, p in modules().items()
            if not any(part.startswith("_") for part in p.relative_to(PACKAGE).with_suffix("").parts)]


@pytest.mark.parametrize("mod,path", public_modules(), ids=[m for m, _ in public_modules()])
def test_public_module_defines_all(mod, path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    assert "__all__" in names, f"{path.relative_to(ROOT)} ({mod}) has no __all__"
