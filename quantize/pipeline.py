"""The image pipeline: image -> unique colours -> fit -> :class:`QuantizeResult`.

One path for the GUI, the CLI and the tests: :func:`iter_quantize_image` is a generator that
yields the estimator's :class:`~quantize.protocol.IterationRecord` objects and returns a
:class:`QuantizeResult`; :func:`quantize_image` drains it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from quantize._json import json_safe
from quantize._validation import check_positive_int
from quantize.cluster._annular import nearest_labels
from quantize.cluster._nearest import exact_sq_dist, nearest_indices
from quantize.cluster._polish import polish_palette
from quantize.cluster._small import cheapest_entries, find_small_groups
from quantize.cluster.kmeans import SeedingScore
from quantize.cluster.registry import METHODS, get_method
from quantize.colorspace import (
    SRGB_SPACES,
    check_space,
    grey_axis,
    rgb_to_space,
    search_weights,
    space_to_rgb,
    space_to_rgb_float,
)
from quantize.features import ColorTable, unique_colors
from quantize.options import DEFAULTS
from quantize.pixels import to_uint8
from quantize.protocol import CancelCallback, IterationRecord, check_cancel, drain
from quantize.render import dither_indices, index_dtype, nearest_entries

__all__ = [
    "FixedPalette",
    "QuantizeResult",
    "auto_error_power",
    "check_error_power",
    "iter_quantize_image",
    "map_to_palette",
    "importance_weights",
    "oklab_error_score",
    "palette_labels",
    "quantize_image",
    "table_points",
]

_POLISH_MAX_K = 32  # the largest palette polished by default (auto_error_power)
_SMALL_STAGE = "small-colours"  # stage label of the records of the refit that keeps them
_SMALL_ENTRY_SHARE = 0.02  # entries below this share of the pixels count as small colours


def _is_grey(table: ColorTable) -> bool:
    c = table.colors
    return c.shape[1] == 1 or bool((c[:, 0] == c[:, 1]).all() and (c[:, 1] == c[:, 2]).all())


def palette_labels(
    table: ColorTable,
    palette: np.ndarray,
    color_space: str,
    *,
    one_channel: bool = False,
) -> np.ndarray:
    """Each distinct colour's palette entry, as the undithered rendering shows it.

    The nearest entry in the fitting space; in the sRGB spaces (``"rgb"``, ``"wrgb"``) with
    near ties decided in OKLab (:func:`quantize.render.nearest_entries`), as
    :func:`quantize.render.dither_indices` renders without dithering.  The labels of
    nearest-entry fits (K-means), of a given palette and of a model applied to an image.

    Parameters
    ----------
    table : ColorTable
        Distinct colours of an image.
    palette : ndarray of shape (K, 3)
        sRGB palette, 0-255.
    color_space : {"rgb", "wrgb", "lab", "oklab"}
    one_channel : bool
        Grey colours measured as one-dimensional points (:func:`table_points`).

    Returns
    -------
    labels : ndarray of shape (U,), int64
    """
    space = check_space(color_space)
    if space in SRGB_SPACES and not one_channel:
        return nearest_entries(_table_rgb8(table), palette, search_weights(space))
    centers = rgb_to_space(np.asarray(palette), space)
    if one_channel:
        centers = centers[:, :1]
    return nearest_indices(table_points(table, space, one_channel=one_channel), centers)


def table_points(table: ColorTable, color_space: str, *, one_channel: bool = False) -> np.ndarray:
    """Fitting-space coordinates of a colour table's distinct colours.

    Parameters
    ----------
    table : ColorTable
        Distinct colours of an image.
    color_space : {"rgb", "wrgb", "lab", "oklab"}
        Fitting space.
    one_channel : bool
        Fit grey colours as one-dimensional points (grey value on 0-255 for ``"rgb"``,
        0.8 times that for ``"wrgb"``, lightness for ``"lab"``/``"oklab"``).  Requires grey colours.

    Returns
    -------
    points : ndarray of shape (U, 3) or (U, 1), float64
        Read-only, computed once per table and space (a search for K or a sweep fits one
        table a dozen times; converting 300,000 colours to OKLab takes 0.1-0.4 s).
    """
    space = check_space(color_space)
    key = ("points", space, bool(one_channel))
    cached = table.derived.get(key)
    if cached is not None:
        return cached
    colors = table.colors
    if colors.shape[1] == 1:
        colors = np.repeat(colors, 3, axis=1)
    pts = rgb_to_space(colors, space)
    if one_channel:
        pts = np.ascontiguousarray(pts[:, :1])
    pts.setflags(write=False)
    table.derived[key] = pts
    return pts


def _palette_from_centers(centers: np.ndarray, color_space: str) -> np.ndarray:
    c = np.asarray(centers, dtype=np.float64)
    if c.shape[1] == 1:  # greys: the first coordinate only
        c = c * grey_axis(color_space)
    return space_to_rgb(c, color_space)


def _table_rgb8(table: ColorTable) -> np.ndarray:
    """Return the distinct colours as 8-bit sRGB, shape (U, 3)."""
    colors = to_uint8(np.asarray(table.colors))
    if colors.shape[1] == 1:
        colors = np.repeat(colors, 3, axis=1)
    return colors[:, :3]


def _snap_single_colour_clusters(
    palette: np.ndarray, table: ColorTable, unique_labels: np.ndarray
) -> np.ndarray:
    """Give each cluster of exactly one distinct colour that colour, to the bit.

    Its centre is that colour already, but the way back from the fitting space to 8-bit sRGB
    may round it one step off; an image with at most K colours then comes back exactly.

    Parameters
    ----------
    palette : ndarray of shape (K, 3), uint8
    table : ColorTable
        U distinct colours.
    unique_labels : ndarray of shape (U,), integer

    Returns
    -------
    palette : ndarray of shape (K, 3), uint8
        A copy with the single-colour clusters' entries replaced.
    """
    labels = np.asarray(unique_labels, dtype=np.intp)
    k = len(palette)
    single = np.bincount(labels, minlength=k) == 1
    if not single.any():
        return palette
    member = np.zeros(k, dtype=np.intp)
    member[labels] = np.arange(labels.size)  # the only member, where there is one
    out = np.array(palette, dtype=np.uint8, copy=True)
    out[single] = _table_rgb8(table)[member[single]]
    return out


@dataclass(eq=False)
class QuantizeResult:
    """A quantized image: palette, labels, the fitted model and on-demand views.

    Attributes
    ----------
    image : ndarray of shape (M, N, C)
        The input image (not copied).
    palette : ndarray of shape (K, 3), uint8
        sRGB palette.
    labels : ndarray of shape (M, N), uint8 (K <= 256) or uint16
        Palette index per pixel, the undithered rendering; fully transparent pixels get 0
        (see ``opaque``).  For K-means fits and given palettes in the sRGB spaces, each
        colour's entry as :func:`palette_labels` gives it (the nearest, near ties decided
        in OKLab), which may differ from the model's nearest-centre ``labels_``; for a
        mixture, the most probable component.
    opaque : ndarray of shape (M, N), bool, or None
        Pixels with alpha > 0 (None for images without alpha).
    proportions : ndarray of shape (K,), float64
        Share of opaque pixels per palette entry (sums to 1).
    history : ndarray of shape (n_iter,)
        Objective per iteration of the chosen run (inertia or mean log-likelihood).
    records : list of IterationRecord
        Every record yielded during the fit.
    model : estimator
        The fitted estimator of the method (see :mod:`quantize.cluster.registry`), in the
        fitting space, on the distinct colours.
    method, color_space : str
    n_colors_requested, seed : int
    fit_options : dict
    warnings : list of str
    table : ColorTable
    points : ndarray of shape (U, D)
        Fitting-space coordinates of the distinct colours.
    elapsed_s : float
    unique_labels : ndarray of shape (U,), int32
        Palette index of each distinct colour.
    locked : ndarray of shape (L, 3), uint8
        Locked colours: the first L palette entries, exactly these colours.
    added : tuple of int
        Palette entries added because a small distinct colour group was far from every
        fitted entry (see :func:`iter_quantize_image`, ``keep_small_colors``).
    importance : bool
        Whether an importance map weighted the fit.
    edits : tuple of str
        Edits made to the palette after the fit (see :mod:`quantize.edit`), in order.
    error_power : float
        The power of the distance the palette was polished for after the K-means fit (see
        ``error_power`` of :func:`iter_quantize_image`); 2.0: not polished.
    segmentation : Segmentation or None
        Set by :func:`quantize.segment.segment_result`: the spatial prior and small-region
        merge that made ``labels`` and ``proportions`` coherent (``None``: labels from
        colour alone).
    """

    image: np.ndarray
    palette: np.ndarray
    labels: np.ndarray
    opaque: np.ndarray | None
    proportions: np.ndarray
    history: np.ndarray
    records: list[IterationRecord]
    model: Any
    method: str
    color_space: str
    n_colors_requested: int
    seed: int
    fit_options: dict[str, Any]
    warnings: list[str]
    table: ColorTable
    points: np.ndarray
    elapsed_s: float
    unique_labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    locked: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.uint8))
    added: tuple[int, ...] = ()
    importance: bool = False
    edits: tuple[str, ...] = ()
    error_power: float = 2.0
    # a quantize.segment.Segmentation (that layer sits above this one, hence Any)
    segmentation: Any = field(default=None, repr=False)
    _base: QuantizeResult | None = field(default=None, repr=False)
    _exact: bool | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_labels(
        cls,
        image: np.ndarray,
        table: ColorTable,
        points: np.ndarray,
        unique_labels: np.ndarray,
        palette: np.ndarray,
        **fields: Any,
    ) -> QuantizeResult:
        """Build a result from the label of each distinct colour: the one end of every fit.

        Parameters
        ----------
        image : ndarray of shape (M, N, C)
            The input image.
        table : ColorTable
            Its distinct colours (U of them) with counts and inverse index.
        points : ndarray of shape (U, D)
            The distinct colours in the fitting space.
        unique_labels : ndarray of shape (U,), integer
            Palette index of each distinct colour.
        palette : ndarray of shape (K, 3), uint8
            sRGB palette.
        **fields
            The remaining attributes (``history``, ``records``, ``model``, ``method``,
            ``color_space``, ``n_colors_requested``, ``seed``, ``fit_options``,
            ``warnings``, ``elapsed_s``).

        Returns
        -------
        result : QuantizeResult
            With the per-pixel labels gathered through the inverse index and the
            proportions weighted by pixel counts.
        """
        unique_labels = np.asarray(unique_labels, dtype=np.int64)
        k = len(palette)
        labels = table.gather(unique_labels.astype(index_dtype(k)), fill=0)
        weights = table.counts.astype(np.float64)
        proportions = np.bincount(unique_labels, weights=weights, minlength=k) / weights.sum()
        return cls(
            image=image,
            palette=palette,
            labels=labels,
            opaque=table.opaque,
            proportions=proportions,
            table=table,
            points=points,
            unique_labels=unique_labels.astype(np.int32),
            **fields,
        )

    def unsmoothed(self) -> QuantizeResult:
        """Return the result before :func:`quantize.segment.segment_result` (itself if none).

        Returns
        -------
        result : QuantizeResult
        """
        return self._base if self._base is not None else self

    def with_segmentation(
        self, labels: np.ndarray, proportions: np.ndarray, segmentation: Any
    ) -> QuantizeResult:
        """Return a copy with coherent labels (what :func:`~quantize.segment.segment_result` gives).

        Parameters
        ----------
        labels : ndarray of shape (M, N)
        proportions : ndarray of shape (K,)
        segmentation : Segmentation

        Returns
        -------
        result : QuantizeResult
        """
        base = self.unsmoothed()
        return replace(
            base, labels=labels, proportions=proportions, segmentation=segmentation, _base=base
        )

    @property
    def n_colors(self) -> int:
        """Number of palette entries K actually produced."""
        return int(self.palette.shape[0])

    @property
    def n_iter(self) -> int:
        """Iterations of the chosen run."""
        return int(getattr(self.model, "n_iter_", len(self.history)))

    @property
    def converged(self) -> bool:
        """Whether the fit converged before ``max_iter``."""
        return bool(getattr(self.model, "converged_", True))

    @property
    def is_soft(self) -> bool:
        """True when the method gives soft responsibilities (the Gaussian mixture)."""
        return (
            self.method in METHODS
            and METHODS[self.method].soft
            and hasattr(self.model, "responsibility")  # an edited palette has hard maps
        )

    @property
    def exact(self) -> bool:
        """Whether every opaque pixel has its own colour in the palette (lossless result).

        Dithering then changes nothing: :meth:`indices` returns the labels for any method.
        """
        if self.segmentation is not None:
            return False  # the labels are no longer each colour's nearest entry
        if self._exact is None:
            colors = _table_rgb8(self.table)
            labels = np.asarray(self.unique_labels, dtype=np.intp)
            self._exact = bool(
                labels.size == colors.shape[0]
                and np.array_equal(np.asarray(self.palette)[labels], colors)
            )
        return self._exact

    def label_image(self) -> np.ndarray:
        """Alias of :attr:`labels`.

        Returns
        -------
        labels : ndarray of shape (M, N)
        """
        return self.labels

    def undithered_mse(self) -> float:
        """Mean squared sRGB error of the undithered rendering over the opaque pixels.

        Computed per distinct colour (weighted by its pixel count), so it costs U, not M x N,
        operations; error diffusion uses it to cap pending error.

        Returns
        -------
        mse : float
            In levels**2 (0-255 scale).
        """
        colors = _table_rgb8(self.table).astype(np.float64)
        labels = np.asarray(self.unique_labels, dtype=np.intp)
        if labels.size != colors.shape[0]:  # no per-colour labels: measure the pixels
            return float("nan")
        diff = colors - np.asarray(self.palette, np.float64)[labels]
        counts = np.asarray(self.table.counts, np.float64)
        return float(counts @ np.einsum("ij,ij->i", diff, diff) / max(counts.sum(), 1.0))

    def indices(self, dither: str = "none", strength: float = 1.0) -> np.ndarray:
        """Palette index per pixel, optionally dithered.

        Parameters
        ----------
        dither : {"none", "fs", "ordered"}
            Error diffusion (Floyd-Steinberg) or ordered dithering via
            :func:`quantize.render.dither_indices`.
        strength : float
            Dither strength in [0, 1].

        Returns
        -------
        indices : ndarray of shape (M, N), uint8 or uint16
            The coherent labels themselves for a smoothed result (a segmentation is not
            dithered).
        """
        if self.segmentation is not None:
            return self.labels
        if dither in (None, "none") or strength == 0 or self.exact:
            return self.labels  # nothing to diffuse where every colour is in the palette
        return dither_indices(
            self.image,
            self.palette,
            method=dither,
            strength=strength,
            opaque=self.opaque,
            nearest=self.labels,
            mse=self.undithered_mse(),
            channel_weights=search_weights(self.color_space),
        )

    def to_image(self, dither: str = "none", strength: float = 1.0) -> np.ndarray:
        """Render the quantized image.

        Parameters
        ----------
        dither : {"none", "fs", "ordered"}
            Dithering method.
        strength : float
            Dither strength in [0, 1].

        Returns
        -------
        rgb : ndarray of shape (M, N, 3), uint8
        """
        # np.take: 3-4 times faster than fancy indexing for this (M, N) -> (M, N, 3) gather
        return np.take(self.palette, self.indices(dither, strength), axis=0)

    def responsibility_map(self, k: int) -> np.ndarray:
        """Per-pixel responsibility of palette entry ``k``.

        Computed on the distinct colours and gathered through the inverse index (never an
        (n_pixels, K) array).  Hard 0/1 for K-means; transparent pixels get 0.  For a
        smoothed result, the mean-field responsibilities (soft for every method), with the
        pixels the small-region merge moved set to their new class.

        Parameters
        ----------
        k : int
            Palette index.

        Returns
        -------
        resp : ndarray of shape (M, N), float32 in [0, 1]
        """
        k = int(k)
        if not 0 <= k < self.n_colors:
            raise IndexError(f"palette index {k} out of range 0..{self.n_colors - 1}")
        seg = self.segmentation
        if seg is not None:
            if seg.responsibilities is not None:
                return np.ascontiguousarray(seg.responsibilities[:, :, k])
            out = self.unsmoothed().responsibility_map(k)
            if seg.reassigned is not None:
                out[seg.reassigned] = (self.labels[seg.reassigned] == k).astype(np.float32)
            return out
        if self.is_soft:
            per_color = self.model.responsibility(self.points, k, dtype=np.float32)
        else:
            per_color = (self.unique_labels == k).astype(np.float32)
        return self.table.gather(per_color, fill=0.0)

    def uncertainty_map(self) -> np.ndarray:
        """``1 - max_k responsibility`` per pixel (zeros for hard methods).

        Returns
        -------
        uncertainty : ndarray of shape (M, N), float32 in [0, 1]
        """
        seg = self.segmentation
        if seg is not None:
            if seg.responsibilities is not None:
                out = 1.0 - seg.responsibilities.max(axis=2)
                np.clip(out, 0.0, 1.0, out=out)
                if self.opaque is not None:
                    out[~self.opaque] = 0.0
                return out.astype(np.float32)
            out = self.unsmoothed().uncertainty_map()
            if seg.reassigned is not None:
                out[seg.reassigned] = 0.0
            return out
        if not self.is_soft:
            return np.zeros(self.table.shape, dtype=np.float32)
        per_color = 1.0 - self.model.max_responsibility(self.points, dtype=np.float32)
        np.clip(per_color, 0.0, 1.0, out=per_color)
        return self.table.gather(per_color, fill=0.0)

    def parameters(self) -> dict[str, Any]:
        """JSON-safe description of how this result was made.

        Returns
        -------
        params : dict
            method, n_colors (requested), n_colors_effective, color_space, seed, fit_options,
            n_iter, converged, and ``smoothing`` for a smoothed result.
        """
        params: dict[str, Any] = {
            "method": self.method,
            "n_colors": int(self.n_colors_requested),
            "n_colors_effective": self.n_colors,
            "color_space": self.color_space,
            "seed": int(self.seed),
            "fit_options": json_safe(self.fit_options),
            "n_iter": self.n_iter,
            "converged": self.converged,
            "locked": [_hex(c) for c in self.locked],
            "added_small_colors": [
                {
                    "index": int(i),
                    "hex": _hex(self.palette[i]),
                    "share": float(self.proportions[i]),
                }
                for i in self.added
            ],
            "importance_map": bool(self.importance),
            "error_power": float(self.error_power),
            "edits": list(self.edits),
        }
        if self.segmentation is not None:
            params["smoothing"] = self.segmentation.to_dict()
        return params


def _hex(color: np.ndarray) -> str:
    r, g, b = (int(v) for v in np.asarray(color)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def importance_weights(table: ColorTable, importance: Any) -> np.ndarray:
    """Fit weights of the distinct colours under a per-pixel importance map.

    The weight of a distinct colour is the sum of the importance of its pixels, so a fit on
    the distinct colours with these weights is exactly the fit on every pixel weighted by
    its importance.

    Parameters
    ----------
    table : ColorTable
        The image's U distinct colours.
    importance : array_like of shape (M, N)
        Importance per pixel: uint8 0 (ignore) ... 255 (most important), or floats in
        [0, 1].  Transparent pixels are left out whatever their importance.

    Returns
    -------
    weights : ndarray of shape (U,), float64
        ``sum of importance / 255`` (uint8 maps) or ``sum of importance`` (floats).

    Raises
    ------
    ValueError
        If the map's shape is not the image's, a value is out of range or not finite, or
        the map ignores every (opaque) pixel.
    """
    imp = np.asarray(importance)
    if imp.ndim == 3 and imp.shape[2] == 1:
        imp = imp[:, :, 0]
    if imp.shape != tuple(table.shape):
        raise ValueError(
            f"importance map of shape {imp.shape} for an image of {table.shape[0]} x "
            f"{table.shape[1]} pixels (rows x columns): it must have the image's size"
        )
    if imp.dtype == np.uint8:
        values = imp.astype(np.float64) / 255.0
    elif np.issubdtype(imp.dtype, np.floating) or np.issubdtype(imp.dtype, np.integer):
        values = imp.astype(np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ValueError("importance values must be uint8 0-255 or floats in [0, 1]")
    else:
        raise ValueError(f"importance map must be numeric, got dtype {imp.dtype}")
    inverse = table.inverse
    opaque = inverse >= 0
    weights = np.bincount(inverse[opaque], weights=values.ravel()[opaque], minlength=table.n_colors)
    if not weights.sum() > 0:
        raise ValueError("the importance map is 0 (ignore) on every pixel: nothing to fit")
    return weights


def _locked_rgb8(locked: Any) -> np.ndarray:
    arr = np.asarray(locked)
    if arr.size == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"locked colours must have shape (L, 3), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
        raise ValueError("locked colours must be 8-bit sRGB integers 0-255")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _space_points(rgb8: np.ndarray, space: str, one_channel: bool) -> np.ndarray:
    conv = rgb_to_space(rgb8, space)
    return conv[:, :1] if one_channel else conv


def oklab_error_score(space: str) -> SeedingScore:
    """Make a seeding score: the weighted sum of OKLab distances from points to centres.

    Parameters
    ----------
    space : {"rgb", "wrgb", "lab", "oklab"}
        Space of the points and centres the score is given.

    Returns
    -------
    score : callable
        ``score(centers (K, 3), points (M, 3), weights (M,), labels (M,)) -> float``, for
        :class:`~quantize.cluster.kmeans.KMeans`'s ``seeding_score``: seedings that end
        nearer in OKLab (a plain mean, not of squares, like a mean colour difference) give
        palettes with smaller visible errors than those of the lowest inertia.
    """
    space = check_space(space)

    def to_oklab(p: np.ndarray) -> np.ndarray:
        if space == "oklab":
            return p
        return rgb_to_space(np.clip(space_to_rgb_float(p, space) / 255.0, 0.0, 1.0), "oklab")

    def score(
        centers: np.ndarray, points: np.ndarray, weights: np.ndarray, labels: np.ndarray
    ) -> float:
        diff = to_oklab(points) - to_oklab(centers)[labels]
        return float(weights @ np.sqrt(np.einsum("ij,ij->i", diff, diff)))

    return score


def auto_error_power(n_colors: int) -> float:
    """Return the default power of the palette polish for a palette of ``n_colors``.

    1.5 for K <= 32, 2.0 (no polish) above: on eleven camera photos the polished palettes'
    mean CIEDE2000 after a 1-px blur was lower at K = 16 and not at K = 64
    (benchmarks/README.md, issue 10).

    Parameters
    ----------
    n_colors : int

    Returns
    -------
    power : float
    """
    return 1.5 if n_colors <= _POLISH_MAX_K else 2.0


def check_error_power(error_power: Any, n_colors: int) -> float:
    """Validate ``error_power`` (a number in [1, 2], or None for :func:`auto_error_power`).

    Parameters
    ----------
    error_power : float or None
    n_colors : int

    Returns
    -------
    power : float
    """
    if error_power is None:
        return auto_error_power(n_colors)
    if isinstance(error_power, bool) or not isinstance(error_power, int | float | np.number):
        raise ValueError(f"error_power must be a number in [1, 2], got {error_power!r}")
    power = float(error_power)
    if not 1.0 <= power <= 2.0:
        raise ValueError(f"error_power must be in [1, 2], got {error_power!r}")
    return power


def _centers_of(model: Any) -> np.ndarray:
    return np.asarray(model.means_ if hasattr(model, "means_") else model.cluster_centers_)


def iter_quantize_image(
    image: Any,
    n_colors: int,
    *,
    method: str = "kmeans",
    color_space: str = "rgb",
    seed: int = 0,
    should_cancel: CancelCallback | None = None,
    table: ColorTable | None = None,
    importance: Any = None,
    keep_small_colors: bool = DEFAULTS["keep_small_colors"],
    small_color_distance: float = DEFAULTS["small_color_distance"],
    small_color_share: float = DEFAULTS["small_color_share"],
    error_power: float | None = DEFAULTS["error_power"],
    **fit_options: Any,
) -> Generator[IterationRecord, None, QuantizeResult]:
    """Quantize an image step by step.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3), (M, N, 4), (M, N) or (M, N, 1|2)
        uint8 or uint16 (or float in [0, 1]) RGB(A) or grey(+alpha) image; not modified.
        Pixels with alpha == 0 are excluded from the fit.
    n_colors : int
        Palette size K.
    method : str
        A method of :data:`quantize.cluster.registry.METHODS`: ``"kmeans"``, ``"gmm"``
        (Gaussian mixture, EM), ``"minibatch"`` or ``"optimal1d"`` (exact 1-D dynamic
        programming, grey images only).
    color_space : {"rgb", "wrgb", "lab", "oklab"}
        Space the fit runs in; the palette is returned as sRGB.
    seed : int
        Seed of all randomness.
    should_cancel : callable or None
        Polled between iterations and chunks; returning True raises
        :class:`~quantize.protocol.Cancelled`.
    table : ColorTable or None
        The image's distinct colours, as returned by
        :func:`quantize.features.unique_colors` for this very image (callers fitting one
        image several times compute it once); ``None`` computes it.
    importance : array_like of shape (M, N) or None
        Importance map: uint8 0 (ignore) ... 255 (most important) or floats in [0, 1].
        Each pixel counts in the fit with its importance (see :func:`importance_weights`);
        ignored pixels still get their nearest palette colour.
    keep_small_colors : bool
        After the fit, give an entry to each group of distinct colours that is farther than
        ``small_color_distance`` (OKLab) from every entry and holds at least
        ``small_color_share`` of the (weighted) pixels; at most K // 4 such entries, which
        replace the entries that cost least and are then held fixed while the others are
        fitted again (methods that take ``locked`` colours: K-means and the mixture).  The
        result's :attr:`QuantizeResult.added` lists them.
    small_color_distance : float
        OKLab distance beyond which a colour is far from the palette.
    small_color_share : float
        Least share of the pixels a far colour group needs to get an entry.
    error_power : float or None
        After a K-means fit (``"kmeans"``, ``"minibatch"``), polish the palette towards the
        least weighted sum of distances to this power, in [1, 2] (2: K-means' own squared
        error, no polish); see :mod:`quantize.cluster._polish`.  ``None`` (the default):
        :func:`auto_error_power` of K, 1.5 for small palettes.  Locked and added colours do
        not move.
    **fit_options
        Passed to the estimator (e.g. ``n_init``, ``max_iter``, ``tol``,
        ``covariance_type``, ``reg_covar``, ``init``); a ``tol`` not given is the method's
        default in ``vq`` and the app (K-means 1e-3).  A uint8 array ``init`` of shape
        (K, 3) is read as an sRGB palette and converted to the fitting space.  ``locked``,
        an array of L distinct 8-bit sRGB colours of shape (L, 3), keeps them as the first
        L palette entries, exactly (K-means and the mixture).

    Yields
    ------
    record : IterationRecord

    Returns
    -------
    result : QuantizeResult
    """
    t0 = time.perf_counter()
    spec = get_method(method)
    space = check_space(color_space)
    n_colors = check_positive_int(n_colors, "n_colors")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    power = check_error_power(error_power, n_colors)
    check_cancel(should_cancel)
    image_arr = np.asarray(image)
    if table is None:
        table = unique_colors(image)
    elif tuple(table.shape) != tuple(image_arr.shape[:2]):
        raise ValueError(
            f"colour table of an image of shape {tuple(table.shape)} given for an image of "
            f"shape {image_arr.shape[:2]}"
        )
    one_channel = spec.grey_only
    if one_channel and not _is_grey(table):
        raise ValueError(f"method {method!r} needs a grey image (one channel, or R == G == B)")
    points = table_points(table, space, one_channel=one_channel)
    weights = table.counts if importance is None else importance_weights(table, importance)
    fit_on = None
    if importance is not None and not (weights > 0).all():
        fit_on = np.flatnonzero(weights > 0)  # ignored colours are mapped after the fit
    options = dict(fit_options)
    init = options.get("init")
    if isinstance(init, np.ndarray | list | tuple):
        arr = np.asarray(init)
        if arr.dtype == np.uint8 and arr.ndim == 2 and arr.shape[1] == 3:
            options["init"] = _space_points(arr, space, one_channel)
    locked = np.zeros((0, 3), dtype=np.uint8)
    if options.get("locked") is not None:
        if "locked" not in spec.options:
            able = ", ".join(n for n, s in METHODS.items() if "locked" in s.options)
            raise ValueError(f"method {method!r} cannot lock colours (methods that can: {able})")
        locked = _locked_rgb8(options["locked"])
        if len(locked) > n_colors:
            raise ValueError(f"{len(locked)} locked colours for a palette of {n_colors}")
        options["locked"] = _space_points(locked, space, one_channel) if len(locked) else None
    if "seeding_score" in spec.options and not one_channel:
        options.setdefault("seeding_score", oklab_error_score(space))
    fit_points = points if fit_on is None else points[fit_on]
    fit_weights = weights if fit_on is None else weights[fit_on]
    model = spec.make(n_colors, int(seed), options)
    records: list[IterationRecord] = []
    for rec in model.iter_fit(fit_points, fit_weights, should_cancel=should_cancel):
        records.append(rec)
        yield rec
    added: tuple[int, ...] = ()
    pinned = locked

    def polish(centers: np.ndarray, stop: CancelCallback | None) -> tuple[np.ndarray, ...]:
        rgb8 = _table_rgb8(table)
        return polish_palette(
            fit_points,
            fit_weights,
            rgb8 if fit_on is None else rgb8[fit_on],
            centers,
            power=power,
            n_fixed=len(pinned),
            should_cancel=stop,
        )

    def polishable(model: Any) -> bool:
        return power < 2.0 and spec.polishable and len(pinned) < len(_centers_of(model))

    def settle(
        model: Any, polished: tuple[np.ndarray, ...] | None, pinned: np.ndarray
    ) -> tuple[Any, ...]:
        """Return the centres, palette and labels a fit ends with (the model is not changed).

        (centres, polished labels, inertia, palette, labels of the distinct colours); the
        polished labels and inertia are None when ``polished`` is.
        """
        centers = _centers_of(model)
        fit_labels = inertia = None
        if polished is None:
            labels = model.labels_ if fit_on is None else model.predict(points)
        else:
            centers, fit_labels = polished
            labels = fit_labels if fit_on is None else nearest_labels(points, centers)
            inertia = float(fit_weights @ exact_sq_dist(fit_points, centers, fit_labels))
        palette = _snap_single_colour_clusters(_palette_from_centers(centers, space), table, labels)
        palette[: len(pinned)] = pinned  # locked and added colours exactly as chosen
        if not spec.soft and space in SRGB_SPACES and not one_channel:
            labels = palette_labels(table, palette, space)  # as the rendering shows each colour
        return centers, fit_labels, inertia, palette, labels

    settled: tuple[Any, ...] | None = None
    if keep_small_colors and "locked" in spec.options and not one_channel:
        # the search for small colours usually finds none: the polish and the palette it
        # would be followed by are made meanwhile on a second thread (numpy and the compiled
        # loops release the GIL), and dropped if a refit follows (15 MP photo, K = 16:
        # about 0.2 s less)
        dropped = threading.Event()

        def stop() -> bool:
            return dropped.is_set() or _cancelled(should_cancel)

        def polish_and_settle(m: Any) -> tuple[Any, ...]:
            return settle(m, polish(_centers_of(m), stop) if polishable(m) else None, locked)

        # (the thread is joined on every way out: a run leaves no thread behind it)
        pool = ThreadPoolExecutor(1, thread_name_prefix="vq-polish")
        ahead = pool.submit(polish_and_settle, model)
        try:
            try:
                refit = _keep_small_colors(
                    model,
                    spec,
                    n_colors,
                    int(seed),
                    options,
                    table,
                    space,
                    fit_points,
                    fit_weights,
                    fit_on,
                    locked,
                    small_color_distance,
                    small_color_share,
                )
            except BaseException:
                dropped.set()  # (the polish stops at once; the palette's labels take < 0.1 s)
                raise
            if refit is None:
                settled = ahead.result()  # raises Cancelled if the run was cancelled meanwhile
            else:
                dropped.set()
                ahead.exception()  # wait for it (a Cancelled it raised is not ours)
        finally:
            pool.shutdown(wait=True)
        if refit is not None:
            model2, pinned, added = refit
            restart = 1 + max((r.restart for r in records), default=-1)
            for rec in model2.iter_fit(fit_points, fit_weights, should_cancel=should_cancel):
                rec = dataclasses.replace(rec, restart=restart, stage=_SMALL_STAGE)
                records.append(rec)
                yield rec
            model = model2
    if settled is None:
        polished = polish(_centers_of(model), should_cancel) if polishable(model) else None
        settled = settle(model, polished, pinned)
    centers, fit_labels, inertia, palette, labels = settled
    if fit_labels is not None:
        # the model now describes the polished palette (model files, segmentation, sweeps)
        model.cluster_centers_ = centers
        model.labels_ = fit_labels
        model.inertia_ = inertia
    kept = {k: v for k, v in fit_options.items() if k != "locked"}
    return QuantizeResult.from_labels(
        image_arr,
        table,
        points,
        labels,
        palette,
        history=np.asarray(model.history_, dtype=np.float64),
        records=records,
        model=model,
        method=method,
        color_space=space,
        n_colors_requested=n_colors,
        seed=int(seed),
        fit_options=kept,
        warnings=list(model.warnings_),
        elapsed_s=time.perf_counter() - t0,
        locked=locked,
        added=added,
        importance=importance is not None,
        error_power=power if fit_labels is not None else 2.0,
    )


def _cancelled(should_cancel: CancelCallback | None) -> bool:
    return should_cancel is not None and bool(should_cancel())


def _keep_small_colors(
    model: Any,
    spec: Any,
    n_colors: int,
    seed: int,
    options: dict[str, Any],
    table: ColorTable,
    space: str,
    points: np.ndarray,
    weights: np.ndarray,
    fit_on: np.ndarray | None,
    locked: np.ndarray,
    distance: float,
    share: float,
) -> tuple[Any, np.ndarray, tuple[int, ...]] | None:
    """Find small far colour groups and make the refit that keeps them (not yet run).

    Returns (unfitted model, all locked sRGB colours, added entries) or None.
    """
    centers = _centers_of(model)
    K = centers.shape[0]
    n_locked = len(locked)
    max_groups = min(K // 4, K - n_locked - 1)
    if max_groups <= 0:
        return None
    palette = _palette_from_centers(centers, space)
    rgb8 = _table_rgb8(table)
    if fit_on is not None:
        rgb8 = rgb8[fit_on]
    if space == "oklab":
        perceptual = points
    elif fit_on is None and table.colors.dtype == np.uint8 and table.colors.shape[1] == 3:
        perceptual = table_points(table, "oklab")  # the same colours, kept with the table
    else:
        perceptual = rgb_to_space(rgb8, "oklab")
    groups = find_small_groups(
        perceptual,
        weights,
        rgb_to_space(palette, "oklab"),
        distance=float(distance),
        min_share=float(share),
        max_groups=max_groups,
        labels=model.labels_,
    )
    if not groups:
        return None
    means = np.stack([(weights[g] @ points[g]) / weights[g].sum() for g in groups])
    new_rgb = _palette_from_centers(means, space)
    _, first = np.unique(new_rgb, axis=0, return_index=True)
    new_rgb = new_rgb[np.sort(first)]
    if locked.size:  # a group whose colour rounds to a locked one needs no entry
        clash = (new_rgb[:, None, :] == locked[None, :, :]).all(axis=2).any(axis=1)
        new_rgb = new_rgb[~clash]
    if not len(new_rgb):
        return None
    perc_centers = rgb_to_space(palette, "oklab")
    apart = ((perc_centers[:, None, :] - perc_centers[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(apart, np.inf)
    share_of = np.bincount(model.labels_, weights=weights, minlength=K) / weights.sum()
    # a small entry far from the others is a kept colour already: dropping it would only
    # trade one lost small colour for another
    small_apart = (apart.min(axis=1) > float(distance) ** 2) & (share_of < _SMALL_ENTRY_SHARE)
    protected = (np.arange(K) < n_locked) | small_apart
    dropped = cheapest_entries(points, weights, model.labels_, centers, len(new_rgb), protected)
    if not dropped.size:
        return None
    new_rgb = new_rgb[: dropped.size]  # the heaviest groups, when fewer entries may go
    keep = np.setdiff1d(np.arange(K), dropped)
    all_locked = np.concatenate([locked, new_rgb]).astype(np.uint8)
    locked_pts = rgb_to_space(all_locked, space)
    init = np.concatenate([locked_pts, centers[keep[keep >= n_locked]]])
    refit_options = {**options, "locked": locked_pts, "init": init}
    if "n_init" in refit_options:
        refit_options["n_init"] = 1
    added = tuple(range(n_locked, n_locked + len(new_rgb)))
    return spec.make(init.shape[0], seed, refit_options), all_locked, added


def quantize_image(
    image: Any,
    n_colors: int,
    *,
    method: str = "kmeans",
    color_space: str = "rgb",
    seed: int = 0,
    should_cancel: CancelCallback | None = None,
    table: ColorTable | None = None,
    importance: Any = None,
    keep_small_colors: bool = DEFAULTS["keep_small_colors"],
    small_color_distance: float = DEFAULTS["small_color_distance"],
    small_color_share: float = DEFAULTS["small_color_share"],
    error_power: float | None = DEFAULTS["error_power"],
    **fit_options: Any,
) -> QuantizeResult:
    """Quantize an image (drains :func:`iter_quantize_image`).

    Parameters
    ----------
    image : ndarray of shape (M, N, 3|4), (M, N) or (M, N, 1|2)
        uint8/uint16 image.
    n_colors : int
        Palette size K.
    method : str
        A method of :data:`quantize.cluster.registry.METHODS`.
    color_space : {"rgb", "wrgb", "lab", "oklab"}
        Fitting space.
    seed : int
        Seed.
    should_cancel : callable or None
        Cancel poll.
    table : ColorTable or None
        Precomputed distinct colours of ``image`` (see :func:`iter_quantize_image`).
    importance : array_like of shape (M, N) or None
        Importance map (see :func:`iter_quantize_image`).
    keep_small_colors : bool
        Keep small distinct colour groups (see :func:`iter_quantize_image`).
    small_color_distance, small_color_share : float
        Their rule's OKLab distance and least share of the pixels.
    error_power : float or None
        Power of the palette polish after a K-means fit (see :func:`iter_quantize_image`).
    **fit_options
        Estimator options (see :func:`iter_quantize_image`).

    Returns
    -------
    result : QuantizeResult
    """
    return drain(
        iter_quantize_image(
            image,
            n_colors,
            method=method,
            color_space=color_space,
            seed=seed,
            should_cancel=should_cancel,
            table=table,
            importance=importance,
            keep_small_colors=keep_small_colors,
            small_color_distance=small_color_distance,
            small_color_share=small_color_share,
            error_power=error_power,
            **fit_options,
        )
    )


class FixedPalette:
    """Stand-in "model" of a result whose palette was given, not fitted.

    Parameters
    ----------
    palette : ndarray of shape (K, 3), uint8
        The palette.
    centers : ndarray of shape (K, D), float64
        The palette in the fitting space.
    labels : ndarray of shape (U,), int64
        Palette index of each distinct colour.
    """

    n_iter_ = 0
    converged_ = True

    def __init__(self, palette: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> None:
        self.palette_ = palette
        self.cluster_centers_ = centers
        self.labels_ = labels
        self.n_colors_ = int(len(palette))
        self.history_ = np.zeros(0)
        self.warnings_: list[str] = []


def map_to_palette(image: np.ndarray, palette: np.ndarray, *, color_space: str = "rgb") -> Any:
    """Map an image onto a given palette (nearest colour in ``color_space``), without fitting.

    Parameters
    ----------
    image : ndarray of shape (M, N, 3) or (M, N, 4), uint8 or uint16
        The image; fully transparent pixels get label 0 and do not count in the shares.
    palette : ndarray of shape (K, 3), uint8
        The user's palette, kept in its order (1 <= K <= 65536).
    color_space : {"rgb", "wrgb", "lab", "oklab"}, optional
        Space in which "nearest" is measured.

    Returns
    -------
    result : QuantizeResult
        ``method="palette"``, no iterations; dithering, metrics and exports work as for a
        fitted result.
    """
    t0 = time.perf_counter()
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= len(pal) <= 65536:
        raise ValueError(f"palette must have shape (K, 3) with 1 <= K <= 65536, got {pal.shape}")
    pal = np.ascontiguousarray(np.clip(pal, 0, 255).astype(np.uint8))
    space = check_space(color_space)
    image = np.asarray(image)
    table = unique_colors(image)
    points = table_points(table, space)
    centers = rgb_to_space(pal, space)
    unique_labels = palette_labels(table, pal, space)
    return QuantizeResult.from_labels(
        image,
        table,
        points,
        unique_labels,
        pal,
        history=np.zeros(0),
        records=[],
        model=FixedPalette(pal, centers, unique_labels),
        method="palette",
        color_space=space,
        n_colors_requested=len(pal),
        seed=0,
        fit_options={},
        warnings=[],
        elapsed_s=time.perf_counter() - t0,
    )
