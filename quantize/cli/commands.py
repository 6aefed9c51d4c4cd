"""The ``vq`` command: quantize images, batch-process folders, inspect files.

Same defaults as the desktop app (:data:`quantize.options.DEFAULTS`), a progress bar on
stderr fed by the fit's iteration records, ``--quiet`` and ``--json`` output modes, and
documented exit codes.  Errors are one line on stderr (``--debug`` adds the traceback).

Examples::

    vq quantize                                   # the bundled sample -> sample-coffee-vq.png
    vq quantize photo.jpg -k 32 --dither fs -o photo-32.png --palette photo.gpl
    vq quantize photo.jpg --quality 35            # fewest colours with PSNR >= 35 dB
    vq quantize photo.jpg --method gmm -k auto    # Gaussian mixture, K by BIC
    vq quantize scan.tif --masks masks/ --soft soft/ --report scan.json
    vq quantize photo.jpg --use-palette brand.gpl --dither ordered
    vq batch *.jpg -o out/ --jobs 2 --report
    vq info photo.jpg --json
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from quantize.cluster.registry import fit_options
from quantize.options import DEFAULTS

__all__ = [
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

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_QUALITY = 4
EXIT_EXISTS = 5
EXIT_LARGER = 6
EXIT_CANCELLED = 130

EPILOG = f"""\
exit codes:
  {EXIT_OK}  success
  {EXIT_OTHER}  other error (e.g. disk full or permission denied while writing)
  {EXIT_USAGE}  usage error (bad option or value)
  {EXIT_INPUT}  input image missing, unreadable or not a supported image
  {EXIT_QUALITY}  quality target (--quality / --max-delta-e) not reached: nothing written
  {EXIT_EXISTS}  an output file already exists (use --force): nothing written
  {EXIT_LARGER}  --skip-if-larger: the indexed PNG would not be smaller than the input
  {EXIT_CANCELLED}  interrupted (Ctrl+C)
For `vq batch`, the code of the failures if they all share one, else {EXIT_OTHER}
(files skipped by --skip-if-larger are not failures there).
"""

_PALETTE_KINDS = {
    ".gpl": "gpl",
    ".act": "act",
    ".json": "palette_json",
    ".txt": "hex",
    ".hex": "hex",
    ".css": "css",
    ".png": "swatch_png",
}


class UsageError(Exception):
    """Invalid combination of options (exit code 2)."""


class SkippedLarger(Exception):
    """``--skip-if-larger`` and the result would not be smaller (exit code 6)."""


class QualityNotReached(Exception):
    """The quality target was not met even at the largest K (exit code 4)."""


# --------------------------------------------------------------------------------------
# argument parsing
# --------------------------------------------------------------------------------------


def _checked(
    convert: Callable[[str], Any], valid: Callable[[Any], bool], expected: str
) -> Callable[[str], Any]:
    """Make an argparse ``type``: ``convert`` the text, refuse it unless ``valid``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
