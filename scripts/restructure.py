#!/usr/bin/env python
"""Move the flat ``polyrot_utils/`` modules into layered subpackages (issue 12).

Run from the repository root (re-runnable; a second run changes nothing)::

    python scripts/restructure.py            # do it (git mv + rewrites), print a summary
    python scripts/restructure.py --check    # only report unmapped modules / what would move

Layers, lowest first; a module may import only from its own layer and the layers below
(``tests/test_layers.py`` enforces it)::

    core < sae < models < tasks (tasks.dyck | tasks.pythia, siblings) < experiments < book

What it does, in order:

1. preflight: every ``polyrot_utils/*.py`` must be in :data:`MAPPING` (else it stops, listing
   the unmapped modules, before changing anything);
2. rewrites every reference in the tracked text files (package, tests, notebooks, bench, scripts,
   Markdown, YAML): imports (AST-located, also function-level and relative ones, which become
   absolute), dotted ``polyrot_utils.x`` references in strings/docstrings/commands, and
   ``polyrot_utils/x.py`` paths;
3. ``git mv`` of each module to its new place; ``Path(__file__)...parent`` chains are deepened;
   writes each subpackage's ``__init__.py`` and ``book/__main__.py``;
4. moves the steering primitives (:data:`FUNCTION_MOVES`) to ``models/steering_hooks.py`` by AST
   (the old module imports them back, so ``experiments.steering.diff_of_means`` still works),
   removes the toy's ``__getattr__`` re-export of training names;
5. adds ``__all__`` to public modules that lack it; hoists function-level intra-package imports
   to the module top where no import cycle results (the rest get a ``# lazy:`` comment);
6. ``pyproject.toml``: ``[tool.setuptools.packages.find]``.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import textwrap
import sys
from pathlib import Path

PKG = "polyrot_utils"

# old flat module -> new dotted path under polyrot_utils
MAPPING: dict[str, str] = {
    # core: numerical building blocks, no model code
    "procrustes": "core.procrustes",
    "haar": "core.haar",
    "metrics": "core.metrics",
    "basis": "core.basis",
    "synthetic": "core.synthetic",
    "cache": "core.cache",
    "device": "core.device",
    # sae
    "sae": "sae.autoencoder",
    # models: transformer plumbing (hooks, loading, GPT-NeoX stand-ins, tokenizer, corpus)
    "activations": "models.activations",
    "loading": "models.loading",
    "neox": "models.neox",
    "tokenizer": "models.tokenizer",
    "corpus": "models.corpus",
    # tasks.dyck: the Dyck rung (language, the toy built for it, training, cohorts, bars)
    "dyck": "tasks.dyck.language",
    "models": "tasks.dyck.toy",  # imports dyck's vocabulary: it belongs to the Dyck task
    "training": "tasks.dyck.training",
    "cohorts": "tasks.dyck.cohorts",
    "dyck_suite": "tasks.dyck.suite",
    "bars": "tasks.dyck.bars",
    "dyck_paper": "tasks.dyck.paper_task",  # issue 11
    "ensemble": "tasks.dyck.ensemble",  # issue 11
    "convergence": "tasks.dyck.convergence",  # issue 11
    "cohort_training": "tasks.dyck.cohort_training",  # issue 11
    "reference_dyck": "tasks.dyck.reference",  # issue 11
    # tasks.pythia
    "pythia_suite": "tasks.pythia.suite",
    # experiments: the analyses
    "analysis": "experiments.analysis",
    "steering": "experiments.steering",
    "checkpoints": "experiments.checkpoints",
    "controls": "experiments.controls",  # issue 14
    # book tooling
    "book": "book.runner",
    "results": "book.results",
    "report": "book.report",
    "site_check": "book.site_check",
    "perf": "book.perf",
    "build_cache": "book.build_cache",
    "figures": "book.figures",  # issue 14
    "findings": "book.findings",  # the findings page: reads results via report
    "presentation": "book.presentation",  # issue 14
}

LAYERS = ["core", "sae", "models", "tasks", "experiments", "book"]

LAYER_DOCS = {
    "core": "Numerical building blocks: Procrustes/alignment solvers, the calibrated Haar test, "
    "metrics, bases, synthetic planted rotations, the artifact cache and device helpers.",
    "sae": "Sparse autoencoders: the model, trainers, rotation transfer and SAELens-format I/O.",
    "models": "Transformer plumbing: activation collection, model loading, GPT-NeoX stand-ins, "
    "the tokenizer and corpus, and steering hook primitives.",
    "tasks": "What is particular to each rung: ``tasks.dyck`` (language, toy model, training, "
    "cohorts, bars) and ``tasks.pythia`` (the seed suite). The two rungs do not import each other.",
    "tasks.dyck": "The Dyck rung: the language, the toy transformer built for it, training, cohorts, "
    "suites and the four bars.",
    "tasks.pythia": "The Pythia rung: the PolyPythia seed suite and its activations.",
    "experiments": "The analyses (universality, alignment, Haar tables, steering transfer, "
    "checkpoints, controls), over activations from either rung.",
    "book": "Book tooling: the chapter runner (``python -m polyrot_utils.book``), results, "
    "report, site check, performance and the incremental-build cache.",
}

# (old module, name) -> new dotted module for names that live elsewhere after the move
NAME_REDIRECTS: dict[str, dict[str, str]] = {
    "models": {n: "tasks.dyck.training" for n in
               ("ToyTrainConfig", "TrainedToy", "train_toy", "load_toy", "evaluate_toy")},
    "steering": {n: "models.steering_hooks" for n in
                 ("diff_of_means", "transfer_vector", "steering_hook", "run_with_steering")},
}

# new module -> (destination new module, public functions moved with their private helpers)
FUNCTION_MOVES = {
    "experiments.steering": ("models.steering_hooks",
                             ["diff_of_means", "transfer_vector", "steering_hook", "run_with_steering"]),
}
NEW_MODULE_DOCS = {
    "models.steering_hooks": "Steering primitives: diff-of-means directions, transfer through a rotation "
    "(``v @ R``, row-vector convention ``x_src @ R ≈ x_tgt``) and TransformerLens hooks that add "
    "``alpha * v`` at one site.",
}

TEXT_SUFFIXES = {".py", ".md", ".sh", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".ini", ".json", ""}
SKIP_FILES = {"scripts/restructure.py", "tests/test_layers.py", "book/architecture.md"}
MAX_LINE = 100


class Stop(SystemExit):
    pass


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


# ---------------------------------------------------------------------------------------------
# name resolution
# ---------------------------------------------------------------------------------------------

def new_packages() -> set[str]:
    out = set()
    for new in list(MAPPING.values()) + [v[0] for v in FUNCTION_MOVES.values()]:
        parts = new.split(".")
        for i in range(1, len(parts)):
            out.add(".".join(parts[:i]))
    return out


PACKAGES = new_packages()
NEW_MODULES = set(MAPPING.values()) | {v[0] for v in FUNCTION_MOVES.values()} | PACKAGES
AMBIGUOUS = {old for old in MAPPING if old in PACKAGES}  # e.g. sae, models, book


def is_submodule(pkg: str, name: str) -> bool:
    return f"{pkg}.{name}" in NEW_MODULES


def resolve_dotted(parts: list[str], pending: set[str], bare_ok: bool) -> list[str] | None:
    """New components for ``polyrot_utils.<parts>`` or None when unchanged."""
    if not parts:
        return None
    head = parts[0]
    if head not in MAPPING:
        return None
    if head in AMBIGUOUS:
        if len(parts) == 1:
            if not (bare_ok and head in pending):
                return None
        elif is_submodule(head, parts[1]):
            return None
    new = MAPPING[head].split(".")
    rest = parts[1:]
    if rest and rest[0] in NAME_REDIRECTS.get(head, {}) and head == "models":
        new = NAME_REDIRECTS[head][rest[0]].split(".")
    return new + rest


# ---------------------------------------------------------------------------------------------
# rewriting one file
# ---------------------------------------------------------------------------------------------

def module_package(rel: str) -> list[str]:
    """Package components of a file path inside polyrot_utils (for relative imports)."""
    p = Path(rel)
    parts = list(p.with_suffix("").parts)
    if parts[-1] == "__init__":
        return parts[:-1]
    return parts[:-1]


def fmt_from(indent: str, module: str, names: list[str]) -> str:
    line = f"{indent}from {module} import {', '.join(names)}"
    if len(line) <= MAX_LINE:
        return line
    inner = "".join(f"{indent}    {n},\n" for n in names)
    return f"{indent}from {module} import (\n{inner}{indent})"


def alias_text(a: ast.alias) -> str:
    return a.name + (f" as {a.asname}" if a.asname else "")


def rewrite_import(node: ast.stmt, rel: str, pending: set[str], indent: str) -> str | None:
    if isinstance(node, ast.Import):
        changed = False
        out = []
        for a in node.names:
            parts = a.name.split(".")
            if parts[0] == PKG and len(parts) > 1:
                new = resolve_dotted(parts[1:], pending, bare_ok=True)
                if new:
                    changed = True
                    out.append(ast.alias(name=".".join([PKG] + new), asname=a.asname))
                    continue
            out.append(a)
        if not changed:
            return None
        return "\n".join(f"{indent}import {alias_text(a)}" for a in out)

    assert isinstance(node, ast.ImportFrom)
    relative = node.level > 0
    if relative:
        if not rel.startswith(PKG + "/"):
            return None
        base = module_package(rel)
        if node.level > 1:
            base = base[: len(base) - (node.level - 1)]
        mod = base + (node.module.split(".") if node.module else [])
    else:
        if not node.module:
            return None
        mod = node.module.split(".")
    if mod[0] != PKG:
        return None
    sub = mod[1:]
    groups: dict[str, list[str]] = {}

    def add(module: str, text: str) -> None:
        groups.setdefault(module, []).append(text)

    changed = relative
    if not sub:  # from polyrot_utils import a, b
        for a in node.names:
            bound = a.asname or a.name
            new = resolve_dotted([a.name], pending, bare_ok=True)
            if new:
                changed = True
                parent, leaf = ".".join([PKG] + new[:-1]), new[-1]
                add(parent, leaf if leaf == bound else f"{leaf} as {bound}")
            else:
                add(PKG, alias_text(a))
    else:
        head = sub[0]
        if head in AMBIGUOUS and len(sub) == 1:
            if all(is_submodule(head, a.name) for a in node.names):
                new_mod = sub
            else:  # names of the old flat module (e.g. polyrot_utils.models.build_toy)
                new_mod = MAPPING[head].split(".")
        else:
            new_mod = resolve_dotted(sub, pending, bare_ok=True) or sub
        if new_mod != sub:
            changed = True
        redirects = NAME_REDIRECTS.get(head, {}) if len(sub) == 1 and head in MAPPING else {}
        for a in node.names:
            if a.name in redirects:
                changed = True
                add(".".join([PKG] + redirects[a.name].split(".")), alias_text(a))
            else:
                add(".".join([PKG] + new_mod), alias_text(a))
    if not changed:
        return None
    return "\n".join(fmt_from(indent, m, names) for m, names in groups.items())


DOTTED = re.compile(r"(?<![\w.])" + PKG + r"((?:\.[A-Za-z_]\w*)+)")
SLASHED = re.compile(r"(?<![\w.])" + PKG + r"/(\w+)\.py\b")


def rewrite_text(text: str, pending: set[str]) -> str:
    def dotted(m: re.Match) -> str:
        parts = m.group(1)[1:].split(".")
        new = resolve_dotted(parts, pending, bare_ok=False)
        return m.group(0) if not new else PKG + "." + ".".join(new)

    def slashed(m: re.Match) -> str:
        old = m.group(1)
        if old not in MAPPING or (old in AMBIGUOUS and old not in pending):
            return m.group(0)
        return PKG + "/" + MAPPING[old].replace(".", "/") + ".py"

    text = DOTTED.sub(dotted, text)
    return SLASHED.sub(slashed, text)


def line_offsets(text: str) -> list[int]:
    offs = [0]
    for line in text.splitlines(keepends=True):
        offs.append(offs[-1] + len(line))
    return offs


def rewrite_python(text: str, rel: str, pending: set[str]) -> str:
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise Stop(f"cannot parse {rel}: {e}")
    offs = line_offsets(text)
    edits = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            line = text[offs[node.lineno - 1]: offs[node.lineno]]
            indent = line[: node.col_offset]
            if indent.strip():  # e.g. "import x; import y" on one line: leave it
                continue
            new = rewrite_import(node, rel, pending, "")
            if new is not None:
                new = _reindent(new, indent)
                start = offs[node.lineno - 1] + node.col_offset
                end = offs[node.end_lineno - 1] + node.end_col_offset
                edits.append((start, end, new))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return rewrite_text(text, pending)


def _reindent(block: str, indent: str) -> str:
    lines = block.split("\n")
    return "\n".join(lines[:1] + [indent + ln if ln else ln for ln in lines[1:]])


# ---------------------------------------------------------------------------------------------
# moves and new files
# ---------------------------------------------------------------------------------------------

def new_path(new: str) -> Path:
    return Path(PKG, *new.split(".")).with_suffix(".py")


FILE_CHAIN = re.compile(r"Path\(__file__\)\.resolve\(\)((?:\.parent)+)(?![\w\[])")


def deepen_file_chains(text: str, extra: int) -> str:
    def sub(m: re.Match) -> str:
        n = m.group(1).count(".parent")
        return f"Path(__file__).resolve().parents[{n - 1 + extra}]"

    return FILE_CHAIN.sub(sub, text)


def init_text(pkg: str, children: list[str]) -> str:
    layer = pkg.split(".")[0]
    below = LAYERS[: LAYERS.index(layer)]
    rule = ("imports nothing else from polyrot_utils" if not below else
            "may import from its own layer and " + ", ".join(below))
    if pkg.startswith("tasks."):
        rule += " (not from the sibling rung)"
    doc = LAYER_DOCS.get(pkg, f"The ``{pkg}`` layer.")
    return (wrap_doc(f"{doc}\n\nImport rule: this layer {rule}; ``tests/test_layers.py`` checks it.")
            + "\n\n" + fmt_all(sorted(children)))


def wrap_doc(doc: str) -> str:
    paras = [textwrap.fill(p, MAX_LINE - 4) for p in doc.split("\n\n")]
    return '"""' + "\n\n".join(paras) + '\n"""\n'


def fmt_all(names: list[str]) -> str:
    one = "__all__ = [" + ", ".join(f'"{n}"' for n in names) + "]\n"
    if len(one) <= MAX_LINE:
        return one
    return "__all__ = [\n" + "".join(f'    "{n}",\n' for n in names) + "]\n"


def tidy_top_imports(path: Path) -> bool:
    """Merge and sort the module's leading ``from polyrot_utils… import …`` lines (one block)."""
    text = path.read_text()
    tree = ast.parse(text)
    offs = line_offsets(text)
    lead = []
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant):
            continue
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            break
        lead.append(node)
    ours = [n for n in lead if isinstance(n, ast.ImportFrom) and not n.level and (n.module or "").startswith(PKG)]
    if not ours:
        return False
    if any(text[offs[n.lineno - 1]: offs[n.end_lineno]].count("#") for n in ours):
        return False  # comments: leave the block as written
    merged: dict[str, list[str]] = {}
    for n in ours:
        for a in n.names:
            s = alias_text(a)
            if s not in merged.setdefault(n.module, []):
                merged[n.module].append(s)
    block = "\n".join(fmt_from("", m, sorted(v, key=str.lower)) for m, v in sorted(merged.items())) + "\n"
    spans = sorted((offs[n.lineno - 1], offs[n.end_lineno]) for n in ours)
    new = text
    for s, e in reversed(spans):
        new = new[:s] + new[e:]
    first = spans[0][0]
    before = new[:first].rstrip("\n")
    after = new[first:].lstrip("\n")
    new = before + "\n\n" + block + ("\n" if not after.startswith(("import ", "from ")) else "") + (
        "\n" if after and not after.startswith(("import ", "from ")) and not after.startswith("#") else "") + after
    new = re.sub(r"\n{4,}", "\n\n\n", new)
    if new != text:
        ast.parse(new)
        path.write_text(new)
        return True
    return False


