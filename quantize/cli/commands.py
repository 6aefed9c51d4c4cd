"""Former home of the ``vq`` command, kept for old imports (``tools/fingerprint.py``).

The command now lives in the :mod:`quantize.cli` package: use ``quantize.cli.main``.
"""

from __future__ import annotations

from quantize.cli import build_parser, main
from quantize.cli._common import (
    EPILOG,
    EXIT_CANCELLED,
    EXIT_EXISTS,
    EXIT_INPUT,
    EXIT_LARGER,
    EXIT_OK,
    EXIT_OTHER,
    EXIT_QUALITY,
    EXIT_USAGE,
)

__all__ = [
    "EPILOG",
    "EXIT_CANCELLED",
    "EXIT_EXISTS",
    "EXIT_INPUT",
    "EXIT_LARGER",
    "EXIT_OK",
    "EXIT_OTHER",
    "EXIT_QUALITY",
    "EXIT_USAGE",
    "build_parser",
    "main",
]
