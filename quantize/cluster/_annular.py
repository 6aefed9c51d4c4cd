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

__all__ = [
    "MIN_WORK",
    "centre_tables",
    "compiled_e_step",
    "float64_margin",
    "nearest_labels",
    "nearest_two",
]

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
    return _native.kernels_for(n_points * n_centres, MIN_WORK)


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
    if compiled_e_step(len(points), len(centers), points.shape[1]) is None:
        return nearest_indices(points, centers)
    return nearest_two(points, centers)[0]


def nearest_two(
    points: np.ndarray, centers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return each point's nearest and second nearest centre, with their squared distances.

    Exact float64 distances; of equal distances the lower index comes first (so ``first`` is
    :func:`nearest_indices`' label).  Compiled where the loops are loaded or the work repays
    their load, in row blocks on two threads for large inputs; numpy otherwise.

    Parameters
    ----------
    points : ndarray of shape (U, D)
    centers : ndarray of shape (K, D), K >= 1

    Returns
    -------
    first, second : ndarray of shape (U,), int64
        ``second`` is -1 when K == 1.
    d_first, d_second : ndarray of shape (U,), float64
        Squared distances (``d_second`` is inf when K == 1).
    """
    n, k = len(points), len(centers)
    X = np.ascontiguousarray(points, dtype=np.float64)
    C = np.ascontiguousarray(centers, dtype=np.float64)
    native = compiled_e_step(n, k, X.shape[1])
    if native is not None:
        first, runner = np.empty(n, np.int32), np.empty(n, np.int32)
        upper, lower = np.empty(n), np.empty(n)
        out = (first, upper, lower, runner)
        cuts = [0, n // 2, n] if n * k >= 8 * MIN_WORK else [0, n]
        if len(cuts) == 2:
            native.nearest_all(X, C, out, 0, n)
        else:
            from concurrent.futures import ThreadPoolExecutor  # the call releases the GIL

            with ThreadPoolExecutor(2, thread_name_prefix="vq-nearest") as pool:
                for f in [
                    pool.submit(native.nearest_all, X, C, out, a, b)
                    for a, b in zip(cuts[:-1], cuts[1:], strict=True)
                ]:
                    f.result()
        # the loop returns distances (its bounds); squared again they may differ from
        # the sums in the last bit, which no caller compares exactly
        return first.astype(np.int64), runner.astype(np.int64), upper**2, lower**2
    first, runner = np.empty(n, np.int64), np.full(n, -1, np.int64)
    d1, d2 = np.empty(n), np.full(n, np.inf)
    rows = max(1, (1 << 20) // max(k, 1))
    for a in range(0, n, rows):
        diff = X[a : a + rows, None, :] - C[None, :, :]
        d = np.einsum("ijk,ijk->ij", diff, diff)
        r = np.arange(d.shape[0])
        first[a : a + rows] = best = d.argmin(axis=1)
        d1[a : a + rows] = d[r, best]
        if k > 1:
            d[r, best] = np.inf
            runner[a : a + rows] = nxt = d.argmin(axis=1)
            d2[a : a + rows] = d[r, nxt]
    return first, runner, d1, d2


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