# ---------------------------------------------------------------------------------------------
# AST helpers for module bodies
# ---------------------------------------------------------------------------------------------

def top_defs(tree: ast.Module) -> dict[str, ast.stmt]:
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


def node_span(node: ast.stmt, offs: list[int]) -> tuple[int, int]:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return offs[first - 1], offs[node.end_lineno]


def used_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.value.id for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}


def import_insert_offset(text: str, tree: ast.Module) -> int:
    """Offset just after the module's leading docstring/import block."""
    offs = line_offsets(text)
    pos = 0
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant) \
                and isinstance(node.value.value, str):
            pos = offs[node.end_lineno]
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            pos = offs[node.end_lineno]
            continue
        break
    return pos


def move_functions(src_new: str, dst_new: str, names: list[str], log: list[str]) -> None:
    src = new_path(src_new)
    dst = new_path(dst_new)
    text = src.read_text()
    tree = ast.parse(text)
    defs = top_defs(tree)
    present = [n for n in names if n in defs]
    if not present:
        return
    missing = [n for n in names if n not in defs]
    if missing and not dst.exists():
        raise Stop(f"{src}: functions to move not found: {missing}")
    # closure over private helpers
    move = list(present)
    i = 0
    while i < len(move):
        for name in sorted(used_names(defs[move[i]])):
            if name in defs and name not in move and name.startswith("_") and name != "__all__":
                move.append(name)
            elif name in defs and name not in move and not name.startswith("_") \
                    and isinstance(defs[name], (ast.FunctionDef, ast.ClassDef)):
                raise Stop(f"{src}: {move[i]} uses public {name}, which is not in the move list")
        i += 1
    nodes = sorted({id(defs[n]): defs[n] for n in move}.values(), key=lambda n: n.lineno)
    offs = line_offsets(text)
    used = set().union(*(used_names(n) for n in nodes))
    import_lines = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            import_lines.append(ast.get_source_segment(text, node))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(PKG)):
                continue
            keep = [a for a in node.names if (a.asname or a.name.split(".")[0]) in used]
            if keep:
                if isinstance(node, ast.Import):
                    import_lines += [f"import {alias_text(a)}" for a in keep]
                else:
                    import_lines.append(fmt_from("", node.module, [alias_text(a) for a in keep]))
    public = [n for n in move if not n.startswith("_")]
    doc = NEW_MODULE_DOCS.get(dst_new, "Moved from " + src_new + ".")
    future = [ln for ln in import_lines if "__future__" in ln]
    others = [ln for ln in import_lines if "__future__" not in ln]
    parts = [wrap_doc(doc) + "\n", "\n".join(future) + "\n\n" + "\n".join(others) + "\n",
             fmt_all(public)]
    parts += [text[slice(*node_span(n, offs))].rstrip("\n") + "\n" for n in nodes]
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n\n".join(p.rstrip("\n") + "\n" for p in parts).replace("\n\n\n\n", "\n\n\n"))
    # remove from the source (from the end), import them back
    for n in sorted(nodes, key=lambda n: n.lineno, reverse=True):
        s, e = node_span(n, offs)
        text = text[:s] + text[e:]
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    tree = ast.parse(text)
    pos = import_insert_offset(text, tree)
    imp = fmt_from("", f"{PKG}.{dst_new}", move) + "\n"
    text = text[:pos] + imp + text[pos:]
    src.write_text(text)
    run(["git", "add", str(dst)])
    log.append(f"moved {', '.join(move)}: {src_new} -> {dst_new} (re-imported in {src_new})")


