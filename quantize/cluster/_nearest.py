"""Nearest-centre search."""

from __future__ import annotations

import numpy as np

_CHUNK = 1 << 16


def nearest_indices(colors: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour (Euclidean in RGB) for each colour.

    Parameters
    ----------
    colors : ndarray of shape (P, 3)
        Colours, any numeric dtype, 0-255 scale.
    palette : ndarray of shape (K, 3)
        Palette colours, 0-255 scale.

    Returns
    -------
    indices : ndarray of shape (P,), int64
        Ties go to the lowest index.
    """
    colors = np.asarray(colors, np.float64).reshape(-1, 3)
    palette = np.asarray(palette, np.float64)
    p_sq = np.einsum("kd,kd->k", palette, palette)
    out = np.empty(len(colors), np.int64)
    step = max(1, (_CHUNK * 64) // max(len(palette), 1))
    for start in range(0, len(colors), step):
        block = colors[start : start + step]
        # ||x - p||^2 = ||x||^2 - 2 x.p + ||p||^2; ||x||^2 is constant per row
        d = p_sq[None, :] - 2.0 * (block @ palette.T)
        out[start : start + step] = np.argmin(d, axis=1)
    return out