_unit_float = _checked(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
_positive_float = _checked(float, lambda v: math.isfinite(v) and v > 0, "a positive number")


def _k_value(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    value = _positive_int(text)
    if value > 65536:
        raise argparse.ArgumentTypeError("at most 65536 colours")
    return value


def _progress_mode(args: argparse.Namespace) -> bool | None:
    """Return False (no bar), None (a bar if stderr is a terminal) or True (always)."""
    if args.quiet or args.json:
        return False
    return True if getattr(args, "progress", False) else None


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output mode")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    g.add_argument("--progress", action="store_true",
                   help="show the progress bar even when stderr is not a terminal")  # fmt: skip
    g.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    g.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _add_write_options(g: Any, skip_help: str) -> None:
    g.add_argument("--skip-if-larger", action="store_true", help=skip_help)
    g.add_argument("-f", "--force", action="store_true", help="overwrite existing files")


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    g = p.add_argument_group("quantization")

    def defaulted(flag: str, key: str, text: str, **kwargs: Any) -> None:
        """Add an option whose default is ``DEFAULTS[key]``, said in its help."""
        g.add_argument(flag, default=d[key], help=f"{text} (default %(default)s)", **kwargs)

    g.add_argument(
        "-k",
        "--colors",
        type=_k_value,
        default=None,
        metavar="K",
        help=f"number of colours, or 'auto' (GMM: lowest BIC); default "
        f"{d['n_colors']}; with --quality/--max-delta-e the largest K tried",
    )
    g.add_argument(
        "--quality",
        type=_positive_float,
        default=None,
        metavar="PSNR",
        help="use the fewest colours whose PSNR reaches PSNR dB",
    )
    g.add_argument(
        "--max-delta-e",
        type=_positive_float,
        default=None,
        metavar="DE",
        help="use the fewest colours whose mean CIEDE2000 is at most DE",
    )
    defaulted("--method", "method", "clustering method",
              choices=("kmeans", "gmm", "minibatch", "optimal1d"))
    defaulted("--space", "color_space", "colour space of the fit",
              choices=("rgb", "lab", "oklab"))
    defaulted("--covariance", "covariance_type", "GMM covariance",
              choices=("full", "diag", "spherical", "tied"))
    g.add_argument(
        "--init",
        default=None,
        help=f"initialisation: k-means++ or random (GMM also kmeans); default {d['init']}",
    )
    defaulted("--n-init", "n_init", "restarts, the best is kept", type=_positive_int)
    defaulted("--max-iter", "max_iter", "iteration cap per restart", type=_positive_int)
    defaulted("--tol", "tol", "convergence tolerance", type=_positive_float)
    defaulted("--seed", "seed", "random seed", type=_non_negative_int)
    defaulted("--dither", "dither", "dithering of the output image",
              choices=("none", "fs", "ordered"))
    defaulted("--strength", "dither_strength", "dithering strength in [0, 1]", type=_unit_float)
    g.add_argument(
        "--use-palette",
        default=None,
        metavar="FILE",
        help="map onto this palette (.gpl .act .json .txt .css) instead of fitting",
    )
    g.add_argument(
        "--init-palette",
        default=None,
        metavar="FILE",
        help="start the fit from this palette (K = its number of colours)",
    )
    defaulted("--max-pixels", "max_pixels", "refuse larger images", type=_positive_int)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``vq`` argument parser.

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

    q = sub.add_parser(
        "quantize",
        help="quantize one image",
        epilog=EPILOG,
        formatter_class=fmt,
        description="Quantize IMAGE (default: the bundled sample photo).",
    )
    q.add_argument(
        "image",
        nargs="?",
        default=None,
        metavar="IMAGE",
        help="input image (PNG, JPEG, TIFF, WebP, BMP, GIF, PPM); '-' reads standard input",
    )
    _add_fit_options(q)
    o = q.add_argument_group("outputs (nothing is overwritten without --force)")
    o.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="OUT.png",
        help="indexed PNG (default: ./<image name>-vq.png)",
    )
    o.add_argument(
        "--palette",
        action="append",
        default=[],
        metavar="FILE",
        help="palette file: .gpl .act .json .txt .css or .png swatches (repeatable)",
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
    o.add_argument("--no-image", action="store_true", help="do not write the indexed PNG")
    _add_write_options(o, "write nothing if the indexed PNG is not smaller than the input file")
    _add_common(q)

    b = sub.add_parser(
        "batch",
        help="quantize many images in parallel",
        epilog=EPILOG,
        formatter_class=fmt,
        description="Quantize every INPUT into OUTDIR/<name>.png; bad files "
        "are reported and skipped.",
    )
    b.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="input images, or folders (their image files are taken)")
    b.add_argument("-o", "--outdir", required=True, metavar="OUTDIR", help="output folder")
    b.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        default=min(4, os.cpu_count() or 1),
        help="parallel processes (default %(default)s)",
    )
    _add_fit_options(b)
    b.add_argument(
        "--palette-format",
        choices=sorted(set(_PALETTE_KINDS) - {".hex"}),
        default=None,
        help="also write OUTDIR/<name><ext> palettes",
    )
    b.add_argument("--report", action="store_true", help="also write OUTDIR/<name>.json")
    _add_write_options(b, "skip files whose indexed PNG would not be smaller than the input")
    _add_common(b)

    i = sub.add_parser("info", help="describe image files", epilog=EPILOG, formatter_class=fmt)
    i.add_argument("images", nargs="+", metavar="IMAGE")
    i.add_argument("--max-pixels", type=_positive_int, default=DEFAULTS["max_pixels"])
    _add_common(i)
    return parser