def remove_getattr_reexport(new_mod: str, log: list[str]) -> None:
    path = new_path(new_mod)
    if not path.exists():
        return
    text = path.read_text()
    tree = ast.parse(text)
    node = top_defs(tree).get("__getattr__")
    if node is None or "training" not in ast.get_source_segment(text, node):
        return
    offs = line_offsets(text)
    s, e = node_span(node, offs)
    # drop the comment banner right above it
    lines = text[:s].split("\n")
    while len(lines) > 1 and (lines[-2].startswith("#") or (lines[-2] == "" and lines[-3:-2]
                                                               and lines[-3].startswith("#"))):
        lines.pop(-2)
    text = "\n".join(lines) + text[e:]
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    path.write_text(text)
    log.append(f"removed {new_mod}.__getattr__ (training re-export; users now import training)")


def public_names(tree: ast.Module) -> list[str]:
    names = []
    for name, node in top_defs(tree).items():
        if name.startswith("_"):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or name.isupper():
            names.append(name)
    return sorted(set(names))


def has_all(tree: ast.Module) -> bool:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def add_all(path: Path, log: list[str]) -> None:
    text = path.read_text()
    tree = ast.parse(text)
    if has_all(tree) or path.name == "__main__.py":
        return
    names = public_names(tree)
    body = fmt_all(names)
    pos = import_insert_offset(text, tree)
    text = text[:pos] + "\n" + body + text[pos:]
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    path.write_text(text)
    log.append(f"__all__ added to {path} ({len(names)} names)")


