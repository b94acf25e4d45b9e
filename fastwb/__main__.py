"""``python -m fastwb``: the ``fastwb`` command."""
import sys

from fastwb.cli import main

if __name__ == "__main__":
    sys.exit(main())
