"""``vq quantize``: quantize one image and write the chosen outputs."""

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
    add_fit_options,
    add_output_mode,
    add_segmentation_outputs,
    add_write_options,
    fmt_float,
    methods_epilog,
    progress_mode,
    written_words,
)
from quantize.cli._run import check_combination, quantize_one

__all__ = ["add_parser", "method_words", "print_summary", "run"]

#: ``QuantizeResult.method`` of :func:`quantize.pipeline.map_to_palette` (no fit)
GIVEN_PALETTE = "palette"


def add_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """Add the ``quantize`` subcommand.

    Parameters
    ----------
    sub : argparse subparsers action
    formatter : type
        Help formatter class of the ``vq`` parsers.
    """
    from quantize.io.export import KINDS

    q = sub.add_parser(
        "quantize",
        help="quantize one image",
        epilog=methods_epilog() + EPILOG,
        formatter_class=formatter,
        description="Quantize IMAGE (default: the bundled sample photo).",
    )
    q.add_argument(
        "image",
        nargs="?",
        default=None,
        metavar="IMAGE",
        help="input image (PNG, JPEG, TIFF, WebP, BMP, GIF, PPM); '-' reads standard input",
    )
    add_fit_options(q)
    q.add_argument(
        "--importance",
        default=None,
        metavar="MAP.png",
        help="grey image of IMAGE's size: how much each pixel counts in the fit "
        "(0 = ignore ... 255 = most important)",
    )
    o = q.add_argument_group("outputs (nothing is overwritten without --force)")
    o.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="OUT.png",
        help="indexed PNG (default: ./<image name>-vq.png)",
    )
    palettes = [k.short_label.replace("%", "%%") for k in KINDS.values() if k.palette]
    listed = " ".join(palettes[:-1]) + " or " + palettes[-1] if len(palettes) > 1 else palettes[0]
    o.add_argument(
        "--palette",
        action="append",
        default=[],
        metavar="FILE",
        help=f"palette file: {listed} (repeatable)",
    )
    o.add_argument(
        "--masks",
        default=None,
        metavar="DIR",
        help="label map and one 0/255 mask per colour into DIR",
    )
    o.add_argument(
        "--soft",
        default=None,
        metavar="DIR",
        help="16-bit soft map per colour and all maps as .npz into DIR",
    )
    o.add_argument(
        "--report",
        default=None,
        metavar="FILE.json",
        help="JSON sidecar: input hash, parameters, versions, metrics, palette",
    )
    add_segmentation_outputs(o)
    o.add_argument(
        "--save-model",
        default=None,
        metavar="MODEL.json",
        help="the fitted colour model (space, method, palette, means, covariances, weights, "
        "smoothing), for `vq apply`",
    )
    o.add_argument("--no-image", action="store_true", help="do not write the indexed PNG")
    add_write_options(o, "write nothing if the indexed PNG is not smaller than the input file")
    add_output_mode(q)


def method_words(method: str) -> str:
    """Name a result's method inside a sentence of the summary.

    Parameters
    ----------
    method : str
        ``QuantizeResult.method``.

    Returns
    -------
    words : str
        The method's ``short_label`` (``"mini-batch K-means"``), ``"given palette"`` for a
        mapped palette, else ``method`` itself.
    """
    from quantize.cluster.registry import METHODS

    spec = METHODS.get(method)
    if spec is not None:
        return spec.short_label
    return "given palette" if method == GIVEN_PALETTE else method


