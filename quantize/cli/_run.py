"""Quantizing one image from the command line: load, fit, measure, write, summarise.

Shared by ``vq quantize`` and the workers of ``vq batch``.  What a method allows (``--init``
values, ``-k auto``, ``--init-palette``) is read from its
:class:`~quantize.cluster.registry.MethodSpec`, never from its name.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quantize.cli._common import (
    Progress,
    QualityNotReached,
    SkippedLarger,
    UsageError,
    create_dirs,
    drive,
    native_stderr_muted,
    or_list,
    remove_folders,
)
from quantize.cli._interrupt import begin_writing
from quantize.cluster.registry import METHODS, fit_options, get_method
from quantize.options import DEFAULTS

__all__ = [
    "check_combination",
    "check_distinct_outputs",
    "estimator_options",
    "quantize_one",
    "read_stdin",
]

#: the option of ``vq quantize`` that names each output kind (a palette kind: ``--palette``)
_OPTION_OF_KIND = {
    "indexed_png": "-o",
    "label_map": "--masks",
    "binary_masks": "--masks",
    "soft_maps": "--soft",
    "npz": "--soft",
    "sidecar": "--report",
    "stats_csv": "--stats",
    "stats_json": "--stats",
    "overlay_png": "--overlay",
    "outlines_svg": "--outlines",
    "colour_model": "--save-model",
}


def _estimator_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the estimator options of ``args`` for its method (``--init`` checked)."""
    options = estimator_options(args)
    locked = _locked_colours(args)
    if locked is not None:
        options["locked"] = locked
    return options


def pipeline_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the options of the steps around the fit: small colours and palette polish.

    Parameters
    ----------
    args : argparse.Namespace
        With ``keep_small_colors``, ``small_color_distance``, ``small_color_share`` and
        ``error_power``.

    Returns
    -------
    options : dict
        Keyword arguments of :func:`quantize.pipeline.iter_quantize_image`.
    """
    return {
        "keep_small_colors": args.keep_small_colors,
        "small_color_distance": args.small_color_distance,
        "small_color_share": args.small_color_share,
        "error_power": args.error_power,
    }


def _parse_lock(text: str) -> np.ndarray:
    """Parse ``--lock "#d52b1e,#f5f5f5"`` into an (L, 3) uint8 array."""
    codes = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in codes if not re.fullmatch(r"#?[0-9a-fA-F]{6}", c)]
    if bad or not codes:
        what = f"{bad[0]!r} is not" if bad else "no colour given, need"
        raise UsageError(f"--lock: {what} a hex colour like '#d52b1e' (comma-separated list)")
    rgb = [[int(c.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)] for c in codes]
    return np.asarray(rgb, dtype=np.uint8)


def _locked_colours(args: argparse.Namespace) -> np.ndarray | None:
    """Colours of ``--lock`` and ``--lock-palette`` (in that order, each once), or None."""
    parts = []
    if getattr(args, "lock", None):
        parts.append(_parse_lock(args.lock))
    if getattr(args, "lock_palette", None):
        parts.append(_read_user_palette(args.lock_palette))
    if not parts:
        return None
    both = np.concatenate(parts)
    _, first = np.unique(both, axis=0, return_index=True)
    return np.ascontiguousarray(both[np.sort(first)])


def estimator_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the estimator options of ``args`` for its method (``--init`` checked).

    Parameters
    ----------
    args : argparse.Namespace
        With ``method``, ``init``, ``n_init``, ``max_iter``, ``tol`` and ``covariance``.

    Returns
    -------
    options : dict
        Keyword arguments of :func:`quantize.pipeline.iter_quantize_image`.

    Raises
    ------
    UsageError
        ``--init`` not offered by the method.
    """
    spec = get_method(args.method)
    tol = spec.tol_default() if args.tol is None else args.tol
    if not spec.inits:  # the method has no initialisation to choose: --init is ignored
        return fit_options(
            args.method,
            init=None,
            n_init=args.n_init,
            max_iter=args.max_iter,
            tol=tol,
            covariance_type=args.covariance,
        )
    # each method's own default initialisation (its first): a Gaussian mixture starts from
    # a converged K-means, which on noisy scenes avoids the poor optimum k-means++ seeds
    # alone reach (benchmarks/bench_segmentation.py)
    default = next(iter(spec.inits))
    init = args.init or default
    if init not in spec.inits:
        raise UsageError(
            f"--init {init!r} is not valid for --method {args.method} "
            f"(choose from {', '.join(spec.inits)})"
        )
    return fit_options(
        args.method,
        init=init,
        n_init=args.n_init,
        max_iter=args.max_iter,
        tol=tol,
        covariance_type=args.covariance,
    )


