"""The ``vq`` command: quantize images, batch-process folders, inspect files.

Same defaults as the desktop app (:data:`quantize.options.DEFAULTS`), a progress bar on
stderr fed by the fit's iteration records, ``--quiet`` and ``--json`` output modes, and
documented exit codes.  Errors are one line on stderr (``--debug`` adds the traceback).
One module per subcommand (:mod:`~quantize.cli.quantize_cmd`, :mod:`~quantize.cli.sweep`,
:mod:`~quantize.cli.batch`, :mod:`~quantize.cli.info`); what they share is in
:mod:`quantize.cli._common`.  Ctrl-C and SIGTERM stop every command with exit code 130 and
no partial file (:mod:`quantize.cli._interrupt`).

Examples::

    vq quantize                                   # the bundled sample -> sample-coffee-vq.png
    vq quantize photo.jpg -k 32 --dither fs -o photo-32.png --palette photo.gpl
    vq quantize photo.jpg --quality 35            # fewest colours with PSNR >= 35 dB
    vq quantize photo.jpg --method gmm -k auto    # Gaussian mixture, K by BIC
    vq quantize photo.jpg --max-size 300k         # the most colours whose PNG fits 300 kB
    vq sweep photo.jpg --ks 2-256 --plot k.png    # PNG size and quality for each K
    vq quantize scan.tif --masks masks/ --soft soft/ --report scan.json
    vq quantize photo.jpg --use-palette brand.gpl --dither ordered
    vq quantize plate1.png -k 5 --method gmm --smooth --min-region 64 --save-model stain.json
    vq apply stain.json plate*.png --masks masks/ -o out/   # same classes on every plate
    vq batch *.jpg -o out/ --jobs 2 --report
    vq info photo.jpg --json
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from quantize._blas import limit_blas_threads
from quantize.cli import apply_cmd, batch, info, quantize_cmd, sweep
from quantize.cli._common import EPILOG, EXIT_OTHER, EXIT_USAGE, classify
from quantize.cli._interrupt import sigterm_as_interrupt

__all__ = ["build_parser", "main"]

_COMMANDS = {
    "quantize": quantize_cmd,
    "sweep": sweep,
    "apply": apply_cmd,
    "batch": batch,
    "info": info,
}


def build_parser() -> argparse.ArgumentParser:
    """Build the ``vq`` argument parser.

    The choices and help of the options are read from the tables (methods, colour spaces,
    dithers, export kinds) now, so that what was registered before is offered.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    import quantize

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="vq",
        description="Colour vector quantization: K-means and Gaussian-mixture palettes, "
        "indexed PNGs, palettes, masks and soft maps.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"vq {quantize.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _COMMANDS.values():
        module.add_parser(sub, fmt)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vq`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    code : int
        Exit code (see ``vq --help``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE

    def err(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    limit_blas_threads()  # the engine's own two threads, not OpenBLAS's spinning ones

    try:
        with sigterm_as_interrupt():  # SIGTERM unwinds like Ctrl-C: exit 130, no partial file
            return _COMMANDS[args.command].run(args, err)
    except BrokenPipeError:  # e.g. `vq info *.png | head`: the reader went away
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_OTHER
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        code, message = classify(exc)
        if getattr(args, "debug", False):
            traceback.print_exc(file=sys.stderr)
        prefix = "vq: error: " if code in (EXIT_USAGE, EXIT_OTHER) else "vq: "
        hint = (
            "" if getattr(args, "debug", False) or code != EXIT_OTHER else " (--debug for details)"
        )
        err(f"{prefix}{message}{hint}")
        return code
