"""Choose the number of colours automatically.

* :func:`iter_quality_target` - the fewest colours whose rendering reaches a PSNR or a mean
  CIEDE2000 target (like pngquant's ``--quality``), by bisection over K;
* :func:`iter_bic` - the Gaussian-mixture size with the lowest BIC.

Both are generators in the stepping protocol: they pass through every record of the fits
they run and, after each candidate K, yield a summary record with ``stage="auto-k"`` and
``extra={"k": K, "metric": ..., "value": ..., ...}``; they return an :class:`AutoKResult`.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantize.cluster.registry import METHODS, get_method
from quantize.features import ColorTable, unique_colors
from quantize.metrics import image_metrics, psnr_from_mse, srgb8_to_lab
from quantize.pipeline import QuantizeResult, iter_quantize_image
from quantize.pixels import to_uint8
from quantize.protocol import CancelCallback, IterationRecord, check_cancel

__all__ = [
    "AutoKResult",
    "iter_bic",
    "iter_quality_target",
    "quality_of",
]


@dataclass
class AutoKResult:
    """What an automatic choice of K found.

    Attributes
    ----------
    result : QuantizeResult
        The chosen result (the fewest colours reaching the target; or, if none did, the
        best one tried, normally at ``k_max``).
    k : int
        Requested K of ``result``.
    reached : bool
        Whether the target was met (always True for BIC).
    metric : {"psnr", "delta_e", "bic"}
    target : float or None
        The requested value (None for BIC).
    value : float
        The metric of the chosen result.
    scores : dict of int to float
        Metric of every K tried.
    """

    result: QuantizeResult
    k: int
    reached: bool
    metric: str
    target: float | None
    value: float
    scores: dict[int, float] = field(default_factory=dict)


def quality_of(result: QuantizeResult, metric: str) -> float:
    """PSNR (dB) or mean CIEDE2000 of the undithered rendering, over opaque pixels.

    Uses the distinct colours and their counts (same value as :mod:`quantize.metrics`
    computes from pixels, at a fraction of the cost).

    Parameters
    ----------
    result : QuantizeResult
    metric : {"psnr", "delta_e"}

    Returns
    -------
    value : float
        ``inf`` PSNR / 0 dE for a lossless result.
    """
    table = result.table
    unique_labels = getattr(result, "unique_labels", None)
    if unique_labels is None or len(unique_labels) != table.colors.shape[0]:
        rendered = np.take(result.palette, result.labels, axis=0)
        values = image_metrics(result.image, rendered, result.opaque)
        return float(values["psnr" if metric == "psnr" else "delta_e_mean"])
    colors = to_uint8(np.asarray(table.colors))
    if colors.shape[1] == 1:
        colors = np.repeat(colors, 3, axis=1)
    mapped = np.asarray(result.palette, np.uint8)[np.asarray(unique_labels, np.int64)]
    weights = np.asarray(table.counts, np.float64)
    total = float(weights.sum())
    if total == 0:
        return math.inf if metric == "psnr" else 0.0
    if metric == "psnr":
        d = colors.astype(np.float64) - mapped
        return psnr_from_mse(float(weights @ (d * d).sum(axis=1)) / (3.0 * total))
    if metric == "delta_e":
        from skimage.color import deltaE_ciede2000

        de = deltaE_ciede2000(srgb8_to_lab(colors), srgb8_to_lab(mapped))
        return float(weights @ de / total)
    raise ValueError(f"metric must be 'psnr' or 'delta_e', got {metric!r}")


def _check_k_range(k_min: int, k_max: int) -> tuple[int, int]:
    k_min, k_max = int(k_min), int(k_max)
    if not 1 <= k_min <= k_max:
        raise ValueError(f"need 1 <= k_min <= k_max, got {k_min}, {k_max}")
    return k_min, k_max


def _fit(
    image: Any,
    k: int,
    should_cancel: CancelCallback | None,
    table: ColorTable,
    **options: Any,
) -> Generator[IterationRecord, None, QuantizeResult]:
    """One candidate fit on the image's colour table, passing its records through.

    Cancellable before it starts; ``table`` is computed once per search, not per K.
    """
    check_cancel(should_cancel)
    result = yield from iter_quantize_image(
        image, k, should_cancel=should_cancel, table=table, **options
    )
    return result


def _summary(result: QuantizeResult, step: int, k: int, extra: dict[str, Any]) -> IterationRecord:
    last = result.records[-1] if result.records else None
    return IterationRecord(
        restart=0,
        iteration=step,
        objective=float(last.objective) if last is not None else float("nan"),
        kind=last.kind if last is not None else "inertia",
        shift=0.0,
        centers=np.asarray(result.palette, np.float64),
        stage="auto-k",
        extra={"k": int(k), **extra},
    )


def iter_quality_target(
    image: Any,
    *,
    psnr: float | None = None,
    max_delta_e: float | None = None,
    k_min: int = 2,
    k_max: int = 256,
    search_n_init: int | None = 1,
    method: str = "kmeans",
    color_space: str = "rgb",
    seed: int = 0,
    should_cancel: CancelCallback | None = None,
    table: ColorTable | None = None,
    **fit_options: Any,
) -> Generator[IterationRecord, None, AutoKResult]:
    """Find the fewest colours whose (undithered) rendering reaches a quality target.

    Doubling K from ``k_min`` until the target is met (or ``k_max`` is reached), then
    bisection in the last interval, assuming quality grows with K: about
    ``2 log2(K_found)`` fits, most of them small and cheap.  The image's distinct colours
    are found once and shared by every fit.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4)
        As for :func:`quantize.pipeline.iter_quantize_image`.
    psnr : float, optional
        Minimum PSNR in dB.
    max_delta_e : float, optional
        Maximum mean CIEDE2000.  Exactly one of ``psnr`` and ``max_delta_e`` is required.
    k_min, k_max : int, optional
        Range of K searched.
    search_n_init : int or None, optional
        Restarts per fit *during the search* (cheaper); the chosen K is then fitted once
        more with the caller's ``n_init`` and that fit is kept if it is at least as good.
        ``None`` searches with the caller's ``n_init``.
    method, color_space, seed, should_cancel, **fit_options
        Passed to :func:`~quantize.pipeline.iter_quantize_image`.
    table : ColorTable, optional
        The image's distinct colours (:func:`~quantize.features.unique_colors` of this
        very image, e.g. from an earlier result); computed when not given.

    Yields
    ------
    record : IterationRecord
        The fits' records and one ``stage="auto-k"`` summary per K tried.

    Returns
    -------
    choice : AutoKResult
        ``reached`` is False when even ``k_max`` misses the target.

    Raises
    ------
    ValueError
        Neither or both targets, or a bad K range.
    """
    if (psnr is None) == (max_delta_e is None):
        raise ValueError("give exactly one of psnr and max_delta_e")
    k_min, k_max = _check_k_range(k_min, k_max)
    metric = "psnr" if psnr is not None else "delta_e"
    target = float(psnr if psnr is not None else max_delta_e)  # type: ignore[arg-type]

    def ok(value: float) -> bool:
        return value >= target if metric == "psnr" else value <= target

    scores: dict[int, float] = {}
    # only two results are kept alive (memory): the smallest K that reached the target so
    # far, and the best one that did not (returned if nothing reaches it)
    kept: dict[str, tuple[int, QuantizeResult]] = {}
    step = 0

    def better(a: float, b: float) -> bool:
        return a > b if metric == "psnr" else a < b

    full_n_init = int(fit_options.get("n_init", 1) or 1)
    search_options = dict(fit_options)
    if search_n_init is not None and "n_init" in fit_options:  # methods without it refuse it
        search_options["n_init"] = min(int(search_n_init), full_n_init)
    refine = search_options.get("n_init", 1) != full_n_init
    check_cancel(should_cancel)
    table = unique_colors(image) if table is None else table

    def fit(k: int, options: dict[str, Any]) -> Generator[IterationRecord, None, QuantizeResult]:
        return _fit(
            image,
            k,
            should_cancel,
            table,
            method=method,
            color_space=color_space,
            seed=seed,
            **options,
        )

    def evaluate(k: int) -> Generator[IterationRecord, None, tuple[bool, bool]]:
        """Fit K colours; return (target reached, K had fewer distinct colours)."""
        nonlocal step
        result = yield from fit(k, search_options)
        value = quality_of(result, metric)
        scores[k] = value
        step += 1
        reached = ok(value)
        if reached:
            kept["reached"] = (k, result)
        elif "missed" not in kept or better(value, scores[kept["missed"][0]]):
            kept["missed"] = (k, result)
        yield _summary(
            result,
            step,
            k,
            {"metric": metric, "value": value, "target": target, "reached": reached},
        )
        return reached, result.n_colors < k

    # gallop up from k_min (cheap small fits first), then bisect the last gap
    k, lo = k_min, k_min
    while True:
        reached, saturated = yield from evaluate(k)
        if reached:
            hi = k
            break
        lo = k + 1
        if k == k_max or saturated:  # no larger K can do better
            best, result = kept["missed"]
            return AutoKResult(result, best, False, metric, target, scores[best], scores)
        k = min(2 * k, k_max)
    while lo < hi:
        mid = (lo + hi) // 2
        reached, _ = yield from evaluate(mid)
        if reached:
            hi = mid
        else:
            lo = mid + 1
    k, chosen = kept["reached"]
    assert k == hi
    value = scores[hi]
    if refine:  # the chosen K once more with every restart the caller asked for
        final = yield from fit(hi, dict(fit_options))
        final_value = quality_of(final, metric)
        step += 1
        keep = ok(final_value) and not better(value, final_value)
        yield _summary(
            final,
            step,
            hi,
            {
                "metric": metric,
                "value": final_value,
                "target": target,
                "reached": ok(final_value),
                "final": True,
                "kept": keep,
            },
        )
        if keep:
            chosen, value = final, final_value
    return AutoKResult(chosen, hi, True, metric, target, value, scores)


def iter_bic(
    image: Any,
    *,
    k_min: int = 1,
    k_max: int = 16,
    patience: int = 3,
    method: str = "gmm",
    color_space: str = "rgb",
    seed: int = 0,
    should_cancel: CancelCallback | None = None,
    table: ColorTable | None = None,
    **fit_options: Any,
) -> Generator[IterationRecord, None, AutoKResult]:
    """Fit mixtures of growing size and keep the one with the lowest BIC.

    BIC is computed on the weighted distinct colours in the fitting space
    (``-2 log L + n_params log n``, ``n`` = number of opaque pixels).  The distinct colours
    are found once and shared by every fit.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4)
    k_min, k_max : int, optional
        Range of components tried, in increasing order.
    patience : int, optional
        Stop after this many consecutive K without a new best BIC.
    method : str, optional
        A method whose :class:`~quantize.cluster.registry.MethodSpec` has ``bic`` (its
        fitted model offers ``bic(points, weights)``): the Gaussian mixture.
    color_space, seed, should_cancel, **fit_options
        Passed to :func:`~quantize.pipeline.iter_quantize_image`.
    table : ColorTable, optional
        The image's distinct colours (:func:`~quantize.features.unique_colors` of this
        very image, e.g. from an earlier result); computed when not given.

    Yields
    ------
    record : IterationRecord
        The fits' records and one ``stage="auto-k"`` summary per K tried.

    Returns
    -------
    choice : AutoKResult
        ``metric="bic"``, ``reached=True``.
    """
    if not get_method(method).bic:
        able = [name for name, spec in METHODS.items() if spec.bic]
        raise ValueError(f"method {method!r} cannot choose K by BIC (methods that can: {able})")
    k_min, k_max = _check_k_range(k_min, k_max)
    scores: dict[int, float] = {}
    best: tuple[float, int, QuantizeResult] | None = None
    since_best = 0
    check_cancel(should_cancel)
    table = unique_colors(image) if table is None else table
    for step, k in enumerate(range(k_min, k_max + 1), start=1):
        result = yield from _fit(
            image,
            k,
            should_cancel,
            table,
            method=method,
            color_space=color_space,
            seed=seed,
            **fit_options,
        )
        bic = float(result.model.bic(result.points, result.table.counts))
        scores[k] = bic
        improved = best is None or bic < best[0]
        yield _summary(result, step, k, {"metric": "bic", "value": bic, "best": improved})
        if improved:
            best = (bic, k, result)
            since_best = 0
        else:
            since_best += 1
            if since_best >= patience:
                break
        if result.n_colors < k:  # no more distinct colours to split
            break
    assert best is not None
    bic, k, result = best
    return AutoKResult(result, k, True, "bic", None, bic, scores)
