"""Locked centres: the kernels K-means and the Gaussian mixture share to keep colours fixed.

A fit with ``L`` locked centres keeps them as the first ``L`` entries of its palette, never
moves them, and fits the other ``K - L`` around them: seeding continues k-means++ from the
locked centres (the potential starts at each point's distance to the nearest locked one),
the K-means M step skips them, and the mixture's M step keeps their means while their
covariances and weights are fitted.  A locked component that no point is near is kept
alive with a negligible weight and a broad covariance, so that a locked colour is never
dropped.

Inputs are validated by the callers (float64, C-contiguous, centred like the points),
except by :func:`check_locked`, which validates what a user gave.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quantize._blas import matmul
from quantize._chunks import chunk_size, iter_chunks
from quantize.cluster._common import random_seeds
from quantize.cluster._nearest import nearest_indices, sq_norms
from quantize.protocol import CancelCallback, check_cancel

__all__ = [
    "check_locked",
    "drop_coinciding",
    "pin_mixture_stats",
    "seed_around_locked",
]

#: weight (relative to the total) given to a locked mixture component that no point is near
_DEAD_WEIGHT = 1e-8


def check_locked(locked: Any, n_colors: int, n_features: int) -> np.ndarray | None:
    """Validate locked centres given to an estimator.

    Parameters
    ----------
    locked : array_like of shape (L, D) or None
        Locked centres in the fitting space.
    n_colors : int
        K; at most K centres may be locked.
    n_features : int
        D.

    Returns
    -------
    locked : ndarray of shape (L, D), float64, or None
        None when nothing is locked (``None`` or an empty array).
    """
    if locked is None:
        return None
    arr = np.asarray(locked, dtype=np.float64)
    if arr.size == 0:
        return None
    if arr.ndim == 1 and n_features == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(f"locked centres must have shape (L, {n_features}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("locked centres contain NaN or infinite values")
    if arr.shape[0] > n_colors:
        raise ValueError(f"{arr.shape[0]} locked colours for a palette of {n_colors}")
    if np.unique(arr, axis=0).shape[0] != arr.shape[0]:
        raise ValueError("the locked colours must be distinct")
    return np.ascontiguousarray(arr)


def drop_coinciding(rows: np.ndarray, locked: np.ndarray) -> np.ndarray:
    """Return the rows that are not (to rounding) one of the locked centres.

    Parameters
    ----------
    rows : ndarray of shape (R, D)
    locked : ndarray of shape (L, D)

    Returns
    -------
    rows : ndarray of shape (R', D)
    """
    d = sq_norms(rows - locked[nearest_indices(rows, locked)])
    scale = 1.0 + float(np.abs(rows).max(initial=0.0)) ** 2
    return rows[d > 1e-18 * scale]


def seed_around_locked(
    X: np.ndarray,
    w: np.ndarray,
    locked: np.ndarray,
    n_more: int,
    rng: np.random.Generator,
    init: str,
    working_memory_mib: float,
    should_cancel: CancelCallback | None = None,
) -> np.ndarray:
    """Seed ``n_more`` centres around locked ones.

    ``init="k-means++"`` continues greedy weighted k-means++ as if the locked centres had been
    chosen first (scikit-learn's number of local trials); ``"random"`` draws distinct points
    with probability proportional to weight.

    Parameters
    ----------
    X : ndarray of shape (N, D), float64
        Points (centred like ``locked``).
    w : ndarray of shape (N,)
        Point weights.
    locked : ndarray of shape (L, D)
        Locked centres.
    n_more : int
        Centres to add.
    rng : numpy.random.Generator
    init : {"k-means++", "random"}
    working_memory_mib : float
        Budget of the (chunk, trials) arrays.
    should_cancel : callable or None

    Returns
    -------
    centers : ndarray of shape (L + n_found, D)
        The locked centres first; ``n_found < n_more`` only when every point of positive
        weight already coincides with a centre.
    """
    if n_more <= 0:
        return locked.copy()
    if init == "random":
        far = w * (sq_norms(X - locked[nearest_indices(X, locked)]) > 0)
        if not far.any():
            return locked.copy()
        return np.concatenate([locked, random_seeds(X, far, n_more, rng)])
    n, d = X.shape
    trials = 2 + int(np.log(locked.shape[0] + n_more))
    closest = sq_norms(X - locked[nearest_indices(X, locked)])
    chosen: list[int] = []
    rows = chunk_size(n, 8 * (trials + 1) * 2, working_memory_mib)
    for _ in range(n_more):
        check_cancel(should_cancel)
        cum = np.cumsum(w * closest)
        if not cum[-1] > 0:
            break
        cand = np.minimum(np.searchsorted(cum, rng.random(trials) * cum[-1], side="right"), n - 1)
        C = X[cand]
        pots = np.zeros(cand.size)
        for sl in iter_chunks(n, rows):
            dist = sq_norms(X[sl])[:, None] - 2.0 * matmul(X[sl], C.T) + sq_norms(C)[None, :]
            np.maximum(dist, 0.0, out=dist)
            np.minimum(dist, closest[sl, None], out=dist)
            pots += w[sl] @ dist
        new = int(cand[int(np.argmin(pots))])
        np.minimum(closest, sq_norms(X - X[new]), out=closest)
        chosen.append(new)
    return np.concatenate([locked, X[np.asarray(chosen, dtype=np.intp)].reshape(-1, d)])


def pin_mixture_stats(
    stats: np.ndarray, locked: np.ndarray, n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """Prepare a mixture M step whose first ``L`` means are locked.

    Parameters
    ----------
    stats : ndarray of shape (K, F)
        Sufficient statistics per component: the quadratic terms, the first moments
        (``n_features`` columns before the last) and the weight ``N_k`` (last column).
    locked : ndarray of shape (L, D)
        Locked means (centred like the points), L <= K.
    n_features : int
        D.

    Returns
    -------
    stats : ndarray of shape (K, F)
        A copy in which a locked component of (near) zero weight gets the statistics of all
        points scaled to a negligible weight (so it stays, with a broad covariance).
    means : ndarray of shape (K, D)
        The means to use: the locked ones, then ``S1 / N_k`` for the others.
    """
    stats = np.array(stats, dtype=np.float64, copy=True)
    L = locked.shape[0]
    total = float(stats[:, -1].sum())
    everything = stats.sum(axis=0)
    dead = np.flatnonzero(stats[:L, -1] <= 1e-7 * total)
    if dead.size and total > 0:
        stats[dead] = everything * _DEAD_WEIGHT
    s1 = stats[:, -1 - n_features : -1]
    nk = np.maximum(stats[:, -1], np.finfo(np.float64).tiny)
    means = s1 / nk[:, None]
    means[:L] = locked
    return stats, means
