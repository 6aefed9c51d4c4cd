"""Weighted K-means (Lloyd with Hamerly bounds), k-means++ and a mini-batch variant.

The objective is the weighted inertia ``J = sum_n w_n ||x_n - u_{a_n}||^2``.  Every Lloyd
iteration is an M step (each centre becomes the weighted mean of its points) followed by an
E step (each point moves to its nearest centre); neither step can increase ``J``.

Speed comes from four things: the engine fits the *unique* colours weighted by pixel
count; with many points (``algorithm="auto"``) Lloyd runs coarse to fine: it converges on
the weighted means of the cells of a regular grid (Lloyd restricted to partitions that keep
each cell together), 32**D cells when K is small, then 64**D and 128**D, each to a tighter
tolerance than the final one (k-means++ draws its seeds from the 64**D cells), and then
continues on the points themselves until the stopping rule holds there (each finer stage
starts near its own minimum, so the expensive point stage needs few iterations);
the nearest-centre search uses ``||x||^2 - 2 x.c + ||c||^2`` as a float32 BLAS product in
chunks, with near-ties re-decided exactly in float64, so labels are exact; and Yinyang
bounds (Hamerly's bounds per group of centres) skip every point whose nearest centre provably
did not change, while cluster sums are updated only from the points that moved.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from quantize._chunks import DEFAULT_WORKING_MEMORY_MIB, chunk_size, iter_chunks
from quantize._validation import (
    check_points,
    check_positive_float,
    check_positive_int,
    check_seed,
    warn_and_record,
)
from quantize.cluster._cells import CellTree
from quantize.protocol import (
    CancelCallback,
    ConvergenceWarning,
    IterationRecord,
    QuantizeWarning,
    check_cancel,
    drain,
)

__all__ = ["KMeans", "MiniBatchKMeans", "kmeans_plusplus"]

_ALGORITHMS = ("auto", "lloyd", "hamerly")
# "auto" first converges on grid-cell means above this many points (see _celltree)
_CORESET_MIN_POINTS = 50_000
_CORESET_MAX_DIMS = 4
# cell stages (bits per axis, tolerance factor, least cells per cluster): each is cheaper
# than the next, so it runs to a tighter tolerance and the next stage starts close to its
# own minimum; a stage is used only when it has at most a third (the first) or half as
# many cells as there are points, and enough cells per cluster (at least 4)
_CELL_STAGES = ((5, 0.01, 40), (6, 0.01, 0), (7, 0.1, 0))
_INIT_BITS = 6  # initialisation draws from these cells (fine enough for good seeds)
_MIN_CELLS_PER_CLUSTER = 4  # a coarser grid would leave clusters without cells
# centres per Yinyang group (Ding et al. suggest K / 10 groups)
_GROUP_SIZE = 10
_GROUP_SIZE_SMALL_K = 4  # tighter bounds pay off when K is small
_THREADS_MIN_POINTS = 100_000  # below this, one thread is faster than two
_MAX_THREADS = 8
_MAX_CHUNK_ROWS = 16384  # cache-friendly (chunk, K) blocks even when the budget allows more
_GROUP_MIN_LOOP_MAX_K = 128  # a column loop beats np.minimum.reduceat up to about this K
_ALL = np.zeros(1, dtype=np.intp)  # _group_min over all columns: the row minimum
_DIRECT_MAX_K = 16  # up to this K the bounded E step measures all centres of a candidate


# ----------------------------------------------------------------------------------------
# private kernels: inputs are validated, float64, C-contiguous, centred
# ----------------------------------------------------------------------------------------


def _weighted_mean_var(X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    total = w.sum()
    mean = (w @ X) / total
    var = (w @ (X - mean) ** 2) / total
    return mean, float(np.mean(var))


def _count_distinct(X: np.ndarray, w: np.ndarray, limit: int) -> tuple[int, np.ndarray | None]:
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


def _sq_norms(X: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", X, X)


class _Assigner:
    """Nearest-centre search in float32 chunks with exact float64 distances afterwards."""

    def __init__(self, X: np.ndarray, working_memory_mib: float) -> None:
        self.X = X
        self._Xa: np.ndarray | None = None
        self.x_sq_max = float(_sq_norms(X).max()) if X.shape[0] else 0.0
        self.working_memory_mib = working_memory_mib

    @property
    def Xa(self) -> np.ndarray:
        """Augmented float32 copy [x, 1, ||x||^2] (built on first use)."""
        if self._Xa is None:
            X = self.X
            n, d = X.shape
            # one product with [-2c; ||c||^2; 1] then gives ||x - c||^2 for all c
            Xa = np.empty((n, d + 2), dtype=np.float32)
            Xa[:, :d] = X
            Xa[:, d] = 1.0
            Xa[:, d + 1] = _sq_norms(X)
            self._Xa = Xa
        return self._Xa

    def _centers_aug(self, centers: np.ndarray) -> np.ndarray:
        D = centers.shape[1]
        ca = np.empty((D + 2, centers.shape[0]), dtype=np.float32)
        ca[:D] = -2.0 * centers.T
        ca[D] = _sq_norms(centers)
        ca[D + 1] = 1.0
        return ca

    def margin(self, centers: np.ndarray) -> float:
        """Bound on the float32 error of a squared distance (with a safety factor)."""
        c_sq_max = float(_sq_norms(centers).max())
        # |fl32(s) - s| <= ~16 u (x_sq_max + c_sq_max), u = 2**-24; four times that
        return 4e-6 * (self.x_sq_max + c_sq_max) + 1e-30

    def nearest_two(
        self,
        centers: np.ndarray,
        should_cancel: CancelCallback | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest centre, its squared distance and the second-smallest squared distance.

        The search runs in float32; rows whose two best candidates are within the float32
        error bound are re-solved exactly in float64, so the labels are the exact nearest
        centres (ties to the lowest index) whatever the chunking or BLAS threading.
        """
        X, Xa = self.X, self.Xa
        n = Xa.shape[0]
        K = centers.shape[0]
        ca = self._centers_aug(centers)
        labels = np.empty(n, dtype=np.int32)
        best = np.empty(n, dtype=np.float64)
        second = np.empty(n, dtype=np.float64)
        rows = min(_MAX_CHUNK_ROWS, chunk_size(n, 4 * K * 2 + 64, self.working_memory_mib))
        for sl in iter_chunks(n, rows):
            check_cancel(should_cancel)
            s = Xa[sl] @ ca
            lab = s.argmin(axis=1)
            labels[sl] = lab
            r = np.arange(lab.size)
            best[sl] = s[r, lab]
            if K > 1:
                s[r, lab] = np.inf
                second[sl] = s.min(axis=1)
            else:
                second[sl] = np.inf
        margin = self.margin(centers)
        amb = np.flatnonzero(second - best <= 2.0 * margin)
        if amb.size:
            rows_amb = chunk_size(amb.size, 8 * K * (X.shape[1] + 2), self.working_memory_mib)
            for sl in iter_chunks(amb.size, rows_amb):
                ii = amb[sl]
                diff = X[ii][:, None, :] - centers[None, :, :]
                d = np.einsum("ijk,ijk->ij", diff, diff)
                lab = d.argmin(axis=1)
                r = np.arange(ii.size)
                labels[ii] = lab
                best[ii] = d[r, lab]
                if K > 1:
                    d[r, lab] = np.inf
                    second[ii] = d.min(axis=1)
        return labels, best, second

    def search(
        self,
        centers: np.ndarray,
        group_of: np.ndarray | None,
        should_cancel: CancelCallback | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Exact nearest centre, its exact squared distance and per-group lower bounds.

        Parameters are the centres, the group of each centre (None: no bounds wanted)
        and the cancel poll.  Lower bounds (n, G) are distances,
        already reduced by the float32 error margin.
        """
        X, Xa = self.X, self.Xa
        n = Xa.shape[0]
        K, D = centers.shape
        ca = self._centers_aug(centers)
        margin = self.margin(centers)
        labels = np.empty(n, dtype=np.int32)
        lower = None
        if group_of is not None:  # sorted: the groups are contiguous runs of centres
            starts = _group_starts(group_of)
            lower = np.empty((n, starts.size), dtype=np.float64)
        rows = min(_MAX_CHUNK_ROWS, chunk_size(n, 4 * K * 3 + 8 * D * K, self.working_memory_mib))
        for sl in iter_chunks(n, rows):
            check_cancel(should_cancel)
            s = Xa[sl] @ ca
            lab = s.argmin(axis=1)
            r = np.arange(lab.size)
            best = s[r, lab].astype(np.float64)
            s[r, lab] = np.inf
            gmin = None
            if K == 1:
                second = np.full(lab.size, np.inf)
            elif lower is not None:
                gmin = _group_min(s, starts)
                second = _group_min(gmin, _ALL)[:, 0].astype(np.float64)
            else:
                second = _group_min(s, _ALL)[:, 0].astype(np.float64)
            amb = np.flatnonzero(second - best <= 2.0 * margin)
            if amb.size:  # near-ties: decide exactly in float64
                xs = X[sl][amb]
                diff = xs[:, None, :] - centers[None, :, :]
                d = np.einsum("ijk,ijk->ij", diff, diff)
                exact = d.argmin(axis=1)
                moved = exact != lab[amb]
                if gmin is not None and moved.any():
                    rows_m = amb[moved]
                    s[rows_m, lab[rows_m]] = best[rows_m].astype(np.float32)
                    s[rows_m, exact[moved]] = np.inf
                    gmin[rows_m] = _group_min(s[rows_m], starts)
                lab[amb] = exact
            labels[sl] = lab
            if lower is not None and gmin is not None:
                # approximate squared distances to the other centres, minimum per group
                lower[sl] = np.sqrt(np.maximum(gmin.astype(np.float64) - margin, 0.0))
            elif lower is not None:
                lower[sl] = np.inf
        d_sq = _exact_sq_dist(X, centers, labels)
        return labels, d_sq, lower


def _group_starts(group_of: np.ndarray) -> np.ndarray:
    """First centre of each group, shape (G,), for centres sorted by group (``group_of``)."""
    return np.searchsorted(group_of, np.arange(int(group_of[-1]) + 1))


def _group_min(s: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Row-wise minimum over each run of columns ``starts[g]:starts[g + 1]``, shape (n, G).

    Equal to ``np.minimum.reduceat(s, starts, axis=1)``, which is several times slower
    when the runs are short (it reduces each row's few columns separately).
    """
    n, K = s.shape
    if K > _GROUP_MIN_LOOP_MAX_K:
        return np.minimum.reduceat(s, starts, axis=1)
    ends = np.append(starts[1:], K)
    out = np.empty((n, starts.size), dtype=s.dtype)
    for g, (a, b) in enumerate(zip(starts, ends, strict=True)):
        col = out[:, g]
        col[:] = s[:, a]
        for j in range(a + 1, b):
            np.minimum(col, s[:, j], out=col)
    return out


def _exact_sq_dist(X: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    diff = X - centers[labels]
    return np.einsum("ij,ij->i", diff, diff)


def _half_min_center_dist(centers: np.ndarray) -> np.ndarray:
    K = centers.shape[0]
    if K == 1:
        return np.full(1, np.inf)
    diff = centers[:, None, :] - centers[None, :, :]
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    np.fill_diagonal(dist, np.inf)
    return 0.5 * dist.min(axis=1)


def _relocate_empty(
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
    top = np.argpartition(-score, n_take - 1)[:n_take] if n_take < X.shape[0] else np.arange(
        X.shape[0]
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


def _kmeans_plusplus(
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
    x_sq = _sq_norms(X)
    cum_w = np.cumsum(w)
    first = int(np.searchsorted(cum_w, rng.random() * cum_w[-1], side="right"))
    first = min(first, n - 1)
    indices = [first]
    closest = _sq_norms(X - X[first])
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
        ca[-1] = _sq_norms(C)
        pots = np.zeros(cand.size)
        for sl in iter_chunks(n, rows):
            dist = Xa[sl] @ ca
            dist += x_sq[sl, None]
            np.maximum(dist, 0.0, out=dist)
            np.minimum(dist, closest[sl, None], out=dist)
            pots += w[sl] @ dist
        best = int(np.argmin(pots))
        new = int(cand[best])
        np.minimum(closest, _sq_norms(X - X[new]), out=closest)
        pot = float(w @ closest)
        indices.append(new)
    idx = np.asarray(indices, dtype=np.intp)
    return X[idx].copy(), idx


def kmeans_plusplus(
    X: Any,
    n_clusters: int,
    *,
    weights: Any = None,
    seed: int | np.random.Generator | None = 0,
    n_local_trials: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose initial centres with greedy weighted k-means++.

    Each new centre is the best (largest drop of the weighted potential) of
    ``n_local_trials`` candidates drawn with probability proportional to
    ``weight * D(x)^2``, as in scikit-learn.

    Parameters
    ----------
    X : array_like of shape (N, D)
        Points.
    n_clusters : int
        Number of centres to choose.
    weights : array_like of shape (N,) or None
        Point weights (e.g. pixel counts).
    seed : int or numpy.random.Generator
        Randomness.
    n_local_trials : int or None
        Candidates per step; default ``2 + int(log(n_clusters))``.

    Returns
    -------
    centers : ndarray of shape (n_found, D), float64
        ``n_found < n_clusters`` only when there are fewer distinct points than requested.
    indices : ndarray of shape (n_found,)
        Row indices of the chosen points in ``X``.
    """
    X, w = check_points(X, weights)
    n_clusters = check_positive_int(n_clusters, "n_clusters")
    rng = check_seed(seed)
    mean = (w @ X) / w.sum()
    centers, idx = _kmeans_plusplus(
        X - mean, w, n_clusters, rng, n_local_trials, DEFAULT_WORKING_MEMORY_MIB
    )
    return centers + mean, idx


# ----------------------------------------------------------------------------------------
# estimators
# ----------------------------------------------------------------------------------------


class _KMeansBase:
    """Shared validation, prediction and attributes."""

    cluster_centers_: np.ndarray
    labels_: np.ndarray
    inertia_: float
    history_: np.ndarray
    histories_: list[np.ndarray]
    n_iter_: int
    converged_: bool
    warnings_: list[str]
    n_colors_: int
    n_features_in_: int
    working_memory_mib: float

    @property
    def palette_(self) -> np.ndarray:
        """Fitted centres, shape (K, D); an alias of ``cluster_centers_``."""
        return self.cluster_centers_

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def _prepare_init(self, D: int) -> np.ndarray | str:
        init = self.init  # type: ignore[attr-defined]
        if isinstance(init, str):
            if init not in ("k-means++", "random"):
                raise ValueError(f"init must be 'k-means++', 'random' or an array, got {init!r}")
            return init
        arr = np.asarray(init, dtype=np.float64)
        if arr.ndim == 1 and D == 1:
            arr = arr[:, None]
        if arr.shape != (self.n_colors, D):  # type: ignore[attr-defined]
            raise ValueError(
                f"init array must have shape ({self.n_colors}, {D}), got {arr.shape}"  # type: ignore[attr-defined]
            )
        if not np.isfinite(arr).all():
            raise ValueError("init contains NaN or infinite values")
        return arr

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centre for each point.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points in the fitting space.

        Returns
        -------
        labels : ndarray of shape (N,), int32
        """
        self._check_fitted()
        X, _ = check_points(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model {self.n_features_in_}")
        Xc = X - self._offset
        centers = self.cluster_centers_ - self._offset
        labels, _, _ = _Assigner(Xc, self.working_memory_mib).nearest_two(centers, None)
        return labels

    def transform_inertia(self, X: Any, weights: Any = None) -> float:
        """Weighted inertia of ``X`` with respect to the fitted centres.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.
        weights : array_like of shape (N,) or None
            Point weights.

        Returns
        -------
        inertia : float
        """
        X, w = check_points(X, weights)
        labels = self.predict(X)
        return float(w @ _exact_sq_dist(X, self.cluster_centers_, labels))

    def fit(self, X: Any, weights: Any = None) -> _KMeansBase:
        """Fit to weighted points (drains :meth:`iter_fit`).

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.
        weights : array_like of shape (N,) or None
            Point weights (pixel counts).

        Returns
        -------
        self
        """
        return drain(self.iter_fit(X, weights))  # type: ignore[attr-defined]


class KMeans(_KMeansBase):
    """Weighted K-means (vector quantization) with k-means++ restarts.

    Parameters
    ----------
    n_colors : int
        Number of clusters K (palette size).
    init : {"k-means++", "random"} or array_like of shape (K, D)
        Initialisation: greedy weighted k-means++, K distinct points drawn with probability
        proportional to weight, or given centres (then ``n_init`` is ignored).
    n_init : int
        Restarts; the run with the lowest inertia is kept.
    max_iter : int
        Maximum Lloyd iterations per restart on the points.  Each grid-cell stage of
        ``algorithm="auto"`` (see below) may run up to as many again on its cell means,
        which are cheap; a cell stage that stops there is not an error.
    tol : float
        Stop when the sum of squared centre shifts falls below ``tol`` times the mean
        per-feature variance of the data (scikit-learn's rule); also stop as soon as no
        assignment changes.
    seed : int or numpy.random.Generator
        Randomness (k-means++ and random initialisation).
    algorithm : {"auto", "lloyd", "hamerly"}
        ``"lloyd"`` searches every point's nearest centre each iteration; ``"hamerly"``
        skips points whose assignment provably did not change (Hamerly/Yinyang bounds) and
        gives the same result; ``"auto"`` adds, for 50 000 points or more (of at most 4
        dimensions), first stages on grid-cell means (32 for small K, 64 and 128 cells per
        axis, see the module notes), which reach a local minimum of the same quality
        faster.  All stop by the same rule on the full data.
    working_memory_mib : float
        Budget for the temporary (chunk, K) arrays.

    Attributes
    ----------
    cluster_centers_, palette_ : ndarray of shape (K', D)
        Centres; ``K' = n_colors_`` may be smaller than ``n_colors`` (see ``warnings_``).
    labels_ : ndarray of shape (N,), int32
        Nearest-centre index of each training point.
    inertia_ : float
        Weighted sum of squared distances of the points to their centres.
    history_ : ndarray of shape (n_iter_,)
        Inertia after each iteration of the chosen run (non-increasing).
    histories_ : list of ndarray
        ``history_`` of every restart.
    n_iter_ : int
        Iterations of the chosen run, grid-cell stages included (one per record).
    converged_ : bool
        Whether the chosen run met the stopping rule before ``max_iter``.
    warnings_ : list of str
        Warnings emitted during the fit (K reduced, empty clusters, no convergence).
    n_colors_ : int
        Effective number of clusters.
    """

    def __init__(
        self,
        n_colors: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        n_init: int = 1,
        max_iter: int = 300,
        tol: float = 1e-4,
        seed: int | np.random.Generator | None = 0,
        algorithm: str = "auto",
        working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    ) -> None:
        self.n_colors = n_colors
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed
        self.algorithm = algorithm
        self.working_memory_mib = working_memory_mib

    @property
    def n_clusters(self) -> int:
        """Alias of ``n_colors`` (scikit-learn's name)."""
        return self.n_colors

    def iter_fit(
        self,
        X: Any,
        weights: Any = None,
        *,
        should_cancel: CancelCallback | None = None,
        stage: str = "kmeans",
    ) -> Generator[IterationRecord, None, KMeans]:
        """Fit step by step, yielding one record per Lloyd iteration.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points (not modified).
        weights : array_like of shape (N,) or None
            Non-negative point weights, e.g. pixel counts of unique colours.
        should_cancel : callable or None
            Polled between iterations and between chunks; returning True raises
            :class:`~quantize.protocol.Cancelled`.
        stage : str
            Label put on the records.

        Yields
        ------
        record : IterationRecord
            ``objective`` is the inertia after the iteration; ``extra["inertia_after_m"]``
            is the inertia after its M step (before the E step).

        Returns
        -------
        self : KMeans
        """
        X, w = check_points(X, weights)
        K_req = check_positive_int(self.n_colors, "n_colors")
        n_init = check_positive_int(self.n_init, "n_init")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        tol = check_positive_float(self.tol, "tol")
        wm = check_positive_float(self.working_memory_mib, "working_memory_mib", allow_zero=False)
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_ALGORITHMS}, got {self.algorithm!r}")
        rng = check_seed(self.seed)
        n, D = X.shape
        init = self._prepare_init(D)
        self.warnings_ = []
        self.n_features_in_ = D
        mean, var = _weighted_mean_var(X, w)
        self._offset = mean
        Xc = X - mean
        tol_abs = tol * var

        # coarse-to-fine stages: (cell means, weights, within-cell scatter, tolerance factor)
        stages: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        init_cells = None  # the cells that k-means++ (or random) initialisation draws from
        if (
            self.algorithm == "auto" and n >= _CORESET_MIN_POINTS and D <= _CORESET_MAX_DIMS
            and bool((w > 0).all())
        ):
            tree = CellTree(Xc, w)
            for bits, factor, per_cluster in _CELL_STAGES:
                cells = tree.n_cells(bits)
                enough = max(per_cluster, _MIN_CELLS_PER_CLUSTER) * K_req
                if cells * (3 if not stages else 2) <= n and cells >= enough:
                    stages.append((*tree.coreset(bits), factor))
                    if bits == _INIT_BITS:
                        init_cells = stages[-1]
            if init_cells is None and stages:
                init_cells = stages[0]
        if init_cells is not None and init_cells[0].shape[0] >= K_req:
            n_distinct, distinct_rows = n, None  # >= K occupied cells: >= K distinct points
        else:
            n_distinct, distinct_rows = _count_distinct(Xc, w, K_req)
            if distinct_rows is not None:
                init_cells, stages = None, []
        if n_distinct < K_req:
            warn_and_record(
                self.warnings_,
                f"only {n_distinct} distinct point(s) for {K_req} clusters: "
                f"K reduced to {n_distinct}",
                QuantizeWarning,
            )
        K = min(K_req, n_distinct)
        self.n_colors_ = K
        use_bounds = self.algorithm in ("auto", "hamerly")
        assigner = _Assigner(Xc, wm)

        if isinstance(init, np.ndarray):
            runs = [init - mean]
            if n_init > 1:
                self.warnings_.append("explicit init given: n_init ignored (one run)")
        else:
            runs = [init] * n_init
        if distinct_rows is not None and n_distinct <= K_req:
            runs = [distinct_rows]  # every distinct point is its own cluster: J = 0 is optimal

        best: tuple | None = None
        self.histories_ = []
        Xi, wi = (Xc, w) if init_cells is None else (init_cells[0], init_cells[1])
        # one assigner per cell stage serves every restart
        cell_assigners = [_Assigner(st[0], wm) for st in stages]
        for r, run_init in enumerate(runs):
            check_cancel(should_cancel)
            if isinstance(run_init, np.ndarray):
                centers = np.array(run_init[:K], dtype=np.float64)
            elif run_init == "k-means++":
                centers, _ = _kmeans_plusplus(Xi, wi, K, rng, None, wm, should_cancel)
            else:
                centers = _random_init(Xi, wi, K, rng)
            if centers.shape[0] < K:  # hash said distinct, potential said otherwise
                K = centers.shape[0]
                self.n_colors_ = K
            hist_parts = []
            it0 = 0
            for (cm, cw, scatter, factor), cell_assigner in zip(
                stages, cell_assigners, strict=True
            ):
                # Lloyd on grid-cell means = Lloyd with whole cells assigned together; its
                # J plus the within-cell scatter is the exact full-data J of that partition
                out_c = yield from _lloyd(
                    cm, cw, centers, cell_assigner, max_iter, tol_abs * factor,
                    use_bounds, should_cancel, r, mean, stage, self.warnings_,
                    objective_offset=scatter, it_offset=it0,
                )
                centers = out_c[0]
                hist_parts.append(out_c[3] + scatter)
                it0 += out_c[4]
            out = yield from _lloyd(
                Xc, w, centers, assigner, max_iter, tol_abs, use_bounds,
                should_cancel, r, mean, stage, self.warnings_, it_offset=it0,
            )
            out = (*out[:3], np.concatenate([*hist_parts, out[3]]), out[4] + it0, out[5])
            self.histories_.append(out[3])
            if best is None or out[2] < best[2]:
                best = out
        assert best is not None
        centers, labels, inertia, history, n_iter, converged = best
        self.cluster_centers_ = centers + mean
        self.labels_ = labels
        self.inertia_ = float(inertia)
        self.history_ = history
        self.n_iter_ = n_iter
        self.converged_ = converged
        if not converged:
            warn_and_record(
                self.warnings_,
                f"K-means stopped at max_iter={max_iter} before converging "
                f"(last centre shift above tolerance)",
                ConvergenceWarning,
            )
        return self


def _random_init(X: np.ndarray, w: np.ndarray, K: int, rng: np.random.Generator) -> np.ndarray:
    """K distinct points drawn without replacement with probability proportional to weight."""
    pos = np.flatnonzero(w > 0)
    p = w[pos] / w[pos].sum()
    chosen: list[int] = []
    seen: set[bytes] = set()
    order = rng.choice(pos.size, size=pos.size, replace=False, p=p) if pos.size <= 1 << 16 else (
        rng.choice(pos.size, size=min(pos.size, 8 * K + 64), replace=False, p=p)
    )
    for i in order:
        key = X[pos[i]].tobytes()
        if key not in seen:
            seen.add(key)
            chosen.append(int(pos[i]))
            if len(chosen) == K:
                break
    return X[np.asarray(chosen, dtype=np.intp)].copy()


def _cluster_stats(
    X: np.ndarray, w: np.ndarray, x_sq: np.ndarray, labels: np.ndarray, K: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cluster weight W (K,), weighted sum S (K, D) and weighted sum of ||x||^2 Q (K,)."""
    W = np.bincount(labels, weights=w, minlength=K)
    S = np.empty((K, X.shape[1]))
    for d in range(X.shape[1]):
        S[:, d] = np.bincount(labels, weights=w * X[:, d], minlength=K)
    Q = np.bincount(labels, weights=w * x_sq, minlength=K)
    return W, S, Q


def _stats_inertia(W: np.ndarray, S: np.ndarray, Q: np.ndarray, centers: np.ndarray) -> float:
    """J = sum_k Q_k - 2 c_k.S_k + W_k ||c_k||^2 (exact algebra, float64 rounding only)."""
    per = Q - 2.0 * np.einsum("kd,kd->k", centers, S) + W * _sq_norms(centers)
    return float(np.maximum(per, 0.0).sum())


def _centre_groups(centers: np.ndarray, n_points: int, working_memory_mib: float) -> np.ndarray:
    """Partition the centres into G groups (Yinyang K-means) by a few Lloyd steps on them.

    Returns ``group_of`` (K,) with values 0..G-1.  G is about K / 10 (K / 4 for K <= 32),
    capped so that the (G, N) lower bounds fit in four times the working memory.
    """
    K = centers.shape[0]
    group_size = _GROUP_SIZE_SMALL_K if K <= 32 else _GROUP_SIZE
    G = max(1, min(int(np.ceil(K / group_size)), K))
    cap = int(4 * working_memory_mib * 2**20 // (8 * max(n_points, 1)))
    G = max(1, min(G, cap))
    if G == 1:
        return np.zeros(K, dtype=np.intp)
    # farthest-point seeds then Lloyd on the K centres (deterministic)
    seeds = [0]
    dmin = ((centers - centers[0]) ** 2).sum(axis=1)
    for _ in range(1, G):
        nxt = int(np.argmax(dmin))
        seeds.append(nxt)
        dmin = np.minimum(dmin, ((centers - centers[nxt]) ** 2).sum(axis=1))
    g_centers = centers[seeds].copy()
    group_of = np.zeros(K, dtype=np.intp)
    for _ in range(5):
        diff = centers[:, None, :] - g_centers[None, :, :]
        group_of = np.einsum("ijk,ijk->ij", diff, diff).argmin(axis=1)
        for g in range(G):
            members = group_of == g
            if members.any():
                g_centers[g] = centers[members].mean(axis=0)
    # renumber so that group ids are 0..G'-1 with no empty group
    _, group_of = np.unique(group_of, return_inverse=True)
    return group_of.reshape(-1)


def _group_layout(
    centers: np.ndarray, group_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres padded per group: (G, gmax, D) coordinates, (G, gmax) index (-1 = pad)."""
    K, D = centers.shape
    starts = _group_starts(group_of)
    G = starts.size
    sizes = np.diff(np.append(starts, K))
    gmax = int(sizes.max())
    index = np.full((G, gmax), -1, dtype=np.intp)
    pos = np.arange(K) - starts[group_of]
    index[group_of, pos] = np.arange(K)
    coords = np.zeros((G, gmax, D))
    coords[group_of, pos] = centers
    return coords, index, index >= 0


def _direct_update(
    X: np.ndarray,
    cand: np.ndarray,
    labels: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    centers: np.ndarray,
    group_starts: np.ndarray,
    should_cancel: CancelCallback | None,
    working_memory_mib: float,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reassign candidates like :func:`_yinyang_update`, measuring every centre for each.

    With few centres this costs less than choosing groups point by point, and it leaves
    exact bounds for every group.  A point moves only to a strictly closer centre (the
    lowest index among equals), as in :func:`_yinyang_update`.
    """
    K, D = centers.shape
    rows = chunk_size(cand.size, 8 * K * (D + 3), working_memory_mib)
    changed_parts: list[np.ndarray] = []
    old_parts: list[np.ndarray] = []
    for sl in iter_chunks(cand.size, rows):
        check_cancel(should_cancel)
        pts = cand[sl]
        diff = X[pts][:, None, :] - centers[None, :, :]
        d = np.einsum("pkd,pkd->pk", diff, diff)
        r = np.arange(pts.size)
        old = labels[pts]
        best = d.argmin(axis=1)
        move = d[r, best] < d[r, old]
        new = np.where(move, best, old)
        upper[pts] = np.sqrt(d[r, new])
        d[r, new] = np.inf
        lower[:, pts] = (np.sqrt(_group_min(d, group_starts)) - eps).T
        if move.any():
            labels[pts[move]] = new[move]
            changed_parts.append(pts[move])
            old_parts.append(old[move])
    if changed_parts:
        return np.concatenate(changed_parts), np.concatenate(old_parts)
    return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int32)


def _yinyang_update(
    X: np.ndarray,
    cand: np.ndarray,
    labels: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    layout: tuple[np.ndarray, np.ndarray, np.ndarray],
    group_of: np.ndarray,
    should_cancel: CancelCallback | None,
    working_memory_mib: float,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Reassign the candidate points, searching only the groups their bounds cannot rule out.

    ``upper[cand]`` must be exact distances to the current centres; ``lower`` is (G, N).
    Every centre of a group with ``lower[g, n] < upper[n]`` is measured exactly (float64);
    the other groups
    cannot hold a closer centre.  Labels, upper and lower bounds are updated in place.
    Returns the points whose label changed and their previous labels.
    """
    coords, index, valid = layout
    n_groups = coords.shape[0]
    sizes = valid.sum(axis=1)
    # groups are processed one at a time: the largest temporary per row is one group's
    # (size, D) block of differences plus the (G,) bound row
    per_point = (coords.shape[1] * (coords.shape[2] + 1) + coords.shape[0]) * 8 * 3
    rows_per_chunk = int(min(65536, max(1024, working_memory_mib * 2**20 // per_point)))
    changed_parts: list[np.ndarray] = []
    old_parts: list[np.ndarray] = []
    for sl in iter_chunks(cand.size, rows_per_chunk):
        check_cancel(should_cancel)
        pts = cand[sl]
        up = upper[pts]
        need = lower[:, pts].T < up[:, None]
        pi, gi = np.nonzero(need)
        if pi.size == 0:
            continue
        # exact distances, one group at a time (no padded (pairs, gmax, D) gather)
        b1 = np.empty(pi.size)
        b2 = np.full(pi.size, np.inf)
        cand_lab = np.empty(pi.size, dtype=np.intp)
        order = np.argsort(gi, kind="stable")
        cuts = np.searchsorted(gi[order], np.arange(n_groups + 1))
        Xp = X[pts[pi]]
        for g in range(n_groups):
            if cuts[g] == cuts[g + 1]:
                continue
            sel = order[cuts[g] : cuts[g + 1]]
            diff = Xp[sel][:, None, :] - coords[g, : sizes[g]][None, :, :]
            dd = np.einsum("pjk,pjk->pj", diff, diff)
            j = dd.argmin(axis=1)
            rr = np.arange(sel.size)
            b1[sel] = dd[rr, j]
            cand_lab[sel] = index[g, j]
            if sizes[g] > 1:
                dd[rr, j] = np.inf
                b2[sel] = dd.min(axis=1)
        # best pair per point (pairs come sorted by point)
        starts = np.r_[True, pi[1:] != pi[:-1]]
        first = np.flatnonzero(starts)
        seg_of_pair = np.cumsum(starts) - 1
        best_val = np.minimum.reduceat(b1, first)
        owner = pi[first]
        # first pair reaching the minimum, per point (hits come in segment order)
        hit = np.flatnonzero(b1 == best_val[seg_of_pair])
        hit_seg = seg_of_pair[hit]
        best_pair = hit[np.r_[True, hit_seg[1:] != hit_seg[:-1]]]
        up_sq = up[owner] ** 2
        rows_all = pts[owner]
        old = labels[rows_all]
        # the current centre may be among the examined ones: moving needs another centre
        move = (best_val < up_sq) & (cand_lab[best_pair] != old)
        new = np.where(move, cand_lab[best_pair], old)
        # exact lower bounds of the examined groups (excluding the final label)
        final_of_pair = new[seg_of_pair]
        excl = np.where(cand_lab == final_of_pair, b2, b1)
        lower[gi, pts[pi]] = np.sqrt(excl) - eps
        moved_rows = rows_all[move]
        if moved_rows.size:
            old_m = old[move]
            g_old = group_of[old_m]
            # the old centre joins its group's bound where that group was not examined
            lower[g_old, moved_rows] = np.minimum(
                lower[g_old, moved_rows], up[owner][move] - eps
            )
            labels[moved_rows] = new[move]
            upper[moved_rows] = np.sqrt(best_val[move])
            changed_parts.append(moved_rows)
            old_parts.append(old_m)
    if changed_parts:
        return np.concatenate(changed_parts), np.concatenate(old_parts)
    return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int32)


def _thread_pool() -> ThreadPoolExecutor | None:
    """Return a pool for the bounded E step (numpy releases the GIL), or None on 1 CPU."""
    n = min(os.cpu_count() or 1, _MAX_THREADS)
    if n < 2:
        return None
    return ThreadPoolExecutor(n, thread_name_prefix="vq-kmeans")


def _lloyd(
    X: np.ndarray,
    w: np.ndarray,
    centers: np.ndarray,
    assigner: _Assigner,
    max_iter: int,
    tol_abs: float,
    use_bounds: bool,
    *args: Any,
    **kwargs: Any,
) -> Generator[IterationRecord, None, tuple]:
    """One Lloyd run (see :func:`_lloyd_run`); its worker threads end with the run."""
    pool = _thread_pool() if use_bounds and X.shape[0] >= _THREADS_MIN_POINTS else None
    try:
        return (
            yield from _lloyd_run(
                X, w, centers, assigner, max_iter, tol_abs, use_bounds, *args, pool=pool, **kwargs
            )
        )
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _lloyd_run(
    X: np.ndarray,
    w: np.ndarray,
    centers: np.ndarray,
    assigner: _Assigner,
    max_iter: int,
    tol_abs: float,
    use_bounds: bool,
    should_cancel: CancelCallback | None,
    restart: int,
    offset: np.ndarray,
    stage: str,
    warnings_store: list[str],
    objective_offset: float = 0.0,
    it_offset: int = 0,
    pool: ThreadPoolExecutor | None = None,
) -> Generator[IterationRecord, None, tuple]:
    """One Lloyd run.  Returns (centers, labels, inertia, history, n_iter, converged).

    ``objective_offset`` is added to the recorded objectives (the within-cell scatter when
    the points are grid-cell means, see :mod:`quantize.cluster._cells`); ``it_offset`` to the
    recorded iteration numbers.

    With ``use_bounds`` the E step keeps Yinyang/Hamerly bounds: ``upper[n] >= ||x_n -
    c_{a_n}||`` and, for each group g of centres, ``lower[g, n] <= min ||x_n - c_j||`` over
    the centres j != a_n of that group.  After the centres move, the upper bound grows by
    the move of the point's centre and each group bound shrinks by the largest move in the
    group; a point whose upper bound stays below all its group bounds (or below half the
    distance from its centre to the nearest other centre) provably keeps its centre and
    costs no distance computation.  Cluster sums are updated incrementally from the points
    that changed.  The labels are always the exact nearest centres, so the result is the
    same as plain Lloyd.
    """
    n = X.shape[0]
    K = centers.shape[0]
    x_sq = _sq_norms(X)
    perm = None
    group_of = None
    n_parts = pool._max_workers if pool is not None else 1
    cuts = np.linspace(0, n, n_parts + 1).astype(int)
    slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(cuts)]
    if use_bounds:
        group_of = _centre_groups(centers, n, assigner.working_memory_mib)
        perm = np.argsort(group_of, kind="stable")  # work with groups as contiguous runs
        group_of = group_of[perm]
        centers = centers[perm]
    inv_perm = np.argsort(perm) if perm is not None else None
    group_starts = None if group_of is None else _group_starts(group_of)
    # group-major (G, N) float32 layout: the per-iteration decrement and the min over groups
    # stream half the bytes.  Every value written is lowered by ``eps`` (16 float32 ulps of
    # the largest possible distance), so rounding can never make a bound too large.
    eps = 1e-6 * (np.sqrt(assigner.x_sq_max) + float(np.sqrt(_sq_norms(centers).max())) + 1e-30)
    lower = None
    labels, d_sq, lower_nk = assigner.search(centers, group_of, should_cancel)
    if lower_nk is not None:
        lower = np.ascontiguousarray((lower_nk - eps).T, dtype=np.float32)
    del lower_nk
    upper = np.sqrt(d_sq) if use_bounds else None
    Wk, Sk, Qk = _cluster_stats(X, w, x_sq, labels, K)
    history: list[float] = []
    converged = False
    n_relocated_total = 0
    it = 0
    for it in range(1, max_iter + 1):
        check_cancel(should_cancel)
        # M step
        old = centers
        centers = old.copy()
        nonempty = Wk > 0
        centers[nonempty] = Sk[nonempty] / Wk[nonempty, None]
        empty = np.flatnonzero(~nonempty)
        if empty.size:
            n_relocated_total += _relocate_empty(
                centers, empty, X, w, _exact_sq_dist(X, centers, labels)
            )
        inertia_after_m = _stats_inertia(Wk, Sk, Qk, centers)
        shift = np.sqrt(np.einsum("ij,ij->i", centers - old, centers - old))
        # E step
        changed = np.zeros(0, dtype=np.intp)
        a_old = np.zeros(0, dtype=np.int32)
        if use_bounds:
            assert upper is not None and lower is not None and group_of is not None
            group_shift = np.zeros(int(group_of[-1]) + 1)
            np.maximum.at(group_shift, group_of, shift)
            group_shift = (group_shift + eps).astype(np.float32)
            half = _half_min_center_dist(centers)
            direct = K <= _DIRECT_MAX_K  # else the grouped update, on padded group blocks
            layout = None if direct else _group_layout(centers, group_of)

            def part(
                sl: slice,
                shift: np.ndarray = shift,
                group_shift: np.ndarray = group_shift,
                half: np.ndarray = half,
                centers: np.ndarray = centers,
                layout: tuple | None = layout,
            ) -> tuple[np.ndarray, np.ndarray]:
                lab = labels[sl]
                up = upper[sl]  # views: updated in place
                up += shift[lab]
                low = lower[:, sl]
                low -= group_shift[:, None]
                bound = np.maximum(half[lab], low.min(axis=0))
                cand = np.flatnonzero(up > bound)
                if cand.size:
                    up[cand] = np.sqrt(_exact_sq_dist(X[sl][cand], centers, lab[cand]))
                    cand = cand[up[cand] > bound[cand]]
                if not cand.size:
                    return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int32)
                if layout is None:
                    return _direct_update(
                        X, cand + sl.start, labels, upper, lower, centers, group_starts,
                        should_cancel, assigner.working_memory_mib, eps=eps,
                    )
                return _yinyang_update(
                    X, cand + sl.start, labels, upper, lower, layout, group_of,
                    should_cancel, assigner.working_memory_mib, eps=eps,
                )

            parts = list(pool.map(part, slices)) if pool is not None else [part(slice(0, n))]
            changed = np.concatenate([c for c, _ in parts])
            a_old = np.concatenate([o for _, o in parts]).astype(np.int32)
        else:
            lab_c, _, _ = assigner.search(centers, None, should_cancel)
            sw = lab_c != labels
            changed = np.flatnonzero(sw)
            a_old = labels[changed]
            labels[changed] = lab_c[changed]
        if changed.size:
            a_new = labels[changed]
            wc = w[changed]
            for arr, vals in ((Wk, wc), (Qk, wc * x_sq[changed])):
                arr -= np.bincount(a_old, weights=vals, minlength=K)
                arr += np.bincount(a_new, weights=vals, minlength=K)
            for d in range(X.shape[1]):
                vals = wc * X[changed, d]
                Sk[:, d] -= np.bincount(a_old, weights=vals, minlength=K)
                Sk[:, d] += np.bincount(a_new, weights=vals, minlength=K)
            gone = Wk <= 0
            if gone.any():  # exact zero instead of rounding residue for emptied clusters
                Wk[gone] = 0.0
                Sk[gone] = 0.0
                Qk[gone] = 0.0
        n_changed = int(changed.size)
        inertia = _stats_inertia(Wk, Sk, Qk, centers)
        if history and inertia > history[-1] and n_changed == 0 and not empty.size:
            inertia = history[-1]  # nothing moved: same J up to summation order
        history.append(inertia)
        yield IterationRecord(
            restart=restart,
            iteration=it + it_offset,
            objective=inertia + objective_offset,
            kind="inertia",
            shift=float(shift.max()) if shift.size else 0.0,
            centers=(centers if inv_perm is None else centers[inv_perm]) + offset,
            n_changed=n_changed,
            stage=stage,
            extra={
                "inertia_after_m": inertia_after_m + objective_offset,
                "n_relocated": int(empty.size),
                "n_points": n,  # points, or grid cells in a cell stage
            },
        )
        if n_changed == 0 and not empty.size:
            converged = True
            break
        if float(np.sum(shift**2)) <= tol_abs:
            converged = True
            break
    if n_relocated_total:
        warnings_store.append(
            f"restart {restart}: {n_relocated_total} empty cluster(s) relocated to far points"
        )
    inertia = float(w @ _exact_sq_dist(X, centers, labels))
    if history:
        history[-1] = min(history[-1], inertia) if it > 1 else inertia
    if perm is not None and inv_perm is not None:
        centers = centers[inv_perm]
        labels = perm[labels].astype(np.int32)
    return centers, labels, inertia, np.asarray(history, dtype=np.float64), it, converged


class MiniBatchKMeans(_KMeansBase):
    """Mini-batch K-means: stochastic-gradient steps on weighted random batches.

    Each step draws ``batch_size`` points with probability proportional to their weight,
    assigns them to the nearest centre and moves each centre towards the batch mean of its
    points with a per-centre learning rate ``1 / (points seen so far)`` (Sculley, 2010;
    the scheme of scikit-learn's ``MiniBatchKMeans``).  Useful for very many distinct
    points; the final labels and inertia come from one full E step.

    Parameters
    ----------
    n_colors : int
        Number of clusters K.
    init : {"k-means++", "random"} or array_like of shape (K, D)
        Initialisation (k-means++ runs on a weighted sample of ``3 * batch_size`` points).
    n_init : int
        Initialisations tried; the one with the lowest inertia on the init sample is kept.
    max_iter : int
        Maximum number of mini-batch steps.
    batch_size : int
        Points per step.
    tol : float
        Stop when the sum of squared centre shifts of a step falls below ``tol`` times the
        data variance (0 disables).
    max_no_improvement : int
        Stop when the smoothed batch inertia has not improved for this many steps.
    seed : int or numpy.random.Generator
        Randomness.
    working_memory_mib : float
        Budget for temporary arrays.

    Attributes
    ----------
    cluster_centers_, palette_, labels_, inertia_, n_iter_, converged_, warnings_, n_colors_
        As for :class:`KMeans`.
    history_ : ndarray of shape (n_iter_,)
        Estimated inertia (batch inertia scaled to the total weight) per step; noisy, not
        monotone.
    histories_ : list of ndarray
        ``[history_]``.
    """

    def __init__(
        self,
        n_colors: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        n_init: int = 1,
        max_iter: int = 200,
        batch_size: int = 4096,
        tol: float = 0.0,
        max_no_improvement: int = 20,
        seed: int | np.random.Generator | None = 0,
        working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    ) -> None:
        self.n_colors = n_colors
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.seed = seed
        self.working_memory_mib = working_memory_mib

    def iter_fit(
        self,
        X: Any,
        weights: Any = None,
        *,
        should_cancel: CancelCallback | None = None,
    ) -> Generator[IterationRecord, None, MiniBatchKMeans]:
        """Fit step by step, yielding one record per mini-batch step.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.
        weights : array_like of shape (N,) or None
            Point weights.
        should_cancel : callable or None
            Polled between steps.

        Yields
        ------
        record : IterationRecord
            ``stage="minibatch"``; ``objective`` is the estimated inertia.

        Returns
        -------
        self : MiniBatchKMeans
        """
        X, w = check_points(X, weights)
        K_req = check_positive_int(self.n_colors, "n_colors")
        n_init = check_positive_int(self.n_init, "n_init")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        batch = check_positive_int(self.batch_size, "batch_size")
        patience = check_positive_int(self.max_no_improvement, "max_no_improvement")
        tol = check_positive_float(self.tol, "tol")
        wm = check_positive_float(self.working_memory_mib, "working_memory_mib", allow_zero=False)
        rng = check_seed(self.seed)
        n, D = X.shape
        init = self._prepare_init(D)
        self.warnings_ = []
        self.n_features_in_ = D
        mean, var = _weighted_mean_var(X, w)
        self._offset = mean
        Xc = X - mean
        tol_abs = tol * var
        total = w.sum()
        n_distinct, distinct_rows = _count_distinct(Xc, w, K_req)
        if n_distinct < K_req:
            warn_and_record(
                self.warnings_,
                f"only {n_distinct} distinct point(s) for {K_req} clusters: "
                f"K reduced to {n_distinct}",
                QuantizeWarning,
            )
        K = min(K_req, n_distinct)
        cum_w = np.cumsum(w)

        def draw(size: int) -> np.ndarray:
            r = rng.random(size) * cum_w[-1]
            return np.minimum(np.searchsorted(cum_w, r, side="right"), n - 1)

        # initialisation on a weighted sample (unweighted after sampling)
        if distinct_rows is not None and n_distinct <= K_req:
            centers = np.array(distinct_rows, dtype=np.float64)
        elif isinstance(init, np.ndarray):
            centers = init - mean
        else:
            sample = Xc[draw(min(3 * batch, max(n, K)))] if n > 3 * batch else Xc
            sw = np.ones(sample.shape[0]) if n > 3 * batch else w
            best_c, best_j = None, np.inf
            sample_assigner = _Assigner(sample, wm)
            for _ in range(n_init):
                if init == "k-means++":
                    c, _ = _kmeans_plusplus(sample, sw, K, rng, None, wm, should_cancel)
                else:
                    c = _random_init(sample, sw, K, rng)
                _, d, _ = sample_assigner.nearest_two(c, should_cancel)
                j = float(sw @ d)
                if j < best_j:
                    best_c, best_j = c, j
            centers = best_c
        K = centers.shape[0]
        self.n_colors_ = K
        seen = np.zeros(K)
        history: list[float] = []
        ewa = None
        best_ewa, no_improve = np.inf, 0
        converged = False
        it = 0
        for it in range(1, max_iter + 1):
            check_cancel(should_cancel)
            idx = draw(batch)
            Xb = Xc[idx]
            lab, d, _ = _Assigner(Xb, wm).nearest_two(centers, should_cancel)
            batch_inertia = float(d.mean()) * total
            counts = np.bincount(lab, minlength=K).astype(np.float64)
            sums = np.empty((K, D))
            for f in range(D):
                sums[:, f] = np.bincount(lab, weights=Xb[:, f], minlength=K)
            old = centers.copy()
            hit = counts > 0
            seen[hit] += counts[hit]
            eta = counts[hit] / seen[hit]
            centers[hit] += eta[:, None] * (sums[hit] / counts[hit, None] - centers[hit])
            shift = np.sqrt(((centers - old) ** 2).sum(axis=1))
            history.append(batch_inertia)
            yield IterationRecord(
                restart=0,
                iteration=it,
                objective=batch_inertia,
                kind="inertia",
                shift=float(shift.max()),
                centers=centers + mean,
                stage="minibatch",
            )
            if tol_abs > 0 and float(np.sum(shift**2)) <= tol_abs:
                converged = True
                break
            alpha = min(1.0, 2.0 * batch / (n + 1.0))
            ewa = batch_inertia if ewa is None else ewa * (1 - alpha) + batch_inertia * alpha
            if ewa < best_ewa:
                best_ewa, no_improve = ewa, 0
            else:
                no_improve += 1
                if no_improve >= patience:
                    converged = True
                    break
        assigner = _Assigner(Xc, wm)
        labels, _, _ = assigner.nearest_two(centers, should_cancel)
        wsum = np.bincount(labels, weights=w, minlength=K)
        empty = np.flatnonzero(wsum == 0)
        if empty.size:
            d_sq = _exact_sq_dist(Xc, centers, labels)
            moved = _relocate_empty(centers, empty, Xc, w, d_sq)
            self.warnings_.append(f"{moved} empty cluster(s) relocated to far points")
            labels, _, _ = assigner.nearest_two(centers, should_cancel)
        d_sq = _exact_sq_dist(Xc, centers, labels)
        self.cluster_centers_ = centers + mean
        self.labels_ = labels
        self.inertia_ = float(w @ d_sq)
        self.history_ = np.asarray(history, dtype=np.float64)
        self.histories_ = [self.history_]
        self.n_iter_ = it
        self.converged_ = converged
        if not converged:
            warn_and_record(
                self.warnings_,
                f"mini-batch K-means stopped at max_iter={max_iter} steps",
                ConvergenceWarning,
            )
        return self
