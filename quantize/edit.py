"""Editing a result's palette: delete, merge, recolour, add, reorder (no refit).

Each function takes a :class:`~quantize.pipeline.QuantizeResult` and returns a new one (the
edit appended to :attr:`~quantize.pipeline.QuantizeResult.edits`; the model becomes the
edited palette itself, so the maps are hard) whose labels follow the rule of the edit:

- **delete**: the pixels of the deleted entries go to the nearest remaining entry (in the
  result's colour space); every other pixel keeps its entry;
- **merge**: the pixels of the merged entries get one entry, their pixel-weighted mean in
  the colour space (in the place of the first merged entry);
- **recolour**: an entry changes colour, its pixels stay with it;
- **add**: a new entry (last); the distinct colours that are nearer to it than to every
  other entry move to it;
- **reorder**: the same result with its entries in another order (:func:`sort_order` gives
  the order by share, lightness or hue), so that every export follows the order shown.

The work is on the distinct colours (U of them), then gathered to the pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quantize.cluster._nearest import nearest_indices
from quantize.colorspace import rgb_to_space, space_to_rgb
from quantize.pipeline import FixedPalette, QuantizeResult, table_points

__all__ = [
    "SORT_KEYS",
    "add_entry",
    "delete_entries",
    "merge_entries",
    "recolour_entry",
    "reorder",
    "sort_order",
]

#: Orders a palette can be shown (and exported) in: key -> label.
SORT_KEYS = {
    "share": "Share (largest first)",
    "lightness": "Lightness (dark to light)",
    "hue": "Hue (greys first)",
    "fitted": "As fitted",
}
_GREY_CHROMA = 0.02  # OKLab chroma below which a colour sorts with the greys
# a model's attributes with one row per entry, which a reorder permutes
_PER_ENTRY = ("cluster_centers_", "means_", "weights_", "covariances_", "precisions_cholesky_")


def _hex(c: Any) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in c[:3]))


def _points(result: QuantizeResult) -> np.ndarray:
    """Return the distinct colours in the result's space, three coordinates (U, 3)."""
    pts = np.asarray(result.points)
    if pts.ndim == 2 and pts.shape[1] == 3:
        return pts
    return table_points(result.table, result.color_space)


def _rgb8(colour: Any) -> np.ndarray:
    arr = np.asarray(colour)
    if arr.shape != (3,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"a colour is three integers 0-255, got {colour!r}")
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"a colour is three integers 0-255, got {colour!r}")
    return arr.astype(np.uint8)


def _indices(result: QuantizeResult, indices: Sequence[int]) -> np.ndarray:
    idx = np.unique(np.asarray(list(indices), dtype=np.intp))
    if idx.size == 0:
        raise ValueError("no palette entry given")
    if idx[0] < 0 or idx[-1] >= result.n_colors:
        raise IndexError(f"palette index out of range 0..{result.n_colors - 1}: {idx.tolist()}")
    return idx


def _edited(
    base: QuantizeResult, palette: np.ndarray, unique_labels: np.ndarray, note: str
) -> QuantizeResult:
    pal = np.ascontiguousarray(palette, dtype=np.uint8)
    points = _points(base)
    labels = np.asarray(unique_labels, dtype=np.int64)
    centers = rgb_to_space(pal, base.color_space)
    locked = [c for c in base.locked if any((pal == c).all(axis=1))]
    return QuantizeResult.from_labels(
        base.image,
        base.table,
        points,
        labels,
        pal,
        history=base.history,
        records=base.records,
        model=FixedPalette(pal, centers, labels),
        method=base.method,
        color_space=base.color_space,
        n_colors_requested=len(pal),
        seed=base.seed,
        fit_options=dict(base.fit_options),
        warnings=[],
        elapsed_s=0.0,
        locked=np.asarray(locked, dtype=np.uint8).reshape(-1, 3),
        added=(),
        importance=base.importance,
        error_power=base.error_power,
        edits=(*base.edits, note),
    )