# ---------------------------------------------------------------------------------------------
# hoisting function-level imports
# ---------------------------------------------------------------------------------------------

def layer_of(mod: str) -> int:
    return LAYERS.index(mod.split(".")[1]) if mod.count(".") >= 1 and mod.split(".")[1] in LAYERS else -1


def module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def target_modules(node: ast.ImportFrom, modules: set[str]) -> list[str]:
    if node.level or not node.module or not node.module.startswith(PKG):
        return []
    subs = [f"{node.module}.{a.name}" for a in node.names]
    if all(s in modules for s in subs):
        return subs
    return [node.module] if node.module in modules else []


def top_level_graph(files: dict[str, Path], modules: set[str]) -> dict[str, set[str]]:
    g: dict[str, set[str]] = {m: set() for m in files}
    for m, p in files.items():
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PKG):
                    for a in node.names:
                        full = f"{node.module}.{a.name}"
                        g[m].add(full if full in modules else node.module)
    return g


def reaches(g: dict[str, set[str]], a: str, b: str) -> bool:
    seen, stack = set(), [a]
    while stack:
        x = stack.pop()
        if x == b:
            return True
        if x in seen:
            continue
        seen.add(x)
        stack += [y for y in g.get(x, ()) if y in g]
    return False


def hoist_imports(log: list[str]) -> None:
    files = {module_name(p): p for p in Path(PKG).rglob("*.py") if "__pycache__" not in p.parts}
    modules = set(files)
    graph = top_level_graph(files, modules)
    hoisted = lazy = 0
    for mod, path in sorted(files.items()):
        text = path.read_text()
        tree = ast.parse(text)
        top_bound = {}
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    top_bound[a.asname or a.name.split(".")[0]] = ast.dump(node)
        defs = top_defs(tree)
        offs = line_offsets(text)
        removals, additions, comments = [], [], []
        hoisted_names: dict[str, str] = {}
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for stmt in fn.body:
                if not isinstance(stmt, ast.ImportFrom) or not stmt.module or not stmt.module.startswith(PKG):
                    continue
                tgts = target_modules(stmt, modules)
                if not tgts:
                    continue
                line = text[offs[stmt.lineno - 1]: offs[stmt.lineno]]
                names = [a.asname or a.name for a in stmt.names]
                conflict = [n for n in names if n in defs or (n in top_bound and top_bound[n] != ast.dump(
                    ast.ImportFrom(module=stmt.module, names=[a for a in stmt.names if (a.asname or a.name) == n],
                                   level=0)))]
                seg = ast.get_source_segment(text, stmt)
                conflict += [n for n in names if n in hoisted_names and hoisted_names[n] != seg]
                if len(fn.body) == 1 or conflict:
                    continue
                bad = [g for g in tgts if g == mod or reaches(graph, g, mod) or layer_of(g) > layer_of(mod)]
                if bad:
                    if "# lazy" not in line:
                        g = bad[0]
                        why = ("an import cycle" if g != mod and reaches(graph, g, mod)
                               else "an upward import (tests/test_layers.py flags it)")
                        comments.append((offs[stmt.lineno] - 1, f"  # lazy: at the top it would be {why}"))
                        lazy += 1
                    continue
                graph[mod].update(tgts)
                for n in names:
                    hoisted_names[n] = seg
                removals.append((offs[stmt.lineno - 1], offs[stmt.end_lineno]))
                additions.append(ast.get_source_segment(text, stmt).replace("\n" + " " * stmt.col_offset, "\n"))
                hoisted += 1
        if not (removals or comments):
            continue
        edits = [(s, e, "") for s, e in removals] + [(p, p, c) for p, c in comments]
        for s, e, new in sorted(edits, reverse=True):
            text = text[:s] + new + text[e:]
        # collapse blank line left right after a def's docstring? keep as is; add imports at the top
        if additions:
            tree = ast.parse(text)
            existing = {ast.get_source_segment(text, n) for n in tree.body
                        if isinstance(n, (ast.Import, ast.ImportFrom))}
            new_lines = []
            for a in additions:
                if a not in existing and a not in new_lines:
                    new_lines.append(a)
            pos = import_insert_offset(text, tree)
            block = "\n".join(new_lines) + "\n"
            if pos and not text[:pos].rstrip("\n").split("\n")[-1].startswith(("from ", "import ", ")", " ")):
                block = "\n" + block
            text = text[:pos] + block + text[pos:]
        ast.parse(text)
        path.write_text(text)
    log.append(f"function-level intra-package imports: {hoisted} hoisted to the top, {lazy} left lazy (commented)")


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

