"""``python -m quantize``: the ``vq`` command line."""

import sys

from quantize.cli import main

if __name__ == "__main__":
    sys.exit(main())
