"""``vq info``: describe image files (format, size, mode, bit depth, colours)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from quantize.cli._common import (
    EPILOG,
    EXIT_INPUT,
    EXIT_OK,
    Err,
    UsageError,
    add_output_mode,
    native_stderr_muted,
    positive_int,
)
from quantize.options import DEFAULTS

__all__ = ["add_parser", "run"]

#: how standard input (``-``) is named in messages and output
STDIN = "<stdin>"


def add_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """Add the ``info`` subcommand.

    Parameters
    ----------
    sub : argparse subparsers action
    formatter : type
        Help formatter class of the ``vq`` parsers.
    """
    i = sub.add_parser(
        "info", help="describe image files", epilog=EPILOG, formatter_class=formatter
    )
    i.add_argument(
        "images", nargs="+", metavar="IMAGE", help="image files; '-' reads standard input"
    )
    i.add_argument("--max-pixels", type=positive_int, default=DEFAULTS["max_pixels"])
    add_output_mode(i)


def run(args: argparse.Namespace, err: Err) -> int:
    """Run ``vq info``.

    Parameters
    ----------
    args : argparse.Namespace
    err : callable
        Prints a line on stderr.

    Returns
    -------
    code : int
        3 if a file could not be read, else 0.  Unreadable files are reported on stderr
        even with ``--quiet`` (which silences the descriptions).

    Raises
    ------
    UsageError
        Standard input (``-``) named more than once.
    """
    from quantize.cli._run import read_stdin
    from quantize.io.load import LoadError, load_image, load_image_bytes
    from quantize.metrics import unique_color_count

    if args.images.count("-") > 1:
        raise UsageError("standard input ('-') can be read only once")
    docs: list[dict[str, Any]] = []
    failures: list[str] = []
    for text in args.images:
        from_stdin = text == "-"
        if from_stdin:
            text = STDIN
        try:
            data = read_stdin(args.max_pixels) if from_stdin else None
            with native_stderr_muted(not args.debug):  # the LoadError says what is wrong
                if data is not None:
                    img = load_image_bytes(data, name=STDIN, max_pixels=args.max_pixels)
                else:
                    img = load_image(text, max_pixels=args.max_pixels)
        except LoadError as exc:
            failures.append(str(exc))
            err(f"vq: {exc}")
            docs.append({"path": text, "error": exc.problem})
            continue
        opaque = img.pixels[:, :, 3] > 0 if img.has_alpha else None
        docs.append(
            {
                "path": text,
                "format": img.format,
                "width": img.width,
                "height": img.height,
                "mode": img.mode,
                "bit_depth": img.bit_depth,
                "frames": img.n_frames,
                "alpha": img.has_alpha,
                "unique_colors": unique_color_count(img.pixels, opaque),
                "file_size": img.file_size,
                "icc_profile": img.info.get("icc_profile"),
                "converted_to_srgb": bool(img.info.get("icc_converted", False)),
                "notes": img.info.get("notes", []) + img.info.get("warnings", []),
            }
        )
    if args.json:
        print(json.dumps(docs if len(docs) > 1 else docs[0], indent=2, allow_nan=False))
    elif not args.quiet:
        for d in docs:
            if "error" in d:
                continue
            alpha = ", alpha" if d["alpha"] else ""
            frames = f", {d['frames']} frames" if d["frames"] > 1 else ""
            print(
                f"{d['path']}: {d['format']} {d['width']}x{d['height']}, mode {d['mode']}, "
                f"{d['bit_depth']}-bit{alpha}{frames}, {d['unique_colors']:,} unique colours, "
                f"{d['file_size']:,} bytes"
            )
            for note in d["notes"]:
                print(f"  note: {note}")
    return EXIT_INPUT if failures else EXIT_OK