def delete_entries(result: QuantizeResult, indices: Sequence[int]) -> QuantizeResult:
    """Delete entries; their pixels go to the nearest remaining entry.

    Parameters
    ----------
    result : QuantizeResult
    indices : sequence of int
        Entries to delete (at least one must remain).

    Returns
    -------
    result : QuantizeResult
        K - len(indices) entries, the others in their order.
    """
    idx = _indices(result, indices)
    keep = np.setdiff1d(np.arange(result.n_colors), idx)
    if keep.size == 0:
        raise ValueError("cannot delete every palette entry")
    new_index = np.full(result.n_colors, -1, dtype=np.int64)
    new_index[keep] = np.arange(keep.size)
    labels = new_index[np.asarray(result.unique_labels, dtype=np.intp)]
    moved = labels < 0
    if moved.any():
        centers = rgb_to_space(result.palette[keep], result.color_space)
        labels[moved] = nearest_indices(_points(result)[moved], centers)
    note = "delete " + ", ".join(_hex(result.palette[i]) for i in idx)
    return _edited(result, result.palette[keep], labels, note)


def merge_entries(result: QuantizeResult, indices: Sequence[int]) -> QuantizeResult:
    """Merge entries into one, their pixel-weighted mean colour.

    Parameters
    ----------
    result : QuantizeResult
    indices : sequence of int
        At least two entries.

    Returns
    -------
    result : QuantizeResult
        The merged entry takes the place of the first of ``indices``.
    """
    idx = _indices(result, indices)
    if idx.size < 2:
        raise ValueError("merging needs two palette entries or more")
    labels = np.asarray(result.unique_labels, dtype=np.int64)
    members = np.isin(labels, idx)
    points = _points(result)
    w = np.asarray(result.table.counts, dtype=np.float64)[members]
    if w.sum() > 0:
        mean = (w @ points[members]) / w.sum()
    else:  # entries without pixels: the mean of their colours
        mean = rgb_to_space(result.palette[idx], result.color_space).mean(axis=0)
    colour = space_to_rgb(mean[None], result.color_space)[0]
    keep = np.setdiff1d(np.arange(result.n_colors), idx[1:])
    palette = result.palette[keep].copy()
    first = int(np.searchsorted(keep, idx[0]))
    palette[first] = colour
    new_index = np.full(result.n_colors, -1, dtype=np.int64)
    new_index[keep] = np.arange(keep.size)
    new_index[idx] = first
    note = "merge " + ", ".join(_hex(result.palette[i]) for i in idx) + f" -> {_hex(colour)}"
    return _edited(result, palette, new_index[labels], note)


def recolour_entry(result: QuantizeResult, index: int, colour: Any) -> QuantizeResult:
    """Give an entry another colour; its pixels stay with it.

    Parameters
    ----------
    result : QuantizeResult
    index : int
    colour : array_like of shape (3,), integers 0-255

    Returns
    -------
    result : QuantizeResult
    """
    (k,) = _indices(result, [index])
    rgb = _rgb8(colour)
    palette = result.palette.copy()
    note = f"recolour {_hex(palette[k])} -> {_hex(rgb)}"
    palette[k] = rgb
    return _edited(result, palette, result.unique_labels, note)


def add_entry(result: QuantizeResult, colour: Any) -> QuantizeResult:
    """Add an entry; the distinct colours nearer to it than to their entry move to it.

    Parameters
    ----------
    result : QuantizeResult
    colour : array_like of shape (3,), integers 0-255
        Not already in the palette.

    Returns
    -------
    result : QuantizeResult
        K + 1 entries, the new one last.
    """
    rgb = _rgb8(colour)
    if (result.palette == rgb).all(axis=1).any():
        raise ValueError(f"{_hex(rgb)} is already in the palette")
    palette = np.concatenate([result.palette, rgb[None]])
    labels = np.asarray(result.unique_labels, dtype=np.int64).copy()
    nearest = nearest_indices(_points(result), rgb_to_space(palette, result.color_space))
    new = len(palette) - 1
    labels[nearest == new] = new
    return _edited(result, palette, labels, f"add {_hex(rgb)}")


