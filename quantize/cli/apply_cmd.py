"""``vq apply``: label images with a saved colour model, without refitting."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from quantize.cli._common import (
    EPILOG,
    EXIT_CANCELLED,
    EXIT_OK,
    Err,
    UsageError,
    add_output_mode,
    add_segmentation_outputs,
    add_smoothing_options,
    classify,
    positive_int,
    progress_mode,
    written_words,
)
from quantize.options import DEFAULTS

__all__ = ["add_parser", "run"]


def add_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """Add the ``apply`` subcommand.

    Parameters
    ----------
    sub : argparse subparsers action
    formatter : type
        Help formatter class of the ``vq`` parsers.
    """
    a = sub.add_parser(
        "apply",
        help="label images with a saved colour model (no refit)",
        epilog=EPILOG,
        formatter_class=formatter,
        description="Label each IMAGE with the colour model MODEL written by "
        "`vq quantize --save-model` (or the app), so that class k is the same colour class "
        "on every image.  The model's smoothing settings apply unless --smooth or "
        "--min-region says otherwise.  With several images, -o, --stats, --overlay and "
        "--outlines name folders (<image name>-vq.png, <image name>.stats.csv, "
        "<image name>.overlay.png, <image name>.outlines.svg).",
    )
    a.add_argument("model", metavar="MODEL", help="colour model file (.json)")
    a.add_argument("images", nargs="+", metavar="IMAGE", help="input images")
    o = a.add_argument_group("outputs (nothing is overwritten without --force)")
    o.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="OUT",
        help="indexed PNG (one image) or folder (default: ./<image name>-vq.png)",
    )
    o.add_argument("--masks", default=None, metavar="DIR", help="label map and masks into DIR")
    o.add_argument("--soft", default=None, metavar="DIR", help="soft maps and .npz into DIR")
    add_segmentation_outputs(o)  # --stats, --overlay, --overlay-opacity, --outlines
    o.add_argument("--no-image", action="store_true", help="do not write the indexed PNG")
    o.add_argument("-f", "--force", action="store_true", help="overwrite existing files")
    add_smoothing_options(a, model=True)
    a.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULTS["max_pixels"],
        help="refuse larger images (default %(default)s)",
    )
    add_output_mode(a)
    # what vq quantize's writer reads and vq apply does not offer
    a.set_defaults(
        palette=[],
        report=None,
        save_model=None,
        dither="none",
        strength=1.0,
        skip_if_larger=False,
    )


def run(args: argparse.Namespace, err: Err) -> int:
    """Run ``vq apply``.

    Parameters
    ----------
    args : argparse.Namespace
    err : callable
        Prints a line on stderr.

    Returns
    -------
    code : int
        0 when every image was labelled, else the code of the (last) failure.
    """
    from quantize.cli._run import quantize_one
    from quantize.cli.quantize_cmd import print_summary
    from quantize.io.model_file import load_model

    args.model = load_model(args.model)  # ModelError (exit 3) before any image is read
    images = [Path(p) for p in args.images]
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        twice = next(s for s in stems if stems.count(s) > 1)
        raise UsageError(f"two inputs are named {twice!r}: their outputs would collide")
    if len(images) > 1:  # one file per image: these options name folders
        for flag, value in (
            ("-o", args.output),
            ("--stats", args.stats),
            ("--overlay", args.overlay),
            ("--outlines", args.outlines),
        ):
            if not value:
                continue
            folder = Path(value)
            if folder.exists() and not folder.is_dir():
                raise UsageError(f"{flag} {folder}: with several images, {flag} names a folder")
            folder.mkdir(parents=True, exist_ok=True)
    warn = (lambda msg: None) if args.quiet else (lambda msg: err(f"vq: warning: {msg}"))
    written: list[Path] = []
    summaries: list[dict[str, Any]] = []
    code = EXIT_OK
    for path in images:
        try:
            summaries.append(
                quantize_one(
                    path, args, show_progress=progress_mode(args), warn=warn, written=written
                )
            )
        except KeyboardInterrupt:
            err(f"vq: interrupted - {written_words(written)}")
            return EXIT_CANCELLED
        except Exception as exc:  # one bad image does not stop the others
            code, message = classify(exc)
            err(f"vq: {message}")
    if args.json:
        doc: Any = summaries if len(images) > 1 else (summaries[0] if summaries else None)
        print(json.dumps(doc, indent=2, allow_nan=False))
    elif not args.quiet:
        for s in summaries:
            print_summary(s)
    return code
