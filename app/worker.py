"""The run pipeline (a generator) and the QThread that drives it off the GUI thread.

``run_pipeline`` is plain Python: it forwards the engine's per-iteration records, then
prepares everything the views need (display arrays, soft-map thumbnails, a colour sample,
metrics) so that the GUI thread only wraps ready-made arrays.  ``RunWorker`` iterates it on a
``QThread`` and forwards each item through queued signals.  Cancellation is cooperative:
``request_cancel`` sets a flag that the engine polls (``should_cancel``) between iterations and
chunks, and the worker closes the generator at the next yield.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6 import QtCore

import app._compat  # noqa: F401  (PySide6 6.12 emit refcount bug, see module)
from app.params import RunParameters
from quantize.protocol import Cancelled, IterationRecord, check_cancel

__all__ = [
    "RunJob",
    "RunOutput",
    "SoftMaps",
    "ColorSample",
    "Stage",
    "RunWorker",
    "run_pipeline",
    "MAX_MAPS",
    "MAP_SIDE",
    "warm_up",
]

#: Largest number of per-component soft maps prepared for display (largest shares first).
MAX_MAPS = 64
#: Longest side (pixels) of the soft maps prepared for display.
MAP_SIDE = 384
#: Number of pixels sampled for the colour-space scatter.
SAMPLE_SIZE = 2500


@dataclass(frozen=True)
class RunJob:
    """Inputs of one run.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4)
        Pixels (uint8 or uint16), not modified.
    params : RunParameters
        The run parameters.
    original_bytes : int or None
        Size of the source file, for the metrics' size comparison.
    previous : QuantizeResult or None
        A fit of this image with the same model parameters: only re-render it (used when
        just the dithering changed).
    """

    image: np.ndarray
    params: RunParameters
    original_bytes: int | None = None
    previous: Any = None


@dataclass(frozen=True)
class Stage:
    """A progress message between the fit and the end of the run.

    Parameters
    ----------
    text : str
        What the worker is doing now.
    """

    text: str


@dataclass
class SoftMaps:
    """Down-sampled per-component maps for display.

    Parameters
    ----------
    components : ndarray of shape (L,)
        Component indices shown, largest share first (``L <= MAX_MAPS``).
    responsibilities : ndarray of shape (L, m, n), float32
        Responsibility of each shown component (hard 0/1 masks for K-means).
    labels : ndarray of shape (m, n)
        Hard label map at the same resolution.
    uncertainty : ndarray of shape (m, n), float32
        ``1 - max responsibility``.
    step : int
        Sub-sampling step from the full image (``m = ceil(M / step)``).
    soft : bool
        Whether the fit has soft responsibilities (Gaussian mixture).
    """

    components: np.ndarray
    responsibilities: np.ndarray
    labels: np.ndarray
    uncertainty: np.ndarray
    step: int
    soft: bool = False


@dataclass
class ColorSample:
    """A random sample of the opaque pixels, in the fitting space.

    Parameters
    ----------
    points : ndarray of shape (S, D), float64
        Sampled colours in the result's colour space (D = 1 for grey fits).
    labels : ndarray of shape (S,)
        Cluster of each sampled pixel.
    steps : list of IterationRecord
        The kept run's records, in order, whose centres live in the same space as
        ``points`` (shape (K, D)): the colour-space view's iteration replay.
    """

    points: np.ndarray
    labels: np.ndarray
    steps: list[IterationRecord] = field(default_factory=list)


@dataclass
class RunOutput:
    """Everything a finished run hands to the GUI.

    Parameters
    ----------
    result : QuantizeResult
        The engine's result.
    quantized : ndarray of shape (M, N, 3) or (M, N, 4), uint8
        The palette image (dithered as requested), C-contiguous; with the input's alpha
        channel when it has one.
    labels : ndarray of shape (M, N), uint8, or None
        C-contiguous labels for cluster highlighting (``None`` when K > 256).
    soft_maps : SoftMaps
        Display-resolution maps.
    sample : ColorSample
        Colour sample for the colour-space view.
    chosen_restart : int
        Restart index whose run was kept.
    metrics : Metrics or None
        Quality metrics, or ``None`` when they could not be computed.
    metrics_error : str
        Why metrics are missing (empty otherwise).
    params : RunParameters
        Parameters of this run.
    elapsed_s : float
        Wall time of the whole run.
    extra : dict
        ``"auto"``: the automatic choice of K (an ``AutoKResult``), when one was made.
    rendering : (indices, png) or None
        :func:`quantize.metrics.render_indexed` of the result with the run's dithering,
        shared by the metrics and the export.
    """

    result: Any
    quantized: np.ndarray
    labels: np.ndarray | None
    soft_maps: SoftMaps
    sample: ColorSample
    chosen_restart: int
    metrics: Any
    metrics_error: str
    params: RunParameters
    elapsed_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    rendering: tuple[np.ndarray, bytes] | None = None


def objective_kind(method: str) -> str:
    """Return the objective plotted for ``method``.

    Parameters
    ----------
    method : str
        ``"kmeans"``, ``"gmm"`` or ``"optimal1d"``.

    Returns
    -------
    kind : {"inertia", "log_likelihood"}
        Which :class:`~quantize.protocol.IterationRecord` objective belongs to the method.
    """
    return "log_likelihood" if method == "gmm" else "inertia"


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
            **params.fit_options(),
        )
    return _auto_generator(job, should_cancel)


def _reuse(result: Any) -> Generator[Any, None, Any]:
    """Return an existing fit through the generator protocol (no iterations)."""
    return result
    yield  # makes this function a generator


def only_rendering_changed(old: RunParameters, new: RunParameters) -> bool:
    """Return whether ``new`` differs from ``old`` only in how the palette image is drawn.

    Parameters
    ----------
    old, new : RunParameters
        Parameters of the previous and of the requested run.

    Returns
    -------
    same_fit : bool
        ``True`` when the fit can be reused and only dithering changes.
    """
    from dataclasses import replace

    return (
        old != new
        and old.auto == "off"
        and replace(new, dither=old.dither, dither_strength=old.dither_strength) == old
    )


def _auto_generator(job: RunJob, should_cancel: Callable[[], bool]) -> Generator[Any, None, Any]:
    from quantize import auto

    p = job.params
    options = p.fit_options()
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
            **options,
        )
    if p.method != "gmm":
        raise ValueError("choosing K by BIC needs the Gaussian-mixture method")
    return auto.iter_bic(
        job.image,
        k_min=2,
        k_max=p.n_colors,
        color_space=p.color_space,
        seed=p.seed,
        should_cancel=should_cancel,
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


def _soft_maps(result: Any, should_cancel: Callable[[], bool]) -> SoftMaps:
    height, width = result.labels.shape
    step = max(1, int(np.ceil(max(height, width) / MAP_SIDE)))
    proportions = np.asarray(result.proportions)
    order = np.argsort(-proportions, kind="stable")[:MAX_MAPS]
    labels = np.asarray(result.labels)[::step, ::step]
    opaque = None if result.opaque is None else np.asarray(result.opaque)[::step, ::step]
    soft = result.is_soft
    maps = []
    for k in order:
        check_cancel(should_cancel)
        if soft:
            maps.append(np.asarray(result.responsibility_map(int(k)), np.float32)[::step, ::step])
        else:
            # hard methods: the responsibility map is the 0/1 mask of the label map, so
            # take it from the already sub-sampled labels instead of gathering all pixels
            mask = labels == k
            if opaque is not None:
                mask &= opaque  # transparent pixels belong to no cluster
            maps.append(mask.astype(np.float32))
    if soft:
        uncertainty = np.asarray(result.uncertainty_map(), dtype=np.float32)[::step, ::step]
    else:
        uncertainty = np.zeros(labels.shape, dtype=np.float32)  # hard: no uncertainty
    responsibilities = np.stack(maps) if maps else np.zeros((0,) + labels.shape, dtype=np.float32)
    return SoftMaps(
        components=order.astype(np.int64),
        responsibilities=np.ascontiguousarray(responsibilities),
        labels=np.ascontiguousarray(labels),
        uncertainty=np.ascontiguousarray(uncertainty),
        step=step,
        soft=soft,
    )


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
    if result.method == "optimal1d":
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
) -> Generator[IterationRecord | Stage, None, RunOutput]:
    """Fit, then prepare the display data; yields records and stages, returns the output.

    Parameters
    ----------
    job : RunJob
        Image and parameters.
    should_cancel : callable
        Polled by the engine between iterations and chunks; a ``True`` raises ``Cancelled``.

    Yields
    ------
    item : IterationRecord or Stage
        The engine's per-iteration records, then stage messages.

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
    check_cancel(should_cancel)

    yield Stage("Rendering the palette image…")
    from quantize.metrics import render_indexed

    # dither and encode once: the metrics and the export reuse this rendering
    rendering = render_indexed(
        result, dither=params.dither, strength=params.dither_strength, should_cancel=should_cancel
    )
    quantized = _with_alpha(np.asarray(result.palette, np.uint8)[rendering[0]], job.image)
    labels = np.asarray(result.labels)
    labels8 = np.ascontiguousarray(labels) if labels.dtype == np.uint8 else None
    check_cancel(should_cancel)

    yield Stage("Preparing soft maps…")
    soft = _soft_maps(result, should_cancel)
    restart = chosen_restart(list(result.records), result.history, objective_kind(result.method))
    sample = _color_sample(result, params.seed, restart)
    check_cancel(should_cancel)

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

    return RunOutput(
        result=result,
        quantized=quantized,
        labels=labels8,
        soft_maps=soft,
        sample=sample,
        chosen_restart=restart,
        metrics=metrics,
        metrics_error=metrics_error,
        params=params,
        elapsed_s=time.perf_counter() - start,
        extra=extra,
        rendering=rendering,
    )


