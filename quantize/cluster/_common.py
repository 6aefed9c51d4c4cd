"""Kernels shared by the K-means estimators and the Gaussian mixture.

Seeding (greedy k-means++, weighted random points), counting distinct points, moving the
centres of empty clusters, the weighted mean and variance.

Inputs are validated, float64, C-contiguous and centred (callers check them).
"""

from __future__ import annotations

import numpy as np

from quantize._blas import matmul
from quantize._chunks import chunk_size, iter_chunks
from quantize.cluster._nearest import sq_norms
from quantize.protocol import CancelCallback, check_cancel

__all__ = [
    "count_distinct",
    "greedy_kmeans_plusplus",
    "random_seeds",
    "relocate_empty",
    "weighted_mean_var",
]


def count_distinct(X: np.ndarray, w: np.ndarray, limit: int) -> tuple[int, np.ndarray | None]:
    """Count distinct rows with positive weight (exactly when at most ``limit``).

    Returns the distinct rows themselves when there are at most ``limit`` of them.
    """
    pts = X[w > 0]
    # a fixed irrational projection, evaluated element-wise so that equal rows hash equally
    coef = (0.7548776662466927, 0.5698402909980532, 0.3247179572447460, 0.8191725133961645)
    h = np.zeros(pts.shape[0])
    for d in range(pts.shape[1]):
        h += pts[:, d] * coef[d % 4] * (1.0 + 0.1234 * (d // 4))
    _, first = np.unique(h, return_index=True)
    if first.size > limit:
        return first.size, None
    rows = np.unique(pts[first], axis=0)
    return rows.shape[0], rows


def greedy_kmeans_plusplus(
    X: np.ndarray,
    w: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    n_local_trials: int | None,
    working_memory_mib: float,
    should_cancel: CancelCallback | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy weighted k-means++ (as in scikit-learn, with point weights).

    Returns centres (n_found, D) and their point indices; ``n_found < n_clusters`` only when
    all positive-weight points already coincide with a centre.
    """
    n, d = X.shape
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    Xa = np.empty((n, d + 1), dtype=np.float32)
    Xa[:, :d] = X
    Xa[:, d] = 1.0
    x_sq = sq_norms(X)
    cum_w = np.cumsum(w)
    first = int(np.searchsorted(cum_w, rng.random() * cum_w[-1], side="right"))
    first = min(first, n - 1)
    indices = [first]
    closest = sq_norms(X - X[first])
    pot = float(w @ closest)
    rows = chunk_size(n, 4 * (n_local_trials + 1) * 3, working_memory_mib)
    for _ in range(1, n_clusters):
        check_cancel(should_cancel)
        if not pot > 0:
            break
        cum = np.cumsum(w * closest)
        rand = rng.random(n_local_trials) * cum[-1]
        cand = np.minimum(np.searchsorted(cum, rand, side="right"), n - 1)
        C = X[cand]
        ca = np.empty((d + 1, cand.size), dtype=np.float32)
        ca[:-1] = -2.0 * C.T
        ca[-1] = sq_norms(C)
        pots = np.zeros(cand.size)
        for sl in iter_chunks(n, rows):
            dist = matmul(Xa[sl], ca)
            dist += x_sq[sl, None]
            np.maximum(dist, 0.0, out=dist)
            np.minimum(dist, closest[sl, None], out=dist)
            pots += w[sl] @ dist
        best = int(np.argmin(pots))
        new = int(cand[best])
        np.minimum(closest, sq_norms(X - X[new]), out=closest)
        pot = float(w @ closest)
        indices.append(new)
    idx = np.asarray(indices, dtype=np.intp)
    return X[idx].copy(), idx


def random_seeds(X: np.ndarray, w: np.ndarray, K: int, rng: np.random.Generator) -> np.ndarray:
    """K distinct points drawn without replacement with probability proportional to weight."""
    pos = np.flatnonzero(w > 0)
    p = w[pos] / w[pos].sum()
    chosen: list[int] = []
    seen: set[bytes] = set()
    order = (
        rng.choice(pos.size, size=pos.size, replace=False, p=p)
        if pos.size <= 1 << 16
        else (rng.choice(pos.size, size=min(pos.size, 8 * K + 64), replace=False, p=p))
    )
    for i in order:
        key = X[pos[i]].tobytes()
        if key not in seen:
            seen.add(key)
            chosen.append(int(pos[i]))
            if len(chosen) == K:
                break
    return X[np.asarray(chosen, dtype=np.intp)].copy()


def weighted_mean_var(X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted mean (D,) of the points and their mean per-dimension weighted variance."""
    total = w.sum()
    mean = (w @ X) / total
    var = (w @ (X - mean) ** 2) / total
    return mean, float(np.mean(var))


def relocate_empty(
    centers: np.ndarray,
    empty: np.ndarray,
    X: np.ndarray,
    w: np.ndarray,
    d_sq: np.ndarray,
) -> int:
    """Move the centres of empty clusters onto the points farthest from their centres."""
    n_empty = int(empty.size)
    if n_empty == 0:
        return 0
    score = np.where(w > 0, d_sq, -1.0)
    n_take = min(X.shape[0], 4 * n_empty + 16)
    top = (
        np.argpartition(-score, n_take - 1)[:n_take]
        if n_take < X.shape[0]
        else np.arange(X.shape[0])
    )
    top = top[np.argsort(-score[top], kind="stable")]
    top = top[score[top] > 0]
    chosen: list[int] = []
    seen: set[bytes] = set()
    for i in top:
        key = X[i].tobytes()
        if key in seen:
            continue
        seen.add(key)
        chosen.append(int(i))
        if len(chosen) == n_empty:
            break
    for k, i in zip(empty, chosen, strict=False):
        centers[k] = X[i]
    return len(chosen)
