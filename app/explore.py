"""What the "Explore K" view shows, prepared off the GUI thread (no Qt here).

:func:`explore_task` runs :func:`quantize.sweep.iter_sweep` for the current image and
parameters and yields, instead of every iteration record, a :class:`Thumbnail` of the image
first, then :class:`ExplorePoint` items (one K's figures with a small preview of its
rendering) and, at most every :data:`PROGRESS_INTERVAL_S`, an :class:`ExploreProgress`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PREVIEW_SIDE",
    "ExplorePoint",
    "ExploreProgress",
    "Thumbnail",
    "best_k_for",
    "explore_task",
    "thumbnail",
]

#: longest side (pixels) of the previews shown on hover
PREVIEW_SIDE = 240
PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Thumbnail:
    """The image, small, as the previews are made from it."""

    pixels: np.ndarray  # (h, w, 3|4) uint8


@dataclass(frozen=True)
class ExplorePoint:
    """One K of a sweep: its figures and a preview.

    Attributes
    ----------
    point : SweepPoint
        PNG bytes, PSNR, SSIM, CIEDE2000, objective, time.
    preview : ndarray of shape (h, w, 3), uint8
        The thumbnail rendered with this K's palette (and the run's dithering).
    index, count : int
        Position in the sweep and number of K.
    """

    point: Any
    preview: np.ndarray
    index: int
    count: int


@dataclass(frozen=True)
class ExploreProgress:
    """How far a sweep is: ``fraction`` in [0, 1) and the K being fitted."""

    fraction: float
    k: int


def thumbnail(image: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    """Shrink an image (area average) so that its longest side is at most ``side``.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4), uint8 or uint16
    side : int, optional

    Returns
    -------
    small : ndarray of shape (m, n, 3|4), uint8
        ``m, n <= side``; alpha kept.
    """
    from PIL import Image

    from quantize.pixels import as_rgb, to_uint8

    rgb = to_uint8(as_rgb(np.asarray(image)))
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    mode = "RGBA" if rgb.shape[2] == 4 else "RGB"
    small = Image.fromarray(np.ascontiguousarray(rgb), mode).resize(size, Image.Resampling.BOX)
    return np.ascontiguousarray(np.asarray(small))


def _preview(small: np.ndarray, palette: np.ndarray, params: Any) -> np.ndarray:
    from quantize.pipeline import map_to_palette

    mapped = map_to_palette(small, palette, color_space=params.color_space)
    rgb = mapped.to_image(dither=params.dither, strength=params.dither_strength)
    return np.ascontiguousarray(np.asarray(rgb, np.uint8)[:, :, :3])


def explore_task(
    image: np.ndarray,
    ks: Sequence[int],
    params: Any,
    should_cancel: Callable[[], bool],
) -> Generator[Any, None, Any]:
    """Sweep K for the explorer: a thumbnail, then one :class:`ExplorePoint` per K.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4)
    ks : sequence of int
    params : RunParameters
        Method, colour space, seed, dithering and fit options of the sweep.
    should_cancel : callable

    Yields
    ------
    item : Thumbnail, ExploreProgress or ExplorePoint

    Returns
    -------
    sweep : SweepResult
    """
    from quantize.sweep import iter_sweep

    small = thumbnail(image)
    yield Thumbnail(small)
    ks = sorted(set(int(k) for k in ks))
    tau = max(8.0, params.max_iter / 4.0)
    gen = iter_sweep(
        image,
        ks,
        method=params.method,
        color_space=params.color_space,
        seed=params.seed,
        dither=params.dither,
        strength=params.dither_strength,
        should_cancel=should_cancel,
        **params.fit_options(),
        **params.pipeline_options(),
    )
    index, last = 0, 0.0
    count = len(ks)
    try:
        while True:
            try:
                rec = next(gen)
            except StopIteration as stop:
                return stop.value
            if rec.stage == "sweep":
                point = rec.extra["point"]
                count = int(rec.extra["count"])
                index = int(rec.extra["index"]) + 1
                yield ExplorePoint(point, _preview(small, point.palette, params), index - 1, count)
                continue
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL_S:
                last = now
                within = 1.0 - math.exp(-float(rec.iteration) / tau)
                yield ExploreProgress((index + within) / max(count, 1), len(rec.centers))
    finally:
        gen.close()


def best_k_for(
    points: Sequence[Any], *, min_psnr: float | None = None, max_bytes: float | None = None
) -> int | None:
    """Pick K from a sweep: the fewest colours reaching a PSNR, or the most within a size.

    Parameters
    ----------
    points : sequence of SweepPoint
    min_psnr : float, optional
        Quality target (dB): the smallest K whose PSNR reaches it.
    max_bytes : float, optional
        Size budget: the largest K whose PNG fits.  With both, the smallest K reaching the
        PSNR among those that fit.

    Returns
    -------
    k : int or None
        ``None`` when no K swept meets the conditions.
    """
    ok = [
        p
        for p in points
        if (min_psnr is None or p.psnr >= min_psnr)
        and (max_bytes is None or p.png_bytes <= max_bytes)
    ]
    if not ok:
        return None
    if min_psnr is not None:
        return int(min(p.k for p in ok))
    return int(max(p.k for p in ok))
