"""Exact (globally optimal) K-means in one dimension by dynamic programming.

In 1-D an optimal cluster is a run of consecutive sorted values, so the optimal inertia of
the first ``i`` sorted values in ``k`` clusters obeys

``D[k, i] = min_{k-1 <= j < i} D[k-1, j] + cost(j, i)``

with ``cost(j, i)`` the weighted sum of squared deviations of values ``j .. i-1`` (from
prefix sums).  The optimal split ``j`` is monotone in ``i``, so each layer is solved by
divide and conquer in O(N log N); all subproblems of one recursion level are evaluated at
once with numpy, giving O(K N log N) work in O(K log N) vectorised steps.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from quantize._validation import check_points, check_positive_int, warn_and_record
from quantize.protocol import CancelCallback, IterationRecord, QuantizeWarning, check_cancel, drain

__all__ = ["Optimal1D", "optimal_1d"]


class _Prefix:
    def __init__(self, x: np.ndarray, w: np.ndarray) -> None:
        self.W = np.concatenate([[0.0], np.cumsum(w)])
        self.S = np.concatenate([[0.0], np.cumsum(w * x)])
        self.Q = np.concatenate([[0.0], np.cumsum(w * x * x)])

    def cost(self, j: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Weighted SSE of sorted values j .. i-1 (j < i)."""
        W = self.W[i] - self.W[j]
        S = self.S[i] - self.S[j]
        Q = self.Q[i] - self.Q[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            c = Q - np.where(W > 0, S * S / np.where(W > 0, W, 1.0), 0.0)
        return np.maximum(c, 0.0)


def _layer(prev: np.ndarray, k: int, n: int, pre: _Prefix) -> tuple[np.ndarray, np.ndarray]:
    """One DP layer by vectorised divide and conquer.  Returns D[k, :] and argmins."""
    cur = np.full(n + 1, np.inf)
    opt = np.zeros(n + 1, dtype=np.int64)
    ilo = np.array([k], dtype=np.int64)
    ihi = np.array([n], dtype=np.int64)
    jlo = np.array([k - 1], dtype=np.int64)
    jhi = np.array([n - 1], dtype=np.int64)
    while ilo.size:
        mid = (ilo + ihi) // 2
        jh = np.minimum(jhi, mid - 1)
        jl = np.minimum(jlo, jh)
        lengths = jh - jl + 1
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        seg = np.repeat(np.arange(mid.size), lengths)
        j = jl[seg] + (np.arange(seg.size) - starts[seg])
        vals = prev[j] + pre.cost(j, mid[seg])
        segmin = np.minimum.reduceat(vals, starts)
        hit = np.flatnonzero(vals <= segmin[seg])
        _, first = np.unique(seg[hit], return_index=True)
        best_j = j[hit[first]]
        cur[mid] = segmin
        opt[mid] = best_j
        left = ilo <= mid - 1
        right = mid + 1 <= ihi
        ilo, ihi, jlo, jhi = (
            np.concatenate([ilo[left], mid[right] + 1]),
            np.concatenate([mid[left] - 1, ihi[right]]),
            np.concatenate([jlo[left], best_j[right]]),
            np.concatenate([best_j[left], jhi[right]]),
        )
    return cur, opt


def _backtrack(opts: list[np.ndarray], k: int, n: int) -> np.ndarray:
    """Segment start indices (k + 1,) of the optimal k-partition of n sorted values."""
    bounds = np.empty(k + 1, dtype=np.int64)
    bounds[k] = n
    i = n
    for layer in range(k, 0, -1):
        i = int(opts[layer][i]) if layer > 1 else 0
        bounds[layer - 1] = i
    return bounds


def _merge_sorted(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted distinct values with summed weights, and the inverse index."""
    uniq, inverse = np.unique(x, return_inverse=True)
    wsum = np.bincount(inverse, weights=w, minlength=uniq.size)
    return uniq, wsum, inverse.reshape(-1)


def _centres_from_bounds(bounds: np.ndarray, x: np.ndarray, pre: _Prefix) -> np.ndarray:
    W = pre.W[bounds[1:]] - pre.W[bounds[:-1]]
    S = pre.S[bounds[1:]] - pre.S[bounds[:-1]]
    mid = x[np.minimum((bounds[1:] + bounds[:-1]) // 2, x.size - 1)]
    return np.where(W > 0, S / np.where(W > 0, W, 1.0), mid)


def _iter_optimal(
    x: np.ndarray,
    w: np.ndarray,
    k: int,
    should_cancel: CancelCallback | None,
    offset: float,
) -> Generator[IterationRecord, None, tuple[np.ndarray, np.ndarray, list[float]]]:
    """DP over distinct sorted values; yields one record per number of clusters."""
    n = x.size
    pre = _Prefix(x, w)
    idx = np.arange(n + 1)
    prev = np.full(n + 1, np.inf)
    prev[1:] = pre.cost(np.zeros(n, dtype=np.int64), idx[1:])
    opts: list[np.ndarray] = [np.zeros(0, dtype=np.int64), np.zeros(n + 1, dtype=np.int64)]
    costs = [float(prev[n])]
    bounds = np.array([0, n])
    centers = _centres_from_bounds(bounds, x, pre)
    yield IterationRecord(
        0, 1, costs[0], "inertia", 0.0, centers[:, None] + offset, stage="optimal1d", extra={"k": 1}
    )
    for layer in range(2, k + 1):
        check_cancel(should_cancel)
        cur, opt = _layer(prev, layer, n, pre)
        opts.append(opt)
        prev = cur
        costs.append(float(min(cur[n], costs[-1])))
        bounds = _backtrack(opts, layer, n)
        centers = _centres_from_bounds(bounds, x, pre)
        yield IterationRecord(
            0,
            layer,
            costs[-1],
            "inertia",
            0.0,
            centers[:, None] + offset,
            stage="optimal1d",
            extra={"k": layer},
        )
    labels = np.repeat(np.arange(k, dtype=np.int32), np.diff(bounds))
    return centers, labels, costs


def optimal_1d(
    values: Any, weights: Any = None, k: int = 2
) -> tuple[np.ndarray, np.ndarray, float]:
    """Globally optimal weighted 1-D K-means.

    Parameters
    ----------
    values : array_like of shape (N,)
        One-dimensional points.
    weights : array_like of shape (N,) or None
        Non-negative weights.
    k : int
        Number of clusters; reduced to the number of distinct values if larger.

    Returns
    -------
    centers : ndarray of shape (k',), float64
        Sorted cluster means.
    labels : ndarray of shape (N,), int32
        Cluster of each input value.
    inertia : float
        The minimal weighted sum of squared deviations.
    """
    model = Optimal1D(k).fit(np.asarray(values).reshape(-1), weights)
    return model.cluster_centers_[:, 0], model.labels_, model.inertia_


class Optimal1D:
    """Exact 1-D K-means (dynamic programming), with the K-means estimator interface.

    Parameters
    ----------
    n_colors : int
        Number of clusters K.

    Attributes
    ----------
    cluster_centers_, palette_ : ndarray of shape (K', 1)
        Sorted cluster means.
    labels_ : ndarray of shape (N,), int32
    inertia_ : float
        Global minimum of the weighted inertia.
    history_ : ndarray of shape (K',)
        Optimal inertia with 1, 2, ..., K' clusters (non-increasing).
    n_iter_ : int
        Number of DP layers (K').
    converged_ : bool
        Always True.
    warnings_ : list of str
    n_colors_ : int
    """

    def __init__(self, n_colors: int = 8) -> None:
        self.n_colors = n_colors

    @property
    def palette_(self) -> np.ndarray:
        """Alias of ``cluster_centers_``, shape (K, 1)."""
        return self.cluster_centers_

    def iter_fit(
        self,
        X: Any,
        weights: Any = None,
        *,
        should_cancel: CancelCallback | None = None,
    ) -> Generator[IterationRecord, None, Optimal1D]:
        """Solve the DP, yielding one record per number of clusters k = 1 .. K.

        Parameters
        ----------
        X : array_like of shape (N,) or (N, 1)
            One-dimensional points.
        weights : array_like of shape (N,) or None
            Point weights.
        should_cancel : callable or None
            Polled between DP layers.

        Yields
        ------
        record : IterationRecord
            ``iteration`` = k, ``objective`` = optimal inertia with k clusters.

        Returns
        -------
        self : Optimal1D
        """
        X, w = check_points(X, weights)
        if X.shape[1] != 1:
            raise ValueError(f"Optimal1D needs one-dimensional data, got {X.shape[1]} features")
        K_req = check_positive_int(self.n_colors, "n_colors")
        self.warnings_: list[str] = []
        pos = w > 0
        offset = float((w @ X[:, 0]) / w.sum())
        xs, ws, inverse = _merge_sorted(X[pos, 0] - offset, w[pos])
        n = xs.size
        if n < K_req:
            warn_and_record(
                self.warnings_,
                f"only {n} distinct value(s) for {K_req} clusters: K reduced to {n}",
                QuantizeWarning,
            )
        K = min(K_req, n)
        centers, seg_labels, costs = yield from _iter_optimal(xs, ws, K, should_cancel, offset)
        self.cluster_centers_ = (centers + offset)[:, None]
        labels = np.empty(X.shape[0], dtype=np.int32)
        labels[pos] = seg_labels[inverse]
        if not pos.all():
            labels[~pos] = self.predict(X[~pos])
        self.labels_ = labels
        diff = X[:, 0] - self.cluster_centers_[labels, 0]
        self.inertia_ = float(w @ (diff * diff))
        self.history_ = np.asarray(costs, dtype=np.float64)
        self.n_iter_ = K
        self.converged_ = True
        self.n_colors_ = K
        self.n_features_in_ = 1
        return self

    def fit(self, X: Any, weights: Any = None) -> Optimal1D:
        """Fit (drains :meth:`iter_fit`).

        Parameters
        ----------
        X : array_like of shape (N,) or (N, 1)
            One-dimensional points.
        weights : array_like of shape (N,) or None
            Point weights.

        Returns
        -------
        self
        """
        return drain(self.iter_fit(X, weights))

    def predict(self, X: Any) -> np.ndarray:
        """Nearest centre of each value.

        Parameters
        ----------
        X : array_like of shape (N,) or (N, 1)
            Values.

        Returns
        -------
        labels : ndarray of shape (N,), int32
        """
        X, _ = check_points(X)
        c = self.cluster_centers_[:, 0]
        cuts = 0.5 * (c[1:] + c[:-1])
        return np.searchsorted(cuts, X[:, 0], side="left").astype(np.int32)