def check_combination(args: argparse.Namespace) -> None:
    """Refuse options that contradict each other or the method (before any work).

    Parameters
    ----------
    args : argparse.Namespace

    Raises
    ------
    UsageError
    """
    spec = get_method(args.method)
    if args.use_palette and args.init_palette:
        raise UsageError("use either --use-palette or --init-palette, not both")
    locking = getattr(args, "lock", None) or getattr(args, "lock_palette", None)
    if locking and args.use_palette:
        raise UsageError("--use-palette keeps every colour of its palette already: drop --lock")
    if locking and "locked" not in spec.options:
        able = or_list([f"--method {s.name}" for s in METHODS.values() if "locked" in s.options])
        raise UsageError(f"--lock and --lock-palette need {able}")
    max_size = getattr(args, "max_size", None)
    if args.use_palette or args.init_palette:
        flag = "--use-palette" if args.use_palette else "--init-palette"
        if (
            args.quality is not None
            or args.max_delta_e is not None
            or args.colors == "auto"
            or max_size is not None
        ):
            raise UsageError(
                f"{flag} fixes K: it cannot be combined with --quality, --max-delta-e, "
                "--max-size or -k auto"
            )
        if args.init_palette and not spec.iterative:
            raise UsageError(f"--init-palette does not apply to --method {spec.name}")
    if args.quality is not None and args.max_delta_e is not None:
        raise UsageError("use either --quality or --max-delta-e, not both")
    if max_size is not None:
        if args.quality is not None or args.max_delta_e is not None:
            raise UsageError("use either --max-size or a quality target, not both")
        if args.colors == "auto":
            raise UsageError("-k auto cannot be combined with --max-size")
    if args.colors == "auto":
        if not spec.bic:
            able = or_list([f"--method {s.name}" for s in METHODS.values() if s.bic])
            raise UsageError(
                f"-k auto chooses K by BIC and needs {able} "
                "(for other methods use --quality or --max-delta-e)"
            )
        if args.quality is not None or args.max_delta_e is not None:
            raise UsageError("-k auto cannot be combined with --quality/--max-delta-e")


