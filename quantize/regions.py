"""Connected regions of a label map: region ids, adjacency, per-class and per-region statistics.

A *region* is a maximal set of opaque pixels of one class connected through shared edges
(4-connectivity: up, down, left, right; pixels touching only at a corner are separate
regions).  The same definition is used by the small-region merge of
:mod:`quantize.segment`, by the statistics below and by the outline export, so a region
counted in the statistics is a region the merge saw.

Everything here works on arrays (labels, image, palette) and never on a fitted model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def _ndimage() -> Any:
    """Return scipy.ndimage, imported on first use.

    It costs 0.15-0.3 s, and every ``vq`` command imports this module (through the export
    kinds) although few compute regions.
    """
    from scipy import ndimage

    return ndimage


__all__ = [
    "STRUCTURE",
    "RegionMap",
    "RegionStats",
    "label_regions",
    "region_adjacency",
    "region_stats",
]

#: 4-connectivity (pixels sharing an edge)
STRUCTURE = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


@dataclass(frozen=True, eq=False)
class RegionMap:
    """Connected regions of a label map.

    Attributes
    ----------
    ids : ndarray of shape (M, N), int32
        Region id of each pixel, 1..R; 0 for transparent pixels.
    region_class : ndarray of shape (R,), int64
        Class (palette index) of region ``r + 1`` at ``r``.
    sizes : ndarray of shape (R,), int64
        Pixels of region ``r + 1`` at ``r``.
    """

    ids: np.ndarray
    region_class: np.ndarray
    sizes: np.ndarray

    @property
    def n_regions(self) -> int:
        """Number of regions R."""
        return int(self.sizes.size)


def label_regions(
    labels: np.ndarray, n_classes: int | None = None, opaque: np.ndarray | None = None
) -> RegionMap:
    """Find the 4-connected regions of every class.

    Parameters
    ----------
    labels : ndarray of shape (M, N), integer
        Class of each pixel.
    n_classes : int, optional
        Number of classes K (default ``labels.max() + 1``).
    opaque : ndarray of shape (M, N), bool, optional
        Pixels that take part; transparent pixels get region id 0.

    Returns
    -------
    regions : RegionMap
        Region ids numbered class by class (all regions of class 0 first), each class's
        regions in raster order of their first pixel.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (M, N), got {labels.shape}")
    if labels.size == 0:
        return RegionMap(
            np.zeros(labels.shape, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        )
    k = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    ids = np.zeros(labels.shape, dtype=np.int32)
    classes: list[np.ndarray] = []
    offset = 0
    present = np.bincount(labels.ravel().astype(np.intp), minlength=k) > 0
    for c in range(k):
        if not present[c]:
            continue
        mask = labels == c
        if opaque is not None:
            mask &= opaque
        lab, n = _ndimage().label(mask, structure=STRUCTURE)
        if n == 0:
            continue
        ids[mask] = lab[mask] + offset
        classes.append(np.full(n, c, dtype=np.int64))
        offset += n
    region_class = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    sizes = np.bincount(ids.ravel(), minlength=offset + 1)[1:].astype(np.int64)
    return RegionMap(ids, region_class, sizes)


def region_adjacency(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of 4-adjacent regions and the length of their shared border.

    Parameters
    ----------
    ids : ndarray of shape (M, N), integer
        Region ids (0 = no region, ignored).

    Returns
    -------
    a, b : ndarray of shape (E,), int64
        Region ids; every adjacent pair appears in both directions.
    length : ndarray of shape (E,), int64
        Number of pixel edges the two regions share.
    """
    ids = np.asarray(ids)
    if ids.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty.copy(), empty.copy()
    base = int(ids.max()) + 1
    # one code per undirected border edge (8 bytes; up to two edges per pixel when every
    # pixel is a region of its own), both directions only for the distinct pairs
    codes = []
    for x, y in ((ids[:, :-1], ids[:, 1:]), (ids[:-1, :], ids[1:, :])):
        border = (x != y) & (x > 0) & (y > 0)
        xa, ya = x[border].astype(np.int64), y[border].astype(np.int64)
        codes.append(np.minimum(xa, ya) * base + np.maximum(xa, ya))
        del xa, ya, border
    code, length = np.unique(np.concatenate(codes), return_counts=True)
    lo, hi = code // base, code % base
    a = np.concatenate([lo, hi])
    b = np.concatenate([hi, lo])
    length = np.concatenate([length, length]).astype(np.int64)
    order = np.lexsort((b, a))
    return a[order], b[order], length[order]


@dataclass(frozen=True, eq=False)
class RegionStats:
    """Statistics per class and per connected region of a label map.

    Rows and columns are image rows and columns (0-based); bounding boxes are inclusive
    ``(min_row, min_col, max_row, max_col)``.  Shares are fractions of the opaque pixels.

    Attributes
    ----------
    width, height : int
    n_pixels : int
        Opaque pixels.
    palette : ndarray of shape (K, 3), uint8
    class_pixels : ndarray of shape (K,), int64
    class_share : ndarray of shape (K,), float64
    class_mean : ndarray of shape (K, 3), float64
        Mean sRGB colour (0-255) of the image's pixels in each class (NaN for an empty one).
    class_centroid : ndarray of shape (K, 2), float64
        (row, column); NaN for an empty class.
    class_bbox : ndarray of shape (K, 4), int64
        -1 for an empty class.
    class_regions : ndarray of shape (K,), int64
        Number of connected regions of each class.
    region_class : ndarray of shape (R,), int64
    region_pixels : ndarray of shape (R,), int64
    region_share : ndarray of shape (R,), float64
    region_mean : ndarray of shape (R, 3), float64
    region_centroid : ndarray of shape (R, 2), float64
    region_bbox : ndarray of shape (R, 4), int64
    regions : RegionMap
        The region ids the rows refer to (row ``r`` is region id ``r + 1``).
    """

    width: int
    height: int
    n_pixels: int
    palette: np.ndarray
    class_pixels: np.ndarray
    class_share: np.ndarray
    class_mean: np.ndarray
    class_centroid: np.ndarray
    class_bbox: np.ndarray
    class_regions: np.ndarray
    region_class: np.ndarray
    region_pixels: np.ndarray
    region_share: np.ndarray
    region_mean: np.ndarray
    region_centroid: np.ndarray
    region_bbox: np.ndarray
    regions: RegionMap

    @property
    def n_classes(self) -> int:
        """Number of classes K."""
        return int(self.class_pixels.size)

    @property
    def n_regions(self) -> int:
        """Number of regions R."""
        return int(self.region_pixels.size)

    def class_rows(self) -> list[dict[str, Any]]:
        """One JSON-safe dict per class.

        Returns
        -------
        rows : list of dict
            ``class``, ``color`` (hex of the palette entry), ``pixels``, ``share``,
            ``mean_color`` (hex), ``mean_rgb``, ``centroid``, ``bbox``, ``regions``.
        """
        return [
            {
                "class": k,
                "color": _hex(self.palette[k]),
                "pixels": int(self.class_pixels[k]),
                "share": float(self.class_share[k]),
                "mean_color": _hex_or_none(self.class_mean[k]),
                "mean_rgb": _floats_or_none(self.class_mean[k]),
                "centroid": _floats_or_none(self.class_centroid[k]),
                "bbox": None if self.class_bbox[k, 0] < 0 else [int(v) for v in self.class_bbox[k]],
                "regions": int(self.class_regions[k]),
            }
            for k in range(self.n_classes)
        ]

    def region_rows(self) -> list[dict[str, Any]]:
        """One JSON-safe dict per region.

        Returns
        -------
        rows : list of dict
            ``region`` (id, from 1), ``class``, ``pixels``, ``share``, ``mean_color``,
            ``mean_rgb``, ``centroid``, ``bbox``.
        """
        return [
            {
                "region": r + 1,
                "class": int(self.region_class[r]),
                "pixels": int(self.region_pixels[r]),
                "share": float(self.region_share[r]),
                "mean_color": _hex_or_none(self.region_mean[r]),
                "mean_rgb": _floats_or_none(self.region_mean[r]),
                "centroid": _floats_or_none(self.region_centroid[r]),
                "bbox": [int(v) for v in self.region_bbox[r]],
            }
            for r in range(self.n_regions)
        ]


def _hex(rgb: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def _hex_or_none(rgb: np.ndarray) -> str | None:
    if not np.isfinite(rgb).all():
        return None
    return _hex(np.clip(np.rint(rgb), 0, 255))


def _floats_or_none(values: np.ndarray) -> list[float] | None:
    if not np.isfinite(values).all():
        return None
    return [round(float(v), 4) for v in values]


def _rgb_float(image: np.ndarray) -> np.ndarray:
    """Return the image as float sRGB 0-255, shape (M, N, 3) (alpha dropped, grey repeated)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    scale = 255.0 / 65535.0 if arr.dtype == np.uint16 else 1.0
    if arr.dtype.kind == "f":
        scale = 255.0
    channels = arr.shape[2]
    rgb = arr[:, :, :3] if channels >= 3 else np.repeat(arr[:, :, :1], 3, axis=2)
    return rgb.astype(np.float64) * scale


def _bboxes(ids: np.ndarray, n: int) -> np.ndarray:
    out = np.full((n, 4), -1, dtype=np.int64)
    for r, sl in enumerate(_ndimage().find_objects(ids, max_label=n)):
        if sl is not None:
            out[r] = (sl[0].start, sl[1].start, sl[0].stop - 1, sl[1].stop - 1)
    return out


def _grouped_means(
    index: np.ndarray,
    n: int,
    counts: np.ndarray,
    rgb: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour (n, 3) and centroid (n, 2) of the pixels of each group ``0..n-1``."""
    mean = np.empty((n, 3))
    centroid = np.empty((n, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        for c in range(3):
            mean[:, c] = np.bincount(index, weights=rgb[:, c], minlength=n)[:n] / counts
        centroid[:, 0] = np.bincount(index, weights=rows, minlength=n)[:n] / counts
        centroid[:, 1] = np.bincount(index, weights=cols, minlength=n)[:n] / counts
    return mean, centroid


def region_stats(
    image: np.ndarray,
    labels: np.ndarray,
    palette: np.ndarray,
    opaque: np.ndarray | None = None,
    regions: RegionMap | None = None,
) -> RegionStats:
    """Count, measure and locate every class and every connected region.

    Parameters
    ----------
    image : ndarray of shape (M, N, C) or (M, N)
        The photo (uint8, uint16 or float in [0, 1]; RGB(A) or grey(+alpha)); the mean
        colours are its pixels' means in sRGB 0-255.
    labels : ndarray of shape (M, N), integer
        Class of each pixel.
    palette : ndarray of shape (K, 3), uint8
        Colour of each class.
    opaque : ndarray of shape (M, N), bool, optional
        Pixels that count (default all).
    regions : RegionMap, optional
        :func:`label_regions` of ``labels`` if the caller has it.

    Returns
    -------
    stats : RegionStats
    """
    labels = np.asarray(labels)
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    k = len(palette)
    m, n = labels.shape
    if np.asarray(image).shape[:2] != (m, n):
        raise ValueError(f"image of shape {np.asarray(image).shape} for labels of shape {(m, n)}")
    if regions is None:
        regions = label_regions(labels, k, opaque)
    mask = np.ones((m, n), bool) if opaque is None else np.asarray(opaque, bool)
    flat = mask.ravel()
    rgb = _rgb_float(image).reshape(-1, 3)[flat]
    rows, cols = np.divmod(np.flatnonzero(flat), n)
    rows = rows.astype(np.float64)
    cols = cols.astype(np.float64)
    cls = labels.ravel()[flat].astype(np.intp)
    total = int(flat.sum())
    denom = max(total, 1)

    class_pixels = np.bincount(cls, minlength=k)[:k].astype(np.int64)
    class_mean, class_centroid = _grouped_means(cls, k, class_pixels, rgb, rows, cols)
    class_bbox = np.full((k, 4), -1, dtype=np.int64)
    ids = np.where(mask, labels.astype(np.int64) + 1, 0)
    for c, sl in enumerate(_ndimage().find_objects(ids, k)):
        if sl is not None:
            class_bbox[c] = (sl[0].start, sl[1].start, sl[0].stop - 1, sl[1].stop - 1)
    class_regions = np.bincount(regions.region_class, minlength=k)[:k].astype(np.int64)

    r = regions.n_regions
    rid = regions.ids.ravel()[flat].astype(np.intp) - 1
    region_mean, region_centroid = _grouped_means(rid, r, regions.sizes, rgb, rows, cols)
    return RegionStats(
        width=n,
        height=m,
        n_pixels=total,
        palette=palette,
        class_pixels=class_pixels,
        class_share=class_pixels / denom,
        class_mean=class_mean,
        class_centroid=class_centroid,
        class_bbox=class_bbox,
        class_regions=class_regions,
        region_class=regions.region_class,
        region_pixels=regions.sizes,
        region_share=regions.sizes / denom,
        region_mean=region_mean,
        region_centroid=region_centroid,
        region_bbox=_bboxes(regions.ids, r),
        regions=regions,
    )
