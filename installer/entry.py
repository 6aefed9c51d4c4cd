"""Entry point frozen by PyInstaller: the VQ Studio desktop app (``vq-studio``)."""

import sys

from app.__main__ import main

if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # the Batch window's Dask workers are this executable
    sys.exit(main())
