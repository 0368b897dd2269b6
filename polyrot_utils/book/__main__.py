"""``python -m polyrot_utils.book …``: the chapter runner (:mod:`polyrot_utils.book.runner`)."""

import sys

from polyrot_utils.book.runner import main

if __name__ == "__main__":
    sys.exit(main())
