"""``python -m coursekit``: the command line (:mod:`coursekit.cli`)."""

import sys

from coursekit.cli import main

if __name__ == "__main__":  # imported, as documentation tools do, it runs nothing
    sys.exit(main())