# --------------------------------------------------------------------------------------
# running one image
# --------------------------------------------------------------------------------------


def _fit_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.method == "optimal1d":
        return {}
    init = args.init or DEFAULTS["init"]
    allowed = ("kmeans", "k-means++", "random") if args.method == "gmm" else ("k-means++", "random")
    if init not in allowed:
        raise UsageError(f"--init {init!r} is not valid for --method {args.method} "
                         f"(choose from {', '.join(allowed)})")  # fmt: skip
    return fit_options(args.method, init=init, n_init=args.n_init, max_iter=args.max_iter,
                       tol=args.tol, covariance_type=args.covariance)  # fmt: skip


def _check_combination(args: argparse.Namespace) -> None:
    if args.use_palette and args.init_palette:
        raise UsageError("use either --use-palette or --init-palette, not both")
    if args.use_palette or args.init_palette:
        flag = "--use-palette" if args.use_palette else "--init-palette"
        if args.quality is not None or args.max_delta_e is not None or args.colors == "auto":
            raise UsageError(f"{flag} fixes K: it cannot be combined with --quality, "
                             "--max-delta-e or -k auto")  # fmt: skip
        if args.init_palette and args.method == "optimal1d":
            raise UsageError("--init-palette does not apply to --method optimal1d")
    if args.quality is not None and args.max_delta_e is not None:
        raise UsageError("use either --quality or --max-delta-e, not both")
    if args.colors == "auto":
        if args.method != "gmm":
            raise UsageError("-k auto chooses K by BIC and needs --method gmm "
                             "(for other methods use --quality or --max-delta-e)")  # fmt: skip
        if args.quality is not None or args.max_delta_e is not None:
            raise UsageError("-k auto cannot be combined with --quality/--max-delta-e")


