"""``python -m quantize``: the ``vq`` command line."""

import sys

from quantize.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
