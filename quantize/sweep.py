"""What each K costs and buys: fit a series of K and measure every result.

* :func:`iter_sweep` - fit every K of a list, each warm-started from the previous K (its
  centres, plus new ones chosen as k-means++ would), and measure the indexed PNG size, PSNR,
  SSIM, mean CIEDE2000 and the objective (J, or log-likelihood and BIC for a mixture);
* :func:`iter_size_budget` - the best quality (the largest K) whose indexed PNG fits a byte
  budget;
* :func:`parse_k_list` and :func:`parse_size` read ``2-256``, ``2,4,8`` and ``300k``.

Both iterators follow the stepping protocol of :mod:`quantize.auto`: they pass every record
of their fits through and, after each K, yield one summary record (``stage="sweep"`` or
``stage="auto-k"``) whose ``extra`` holds that K's figures.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from quantize._blas import matmul
from quantize.auto import AutoKResult, quality_of
from quantize.cluster.registry import get_method
from quantize.features import ColorTable, unique_colors
from quantize.metrics import (
    SsimReference,
    delta_e_stats,
    mse_psnr,
    psnr_from_mse,
    render_indexed,
    srgb8_to_lab,
)
from quantize.pipeline import QuantizeResult, iter_quantize_image
from quantize.pixels import as_rgb, to_uint8
from quantize.protocol import CancelCallback, IterationRecord, check_cancel

__all__ = [
    "SweepPoint",
    "SweepResult",
    "iter_size_budget",
    "iter_sweep",
    "parse_k_list",
    "parse_size",
    "grow_centers",
    "seed_cells",
]

#: values of a range ``A-B`` without an explicit count (``A-B:N``): geometric steps, so that
#: 2-256 gives 2 3 4 6 8 11 16 23 32 45 64 91 128 181 256 minus the closest pairs
DEFAULT_RANGE_VALUES = 12
MAX_K = 65536
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
}


def _geometric(lo: int, hi: int, count: int) -> list[int]:
    if count <= 1 or lo == hi:
        return sorted({lo, hi})
    ratio = (hi / lo) ** (1.0 / (count - 1))
    return sorted({int(round(lo * ratio**i)) for i in range(count)} | {lo, hi})


def parse_k_list(text: str) -> list[int]:
    """Read a list of K: ``"2-256"``, ``"2-256:20"``, ``"2,4,8,16"`` or a mix.

    A range ``A-B`` gives about :data:`DEFAULT_RANGE_VALUES` values from A to B, evenly
    spaced on a log scale (what each K costs changes with log K); ``A-B:N`` gives about N.

    Parameters
    ----------
    text : str

    Returns
    -------
    ks : list of int
        Sorted, without duplicates, each in ``[1, 65536]``.

    Raises
    ------
    ValueError
        Naming the part that is not a K, a range or a count.
    """
    ks: set[int] = set()
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValueError("no K given")
    for part in parts:
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)(?:\s*:\s*(\d+))?", part)
        if m:
            lo, hi = int(m[1]), int(m[2])
            count = int(m[3]) if m[3] else DEFAULT_RANGE_VALUES
            if lo > hi:
                raise ValueError(f"{part!r}: the range must go up (e.g. 2-256)")
            if count < 1:
                raise ValueError(f"{part!r}: the number of values must be at least 1")
            values = _geometric(max(lo, 1), hi, count) if lo >= 1 else []
        elif re.fullmatch(r"\d+", part):
            values = [int(part)]
        else:
            raise ValueError(f"{part!r} is not a K, a range A-B or A-B:COUNT")
        for k in values:
            if not 1 <= k <= MAX_K:
                raise ValueError(f"{part!r}: K must be from 1 to {MAX_K}")
        ks.update(values)
    return sorted(ks)


def parse_size(text: str) -> int:
    """Read a file size: ``300000``, ``300k``/``300kB`` (1000s), ``300KiB`` (1024s), ``1.5M``.

    Parameters
    ----------
    text : str

    Returns
    -------
    size : int
        Bytes, at least 1.

    Raises
    ------
    ValueError
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m[2].lower() if m else ""
    if m is None or unit not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size (e.g. 300k, 300000, 1.5M, 512KiB)")
    size = int(float(m[1]) * _SIZE_UNITS[unit])
    if size < 1:
        raise ValueError(f"{text!r}: the size must be at least 1 byte")
    return size