class _Progress:
    """Feed IterationRecords to a tqdm bar on stderr."""

    def __init__(self, enabled: bool | None, desc: str) -> None:
        self.bar = None
        if enabled is not False:
            from tqdm import tqdm

            self.bar = tqdm(desc=desc, unit="it", file=sys.stderr, leave=False,
                            dynamic_ncols=True,
                            disable=None if enabled is None else False)  # fmt: skip

    def update(self, rec: Any) -> None:
        if self.bar is None:
            return
        if rec.stage == "auto-k":
            k = rec.extra.get("k")
            value = rec.extra.get("value")
            metric = rec.extra.get("metric", "")
            self.bar.set_description(f"auto K: K={k} {metric}={value:.4g}")
            return
        self.bar.update(1)
        self.bar.set_postfix_str(
            f"run {rec.restart + 1} it {rec.iteration} {rec.kind}={rec.objective:.6g}",
            refresh=False,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.refresh()  # draw the final state once, even after a very short fit
            self.bar.close()


def _drive(gen: Generator[Any, None, Any], progress: _Progress) -> Any:
    try:
        while True:
            try:
                rec = next(gen)
            except StopIteration as stop:
                return stop.value
            progress.update(rec)
    finally:
        progress.close()


def _run_fit(
    image: np.ndarray, args: argparse.Namespace, show_progress: bool | None
) -> tuple[Any, Any]:
    """Return (result, auto_choice or None)."""
    from quantize.auto import iter_bic, iter_quality_target
    from quantize.pipeline import iter_quantize_image, map_to_palette

    options = _fit_options(args)
    if args.use_palette:
        return map_to_palette(image, _read_user_palette(args.use_palette),
                              color_space=args.space), None  # fmt: skip
    k_given = args.colors
    if args.init_palette:
        palette = _read_user_palette(args.init_palette)
        if isinstance(k_given, int) and k_given != len(palette):
            raise UsageError(f"--init-palette has {len(palette)} colours but -k is {k_given}")
        options["init"] = palette
        k_given = len(palette)
    progress = _Progress(show_progress, f"{args.method} ({args.space})")
    if args.quality is not None or args.max_delta_e is not None:
        k_max = args.colors if isinstance(args.colors, int) else DEFAULTS["k_max_quality"]
        gen = iter_quality_target(
            image, psnr=args.quality, max_delta_e=args.max_delta_e, k_min=1, k_max=k_max,
            method=args.method, color_space=args.space, seed=args.seed, **options,
        )  # fmt: skip
        choice = _drive(gen, progress)
        if not choice.reached:
            name = "PSNR" if choice.metric == "psnr" else "mean dE2000"
            unit = " dB" if choice.metric == "psnr" else ""
            raise QualityNotReached(
                f"quality target not reached: best {name} {choice.value:.2f}{unit} at K={choice.k} "
                f"(target {choice.target:g}); nothing written"
            )
        return choice.result, choice
    if args.colors == "auto":
        gen = iter_bic(image, k_min=1, k_max=DEFAULTS["k_max_bic"], color_space=args.space,
                       seed=args.seed, **options)  # fmt: skip
        choice = _drive(gen, progress)
        return choice.result, choice
    k = k_given if k_given is not None else DEFAULTS["n_colors"]
    gen = iter_quantize_image(image, k, method=args.method, color_space=args.space,
                              seed=args.seed, **options)  # fmt: skip
    return _drive(gen, progress), None


def _read_user_palette(path: str) -> np.ndarray:
    from quantize.io.export import ExportError, read_palette
    from quantize.io.load import LoadError

    try:
        palette = read_palette(path)
    except ExportError as exc:
        raise LoadError(path, str(exc).removeprefix(f"{path}: ")) from None
    if len(palette) == 0:
        raise LoadError(path, "the palette has no colours")
    return palette


def _targets(args: argparse.Namespace, stem: str) -> list[tuple[str, Path]]:
    targets: list[tuple[str, Path]] = []
    if not args.no_image:
        out = Path(args.output) if args.output else Path(f"{stem}-vq.png")
        if out.is_dir():
            out = out / f"{stem}-vq.png"
        elif out.suffix.lower() != ".png":
            raise UsageError(f"-o {out}: the output image is a PNG; give a name ending in .png")
        targets.append(("indexed_png", out))
    for pal in args.palette:
        kind = _PALETTE_KINDS.get(Path(pal).suffix.lower())
        if kind is None:
            raise UsageError(f"--palette {pal}: unknown extension (use one of "
                             f"{', '.join(sorted(_PALETTE_KINDS))})")  # fmt: skip
        targets.append((kind, Path(pal)))
    if args.masks:
        folder = Path(args.masks)
        targets.append(("label_map", folder / f"{stem}.labels.png"))
        targets.append(("binary_masks", folder / stem))
    if args.soft:
        folder = Path(args.soft)
        targets.append(("soft_maps", folder / stem))
        targets.append(("npz", folder / f"{stem}.maps.npz"))
    if args.report:
        targets.append(("sidecar", Path(args.report)))
    return targets


def _check_folders(targets: Sequence[tuple[str, Path]], args: argparse.Namespace) -> None:
    made_later = {Path(f) for f in (args.masks, args.soft) if f}
    for folder in made_later:
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: exists and is not a folder")
    for _, path in targets:
        if path.parent not in made_later and not path.parent.is_dir():
            raise UsageError(f"{path}: folder {path.parent} does not exist")


def _create_dirs(folders: Sequence[str | None]) -> list[Path]:
    """Create missing folders (and parents); return the ones created (to undo on failure)."""
    created: list[Path] = []
    for folder in folders:
        if not folder:
            continue
        missing = []
        p = Path(folder).absolute()
        while not p.exists():
            missing.append(p)
            p = p.parent
        for m in reversed(missing):
            m.mkdir()
            created.append(m)
    return created


def _remove_folders(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()  # only if still empty
        except OSError:
            pass


def _early_exists_check(targets: Sequence[tuple[str, Path]], force: bool) -> None:
    """Fail before the (possibly long) fit when a known single-file output exists."""
    from quantize.io.export import SINGLE_FILE_KINDS, OutputExistsError

    if force:
        return
    for kind, path in targets:
        if kind in SINGLE_FILE_KINDS and (path.exists() or path.is_symlink()):
            raise OutputExistsError(f"{path}: already exists (use --force)", [path])


def _quantize_one(
    image_path: Path,
    args: argparse.Namespace,
    *,
    show_progress: bool | None,
    warn: Callable[[str], None],
    stem: str | None = None,
    targets: list[tuple[str, Path]] | None = None,
) -> dict[str, Any]:
    """Load, fit, measure and write; return the JSON-able summary."""
    from quantize.io.export import export_targets
    from quantize.io.load import LoadError, file_size_limit, load_image, load_image_bytes
    from quantize.metrics import compute_metrics, render_indexed

    from_stdin = str(image_path) == "-"
    if from_stdin:
        limit = file_size_limit(args.max_pixels)  # as load_image's file-size guard
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise LoadError("<stdin>", "input is too large for the pixel limit")
        loaded = load_image_bytes(data, name="<stdin>", max_pixels=args.max_pixels)
    else:
        loaded = load_image(image_path, max_pixels=args.max_pixels)
    if loaded.has_alpha and not np.any(loaded.pixels[:, :, 3]):
        raise LoadError(image_path, "image is fully transparent: nothing to quantize")
    stem = stem or ("stdin" if from_stdin else image_path.stem)
    if targets is None:
        targets = _targets(args, stem)
    _check_folders(targets, args)
    _early_exists_check(targets, args.force)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, choice = _run_fit(loaded.pixels, args, show_progress)
    fit_warnings = list(dict.fromkeys(str(w.message) for w in caught))
    entries = len(result.palette) + (1 if result.opaque is not None else 0)
    if entries > 256 and any(kind == "indexed_png" for kind, _ in targets):
        fit_warnings.append(
            f"{entries} palette entries do not fit an indexed PNG (at most 256): "
            "the image is written as a truecolour PNG"
        )
    for message in fit_warnings:
        warn(message)
    # one rendering (dithering + PNG encoding) serves the metrics and the written PNG
    rendering = render_indexed(result, dither=args.dither, strength=args.strength)
    metrics = compute_metrics(result, dither=args.dither, strength=args.strength,
                              original_bytes=loaded.file_size, rendering=rendering)  # fmt: skip
    if getattr(args, "skip_if_larger", False) and metrics.png_bytes >= loaded.file_size:
        raise SkippedLarger(
            f"{image_path}: skipped, the indexed PNG ({metrics.png_bytes:,} bytes) would not be "
            f"smaller than the input ({loaded.file_size:,} bytes); nothing written"
        )
    created = _create_dirs([args.masks, args.soft])
    try:
        written = export_targets(
            result, targets, overwrite=args.force, dither=args.dither, strength=args.strength,
            source_path=None if from_stdin else image_path, metrics=metrics,
            source_sha256=loaded.info.get("sha256"), rendering=rendering,
        )  # fmt: skip
    except BaseException:
        _remove_folders(created)
        raise
    params = result.parameters()
    summary: dict[str, Any] = {
        "input": "<stdin>" if from_stdin else str(image_path),
        "width": loaded.width,
        "height": loaded.height,
        "mode": loaded.mode,
        "bit_depth": loaded.bit_depth,
        "frames": loaded.n_frames,
        "method": result.method,
        "color_space": result.color_space,
        "n_colors": int(len(result.palette)),
        "n_colors_requested": int(params.get("n_colors", len(result.palette))),
        "n_iter": params.get("n_iter"),
        "converged": params.get("converged"),
        "seed": result.seed,
        "elapsed_s": round(float(getattr(result, "elapsed_s", 0.0)), 3),
        "metrics": metrics.to_dict(),
        "palette": ["#{:02x}{:02x}{:02x}".format(*map(int, c)) for c in result.palette],
        "proportions": [round(float(p), 6) for p in result.proportions],
        "auto": None,
        "warnings": list(
            dict.fromkeys(list(result.warnings) + fit_warnings + loaded.info.get("notes", []))
        ),
        "outputs": [{"path": str(p), "bytes": p.stat().st_size} for p in written],
    }
    if choice is not None:
        summary["auto"] = {
            "metric": choice.metric,
            "target": choice.target,
            "value": None if not math.isfinite(choice.value) else choice.value,
            "k": choice.k,
            "tried": {str(k): (v if math.isfinite(v) else None) for k, v in choice.scores.items()},
        }
    return summary


_METHOD_NAMES = {"kmeans": "K-means", "gmm": "Gaussian mixture", "minibatch": "mini-batch K-means",
                 "optimal1d": "exact 1-D", "palette": "given palette"}  # fmt: skip


def _fmt_float(value: Any, digits: int, unit: str = "", missing: str = "inf") -> str:
    if value is None:
        return missing + unit
    return f"{value:.{digits}f}{unit}"


def _print_summary(s: dict[str, Any]) -> None:
    m = s["metrics"]
    lines = [
        f"{s['input']}: {s['width']}x{s['height']} {s['mode']} {s['bit_depth']}-bit"
        + (f", {s['frames']} frames (first used)" if s["frames"] > 1 else "")
        + f", {m['unique_before']:,} colours",
        f"{_METHOD_NAMES.get(s['method'], s['method'])} in {s['color_space']}: "
        f"K={s['n_colors']}" + ("" if s["n_colors"] == s["n_colors_requested"]
                               else f" (asked {s['n_colors_requested']})")
        + f", {s['n_iter']} iterations, {'converged' if s['converged'] else 'NOT converged'}"
        + f", seed {s['seed']}, {s['elapsed_s']:.2f} s",
    ]  # fmt: skip
    if s["method"] == "palette":
        lines[1] = (f"mapped onto the given palette of {s['n_colors']} colours "
                    f"(nearest in {s['color_space']}), {s['elapsed_s']:.2f} s")  # fmt: skip
    if s["auto"]:
        a = s["auto"]
        tried = ", ".join(f"{k}" for k in sorted(a["tried"], key=int))
        target = "" if a["target"] is None else f" (target {a['target']:g})"
        lines.append(f"auto K by {a['metric']}{target}: chose K={a['k']} after trying K={tried}")
    lines.append(
        f"PSNR {_fmt_float(m['psnr'], 2, ' dB')}, SSIM {_fmt_float(m['ssim'], 4, missing='n/a')}, "
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


def _cmd_quantize(args: argparse.Namespace, err: Callable[[str], None]) -> int:
    _check_combination(args)
    if args.image is None:
        from quantize.resources import sample_image_path

        image_path = sample_image_path()
    else:
        image_path = Path(args.image)
    warn = (lambda msg: None) if args.quiet else (lambda msg: err(f"vq: warning: {msg}"))
    summary = _quantize_one(image_path, args, show_progress=_progress_mode(args),
                            warn=warn)  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
    elif not args.quiet:
        _print_summary(summary)
    return EXIT_OK


# --------------------------------------------------------------------------------------
# batch
# --------------------------------------------------------------------------------------


def _batch_task(task: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """Quantize one file of a batch (runs in a worker process); never raises."""
    path_text, stem, options = task
    args = argparse.Namespace(**options)
    path = Path(path_text)
    try:
        out_dir = Path(args.outdir)
        targets: list[tuple[str, Path]] = [("indexed_png", out_dir / f"{stem}.png")]
        if args.palette_format:
            targets.append((_PALETTE_KINDS[args.palette_format],
                            out_dir / f"{stem}{args.palette_format}"))  # fmt: skip
        if args.report:
            targets.append(("sidecar", out_dir / f"{stem}.json"))
        summary = _quantize_one(path, args, show_progress=False, warn=lambda m: None, stem=stem,
                                targets=targets)  # fmt: skip
        return {"input": path_text, "ok": True, "code": EXIT_OK, "summary": summary}
    except SkippedLarger as exc:
        return {"input": path_text, "ok": True, "skipped": True, "code": EXIT_OK,
                "message": str(exc)}  # fmt: skip
    except BaseException as exc:  # report, never crash the pool
        code, message = _classify(exc)
        detail = traceback.format_exc() if args.debug else None
        return {"input": path_text, "ok": False, "code": code, "message": message,
                "traceback": detail}  # fmt: skip


_IMAGE_SUFFIXES = {".png", ".apng", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".webp", ".bmp",
                   ".dib", ".gif", ".ppm", ".pgm", ".pbm", ".pnm"}  # fmt: skip


def _expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Replace each folder by the image files directly inside it (sorted)."""
    out: list[str] = []
    for text in inputs:
        p = Path(text)
        if p.is_dir():
            out.extend(str(c) for c in sorted(p.iterdir())
                       if c.is_file() and c.suffix.lower() in _IMAGE_SUFFIXES)  # fmt: skip
        else:
            out.append(text)
    return out


def _batch_stems(inputs: Sequence[str]) -> list[str]:
    stems: list[str] = []
    seen: dict[str, int] = {}
    for text in inputs:
        stem = Path(text).stem or "image"
        n = seen.get(stem.lower(), 0)
        seen[stem.lower()] = n + 1
        stems.append(stem if n == 0 else f"{stem}-{n + 1}")
    return stems


def _cmd_batch(args: argparse.Namespace, err: Callable[[str], None]) -> int:
    _check_combination(args)
    args.inputs = _expand_inputs(args.inputs)
    if not args.inputs:
        raise UsageError("no image files among the inputs")
    out_dir = Path(args.outdir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder")
    try:
        created = _create_dirs([str(out_dir)])  # removed again if nothing gets written
    except OSError as exc:
        raise UsageError(f"{out_dir}: cannot create output folder ({exc.strerror})") from None
    options = {k: v for k, v in vars(args).items() if k != "func"}
    options.update(output=None, no_image=False, palette=[], masks=None, soft=None)
    tasks = [(p, s, options) for p, s in zip(args.inputs, _batch_stems(args.inputs), strict=True)]
    results: list[dict[str, Any]] = []
    bar = None
    mode = _progress_mode(args)
    if mode is not False:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="vq batch", unit="file", file=sys.stderr,
                   disable=None if mode is None else False)  # fmt: skip

    def record(res: dict[str, Any]) -> None:
        results.append(res)
        if not res["ok"] and not args.quiet:
            err(f"vq: {res['message']}")
            if res.get("traceback"):
                err(res["traceback"].rstrip())
        if bar is not None:
            bar.update(1)

    try:
        if args.jobs == 1 or len(tasks) == 1:
            for task in tasks:
                record(_batch_task(task))
        else:
            # spawn, not fork: the parent may run threads (tqdm's monitor, BLAS)
            context = multiprocessing.get_context("spawn")
            workers = min(args.jobs, len(tasks))
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = [pool.submit(_batch_task, t) for t in tasks]
                for fut in as_completed(futures):
                    record(fut.result())
    finally:
        if bar is not None:
            bar.close()
    order = {p: i for i, p in enumerate(args.inputs)}
    results.sort(key=lambda r: order.get(r["input"], 0))
    failed = [r for r in results if not r["ok"]]
    skipped = [r for r in results if r.get("skipped")]
    n_ok = len(results) - len(failed) - len(skipped)
    if args.json:
        print(json.dumps({"ok": n_ok, "skipped": len(skipped), "failed": len(failed),
                          "files": results}, indent=2, allow_nan=False))  # fmt: skip
    elif not args.quiet:
        for r in results:
            if r.get("skipped"):
                print(f"skip  {r['message']}")
            elif r["ok"]:
                s = r["summary"]
                psnr = _fmt_float(s["metrics"]["psnr"], 2, " dB")
                outs = ", ".join(Path(o["path"]).name for o in s["outputs"])
                print(f"ok    {r['input']}: K={s['n_colors']}, PSNR {psnr} -> {outs}")
        more = f", {len(skipped)} skipped" if skipped else ""
        print(f"{n_ok} ok{more}, {len(failed)} failed, output in {out_dir}")
    _remove_folders(created)  # only if still empty
    if not failed:
        return EXIT_OK
    codes = {r["code"] for r in failed}
    return codes.pop() if len(codes) == 1 else EXIT_OTHER


# --------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------


def _cmd_info(args: argparse.Namespace, err: Callable[[str], None]) -> int:
    from quantize.io.load import LoadError, load_image
    from quantize.metrics import unique_color_count

    docs: list[dict[str, Any]] = []
    failures: list[str] = []
    for text in args.images:
        try:
            img = load_image(text, max_pixels=args.max_pixels)
        except LoadError as exc:
            failures.append(str(exc))
            if not args.quiet:
                err(f"vq: {exc}")
            docs.append({"path": text, "error": exc.problem})
            continue
        opaque = img.pixels[:, :, 3] > 0 if img.has_alpha else None
        docs.append({
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
        })  # fmt: skip
    if args.json:
        print(json.dumps(docs if len(docs) > 1 else docs[0], indent=2, allow_nan=False))
    elif not args.quiet:
        for d in docs:
            if "error" in d:
                continue
            alpha = ", alpha" if d["alpha"] else ""
            frames = f", {d['frames']} frames" if d["frames"] > 1 else ""
            print(f"{d['path']}: {d['format']} {d['width']}x{d['height']}, mode {d['mode']}, "
                  f"{d['bit_depth']}-bit{alpha}{frames}, {d['unique_colors']:,} unique colours, "
                  f"{d['file_size']:,} bytes")  # fmt: skip
            for note in d["notes"]:
                print(f"  note: {note}")
    return EXIT_INPUT if failures else EXIT_OK


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


def _classify(exc: BaseException) -> tuple[int, str]:
    from quantize.io.export import ExportError, OutputExistsError
    from quantize.io.load import LoadError
    from quantize.protocol import Cancelled

    if isinstance(exc, LoadError):
        return EXIT_INPUT, str(exc)
    if isinstance(exc, OutputExistsError):
        return EXIT_EXISTS, f"{exc} - nothing written"
    if isinstance(exc, ExportError):
        return EXIT_OTHER, f"{exc} - nothing written"
    if isinstance(exc, SkippedLarger):
        return EXIT_LARGER, str(exc)
    if isinstance(exc, QualityNotReached):
        return EXIT_QUALITY, str(exc)
    if isinstance(exc, UsageError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, (KeyboardInterrupt, Cancelled)):
        return EXIT_CANCELLED, "interrupted"
    if isinstance(exc, ValueError):  # the engine validates parameters with ValueError
        return EXIT_USAGE, f"invalid parameters: {exc}"
    if isinstance(exc, MemoryError):
        return EXIT_OTHER, "out of memory (try a smaller image or fewer colours)"
    if isinstance(exc, OSError):
        name = getattr(exc, "filename", None)
        prefix = f"{name}: " if name else ""
        return EXIT_OTHER, f"{prefix}{exc.strerror or exc}"
    return EXIT_OTHER, f"{type(exc).__name__}: {exc}"


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

    commands = {"quantize": _cmd_quantize, "batch": _cmd_batch, "info": _cmd_info}
    try:
        return commands[args.command](args, err)
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
        code, message = _classify(exc)
        if getattr(args, "debug", False):
            traceback.print_exc(file=sys.stderr)
        prefix = "vq: error: " if code in (EXIT_USAGE, EXIT_OTHER) else "vq: "
        hint = (
            "" if getattr(args, "debug", False) or code != EXIT_OTHER else " (--debug for details)"
        )
        err(f"{prefix}{message}{hint}")
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