def _run_fit(
    image: np.ndarray, args: argparse.Namespace, show_progress: bool | None
) -> tuple[Any, Any]:
    """Return (result, auto_choice or None)."""
    from quantize.auto import iter_bic, iter_quality_target
    from quantize.distributed import cancel_requested
    from quantize.pipeline import iter_quantize_image, map_to_palette

    model = getattr(args, "model", None)
    if model is not None:  # vq apply: a saved colour model, no fit
        from quantize.io.model_file import apply_model

        return apply_model(image, model), None
    options = _estimator_options(args)
    shared = getattr(args, "fixed_palette", None)
    if shared is not None:  # vq batch --shared-palette: the palette of the whole set
        return map_to_palette(image, np.asarray(shared, np.uint8), color_space=args.space), None
    options.update(pipeline_options(args))
    if getattr(args, "importance", None):
        from quantize.io.importance import read_importance_map

        options["importance"] = read_importance_map(
            args.importance, image.shape[:2], max_pixels=args.max_pixels
        )
    locked = options.get("locked")
    k_fixed = args.colors if isinstance(args.colors, int) else None
    if args.colors is None and args.quality is None and args.max_delta_e is None:
        k_fixed = DEFAULTS["n_colors"]
    if locked is not None and k_fixed is not None and len(locked) > k_fixed:
        raise UsageError(f"{len(locked)} locked colours do not fit in a palette of {k_fixed}")
    if args.use_palette:
        return map_to_palette(
            image, _read_user_palette(args.use_palette), color_space=args.space
        ), None
    k_given = args.colors
    if args.init_palette:
        palette = _read_user_palette(args.init_palette)
        if isinstance(k_given, int) and k_given != len(palette):
            raise UsageError(f"--init-palette has {len(palette)} colours but -k is {k_given}")
        options["init"] = palette
        k_given = len(palette)
    progress = Progress(show_progress, f"{args.method} ({args.space})")
    max_size = getattr(args, "max_size", None)
    if max_size is not None:
        from quantize.sweep import iter_size_budget

        k_max = args.colors if isinstance(args.colors, int) else DEFAULTS["k_max_quality"]
        budget = iter_size_budget(
            image,
            max_size,
            k_min=min(2, k_max),
            k_max=k_max,
            method=args.method,
            color_space=args.space,
            seed=args.seed,
            dither=args.dither,
            strength=args.strength,
            **options,
        )
        choice = drive(budget, progress)
        if not choice.reached:
            raise QualityNotReached(
                f"no palette fits {max_size:,} bytes: the smallest, K={choice.k}, makes an "
                f"indexed PNG of {int(choice.value):,} bytes; nothing written"
            )
        return choice.result, choice
    if args.quality is not None or args.max_delta_e is not None:
        k_max = args.colors if isinstance(args.colors, int) else DEFAULTS["k_max_quality"]
        search = iter_quality_target(
            image,
            psnr=args.quality,
            max_delta_e=args.max_delta_e,
            k_min=max(1, 0 if locked is None else len(locked)),
            k_max=k_max,
            method=args.method,
            color_space=args.space,
            seed=args.seed,
            should_cancel=cancel_requested,
            **options,
        )
        choice = drive(search, progress)
        if not choice.reached:
            name = "PSNR" if choice.metric == "psnr" else "mean dE2000"
            unit = " dB" if choice.metric == "psnr" else ""
            raise QualityNotReached(
                f"quality target not reached: best {name} {choice.value:.2f}{unit} at K={choice.k} "
                f"(target {choice.target:g}); nothing written"
            )
        return choice.result, choice
    if args.colors == "auto":
        by_bic = iter_bic(
            image,
            k_min=max(1, 0 if locked is None else len(locked)),
            k_max=DEFAULTS["k_max_bic"],
            method=args.method,
            color_space=args.space,
            seed=args.seed,
            should_cancel=cancel_requested,
            **options,
        )
        choice = drive(by_bic, progress)
        return choice.result, choice
    k = k_given if k_given is not None else DEFAULTS["n_colors"]
    fit = iter_quantize_image(
        image,
        k,
        method=args.method,
        color_space=args.space,
        seed=args.seed,
        should_cancel=cancel_requested,  # a cancelled Dask batch: between chunks, too
        **options,
    )
    return drive(fit, progress), None


def smooth_if_asked(
    result: Any, args: argparse.Namespace, notes: list[str], default: Any = None
) -> Any:
    """Apply ``--smooth`` / ``--min-region`` to a result (:func:`quantize.segment.segment_result`).

    Parameters
    ----------
    result : QuantizeResult
    args : argparse.Namespace
    notes : list of str
        Receives a warning when a dither is asked for a smoothed result (not dithered).
    default : SmoothingSettings, optional
        Settings used for the options not given (a saved model's).

    Returns
    -------
    result : QuantizeResult
    """
    from quantize.segment import segment_result

    strength = getattr(args, "smooth", None)
    min_region = getattr(args, "min_region", None)
    if strength is None:
        strength = default.strength if default is not None else 0.0
    if min_region is None:
        min_region = default.min_region if default is not None else 0
    if strength <= 0 and min_region <= 1:
        return result
    kwargs: dict[str, Any] = {}
    if default is not None:
        kwargs = {"max_sweeps": default.max_sweeps, "tol": default.tol}
    smoothed = segment_result(result, strength, min_region, **kwargs)
    if getattr(args, "dither", "none") != "none":
        notes.append("a smoothed segmentation is written without dithering")
    return smoothed


def _read_user_palette(path: str) -> np.ndarray:
    # read_palette refuses empty palettes and raises PaletteError, a LoadError (exit 3)
    from quantize.io.palettes import read_palette

    return read_palette(path)


