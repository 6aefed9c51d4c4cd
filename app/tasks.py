"""The work done off the GUI thread, without Qt: the run pipeline and opening an image.

``run_pipeline`` is plain Python: it forwards the engine's per-iteration records, then
prepares everything the views need (display arrays, soft-map thumbnails, a colour sample,
metrics) so that the GUI thread only wraps ready-made arrays.  :func:`open_file` decodes an
image and builds its display array.  :class:`app.workers.Worker` runs either on a thread;
cancellation is cooperative: the ``should_cancel`` callable handed to the pipeline is polled
by the engine between iterations and chunks (and by the worker between yields).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.model import (
    ColorSample,
    OpenedImage,
    RunJob,
    RunOutput,
    RunParameters,
    Shown,
    SoftMaps,
    Stage,
    is_grey_fit,
    objective_kind,
)
from quantize.cluster.registry import METHODS, get_method
from quantize.options import DEFAULTS
from quantize.protocol import Cancelled, IterationRecord, check_cancel

__all__ = [
    "run_pipeline",
    "chosen_restart",
    "warm_up",
    "open_file",
    "prepare",
    "is_grey",
    "display_array",
    "MAX_MAPS",
    "MAP_SIDE",
    "map_levels",
    "soft_maps_of",
    "SAMPLE_SIZE",
]

#: Largest number of per-component soft maps prepared for display (largest shares first).
MAX_MAPS = 64
#: Longest side (pixels) of the soft maps prepared for display: the soft-maps panel's detail
#: view shows them about this large (as the segmentation panel's overlay), its thumbnails are
#: sub-sampled from them.  Stored as 8-bit levels (:func:`map_levels`), a 12-megapixel photo's
#: maps take 0.75 MB each.
MAP_SIDE = 1024
#: Number of pixels sampled for the colour-space scatter.
SAMPLE_SIZE = 2500

_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "La"}


def chosen_restart(records: list[IterationRecord], history: np.ndarray, kind: str) -> int:
    """Find the restart whose objective sequence is the kept ``history``.

    Parameters
    ----------
    records : list of IterationRecord
        All records of the run.
    history : ndarray of shape (n_iter,)
        The chosen run's objective history.
    kind : str
        Objective kind of the main fit.

    Returns
    -------
    restart : int
        Index of the matching restart (the last one if none matches exactly).
    """
    by_restart: dict[int, list[float]] = {}
    for rec in records:
        if rec.kind == kind:
            by_restart.setdefault(rec.restart, []).append(rec.objective)
    history = np.asarray(history, dtype=np.float64)
    for restart, values in by_restart.items():
        if len(values) == len(history) and np.allclose(values, history, rtol=1e-9, atol=0):
            return restart
    for restart, values in by_restart.items():
        if values and len(history) and np.isclose(values[-1], history[-1], rtol=1e-9):
            return restart
    return max(by_restart) if by_restart else 0


def _fit_generator(job: RunJob, should_cancel: Callable[[], bool]) -> Generator[Any, None, Any]:
    params = job.params
    if job.previous is not None:
        return _reuse(job.previous)
    if params.auto == "off":
        from quantize.pipeline import iter_quantize_image

        return iter_quantize_image(
            job.image,
            params.n_colors,
            method=params.method,
            color_space=params.color_space,
            seed=params.seed,
            should_cancel=should_cancel,
            table=job.table,
            **{**params.fit_options(), **params.pipeline_options(), **(job.overrides or {})},
        )
    return _auto_generator(job, should_cancel)


def _reuse(result: Any) -> Generator[Any, None, Any]:
    """Return an existing fit through the generator protocol (no iterations)."""
    return result
    yield  # makes this function a generator


def _auto_generator(job: RunJob, should_cancel: Callable[[], bool]) -> Generator[Any, None, Any]:
    from quantize import auto

    p = job.params
    options = {**p.fit_options(), **p.pipeline_options()}
    if job.overrides and "importance" in job.overrides:
        options["importance"] = job.overrides["importance"]
    if p.auto == "quality":
        return auto.iter_quality_target(
            job.image,
            psnr=p.target_psnr,
            k_min=2,
            k_max=p.n_colors,
            method=p.method,
            color_space=p.color_space,
            seed=p.seed,
            should_cancel=should_cancel,
            table=job.table,
            **options,
        )
    if p.auto == "size":
        from quantize.sweep import iter_size_budget

        return iter_size_budget(
            job.image,
            int(round(p.max_size_kb * 1000)),
            k_min=2,
            k_max=p.n_colors,
            method=p.method,
            color_space=p.color_space,
            seed=p.seed,
            dither=p.dither,
            strength=p.dither_strength,
            should_cancel=should_cancel,
            table=job.table,
            **options,
        )
    return auto.iter_bic(
        job.image,
        k_min=2,
        k_max=p.n_colors,
        method=p.method,
        color_space=p.color_space,
        seed=p.seed,
        should_cancel=should_cancel,
        table=job.table,
        **options,
    )


def _with_alpha(rgb: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Attach the input's alpha channel (as 8 bits) to the palette image for display."""
    if image.ndim != 3 or image.shape[2] != 4:
        return np.ascontiguousarray(rgb)
    from quantize.pixels import to_uint8

    rgba = np.empty(rgb.shape[:2] + (4,), dtype=np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = to_uint8(image[..., 3])
    return rgba


def map_levels(values: np.ndarray) -> np.ndarray:
    """Store a map of values in [0, 1] as 8-bit levels ``round(255 v)``.

    A quarter of float32's memory at the detail size; the colour map the views use has 256
    entries, so nothing visible is lost.

    Parameters
    ----------
    values : ndarray of shape (m, n)
        Values in [0, 1] (clipped), or a boolean mask.

    Returns
    -------
    levels : ndarray of shape (m, n), uint8, C-contiguous
    """
    values = np.asarray(values)
    if values.dtype == np.bool_:
        return np.ascontiguousarray(values.astype(np.uint8) * np.uint8(255))
    scaled = np.clip(values.astype(np.float32, copy=False) * 255.0 + 0.5, 0.0, 255.0)
    return np.ascontiguousarray(scaled.astype(np.uint8))


def _soft_maps(result: Any, should_cancel: Callable[[], bool]) -> SoftMaps:
    height, width = result.labels.shape
    step = max(1, int(np.ceil(max(height, width) / MAP_SIDE)))
    proportions = np.asarray(result.proportions)
    order = np.argsort(-proportions, kind="stable")[:MAX_MAPS]
    labels = np.asarray(result.labels)[::step, ::step]
    opaque = None if result.opaque is None else np.asarray(result.opaque)[::step, ::step]
    soft = result.is_soft or getattr(result, "segmentation", None) is not None
    maps = []
    for k in order:
        check_cancel(should_cancel)
        if soft:
            maps.append(map_levels(np.asarray(result.responsibility_map(int(k)))[::step, ::step]))
        else:
            # hard methods: the responsibility map is the 0/1 mask of the label map, so
            # take it from the already sub-sampled labels instead of gathering all pixels
            mask = labels == k
            if opaque is not None:
                mask &= opaque  # transparent pixels belong to no cluster
            maps.append(map_levels(mask))
    source = "responsibilities"
    if soft:
        uncertainty = map_levels(np.asarray(result.uncertainty_map())[::step, ::step])
    else:
        uncertainty = map_levels(_distance_uncertainty(result, step))
        source = "distances"
    responsibilities = np.stack(maps) if maps else np.zeros((0,) + labels.shape, dtype=np.uint8)
    return SoftMaps(
        components=order.astype(np.int64),
        responsibilities=np.ascontiguousarray(responsibilities),
        labels=np.ascontiguousarray(labels),
        uncertainty=np.ascontiguousarray(uncertainty),
        step=step,
        soft=soft,
        uncertainty_source=source,
    )


def _distance_uncertainty(result: Any, step: int) -> np.ndarray:
    """``1 - max`` of a hard fit's distance-derived soft assignments, on the display grid."""
    from quantize.segment import assignment_uncertainty

    table = result.table
    index = np.asarray(table.inverse).reshape(table.shape)[::step, ::step]
    opaque = index >= 0
    shown = index[opaque]
    out = np.zeros(index.shape, dtype=np.float32)
    if shown.size == 0:
        return out
    # per distinct colour on the grid, then gathered: a value per colour instead of one per
    # displayed pixel; the colours marked in a table of all of them rather than sorted
    mark = np.zeros(table.n_colors, bool)
    mark[shown] = True
    used = np.flatnonzero(mark)
    per_colour = np.zeros(table.n_colors, np.float32)
    try:
        per_colour[used] = np.clip(assignment_uncertainty(result, used), 0.0, 1.0)
    except (AttributeError, ValueError):  # a method without centres: nothing to show
        return out
    out[opaque] = np.take(per_colour, shown)
    return out


def soft_maps_of(result: Any, should_cancel: Callable[[], bool] | None = None) -> SoftMaps:
    """Display soft maps of a result (what a run prepares; also for a re-smoothed result).

    Parameters
    ----------
    result : QuantizeResult
    should_cancel : callable, optional

    Returns
    -------
    maps : SoftMaps
    """
    return _soft_maps(result, should_cancel or (lambda: False))


def _replay_steps(result: Any, restart: int, dims: int) -> list[IterationRecord]:
    """Return the records of the kept run that the colour-space view can replay."""
    kind = objective_kind(result.method)
    shape = (len(result.palette), dims)
    return [
        r
        for r in result.records
        if r.kind == kind
        and r.restart == restart
        and r.stage != "auto-k"
        and np.shape(r.centers) == shape
    ]


def _color_sample(result: Any, seed: int, restart: int) -> ColorSample:
    from quantize.colorspace import rgb_to_space

    image = np.asarray(result.image)
    height, width = image.shape[:2]
    flat_labels = np.asarray(result.labels).reshape(-1)
    if result.opaque is not None:
        candidates = np.flatnonzero(np.asarray(result.opaque).reshape(-1))
    else:
        candidates = None
    n_total = height * width if candidates is None else candidates.size
    rng = np.random.default_rng(seed)
    size = min(SAMPLE_SIZE, n_total)
    picks = rng.choice(n_total, size=size, replace=False) if n_total else np.zeros(0, np.int64)
    index = picks if candidates is None else candidates[picks]
    pixels = image.reshape(height * width, -1)[index, :3]
    points = rgb_to_space(pixels, result.color_space)  # takes uint8 and uint16 as they are
    if is_grey_fit(result.method):
        # grey fits are 1-D: grey level (rgb) or lightness (lab, oklab), like the engine
        points = points[:, :1]
    points = np.asarray(points, dtype=np.float64)
    return ColorSample(
        points=points,
        labels=flat_labels[index],
        steps=_replay_steps(result, restart, points.shape[1]),
    )


def run_pipeline(
    job: RunJob, should_cancel: Callable[[], bool]
) -> Generator[IterationRecord | Stage | Shown, None, RunOutput]:
    """Fit, then prepare the display data; yields records and stages, returns the output.

    Parameters
    ----------
    job : RunJob
        Image and parameters.
    should_cancel : callable
        Polled by the engine between iterations and chunks; a ``True`` raises ``Cancelled``.

    Yields
    ------
    item : IterationRecord, Stage or Shown
        The engine's per-iteration records, then stage messages, and once the result is
        rendered, a :class:`~app.model.Shown` with the output without metrics (the views
        show it while the metrics are computed).

    Returns
    -------
    output : RunOutput
        The result and its display data.
    """
    start = time.perf_counter()
    params = job.params
    fitted = yield from _fit_generator(job, should_cancel)
    extra: dict[str, Any] = {}
    if params.auto != "off":  # an AutoKResult: the chosen fit plus the score of every K
        extra["auto"] = fitted
        result = fitted.result
    else:
        result = fitted
    # shown and exported in the chosen order (the reorder keeps everything else)
    from quantize.edit import reorder, sort_order

    result = reorder(result, sort_order(result, params.palette_order))
    check_cancel(should_cancel)

    yield Stage("Rendering the palette image…")
    from quantize.metrics import render_indexed

    # dither and encode once: the metrics and the export reuse this rendering.  It runs on
    # a second thread while this one prepares the soft maps and, as soon as the indices are
    # known, the palette image: the PNG's deflate, the gathers and the compiled loops
    # release the interpreter lock (15 MP photo, K = 16: ~0.2 s, then ~0.1 s less)
    indices: Future[np.ndarray] = Future()
    with ThreadPoolExecutor(1, thread_name_prefix="vq-render") as pool:
        rendered = pool.submit(
            render_indexed,
            result,
            dither=params.dither,
            strength=params.dither_strength,
            should_cancel=should_cancel,
            on_indices=indices.set_result,
        )
        yield Stage("Preparing soft maps…")
        soft = _soft_maps(result, should_cancel)
        restart = chosen_restart(
            list(result.records), result.history, objective_kind(result.method)
        )
        sample = _color_sample(result, params.seed, restart)
        pending: list[Future[Any]] = [indices, rendered]
        wait(pending, return_when=FIRST_COMPLETED)
        if not indices.done():  # the rendering failed (or was cancelled) before them
            rendered.result()
        # np.take: 2-3 times faster than fancy indexing for this (M, N) -> (M, N, 3) gather
        quantized = _with_alpha(
            np.take(np.asarray(result.palette, np.uint8), indices.result(), axis=0), job.image
        )
        rendering = rendered.result()  # (a cancel reaches both through should_cancel)
    labels = np.asarray(result.labels)
    labels8 = np.ascontiguousarray(labels) if labels.dtype == np.uint8 else None
    check_cancel(should_cancel)

    shown = RunOutput(
        result=result,
        quantized=quantized,
        labels=labels8,
        soft_maps=soft,
        sample=sample,
        chosen_restart=restart,
        metrics=None,
        metrics_error="",
        params=params,
        elapsed_s=time.perf_counter() - start,
        extra=extra,
        rendering=rendering,
        original_bytes=job.original_bytes,
        metrics_pending=True,
    )
    yield Shown(shown)  # the views show the result now; the metrics follow

    yield Stage("Computing metrics…")
    metrics = None
    metrics_error = ""
    try:
        from quantize.metrics import compute_metrics

        metrics = compute_metrics(
            result,
            dither=params.dither,
            strength=params.dither_strength,
            original_bytes=job.original_bytes,
            should_cancel=should_cancel,
            rendering=rendering,
        )
    except Cancelled:
        raise
    except Exception as exc:  # metrics are optional for the run; report why they are missing
        metrics_error = f"{type(exc).__name__}: {exc}"
    check_cancel(should_cancel)

    return replace(
        shown,
        metrics=metrics,
        metrics_error=metrics_error,
        elapsed_s=time.perf_counter() - start,
        metrics_pending=False,
    )


_warmed_up = False


def warm_up() -> None:
    """Run the whole pipeline once on a tiny image, on the calling (GUI) thread.

    The first run imports a few hundred modules (engine, metrics, scikit-image, SciPy).
    Importing holds the interpreter lock for tens of milliseconds at a time, which would
    stall the event loop if it happened on the worker thread during the first run, so the
    window does it once at start-up instead.  Failures are ignored here: a real run reports
    them.  It also limits BLAS to one thread (:func:`quantize._blas.limit_blas_threads`) and
    freezes the objects made so far out of the garbage collector's walks.
    """
    global _warmed_up
    if _warmed_up:
        return
    _warmed_up = True
    from quantize._blas import limit_blas_threads
    from quantize.protocol import drain

    tiny = (np.arange(8 * 8 * 3, dtype=np.int64).reshape(8, 8, 3) * 37 % 256).astype(np.uint8)
    try:
        for spec in _warm_up_methods():
            init = "random" if "random" in spec.inits else next(iter(spec.inits), "")
            params = RunParameters(method=spec.name, n_colors=2, n_init=1, init=init)
            drain(run_pipeline(RunJob(tiny, params), lambda: False))
    except Exception:  # noqa: BLE001 - only a warm-up; the real run reports errors
        pass
    # Whoever made the window (the app, its self-test, a test): the engine's own threads do
    # the parallel work; the BLAS libraries now loaded (numpy's, SciPy's) would spin beside
    # them at the GUI thread's priority.
    limit_blas_threads()
    # The few hundred modules just imported (numba, SciPy, scikit-image, pyqtgraph...) live as
    # long as the process.  A full collection walks every object the collector tracks: 0.1 s of
    # held interpreter lock on the GUI thread in the middle of a run (a 12 MP run's longest
    # event-loop pause, 160-220 ms).  Frozen, they are no longer walked.  (No collection
    # first: it took 80 ms of the window's start-up to free 6 objects.)
    gc.freeze()


def _warm_up_methods() -> list[Any]:
    """Return the default method and the first soft one: the two code paths of a run."""
    specs = [get_method(DEFAULTS["method"])]
    soft = next((s for s in METHODS.values() if s.soft and not s.grey_only), None)
    if soft is not None and soft is not specs[0]:
        specs.append(soft)
    return specs


def display_array(pixels: np.ndarray) -> np.ndarray:
    """Return a C-contiguous 8-bit RGB(A) array for display.

    Parameters
    ----------
    pixels : ndarray of shape (M, N, 3) or (M, N, 4)
        uint8 or uint16 pixels, e.g. ``LoadedImage.pixels`` (16-bit values are rounded to
        8 bits).

    Returns
    -------
    display : ndarray of shape (M, N, 3) or (M, N, 4), uint8
        Contiguous array suitable for :func:`app.imaging.qimage_from_array`.
    """
    arr = np.asarray(pixels)
    if arr.dtype == np.uint16:
        from quantize.pixels import to_uint8

        arr = to_uint8(arr)
    elif arr.dtype != np.uint8:
        raise TypeError(f"cannot display pixels of dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"cannot display an array of shape {arr.shape}")
    return np.ascontiguousarray(arr)


def is_grey(loaded: Any) -> bool:
    """Return whether an image is grey (by its mode, else by comparing channels).

    Parameters
    ----------
    loaded : LoadedImage
        The image.

    Returns
    -------
    grey : bool
        ``True`` when R == G == B everywhere.
    """
    if loaded.mode in _GREY_MODES:
        return True
    pixels = loaded.pixels
    return bool(
        np.array_equal(pixels[..., 0], pixels[..., 1])
        and np.array_equal(pixels[..., 1], pixels[..., 2])
    )


def prepare(loaded: Any, name: str) -> OpenedImage:
    """Build the display data of a loaded image.

    Parameters
    ----------
    loaded : LoadedImage
        The image.
    name : str
        Name shown in the title bar.

    Returns
    -------
    opened : OpenedImage
        Image, display pixels and grey flag.
    """
    return OpenedImage(loaded, display_array(loaded.pixels), is_grey(loaded), name)


def open_file(path: str | Path) -> OpenedImage:
    """Load and prepare an image file.

    Parameters
    ----------
    path : str or Path
        Image file.

    Returns
    -------
    opened : OpenedImage
        The prepared image.

    Raises
    ------
    quantize.io.load.LoadError
        When the file cannot be opened or holds nothing to quantize (every pixel fully
        transparent); the message names the file and the problem.
    """
    from quantize.io.load import load_image, require_visible_pixels

    path = Path(path)
    loaded = load_image(path)
    require_visible_pixels(loaded, path)  # refused now, as the CLI does, not at Run
    return prepare(loaded, path.name)
