"""The ``vq`` command line: :func:`main` and its argument parser."""

from quantize.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