#: the single-file outputs of vq quantize and vq apply named by an option: the export kind by
#: the file's suffix (the first one for a folder, which gets ``<stem><kind suffix>``)
_FILE_OPTIONS: tuple[tuple[str, dict[str, str]], ...] = (
    ("stats", {".csv": "stats_csv", ".json": "stats_json"}),
    ("overlay", {".png": "overlay_png"}),
    ("outlines", {".svg": "outlines_svg"}),
    ("save_model", {".json": "colour_model"}),
)


def _targets(args: argparse.Namespace, stem: str) -> list[tuple[str, Path]]:
    from quantize.io.export import get_export_kind, palette_kinds_by_suffix

    targets: list[tuple[str, Path]] = []
    if not args.no_image:
        out = Path(args.output) if args.output else Path(f"{stem}-vq.png")
        if out.is_dir():
            out = out / f"{stem}-vq.png"
        elif out.suffix.lower() != ".png":
            raise UsageError(f"-o {out}: the output image is a PNG; give a name ending in .png")
        targets.append(("indexed_png", out))
    palette_kinds = palette_kinds_by_suffix()
    for pal in args.palette:
        kind = palette_kinds.get(Path(pal).suffix.lower())
        if kind is None:
            raise UsageError(
                f"--palette {pal}: unknown extension (use one of "
                f"{', '.join(sorted(palette_kinds))})"
            )
        targets.append((kind, Path(pal)))
    if args.masks:
        folder = Path(args.masks)
        targets.append(("label_map", folder / f"{stem}.labels.png"))
        targets.append(("binary_masks", folder / stem))
    if args.soft:
        folder = Path(args.soft)
        targets.append(("soft_maps", folder / stem))
        targets.append(("npz", folder / f"{stem}.maps.npz"))
    for option, by_suffix in _FILE_OPTIONS:
        value = getattr(args, option, None)
        if not value:
            continue
        path = Path(value)
        if path.is_dir():  # a folder (vq apply with several images): <stem> and the kind's suffix
            kind = next(iter(by_suffix.values()))
            path = path / f"{stem}{get_export_kind(kind).suffix}"
        else:
            found = by_suffix.get(path.suffix.lower())
            if found is None:
                flag = "--" + option.replace("_", "-")
                endings = " or ".join(by_suffix)
                raise UsageError(f"{flag} {value}: give a name ending in {endings} or a folder")
            kind = found
        targets.append((kind, path))
    if args.report:
        targets.append(("sidecar", Path(args.report)))
    check_distinct_outputs(targets)
    return targets


def check_distinct_outputs(
    targets: Sequence[tuple[str, Path]], n_colors: int | None = None, palette: Any = None
) -> None:
    """Refuse one file named for two outputs (``-o c.png --report c.png``): a usage error.

    Parameters
    ----------
    targets : sequence of (kind, Path)
        The outputs, as :func:`quantize.io.export.export_targets` takes them.
    n_colors : int, optional
        K; when given, the files of the per-colour kinds (masks, soft maps) are checked
        too, otherwise only the single-file outputs (before the fit, when K is not known).
    palette : ndarray of shape (K, 3), optional
        The palette, for the kinds whose file names carry each colour (binary masks).

    Raises
    ------
    UsageError
        Naming the file and the options that both name it.
    """
    from quantize.io.export import get_export_kind

    seen: dict[str, str] = {}
    for kind, target in targets:
        spec = get_export_kind(kind)
        if spec.per_entry:
            if n_colors is None or ("{hex}" in spec.suffix and palette is None):
                continue
            files = spec.paths(target.parent, target.name, n_colors, palette)
        else:
            files = [target]
        option = _OPTION_OF_KIND.get(kind, "--palette")
        for path in files:
            key = os.path.normcase(os.path.abspath(path))
            if key in seen:
                first = seen[key]
                both = f"twice by {option}" if first == option else f"by both {first} and {option}"
                raise UsageError(f"{path}: named {both}; give each output its own file name")
            seen[key] = option


