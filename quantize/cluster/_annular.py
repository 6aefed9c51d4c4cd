"""The compiled K-means E step (:mod:`quantize._kmeans_numba`): when to use it, its tables.

Lloyd's E step on three-dimensional points (every colour space) runs compiled when the
compiled loops are available (:func:`quantize._native.kernels`) and the work repays their
load: Hamerly's two bounds per point, and for the points they do not settle a search of the
centres in order of their distance from the point's old centre.  The labels are those of the
numpy form (exact float64 distances, ties to the lowest index), so the fit is the same;
only the time differs (benchmarks/README.md).  ``VQ_NUMBA=0`` keeps the numpy form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quantize import _native
from quantize.cluster._nearest import nearest_indices, sq_norms

__all__ = ["MIN_WORK", "centre_tables", "compiled_e_step", "float64_margin", "nearest_labels"]

#: Points times centres from which a Lloyd run loads the compiled loops if this process has
#: not loaded them yet (0.03 s from the cache file); below it they serve only if loaded.
MIN_WORK = 2_000_000


def compiled_e_step(n_points: int, n_centres: int, n_dims: int) -> Any:
    """Return the compiled loops (:class:`quantize._native.Kernels`) for this run, or None.

    Parameters
    ----------
    n_points, n_centres, n_dims : int
        The run's points (N, D) and centres (K).
    """
    if n_dims != 3 or n_centres < 2 or n_points < 2:
        return None
    loaded = _native.loaded()
    if loaded is not None:
        return loaded
    if n_points * n_centres < MIN_WORK:
        return None
    return _native.kernels()


def nearest_labels(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Nearest centre of each point, by the compiled loop where it is loaded (same rule).

    Parameters
    ----------
    points : ndarray of shape (U, D)
    centers : ndarray of shape (K, D)

    Returns
    -------
    labels : ndarray of shape (U,), int64
        Exact float64 distances, ties to the lowest index (as :func:`nearest_indices`).
    """
    n = len(points)
    native = compiled_e_step(n, len(centers), points.shape[1])
    if native is None:
        return nearest_indices(points, centers)
    X = np.ascontiguousarray(points, dtype=np.float64)
    labels = np.empty(n, np.int32)
    upper, lower = np.empty(n), np.empty(n)
    native.nearest_all(X, np.ascontiguousarray(centers, np.float64), (labels, upper, lower), 0, n)
    return labels.astype(np.int64)


def float64_margin(x_sq_max: float, centers: np.ndarray) -> float:
    """Return the bounds' margin against float64 rounding: 1e-12 of the largest norm."""
    c_sq_max = float(sq_norms(centers).max()) if centers.size else 0.0
    return 1e-12 * (np.sqrt(x_sq_max) + np.sqrt(c_sq_max) + 1e-30)


def centre_tables(
    centers: np.ndarray, shift: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the per-iteration tables of the compiled E step.

    Parameters
    ----------
    centers : ndarray of shape (K, 3), float64
        The new centres (K >= 2).
    shift : ndarray of shape (K,)
        How far each centre moved.
    eps : float
        The margin (:func:`float64_margin`).

    Returns
    -------
    shift : ndarray of shape (K,), float64
        ``shift + eps`` (a bound never grows too little).
    half : ndarray of shape (K,), float64
        Half the distance from each centre to its nearest other, minus ``eps``.
    near_idx : ndarray of shape (K, K - 1), int32
        The other centres of each centre, nearest first (ties by index).
    near_dist : ndarray of shape (K, K - 1), float64
        Their distances from it, minus ``eps``.
    """
    K = centers.shape[0]
    diff = centers[:, None, :] - centers[None, :, :]
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")[:, : K - 1]
    near_dist = np.take_along_axis(dist, order, axis=1)
    half = 0.5 * near_dist[:, 0] - eps
    near_dist -= eps
    return (
        np.ascontiguousarray(shift + eps, dtype=np.float64),
        np.ascontiguousarray(half),
        np.ascontiguousarray(order, dtype=np.int32),
        np.ascontiguousarray(near_dist),
    )