def print_summary(s: dict[str, Any]) -> None:
    """Print the summary of one image in words.

    Parameters
    ----------
    s : dict
        From :func:`quantize.cli._run.quantize_one`.
    """
    m = s["metrics"]
    lines = [
        f"{s['input']}: {s['width']}x{s['height']} {s['mode']} {s['bit_depth']}-bit"
        + (f", {s['frames']} frames (first used)" if s["frames"] > 1 else "")
        + f", {m['unique_before']:,} colours",
        f"{method_words(s['method'])} in {s['color_space']}: "
        f"K={s['n_colors']}"
        + (
            ""
            if s["n_colors"] == s["n_colors_requested"]
            else f" (asked {s['n_colors_requested']})"
        )
        + f", {s['n_iter']} iterations, {'converged' if s['converged'] else 'NOT converged'}"
        + f", seed {s['seed']}, {s['elapsed_s']:.2f} s",
    ]
    if s.get("model"):
        lines[1] = (
            f"labelled with the colour model {s['model']} ({method_words(s['method'])} in "
            f"{s['color_space']}, K={s['n_colors']}), {s['elapsed_s']:.2f} s"
        )
    if s.get("smoothing"):
        sm = s["smoothing"]
        prior = (
            f"strength {sm['strength']:g} ({sm['n_sweeps']} sweeps"
            f"{'' if sm['converged'] else ', not converged'})"
            if sm["strength"] > 0
            else "no spatial prior"
        )
        merge = (
            f"regions under {sm['min_region']} pixels merged ({sm['n_merged_regions']})"
            if sm["min_region"] > 1
            else "no small-region merge"
        )
        lines.append(f"smoothed: {prior}, {merge}")
    if s["method"] == GIVEN_PALETTE:
        lines[1] = (
            f"mapped onto the given palette of {s['n_colors']} colours "
            f"(nearest in {s['color_space']}), {s['elapsed_s']:.2f} s"
        )
    if s.get("locked"):
        lines.append(f"locked (entries 0-{len(s['locked']) - 1}): {', '.join(s['locked'])}")
    if s.get("added_small_colors"):
        kept = ", ".join(f"{e['hex']} ({100 * e['share']:.2f}%)" for e in s["added_small_colors"])
        lines.append(f"small distinct colours kept: {kept} (--no-keep-small-colors to fit without)")
    if s.get("error_power", 2.0) < 2.0:
        lines.append(
            f"palette polished for the least sum of distances^{s['error_power']:g} "
            "(--error-power 2 keeps the K-means palette)"
        )
    if s.get("importance_map"):
        lines.append(f"weighted by the importance map {s['importance_map']}")
    if s["auto"]:
        a = s["auto"]
        tried = ", ".join(f"{k}" for k in sorted(a["tried"], key=int))
        if a["metric"] == "png_bytes":
            lines.append(
                f"K by PNG size (at most {int(a['target']):,} bytes): chose K={a['k']} "
                f"after trying K={tried}"
            )
        else:
            target = "" if a["target"] is None else f" (target {a['target']:g})"
            lines.append(
                f"auto K by {a['metric']}{target}: chose K={a['k']} after trying K={tried}"
            )
    lines.append(
        f"PSNR {fmt_float(m['psnr'], 2, ' dB')}, SSIM {fmt_float(m['ssim'], 4, missing='n/a')}, "
        f"dE2000 mean {m['delta_e_mean']:.2f} / p95 {m['delta_e_p95']:.2f}, "
        f"{m['unique_after']} colours used"
    )
    ratio = f", compression ratio {m['ratio']:.2f}" if m["ratio"] else ""
    lines.append(
        f"indexed PNG {m['png_bytes']:,} bytes ({m['bits_per_pixel']:.3f} bits/pixel)"
        + (f", original {m['original_bytes']:,} bytes" if m["original_bytes"] else "")
        + ratio
    )
    for out in s["outputs"]:
        lines.append(f"wrote {out['path']} ({out['bytes']:,} bytes)")
    print("\n".join(lines))


def run(args: argparse.Namespace, err: Err) -> int:
    """Run ``vq quantize``.

    Parameters
    ----------
    args : argparse.Namespace
    err : callable
        Prints a line on stderr.

    Returns
    -------
    code : int
    """
    check_combination(args)
    if args.image is None:
        from quantize.resources import sample_image_path

        image_path = sample_image_path()
    else:
        image_path = Path(args.image)
    warn = (lambda msg: None) if args.quiet else (lambda msg: err(f"vq: warning: {msg}"))
    written: list[Path] = []
    try:
        summary = quantize_one(
            image_path, args, show_progress=progress_mode(args), warn=warn, written=written
        )
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the writers left no partial file
        err(f"vq: interrupted - {written_words(written)}")
        return EXIT_CANCELLED
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
    elif not args.quiet:
        print_summary(summary)
    return EXIT_OK
