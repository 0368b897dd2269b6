"""Progress of long computations, for the book's build log — never into a page.

A chapter that runs for more than a few seconds says which step it is on (which seed is training,
which SAE, which site) through :func:`report`. The book's runner sets :data:`PROGRESS_ENV` to a
file for each chapter it executes and prints every new line of that file in its own log while
the chapter runs; outside the runner (a test, a researcher's own kernel) :func:`report` does
nothing, so pages and notebook outputs never carry these lines.

>>> report("training seed 3 of 5")  # no runner: a no-op
"""

from __future__ import annotations

import os
import time

__all__ = ["PROGRESS_ENV", "report"]

#: the environment variable naming the progress file of the chapter being executed
PROGRESS_ENV = "POLYROT_PROGRESS"


def report(message: str) -> None:
    """Append ``message`` (one line) to the runner's progress file, if there is one."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    line = " ".join(str(message).split())
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{time.time():.3f}\t{line}\n")
    except OSError:  # a progress line is never worth failing a computation for
        pass