_warmed_up = False


def warm_up() -> None:
    """Run the whole pipeline once on a tiny image, on the calling (GUI) thread.

    The first run imports a few hundred modules (engine, metrics, scikit-image, SciPy).
    Importing holds the interpreter lock for tens of milliseconds at a time, which would
    stall the event loop if it happened on the worker thread during the first run, so the
    window does it once at start-up instead.  Failures are ignored here: a real run reports
    them.
    """
    global _warmed_up
    if _warmed_up:
        return
    _warmed_up = True
    from quantize.protocol import drain

    tiny = (np.arange(8 * 8 * 3, dtype=np.int64).reshape(8, 8, 3) * 37 % 256).astype(np.uint8)
    try:
        for method in ("kmeans", "gmm"):
            params = RunParameters(method=method, n_colors=2, n_init=1, init="random")
            drain(run_pipeline(RunJob(tiny, params), lambda: False))
    except Exception:  # noqa: BLE001 - only a warm-up; the real run reports errors
        pass


class RunWorker(QtCore.QThread):
    """Runs :func:`run_pipeline` on its own thread.

    Signals are emitted from the worker thread and delivered queued to GUI-thread receivers.
    Exactly one of ``succeeded``, ``failed`` or ``cancelled`` is emitted, before ``finished``.

    Parameters
    ----------
    job : RunJob
        What to run.
    generation : int
        The GUI's run counter when this run started; results of older generations are dropped.
    pipeline : callable, optional
        ``pipeline(job, should_cancel)`` generator (default :func:`run_pipeline`).
    parent : QObject, optional
        Parent object.
    """

    record = QtCore.Signal(int, object)
    stage = QtCore.Signal(int, str)
    succeeded = QtCore.Signal(int, object)
    failed = QtCore.Signal(int, str, str)
    cancelled = QtCore.Signal(int)

    def __init__(
        self,
        job: RunJob,
        generation: int,
        pipeline: Callable[..., Generator[Any, None, Any]] | None = None,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.job = job
        self.generation = generation
        self._pipeline = pipeline or run_pipeline
        self._cancel = threading.Event()

    def request_cancel(self) -> None:
        """Ask the run to stop; it does so at the engine's next cancel check."""
        self._cancel.set()

    def should_cancel(self) -> bool:
        """Return whether a cancel was requested (polled by the engine).

        Returns
        -------
        cancel : bool
            ``True`` once :meth:`request_cancel` was called.
        """
        return self._cancel.is_set()

    def run(self) -> None:  # noqa: D102 (QThread override, runs on the worker thread)
        gen = None
        try:
            gen = self._pipeline(self.job, self.should_cancel)
            while True:
                if self._cancel.is_set():
                    gen.close()
                    self.cancelled.emit(self.generation)
                    return
                try:
                    item = next(gen)
                except StopIteration as stop:
                    output = stop.value
                    break
                if isinstance(item, Stage):
                    self.stage.emit(self.generation, item.text)
                else:
                    self.record.emit(self.generation, item)
            if self._cancel.is_set():
                self.cancelled.emit(self.generation)
            else:
                self.succeeded.emit(self.generation, output)
        except Cancelled:
            self.cancelled.emit(self.generation)
        except BaseException as exc:  # every failure must reach the GUI as a dialog
            if gen is not None:
                gen.close()
            self.failed.emit(
                self.generation, f"{type(exc).__name__}: {exc}", traceback.format_exc()
            )
