"""Regenerate environment.yml from requirements*.txt so the conda description never drifts.

    python scripts/sync_environment.py          # rewrite environment.yml
    python scripts/sync_environment.py --check  # exit 1 if it differs (the test suite does this)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pins(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def render() -> str:
    lines = [
        "# Generated from requirements.txt and requirements-nodeps.txt by scripts/sync_environment.py;",
        "# do not edit by hand. Conda users: `conda env create -f environment.yml`, then",
        "# `pip install --no-deps -r requirements-nodeps.txt && pip install --no-deps -e .`.",
        "name: polyrot",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
    ]
    lines += [f"      - {p}" for p in pins(ROOT / "requirements.txt")]
    return "\n".join(lines) + "\n"


def main() -> int:
    target = ROOT / "environment.yml"
    text = render()
    if "--check" in sys.argv:
        if not target.exists() or target.read_text() != text:
            print("environment.yml is out of date: run python scripts/sync_environment.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