def reorder(result: QuantizeResult, order: Sequence[int] | np.ndarray) -> QuantizeResult:
    """Put the entries in another order (labels follow; nothing else changes).

    Parameters
    ----------
    result : QuantizeResult
    order : sequence of int
        A permutation of ``range(K)``: ``order[i]`` is the old index of new entry i.

    Returns
    -------
    result : QuantizeResult
    """
    perm = np.asarray(list(order), dtype=np.intp)
    if sorted(perm.tolist()) != list(range(result.n_colors)):
        raise ValueError(f"order must be a permutation of 0..{result.n_colors - 1}")
    if (perm == np.arange(perm.size)).all():
        return result
    new_index = np.empty_like(perm)
    new_index[perm] = np.arange(perm.size)
    labels = new_index[np.asarray(result.unique_labels, dtype=np.intp)]
    n_locked = len(result.locked)
    return QuantizeResult.from_labels(
        result.image,
        result.table,
        result.points,
        labels,
        np.ascontiguousarray(result.palette[perm]),
        history=result.history,
        records=result.records,
        model=(
            _ReorderedSoft(result.model, perm)
            if hasattr(result.model, "responsibility")
            else _Reordered(result.model, perm)
        ),
        method=result.method,
        color_space=result.color_space,
        n_colors_requested=result.n_colors_requested,
        seed=result.seed,
        fit_options=result.fit_options,
        warnings=list(result.warnings),
        elapsed_s=result.elapsed_s,
        locked=result.locked
        if (perm[:n_locked] == np.arange(n_locked)).all()
        else result.locked[:0],
        added=tuple(sorted(int(new_index[i]) for i in result.added)),
        importance=result.importance,
        error_power=result.error_power,
        edits=result.edits,
    )


class _Reordered:
    """A fitted model seen with its components in another order (soft maps follow)."""

    def __init__(self, model: Any, perm: np.ndarray) -> None:
        self._model = model
        self._perm = perm
        k = len(perm)
        tied = getattr(model, "covariance_type", "") == "tied"
        for name in _PER_ENTRY:
            value = getattr(model, name, None)
            if value is None or (tied and name in ("covariances_", "precisions_cholesky_")):
                continue
            value = np.asarray(value)
            if value.ndim >= 1 and len(value) == k:
                setattr(self, name, value[perm])
        labels = getattr(model, "labels_", None)
        if labels is not None:
            new_index = np.empty_like(perm)
            new_index[perm] = np.arange(k)
            self.labels_ = new_index[np.asarray(labels, dtype=np.intp)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class _ReorderedSoft(_Reordered):
    """A reordered mixture: the responsibility of entry k is that of component perm[k]."""

    def responsibility(self, X: Any, k: int, dtype: Any = np.float32) -> np.ndarray:
        return self._model.responsibility(X, int(self._perm[k]), dtype=dtype)


def sort_order(result: QuantizeResult, key: str) -> np.ndarray:
    """Order of the entries by share, lightness or hue.

    Parameters
    ----------
    result : QuantizeResult
    key : {"share", "lightness", "hue", "fitted"}
        ``"share"``: largest share of the pixels first; ``"lightness"``: OKLab L, dark
        to light; ``"hue"``: greys (OKLab chroma < 0.02) first by lightness, then by hue
        angle from red through yellow, green and blue; ``"fitted"``: as they are.

    Returns
    -------
    order : ndarray of shape (K,), intp
        ``result.palette[order]`` is the sorted palette (ties keep their order).
    """
    if key not in SORT_KEYS:
        raise ValueError(f"sort key must be one of {tuple(SORT_KEYS)}, got {key!r}")
    k = result.n_colors
    if key == "fitted":
        return np.arange(k)
    if key == "share":
        return np.argsort(-np.asarray(result.proportions), kind="stable")
    lab = rgb_to_space(result.palette, "oklab")
    if key == "lightness":
        return np.argsort(lab[:, 0], kind="stable")
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    hue = np.mod(np.arctan2(lab[:, 2], lab[:, 1]), 2 * np.pi)
    grey = chroma < _GREY_CHROMA
    return np.lexsort((np.where(grey, lab[:, 0], hue), ~grey))