#: grid cells per axis of the points that new centres are drawn from (as the K-means
#: initialisation draws from coarse cells: a few thousand weighted cell means instead of
#: every distinct colour); the finer grid only when the coarse one has fewer than
#: _SEED_CELLS_PER_CLUSTER occupied cells per centre
_SEED_GRIDS = (32, 64)
_SEED_CELLS_PER_CLUSTER = 8


def seed_cells(
    points: np.ndarray, weights: np.ndarray, per_axis: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted means of the points in the cells of a regular grid (what new centres come from).

    Parameters
    ----------
    points : ndarray of shape (U, D)
    weights : ndarray of shape (U,)
    per_axis : int, optional
        Cells along each axis of the points' bounding box.

    Returns
    -------
    means : ndarray of shape (C, D), float64
        Mean of each occupied cell.
    cell_weights : ndarray of shape (C,), float64
        Total weight of each.
    """
    X = np.asarray(points, np.float64)
    w = np.asarray(weights, np.float64)
    lo, hi = X.min(axis=0), X.max(axis=0)
    scale = (per_axis - 1e-9) / np.where(hi > lo, hi - lo, 1.0)
    cell = np.minimum(((X - lo) * scale).astype(np.int64), per_axis - 1)
    code = np.zeros(len(X), np.int64)
    for d in range(X.shape[1]):
        code = code * per_axis + cell[:, d]
    _, inverse = np.unique(code, return_inverse=True)
    inverse = inverse.reshape(-1)
    cw = np.bincount(inverse, weights=w)
    means = np.stack([np.bincount(inverse, weights=w * X[:, d]) for d in range(X.shape[1])], axis=1)
    keep = cw > 0
    return means[keep] / cw[keep, None], cw[keep]


def grow_centers(
    cells: np.ndarray,
    cell_weights: np.ndarray,
    centers: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Add centres to a fitted set by greedy k-means++ continued from it.

    The fitted centres stay; each new centre is the best (largest drop of the weighted
    potential ``sum w D^2``) of ``2 + log K`` candidates drawn with probability
    proportional to ``w D^2``, ``D`` the distance to the nearest centre so far, as
    k-means++ chooses every centre of a fresh start.  Drawing from grid-cell means
    (:func:`seed_cells`) keeps this cheap.

    Parameters
    ----------
    cells : ndarray of shape (C, D)
        Candidate points (cell means).
    cell_weights : ndarray of shape (C,)
    centers : ndarray of shape (K, D)
        Fitted centres.
    n_clusters : int
        Number of centres wanted.
    rng : numpy.random.Generator

    Returns
    -------
    grown : ndarray of shape (n_clusters, D), float64
        The K centres first, then the new ones (fewer new ones only if every cell already
        holds a centre: then ``n_clusters`` exceeds the distinct colours).
    """
    X = np.asarray(cells, np.float64)
    w = np.asarray(cell_weights, np.float64)
    C = np.array(centers, np.float64)
    if n_clusters <= len(C):
        return C[:n_clusters].copy()
    x_sq = np.einsum("nd,nd->n", X, X)
    closest = np.full(len(X), np.inf)
    for start in range(0, len(C), 64):
        block = C[start : start + 64]
        d = x_sq[:, None] - 2.0 * matmul(X, block.T) + np.einsum("kd,kd->k", block, block)[None]
        np.minimum(closest, d.min(axis=1), out=closest)
    np.maximum(closest, 0.0, out=closest)
    trials = 2 + int(np.log(n_clusters))
    new: list[np.ndarray] = []
    wc = w * closest
    for _ in range(n_clusters - len(C)):
        cum = np.cumsum(wc)
        if not cum[-1] > 0:
            break
        cand = np.minimum(
            np.searchsorted(cum, rng.random(trials) * cum[-1], side="right"), len(X) - 1
        )
        picked = X[cand]
        d = x_sq[:, None] - 2.0 * matmul(X, picked.T) + np.einsum("td,td->t", picked, picked)[None]
        np.maximum(d, 0.0, out=d)
        np.minimum(d, closest[:, None], out=d)
        best = int(np.argmin(w @ d))
        closest = d[:, best].copy()
        wc = w * closest
        new.append(picked[best])
    if not new:
        return C
    return np.vstack([C, np.asarray(new)])


@dataclass(frozen=True)
class SweepPoint:
    """What one K costs and buys.

    Attributes
    ----------
    k : int
        K asked for.
    n_colors : int
        Palette entries produced (fewer than ``k`` on images with fewer distinct colours).
    png_bytes : int
        Size of the indexed PNG (with the sweep's dithering), as ``vq quantize`` writes it.
    psnr : float
        dB over opaque pixels (``inf`` for a lossless result).
    ssim : float or None
        Mean SSIM (``None`` for images smaller than 3x3).
    delta_e_mean : float
        Mean CIEDE2000.
    objective : float
        Final J (inertia, in the fitting space) for K-means, mean log-likelihood per pixel
        for a mixture.
    objective_kind : {"inertia", "log_likelihood"}
    bic : float or None
        BIC of a mixture (``-2 log L + p log n``), else ``None``.
    n_iter : int
        Iterations of the fit.
    converged : bool
    fit_s, total_s : float
        Seconds of the fit, and of the fit with rendering and measures.
    palette : ndarray of shape (n_colors, 3), uint8
        The palette (previews map a thumbnail onto it).
    """

    k: int
    n_colors: int
    png_bytes: int
    psnr: float
    ssim: float | None
    delta_e_mean: float
    objective: float
    objective_kind: str
    bic: float | None
    n_iter: int
    converged: bool
    fit_s: float
    total_s: float
    palette: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able figures (``inf``/NaN as ``None``), without the palette.

        Returns
        -------
        row : dict
        """
        out = asdict(self)
        out.pop("palette")
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = value if math.isfinite(value) else None
        return out


@dataclass
class SweepResult:
    """The figures of every K swept.

    Attributes
    ----------
    points : list of SweepPoint
        In increasing K.
    skipped : list of int
        K not fitted because the image has fewer distinct colours (``n_distinct``).
    n_distinct : int
        Distinct opaque colours of the image.
    method, color_space, dither : str
    elapsed_s : float
    """

    points: list[SweepPoint]
    skipped: list[int]
    n_distinct: int
    method: str
    color_space: str
    dither: str
    elapsed_s: float


class _Measure:
    """PNG size and quality of renderings of one image, sharing the work that repeats.

    The original's SSIM statistics and the CIELAB values of its distinct colours are
    computed once; an undithered rendering is measured on the distinct colours (each maps
    to one palette entry), a dithered one on its pixels.
    """

    def __init__(self, image: np.ndarray, table: ColorTable, dither: str, strength: float):
        self.dither = dither
        self.strength = strength
        self.original = to_uint8(as_rgb(image))[:, :, :3]
        self.opaque = table.opaque
        self.ssim = SsimReference(self.original, self.opaque)
        self.per_color = dither == "none" or strength == 0
        self._colors: np.ndarray | None = None
        self._lab: np.ndarray | None = None
        self._weights = np.asarray(table.counts, np.float64)
        if self.per_color:
            colors = to_uint8(np.asarray(table.colors))
            if colors.shape[1] == 1:
                colors = np.repeat(colors, 3, axis=1)
            self._colors = colors[:, :3]
            self._lab = srgb8_to_lab(self._colors)

    def _per_color(self, result: QuantizeResult) -> tuple[float, float]:
        """PSNR and mean CIEDE2000 of an undithered rendering, from the distinct colours."""
        assert self._colors is not None and self._lab is not None
        labels = np.asarray(result.unique_labels, np.intp)
        palette = np.asarray(result.palette, np.uint8)
        total = float(self._weights.sum())
        if labels.size != self._colors.shape[0] or total == 0:
            return quality_of(result, "psnr"), quality_of(result, "delta_e")
        d = self._colors.astype(np.float64) - palette[labels]
        psnr = psnr_from_mse(float(self._weights @ (d * d).sum(axis=1)) / (3.0 * total))
        from skimage.color import deltaE_ciede2000

        de = deltaE_ciede2000(self._lab, srgb8_to_lab(palette)[labels])
        return psnr, float(self._weights @ de / total)

    def __call__(
        self, result: QuantizeResult, should_cancel: CancelCallback | None
    ) -> tuple[int, float, float | None, float]:
        """Return (PNG bytes, PSNR, SSIM, mean CIEDE2000) of ``result``."""
        indices, png = render_indexed(
            result, dither=self.dither, strength=self.strength, should_cancel=should_cancel
        )
        check_cancel(should_cancel)
        rendered = np.asarray(result.palette, np.uint8)[indices]
        if self.per_color:
            psnr, de = self._per_color(result)
        else:
            psnr = mse_psnr(self.original, rendered, self.opaque)[1]
            de = delta_e_stats(self.original, rendered, self.opaque)[0]
        check_cancel(should_cancel)
        return len(png), float(psnr), self.ssim(rendered), float(de)


def iter_sweep(
    image: Any,
    ks: Sequence[int],
    *,
    method: str = "kmeans",
    color_space: str = "rgb",
    seed: int = 0,
    dither: str = "none",
    strength: float = 1.0,
    warm_start: bool = True,
    should_cancel: CancelCallback | None = None,
    table: ColorTable | None = None,
    **fit_options: Any,
) -> Generator[IterationRecord, None, SweepResult]:
    """Fit every K of ``ks`` and measure what it costs (PNG bytes) and buys (quality).

    The K are fitted in increasing order; with ``warm_start`` each fit of an iterative
    method starts from the previous K's centres plus new ones drawn as k-means++ draws
    (:func:`grow_centers`), so each K refines the previous K's palette instead of
    starting over, and the series is smooth.  The distinct colours are found once.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4)
        As for :func:`quantize.pipeline.iter_quantize_image`.
    ks : sequence of int
        K values (sorted and deduplicated here).
    method, color_space, seed, **fit_options
        Passed to :func:`~quantize.pipeline.iter_quantize_image` (``init`` and ``n_init``
        apply to the first K and, without ``warm_start``, to every K).
    dither : {"none", "fs", "ordered"}, optional
        Rendering measured (as the written PNG would be).
    strength : float, optional
        Dither strength in [0, 1].
    warm_start : bool, optional
    should_cancel : callable, optional
        Polled between iterations and between measures; returning True raises
        :class:`~quantize.protocol.Cancelled`.
    table : ColorTable, optional
        The image's distinct colours, when the caller has them.

    Yields
    ------
    record : IterationRecord
        The fits' records, and after each K one ``stage="sweep"`` record whose ``extra``
        is ``{"k", "index", "count", "point": SweepPoint}``.

    Returns
    -------
    sweep : SweepResult

    Raises
    ------
    ValueError
        No K, or a K below 1.
    Cancelled
    """
    t_start = time.perf_counter()
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise ValueError("no K to sweep")
    if ks[0] < 1:
        raise ValueError(f"K must be at least 1, got {ks[0]}")
    spec = get_method(method)
    check_cancel(should_cancel)
    image = np.asarray(image)
    if table is None:
        table = unique_colors(image)
    measure = _Measure(image, table, dither, strength)
    n_distinct = table.n_colors
    todo = [k for k in ks if k <= n_distinct] or [n_distinct]
    skipped = [k for k in ks if k not in todo]
    warm = warm_start and spec.iterative
    points: list[SweepPoint] = []
    previous: QuantizeResult | None = None
    grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def cells_for(k: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for per_axis in _SEED_GRIDS:
            if per_axis not in grids:
                grids[per_axis] = seed_cells(points, table.counts, per_axis)
            if len(grids[per_axis][0]) >= _SEED_CELLS_PER_CLUSTER * k:
                break
        return grids[per_axis]

    # K's rendering and measures run on a second thread while K+1 is fitted (the filters,
    # zlib and most numpy calls release the GIL): on two cores a sweep takes about the
    # time of its fits alone
    stop = threading.Event()

    def measure_cancel() -> bool:
        return stop.is_set() or (should_cancel is not None and bool(should_cancel()))

    pool = ThreadPoolExecutor(1, thread_name_prefix="vq-sweep-measure")
    pending: tuple[int, Future[Any], QuantizeResult, float, float] | None = None

    def finish(item: tuple[int, Future[Any], QuantizeResult, float, float]) -> IterationRecord:
        index, future, result, fit_s, t0 = item
        png_bytes, psnr, ssim_value, de = future.result()
        last = result.records[-1] if result.records else None
        bic = float(result.model.bic(result.points, table.counts)) if spec.bic else None
        point = SweepPoint(
            k=result.n_colors_requested,
            n_colors=result.n_colors,
            png_bytes=png_bytes,
            psnr=psnr,
            ssim=ssim_value,
            delta_e_mean=de,
            objective=float(last.objective) if last is not None else 0.0,
            objective_kind=last.kind if last is not None else spec.objective,
            bic=bic,
            n_iter=result.n_iter,
            converged=result.converged,
            fit_s=fit_s,
            total_s=fit_s + (time.perf_counter() - t0),
            palette=np.asarray(result.palette, np.uint8).copy(),
        )
        points.append(point)
        return IterationRecord(
            restart=0,
            iteration=index + 1,
            objective=point.objective,
            kind=last.kind if last is not None else "inertia",
            shift=0.0,
            centers=np.asarray(result.palette, np.float64),
            stage="sweep",
            extra={"k": point.k, "index": index, "count": len(todo), "point": point},
        )

    try:
        for index, k in enumerate(todo):
            check_cancel(should_cancel)
            options = dict(fit_options)
            if warm and previous is not None and previous.n_colors == previous.n_colors_requested:
                cells = cells_for(k, previous.points)
                grown = grow_centers(
                    *cells, _centers_of(previous), k, np.random.default_rng([seed, k])
                )
                if len(grown) == k:
                    options["init"] = grown
                    options.pop("n_init", None)
            t0 = time.perf_counter()
            result = yield from iter_quantize_image(
                image,
                k,
                method=method,
                color_space=color_space,
                seed=seed,
                should_cancel=should_cancel,
                table=table,
                **options,
            )
            fit_s = time.perf_counter() - t0
            if pending is not None:
                yield finish(pending)
            t1 = time.perf_counter()
            pending = (index, pool.submit(measure, result, measure_cancel), result, fit_s, t1)
            previous = result
        if pending is not None:
            yield finish(pending)
            pending = None
    finally:
        stop.set()  # a measure still running stops at its next check
        pool.shutdown(wait=True)
    return SweepResult(
        points,
        skipped,
        n_distinct,
        method,
        color_space,
        dither,
        time.perf_counter() - t_start,
    )


def _centers_of(result: QuantizeResult) -> np.ndarray:
    model = result.model
    centers = model.means_ if hasattr(model, "means_") else model.cluster_centers_
    return np.asarray(centers, np.float64)


def iter_size_budget(
    image: Any,
    max_bytes: int,
    *,
    k_min: int = 2,
    k_max: int = 256,
    method: str = "kmeans",
    color_space: str = "rgb",
    seed: int = 0,
    dither: str = "none",
    strength: float = 1.0,
    should_cancel: CancelCallback | None = None,
    table: ColorTable | None = None,
    **fit_options: Any,
) -> Generator[IterationRecord, None, AutoKResult]:
    """Find the largest K (the best quality) whose indexed PNG fits ``max_bytes``.

    Doubling K from ``k_min`` while the PNG fits, then bisection in the last interval
    (the PNG grows with K, though not strictly: the K found fits, and K + 1 did not).
    Each candidate is rendered with the given dithering, as it would be written.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4)
    max_bytes : int
        Budget of the indexed PNG in bytes.
    k_min, k_max : int, optional
        Range of K searched.
    method, color_space, seed, should_cancel, **fit_options
        Passed to :func:`~quantize.pipeline.iter_quantize_image`.
    dither, strength : optional
        Rendering of the PNG measured.
    table : ColorTable, optional
        The image's distinct colours (:func:`~quantize.features.unique_colors` of this
        very image, e.g. from an earlier result); computed when not given.

    Yields
    ------
    record : IterationRecord
        The fits' records and one ``stage="auto-k"`` summary per K tried, with ``extra``
        ``{"k", "metric": "png_bytes", "value", "target", "reached"}``.

    Returns
    -------
    choice : AutoKResult
        ``metric="png_bytes"``; ``reached`` is False when even ``k_min`` is too large
        (then ``result`` is that smallest candidate).
    """
    max_bytes = int(max_bytes)
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    k_min, k_max = int(k_min), int(k_max)
    if not 1 <= k_min <= k_max:
        raise ValueError(f"need 1 <= k_min <= k_max, got {k_min}, {k_max}")
    check_cancel(should_cancel)
    table = unique_colors(image) if table is None else table
    k_max = min(k_max, max(table.n_colors, k_min))
    sizes: dict[int, float] = {}
    step = 0

    def evaluate(k: int) -> Generator[IterationRecord, None, tuple[bool, QuantizeResult]]:
        nonlocal step
        check_cancel(should_cancel)
        result = yield from iter_quantize_image(
            image,
            k,
            method=method,
            color_space=color_space,
            seed=seed,
            should_cancel=should_cancel,
            table=table,
            **fit_options,
        )
        _, png = render_indexed(
            result, dither=dither, strength=strength, should_cancel=should_cancel
        )
        sizes[k] = float(len(png))
        fits_budget = len(png) <= max_bytes
        step += 1
        yield IterationRecord(
            restart=0,
            iteration=step,
            objective=float(len(png)),
            kind="inertia",
            shift=0.0,
            centers=np.asarray(result.palette, np.float64),
            stage="auto-k",
            extra={
                "k": k,
                "metric": "png_bytes",
                "value": float(len(png)),
                "target": float(max_bytes),
                "reached": fits_budget,
            },
        )
        return fits_budget, result

    # only the largest K that fits so far is kept alive (memory)
    k = k_min
    ok, kept = yield from evaluate(k)
    if not ok:
        return AutoKResult(kept, k, False, "png_bytes", float(max_bytes), sizes[k], sizes)
    lo, hi = k, None  # lo fits; hi is the first K found too large
    while k < k_max:
        k = min(2 * k, k_max)
        ok, result = yield from evaluate(k)
        if not ok:
            hi = k
            break
        lo, kept = k, result
    if hi is not None:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok, result = yield from evaluate(mid)
            if ok:
                lo, kept = mid, result
            else:
                hi = mid
    return AutoKResult(kept, lo, True, "png_bytes", float(max_bytes), sizes[lo], sizes)