def read_stdin(max_pixels: int) -> bytes:
    """Read an encoded image from standard input, refusing more than the pixel cap allows.

    Parameters
    ----------
    max_pixels : int
        The cap on ``width * height`` (see :func:`quantize.io.load.file_size_limit`).

    Returns
    -------
    data : bytes

    Raises
    ------
    LoadError
        Named ``<stdin>``: too large, or standard input cannot be read.
    """
    from quantize.io.load import LoadError, file_size_limit

    limit = file_size_limit(max_pixels)  # as load_image's file-size guard
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise LoadError("<stdin>", "standard input is not available")
    try:
        data = stream.read(limit + 1)
    except OSError as exc:
        raise LoadError("<stdin>", f"cannot read standard input ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise LoadError("<stdin>", "input is too large for the pixel limit")
    return bytes(data)


def _check_folders(targets: Sequence[tuple[str, Path]], args: argparse.Namespace) -> None:
    made_later = {Path(f) for f in (args.masks, args.soft) if f}
    for folder in made_later:
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: exists and is not a folder")
    for _, path in targets:
        if path.parent not in made_later and not path.parent.is_dir():
            raise UsageError(f"{path}: folder {path.parent} does not exist")


def _early_exists_check(targets: Sequence[tuple[str, Path]], force: bool) -> None:
    """Fail before the (possibly long) fit when a known single-file output exists."""
    from quantize.io.errors import OutputExistsError
    from quantize.io.export import SINGLE_FILE_KINDS

    if force:
        return
    for kind, path in targets:
        if kind in SINGLE_FILE_KINDS and (path.exists() or path.is_symlink()):
            raise OutputExistsError(f"{path}: already exists (use --force)", [path])


def _kernel_loader(args: argparse.Namespace) -> Callable[[int, int], None] | None:
    """Return an ``on_size`` for the image load that starts loading the compiled loops.

    When the run dithers with Floyd–Steinberg at a size that repays the compiled loop
    (:func:`~quantize.render.compiled_diffusion_pays`), or fits K-means (or a mixture,
    which starts from K-means) on a large image, loading the loops (a few hundredths of a
    second) in the background from the moment the header is read overlaps decoding.
    """
    dithers = args.dither == "fs" and args.strength > 0
    fits_kmeans = getattr(args, "method", None) in ("kmeans", "gmm")  # (`vq apply` fits none)
    if not dithers and not fits_kmeans:
        return None

    def start(width: int, height: int) -> None:
        from quantize import _native
        from quantize.render import compiled_diffusion_pays

        pixels = width * height
        if (dithers and compiled_diffusion_pays(pixels)) or (
            fits_kmeans and pixels >= _KMEANS_LOAD_MIN_PIXELS
        ):
            _native.prepare()

    return start


#: Pixels from which a K-means run loads the compiled E step while the image decodes (a
#: quarter megapixel has about 50 000 distinct colours: at K = 16, 0.8 M point-centre pairs
#: per iteration; see quantize.cluster._annular.MIN_WORK for runs that did not preload it).
_KMEANS_LOAD_MIN_PIXELS = 250_000


def quantize_one(
    image_path: Path,
    args: argparse.Namespace,
    *,
    show_progress: bool | None,
    warn: Callable[[str], None],
    stem: str | None = None,
    targets: list[tuple[str, Path]] | None = None,
    data: bytes | None = None,
    written: list[Path] | None = None,
) -> dict[str, Any]:
    """Load, fit, measure and write one image; return the JSON-able summary.

    Parameters
    ----------
    image_path : Path
        The input, ``-`` for standard input.
    args : argparse.Namespace
        The options of ``vq quantize`` (or of ``vq batch`` with its outputs filled in).
    show_progress : bool or None
        See :func:`~quantize.cli._common.progress_mode`.
    warn : callable
        Receives each warning of the fit, once.
    stem : str, optional
        Base name of the outputs; default the input's stem (``stdin``).
    targets : list of (kind, Path), optional
        Outputs; default those of the ``vq quantize`` options.
    data : bytes, optional
        The encoded image of ``-`` when already read (``vq batch`` reads standard input
        in its parent process); by default ``-`` reads standard input.
    written : list of Path, optional
        Receives the files written as soon as they are in place (what an interrupt after
        that point reports).

    Returns
    -------
    summary : dict
        What ``--json`` prints.

    Raises
    ------
    LoadError, UsageError, ExportError, QualityNotReached, SkippedLarger
    """
    from quantize.io.export import export_targets
    from quantize.io.load import load_image, load_image_bytes, require_visible_pixels
    from quantize.io.overlay import DEFAULT_OPACITY
    from quantize.metrics import compute_metrics, render_indexed

    from_stdin = str(image_path) == "-"
    if from_stdin and data is None:
        data = read_stdin(args.max_pixels)
    with native_stderr_muted(not getattr(args, "debug", False)):  # the LoadError says it
        on_size = _kernel_loader(args)
        if data is not None:
            loaded = load_image_bytes(
                data, name="<stdin>", max_pixels=args.max_pixels, on_size=on_size
            )
        else:
            loaded = load_image(image_path, max_pixels=args.max_pixels, on_size=on_size)
    require_visible_pixels(loaded, "<stdin>" if from_stdin else image_path)
    stem = stem or ("stdin" if from_stdin else image_path.stem)
    if targets is None:
        targets = _targets(args, stem)
    _check_folders(targets, args)
    _early_exists_check(targets, args.force)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, choice = _run_fit(loaded.pixels, args, show_progress)
    fit_warnings = list(dict.fromkeys(str(w.message) for w in caught))
    model = getattr(args, "model", None)
    result = smooth_if_asked(
        result, args, fit_warnings, default=None if model is None else model.smoothing
    )
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
    png_bytes = len(rendering[1])
    # the measures (SSIM and CIEDE2000 take longer than a K = 16 fit) only when someone
    # reads them: the printed summary, --json or a sidecar
    wanted = not args.quiet or args.json or any(kind == "sidecar" for kind, _ in targets)
    metrics = None
    if wanted:
        metrics = compute_metrics(
            result,
            dither=args.dither,
            strength=args.strength,
            original_bytes=loaded.file_size,
            rendering=rendering,
        )
    if getattr(args, "skip_if_larger", False) and png_bytes >= loaded.file_size:
        raise SkippedLarger(
            f"{image_path}: skipped, the indexed PNG ({png_bytes:,} bytes) would not be "
            f"smaller than the input ({loaded.file_size:,} bytes); nothing written"
        )
    check_distinct_outputs(targets, len(result.palette), result.palette)
    begin_writing()  # a batch worker told to stop now finishes this file and reports it
    created = create_dirs([args.masks, args.soft])
    try:
        paths = export_targets(
            result,
            targets,
            overwrite=args.force,
            dither=args.dither,
            strength=args.strength,
            source_path=None if from_stdin else image_path,
            metrics=metrics,
            source_sha256=loaded.info.get("sha256"),
            rendering=rendering,
            overlay_opacity=getattr(args, "overlay_opacity", DEFAULT_OPACITY),
        )
    except BaseException:
        remove_folders(created)
        raise
    if written is not None:
        written.extend(paths)
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
        "metrics": None if metrics is None else metrics.to_dict(),
        "palette": ["#{:02x}{:02x}{:02x}".format(*map(int, c)) for c in result.palette],
        "proportions": [round(float(p), 6) for p in result.proportions],
        "locked": params.get("locked", []),
        "added_small_colors": params.get("added_small_colors", []),
        "error_power": params.get("error_power", 2.0),
        "importance_map": getattr(args, "importance", None),
        "auto": None,
        "warnings": list(
            dict.fromkeys(list(result.warnings) + fit_warnings + loaded.info.get("notes", []))
        ),
        "outputs": [{"path": str(p), "bytes": p.stat().st_size} for p in paths],
    }
    if model is not None:
        summary["model"] = model.source
    seg = getattr(result, "segmentation", None)
    summary["smoothing"] = None if seg is None else seg.to_dict()
    if choice is not None:
        summary["auto"] = {
            "metric": choice.metric,
            "target": choice.target,
            "value": None if not math.isfinite(choice.value) else choice.value,
            "k": choice.k,
            "tried": {str(k): (v if math.isfinite(v) else None) for k, v in choice.scores.items()},
        }
    return summary