def tracked_text_files() -> list[Path]:
    out = []
    for rel in run(["git", "ls-files"]).splitlines():
        p = Path(rel)
        if rel in SKIP_FILES or not p.is_file() or p.suffix not in TEXT_SUFFIXES:
            continue
        if p.parts[0] in {".venv", "_build"} or (p.suffix == "" and p.name not in {"Makefile"}):
            continue
        out.append(p)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only report what would move; change nothing")
    args = ap.parse_args()
    if not Path(PKG, "__init__.py").is_file() or not Path(".git").exists():
        raise Stop("run from the repository root (polyrot_utils/ and .git/ expected here)")

    flat = sorted(p.stem for p in Path(PKG).glob("*.py") if p.stem != "__init__")
    unmapped = [m for m in flat if m not in MAPPING]
    if unmapped:
        raise Stop("unmapped modules (add them to MAPPING in scripts/restructure.py; nothing changed):\n  "
                   + "\n  ".join(f"polyrot_utils/{m}.py" for m in unmapped))
    pending = set(flat)
    clash = [m for m in pending if new_path(MAPPING[m]).exists()]
    if clash:
        raise Stop(f"destination exists for {clash}; nothing changed")
    print(f"{len(pending)} flat modules to move: {', '.join(sorted(pending)) or '(none)'}")
    if args.check:
        for m in sorted(pending):
            print(f"  {m:16s} -> {PKG}.{MAPPING[m]}")
        return 0

    log: list[str] = []
    # 1. rewrite references (relative imports resolved from the current, flat locations)
    changed_files = 0
    for p in tracked_text_files():
        rel = p.as_posix()
        try:
            text = p.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite_python(text, rel, pending) if p.suffix == ".py" else rewrite_text(text, pending)
        if new != text:
            p.write_text(new)
            changed_files += 1
    log.append(f"references rewritten in {changed_files} files")

    # 2. git mv + deepen Path(__file__) chains
    for m in sorted(pending):
        dst = new_path(MAPPING[m])
        dst.parent.mkdir(parents=True, exist_ok=True)
        run(["git", "mv", f"{PKG}/{m}.py", str(dst)])
        extra = len(dst.parts) - 2
        t = dst.read_text()
        t2 = deepen_file_chains(t, extra)
        if t2 != t:
            dst.write_text(t2)
            log.append(f"{dst}: Path(__file__) chain deepened by {extra}")
    if pending:
        log.append(f"git mv: {len(pending)} modules")

    # 3. function moves, re-export removal
    for src_new, (dst_new, names) in FUNCTION_MOVES.items():
        if new_path(src_new).exists():
            move_functions(src_new, dst_new, names, log)
    remove_getattr_reexport(MAPPING["models"], log)

    # 4. __init__.py files and book/__main__.py
    for pkg in sorted(PACKAGES):
        d = Path(PKG, *pkg.split("."))
        if not d.is_dir():
            continue
        children = sorted({p.stem for p in d.glob("*.py") if p.stem not in ("__init__", "__main__")}
                          | {p.name for p in d.iterdir() if p.is_dir() and f"{pkg}.{p.name}" in PACKAGES})
        init = d / "__init__.py"
        text = init_text(pkg, children)
        if not init.exists() or init.read_text() != text:
            init.write_text(text)
            run(["git", "add", str(init)])
            log.append(f"wrote {init}")
    main_py = Path(PKG, "book", "__main__.py")
    if Path(PKG, "book", "runner.py").exists() and not main_py.exists():
        main_py.write_text('"""``python -m polyrot_utils.book …``: the chapter runner '
                           '(:mod:`polyrot_utils.book.runner`)."""\n\nimport sys\n\n'
                           "from polyrot_utils.book.runner import main\n\n"
                           'if __name__ == "__main__":\n    sys.exit(main())\n')
        run(["git", "add", str(main_py)])
        log.append(f"wrote {main_py}")

    # 5. __all__ and hoisting
    for p in sorted(Path(PKG).rglob("*.py")):
        if "__pycache__" not in p.parts and p.name != "__init__.py":
            add_all(p, log)
    hoist_imports(log)
    tidied = [p for p in sorted(Path(PKG).rglob("*.py")) if "__pycache__" not in p.parts and tidy_top_imports(p)]
    if tidied:
        log.append(f"merged and sorted the top polyrot_utils imports of {len(tidied)} modules")

    # 6. pyproject
    pp = Path("pyproject.toml")
    t = pp.read_text()
    t2 = re.sub(r'\[tool\.setuptools\]\npackages = \["polyrot_utils"\]\n',
                '[tool.setuptools.packages.find]\ninclude = ["polyrot_utils*"]\n', t)
    if t2 != t:
        pp.write_text(t2)
        log.append("pyproject.toml: [tool.setuptools.packages.find] include polyrot_utils*")

    run(["git", "add", "-A", PKG])
    print("\n".join(log) if log else "nothing to do")
    print("done; next: python -m pytest tests/test_layers.py -q")
    return 0


if __name__ == "__main__":
    sys.exit(main())
