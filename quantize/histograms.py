"""Weighted colour histograms: the small, exact summary that lets many images share a fit.

A K-means or mixture fit on the distinct colours of an image weighted by their pixel counts
equals the fit on every pixel (:mod:`quantize.features`).  The same holds for a *set* of
images (a catalogue, the frames of an animation, the chunks of a huge scan): each one is
reduced to its histogram, the histograms are summed exactly (integer counts, colours merged
by value, in any order and grouping: the sum is associative and commutative), and one fit
on the sum gives the palette of the whole set.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantize.features import ColorTable, unique_colors
from quantize.pipeline import QuantizeResult, iter_quantize_image
from quantize.protocol import CancelCallback, IterationRecord

__all__ = [
    "ColorHistogram",
    "fit_histogram",
    "histogram_of_image",
    "histogram_of_table",
    "merge_histograms",
]


@dataclass(frozen=True, eq=False)
class ColorHistogram:
    """Distinct colours with their pixel counts, sorted by colour.

    Parameters
    ----------
    colors : ndarray of shape (U, 3), uint8 or uint16
        Distinct RGB colours (grey is stored as R = G = B), sorted lexicographically.
    counts : ndarray of shape (U,), int64
        Opaque pixels of each colour.
    """

    colors: np.ndarray
    counts: np.ndarray

    @property
    def n_colors(self) -> int:
        """Number of distinct colours ``U``."""
        return int(len(self.counts))

    @property
    def n_pixels(self) -> int:
        """Total opaque pixels (exact)."""
        return int(self.counts.sum(dtype=np.int64))


def histogram_of_table(table: ColorTable) -> ColorHistogram:
    """Return the histogram of an image's colour table (grey becomes R = G = B).

    Parameters
    ----------
    table : ColorTable

    Returns
    -------
    histogram : ColorHistogram
    """
    colors = table.colors
    if colors.shape[1] == 1:
        colors = np.repeat(colors, 3, axis=1)
    return ColorHistogram(np.ascontiguousarray(colors), table.counts.astype(np.int64))


def histogram_of_image(image: Any) -> ColorHistogram:
    """Return the weighted colour histogram of an image's opaque pixels.

    Parameters
    ----------
    image : array_like of shape (M, N), (M, N, 1|2|3|4)
        uint8/uint16 grey, grey+alpha, RGB or RGBA.

    Returns
    -------
    histogram : ColorHistogram

    Raises
    ------
    ValueError
        Invalid image, or no opaque pixel.
    """
    return histogram_of_table(unique_colors(image))


def _codes(colors: np.ndarray, bits: int) -> np.ndarray:
    c = colors.astype(np.int64)
    if colors.dtype == np.uint8 and bits == 16:
        c *= 257  # 8-bit value v is 16-bit 257 v exactly (as the loader scales)
    return (c[:, 0] << (2 * bits)) | (c[:, 1] << bits) | c[:, 2]


def merge_histograms(histograms: Iterable[ColorHistogram | None]) -> ColorHistogram | None:
    """Sum histograms exactly (``None`` entries are skipped).

    8-bit and 16-bit histograms together are summed in 16 bits (an 8-bit value ``v`` is the
    16-bit value ``257 v``).

    Parameters
    ----------
    histograms : iterable of ColorHistogram or None

    Returns
    -------
    total : ColorHistogram or None
        None when every entry was None.
    """
    parts = [h for h in histograms if h is not None]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    wide = any(h.colors.dtype == np.uint16 for h in parts)
    bits = 16 if wide else 8
    codes = np.concatenate([_codes(h.colors, bits) for h in parts])
    counts = np.concatenate([h.counts for h in parts]).astype(np.int64)
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    counts = counts[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    summed = np.add.reduceat(counts, starts)  # int64: exact
    uniq = codes[starts]
    mask = (1 << bits) - 1
    dtype = np.uint16 if wide else np.uint8
    colors = np.empty((len(uniq), 3), dtype=dtype)
    colors[:, 0] = (uniq >> (2 * bits)) & mask
    colors[:, 1] = (uniq >> bits) & mask
    colors[:, 2] = uniq & mask
    return ColorHistogram(colors, summed)


def fit_histogram(
    histogram: ColorHistogram,
    n_colors: int,
    *,
    method: str = "kmeans",
    color_space: str = "rgb",
    seed: int = 0,
    should_cancel: CancelCallback | None = None,
    **fit_options: Any,
) -> Generator[IterationRecord, None, QuantizeResult]:
    """Fit one palette to a (summed) histogram, step by step.

    The fit sees exactly what a fit of one image holding all the pixels would see: the
    distinct colours weighted by their counts.

    Parameters
    ----------
    histogram : ColorHistogram
    n_colors : int
        Palette size K.
    method, color_space, seed, should_cancel, **fit_options
        As for :func:`quantize.pipeline.iter_quantize_image`.

    Yields
    ------
    record : IterationRecord

    Returns
    -------
    result : QuantizeResult
        Its ``palette`` (K, 3) uint8 is the shared palette (its image is the column of
        distinct colours, shape (U, 1, 3)).
    """
    colors = histogram.colors
    image = colors[:, None, :]
    table = ColorTable(
        colors=colors,
        counts=histogram.counts,
        inverse=np.arange(len(colors), dtype=np.int32),
        shape=(len(colors), 1),
        opaque=None,
    )
    return (
        yield from iter_quantize_image(
            image,
            n_colors,
            method=method,
            color_space=color_space,
            seed=seed,
            should_cancel=should_cancel,
            table=table,
            **fit_options,
        )
    )
