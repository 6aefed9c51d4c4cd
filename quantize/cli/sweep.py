"""``vq sweep``: what each K costs (PNG bytes) and buys (quality), as a table or a chart."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from quantize.cli._common import (
    EPILOG,
    EXIT_CANCELLED,
    EXIT_OK,
    Err,
    UsageError,
    add_fit_options,
    add_output_mode,
    methods_epilog,
    native_stderr_muted,
    progress_mode,
)
from quantize.cli._run import estimator_options, pipeline_options

__all__ = ["SweepProgress", "add_parser", "format_row", "header", "run"]

_DEFAULT_KS = "2-256"


def _k_list(text: str) -> list[int]:
    from quantize.sweep import parse_k_list

    try:
        return parse_k_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """Add the ``sweep`` subcommand.

    Parameters
    ----------
    sub : argparse subparsers action
    formatter : type
        Help formatter class of the ``vq`` parsers.
    """
    s = sub.add_parser(
        "sweep",
        help="fit a series of K and tabulate PNG size and quality",
        epilog="examples:\n"
        "  vq sweep photo.jpg                       # K = 2-256, about 12 values\n"
        "  vq sweep photo.jpg --ks 2-64:8 --csv > sweep.csv\n"
        "  vq sweep photo.jpg --ks 4,8,16,32 --plot sweep.png\n"
        "  vq sweep photo.jpg --method gmm --ks 1-12:12   # log-likelihood and BIC too\n\n"
        + methods_epilog()
        + EPILOG,
        formatter_class=formatter,
        description="Fit IMAGE (default: the bundled sample photo) with every K of a list, "
        "each fit warm-started from the previous K, and report for each K the indexed PNG "
        "size, PSNR, SSIM, mean CIEDE2000, the objective (J; log-likelihood and BIC for a "
        "mixture), iterations and time.  Rows are printed as each K finishes; Ctrl+C stops.",
    )
    s.add_argument(
        "image",
        nargs="?",
        default=None,
        metavar="IMAGE",
        help="input image (PNG, JPEG, TIFF, WebP, BMP, GIF, PPM)",
    )
    s.add_argument(
        "--ks",
        type=_k_list,
        default=None,
        metavar="LIST",
        help=f"K values: a range A-B (about 12 values, log-spaced), A-B:COUNT, a list "
        f"4,8,16 or a mix (default {_DEFAULT_KS})",
    )
    s.add_argument(
        "--cold",
        action="store_true",
        help="fit every K from scratch (as vq quantize -k K does) instead of warm-starting",
    )
    add_fit_options(s, choose_k=False)
    o = s.add_argument_group("outputs")
    o.add_argument("--csv", action="store_true", help="print the table as CSV on stdout")
    o.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="write a chart of PNG size, PSNR and CIEDE2000 against K",
    )
    o.add_argument("-f", "--force", action="store_true", help="overwrite the --plot file")
    add_output_mode(s)


class SweepProgress:
    """A tqdm bar over the K of a sweep, with the current K's iteration as its postfix.

    Parameters
    ----------
    enabled : bool or None
        False: no bar; None: a bar if stderr is a terminal; True: always.
    total : int
        Number of K.
    """

    def __init__(self, enabled: bool | None, total: int) -> None:
        self.bar = None
        if enabled is not False:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc="sweep",
                unit="K",
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
                disable=None if enabled is None else False,
            )

    def update(self, rec: Any) -> None:
        """Show one record of :func:`quantize.sweep.iter_sweep`.

        Parameters
        ----------
        rec : IterationRecord
        """
        if self.bar is None:
            return
        if rec.stage == "sweep":
            self.bar.update(1)
            return
        self.bar.set_postfix_str(f"K={len(rec.centers)} it {rec.iteration}", refresh=False)

    def write(self, line: str) -> None:
        """Print a line on stdout above the bar.

        Parameters
        ----------
        line : str
        """
        if self.bar is not None:
            self.bar.clear()
        print(line, flush=True)
        if self.bar is not None:
            self.bar.refresh()

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()


def _objective_names(kind: str, bic: bool) -> list[str]:
    return ["log L/pixel", "BIC"] if kind == "log_likelihood" or bic else ["J"]


def header(objective_kind: str, bic: bool) -> str:
    """Write the table's column titles.

    Parameters
    ----------
    objective_kind : {"inertia", "log_likelihood"}
    bic : bool
        Whether a BIC column follows.

    Returns
    -------
    line : str
    """
    cols = ["    K", "colours", "  PNG bytes", "PSNR dB", "  SSIM", "dE2000"]
    cols += [f"{name:>12}" for name in _objective_names(objective_kind, bic)]
    cols += ["iters", "time s"]
    return "  ".join(cols)


def format_row(point: Any) -> str:
    """One row of the table.

    Parameters
    ----------
    point : SweepPoint

    Returns
    -------
    line : str
    """
    psnr = f"{point.psnr:7.2f}" if math.isfinite(point.psnr) else "    inf"
    ssim = f"{point.ssim:6.4f}" if point.ssim is not None else "   n/a"
    cols = [
        f"{point.k:5d}",
        f"{point.n_colors:7d}",
        f"{point.png_bytes:11,d}",
        psnr,
        ssim,
        f"{point.delta_e_mean:6.2f}",
        f"{point.objective:12.6g}",
    ]
    if point.bic is not None:
        cols.append(f"{point.bic:12.6g}")
    cols += [f"{point.n_iter:5d}", f"{point.total_s:6.2f}"]
    return "  ".join(cols)


def _csv_text(points: list[Any]) -> str:
    buf = io.StringIO()
    fields = [
        "k",
        "n_colors",
        "png_bytes",
        "psnr",
        "ssim",
        "delta_e_mean",
        "objective",
        "objective_kind",
        "bic",
        "n_iter",
        "converged",
        "fit_s",
        "total_s",
    ]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for p in points:
        row = p.to_dict()
        writer.writerow({f: "" if row[f] is None else row[f] for f in fields})
    return buf.getvalue()


def _plot_png(sweep: Any, name: str, original_bytes: int) -> bytes:
    from quantize.cli._plot import render_sweep_plot
    from quantize.cluster.registry import get_method
    from quantize.png import encode_png

    pts = sweep.points
    ks = [p.k for p in pts]
    title = (
        f"{name}: {get_method(sweep.method).short_label} in {sweep.color_space}, "
        f"dither {sweep.dither}"
    )
    chart = render_sweep_plot(
        ks,
        [
            ("indexed PNG size (kB)", [p.png_bytes / 1000 for p in pts], lambda v: f"{v:g}"),
            ("PSNR (dB, higher is better)", [p.psnr for p in pts], lambda v: f"{v:g}"),
            ("mean CIEDE2000 (lower is better)", [p.delta_e_mean for p in pts], lambda v: f"{v:g}"),
        ],
        title=title,
        reference=(0, original_bytes / 1000, f"original file {original_bytes / 1000:,.0f} kB"),
    )
    return encode_png(chart)


def run(args: argparse.Namespace, err: Err) -> int:
    """Run ``vq sweep``.

    Parameters
    ----------
    args : argparse.Namespace
    err : callable
        Prints a line on stderr.

    Returns
    -------
    code : int
    """
    from quantize.cluster.registry import get_method
    from quantize.io.errors import OutputExistsError
    from quantize.io.load import load_image, require_visible_pixels
    from quantize.sweep import iter_sweep, parse_k_list

    if args.json and args.csv:
        raise UsageError("use either --json or --csv, not both")
    ks = args.ks if args.ks is not None else parse_k_list(_DEFAULT_KS)
    options = estimator_options(args)
    options.update(pipeline_options(args))  # as vq quantize fits (each K: what it would write)
    plot = Path(args.plot) if args.plot else None
    if plot is not None:
        if plot.suffix.lower() != ".png":
            raise UsageError(f"--plot {plot}: the chart is a PNG; give a name ending in .png")
        if not plot.parent.is_dir():
            raise UsageError(f"{plot}: folder {plot.parent} does not exist")
        if not args.force and (plot.exists() or plot.is_symlink()):
            raise OutputExistsError(f"{plot}: already exists (use --force)", [plot])
    if args.image is None:
        from quantize.resources import sample_image_path

        image_path = sample_image_path()
    else:
        image_path = Path(args.image)
    with native_stderr_muted(not args.debug):
        loaded = load_image(image_path, max_pixels=args.max_pixels)
    require_visible_pixels(loaded, image_path)
    spec = get_method(args.method)
    table_mode = not (args.json or args.csv or args.quiet)
    progress = SweepProgress(progress_mode(args), len(ks))
    gen = iter_sweep(
        loaded.pixels,
        ks,
        method=args.method,
        color_space=args.space,
        seed=args.seed,
        dither=args.dither,
        strength=args.strength,
        warm_start=not args.cold,
        **options,
    )
    done: list[int] = []
    caught: list[warnings.WarningMessage] = []
    try:
        if table_mode:
            progress.write(
                f"{image_path}: {loaded.pixels.shape[1]}x{loaded.pixels.shape[0]}, "
                f"{loaded.file_size:,} bytes; {spec.short_label} in {args.space}, "
                f"dither {args.dither}, {'cold' if args.cold else 'warm'} starts"
            )
            progress.write(header(spec.objective, spec.bic))
        while True:
            with warnings.catch_warnings(record=True) as seen:  # said once, after the table
                warnings.simplefilter("always")
                try:
                    rec = next(gen)
                except StopIteration as stop:
                    sweep = stop.value
                    break
                finally:
                    caught.extend(seen)
            progress.update(rec)
            if rec.stage == "sweep":
                done.append(rec.extra["k"])
                if table_mode:
                    progress.write(format_row(rec.extra["point"]))
    except KeyboardInterrupt:
        gen.close()
        progress.close()
        last = f" after K={done[-1]}" if done else ""
        err(f"vq: interrupted{last} - nothing written")
        return EXIT_CANCELLED
    finally:
        progress.close()
    fit_warnings = list(dict.fromkeys(str(w.message) for w in caught))
    if not args.quiet:
        for message in fit_warnings:
            err(f"vq: warning: {message}")
    if sweep.skipped and not args.quiet:
        err(
            f"vq: note: the image has only {sweep.n_distinct:,} distinct colours: "
            f"K={', '.join(map(str, sweep.skipped))} not fitted"
        )
    if plot is not None:
        from quantize.io._atomic import atomic_write_bytes

        atomic_write_bytes(
            plot, _plot_png(sweep, image_path.name, loaded.file_size), overwrite=args.force
        )
    if args.json:
        summary = {
            "input": str(image_path),
            "width": int(loaded.pixels.shape[1]),
            "height": int(loaded.pixels.shape[0]),
            "original_bytes": loaded.file_size,
            "distinct_colors": sweep.n_distinct,
            "method": sweep.method,
            "color_space": sweep.color_space,
            "dither": sweep.dither,
            "warm_start": not args.cold,
            "elapsed_s": round(sweep.elapsed_s, 3),
            "skipped": sweep.skipped,
            "warnings": fit_warnings,
            "points": [p.to_dict() for p in sweep.points],
            "plot": None if plot is None else str(plot),
        }
        print(json.dumps(summary, indent=2, allow_nan=False))
    elif args.csv:
        sys.stdout.write(_csv_text(sweep.points))
    elif not args.quiet:
        wrote = f"; wrote {plot}" if plot else ""
        print(f"{len(sweep.points)} K in {sweep.elapsed_s:.2f} s{wrote}")
    return EXIT_OK
