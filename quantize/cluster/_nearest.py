"""The one exact nearest-centre search of VQ Studio: K-means, rendering, replay and mapping.

Rule: a point's label is the centre at the smallest *exact* squared Euclidean distance
``sum_d (x_d - c_d)**2`` (evaluated in float64), ties going to the lowest index.

A first pass finds the best and second-best centres from ``||x||^2 - 2 x.c + ||c||^2`` as one
BLAS product per chunk (float32 in :class:`Assigner`, which K-means calls every iteration on
the same points; float64 in :func:`nearest_indices`); rows whose two best candidates are
within that pass's rounding bound are re-decided by :func:`decide_exactly`.  So the labels
do not depend on the precision of the first pass, the chunking or BLAS threading.  The
bounded K-means E steps (:mod:`quantize.cluster._yinyang`) measure their candidate centres
with the same exact distances and the same lowest-index rule.
"""

from __future__ import annotations

from concurrent.futures import Executor

import numpy as np

from quantize._blas import matmul
from quantize._chunks import chunk_size, iter_chunks
from quantize.protocol import CancelCallback, check_cancel

__all__ = [
    "ALL_COLUMNS",
    "Assigner",
    "NearestCentre",
    "decide_exactly",
    "exact_sq_dist",
    "find_group_starts",
    "group_min",
    "nearest_indices",
    "sq_norms",
]

_MAX_CHUNK_ROWS = 16384  # cache-friendly (chunk, K) blocks even when the budget allows more
_GROUP_MIN_LOOP_MAX_K = 128  # a column loop beats np.minimum.reduceat up to about this K
ALL_COLUMNS = np.zeros(1, dtype=np.intp)  # _group_min over all columns: the row minimum
#: float64 rounding bound of the expanded squared distance, relative to ||x||^2 + ||c||^2
_F64_MARGIN = 1e-14
_F64_CHUNK = 1 << 22  # elements of one (rows, K) block of the float64 pass


def sq_norms(X: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", X, X)


def exact_sq_dist(X: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Exact squared distance of each point to its labelled centre, shape (N,)."""
    # take: about three times faster than centers[labels] for this (N,) -> (N, D) gather
    diff = np.asarray(centers, dtype=np.result_type(X, centers)).take(labels, axis=0)
    np.subtract(X, diff, out=diff)
    return np.einsum("ij,ij->i", diff, diff)


def decide_exactly(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest centre by exact float64 distances, ties to the lowest index (the rule).

    Parameters
    ----------
    X : ndarray of shape (P, D), float64
        A few points (all centres are measured for each: P x K x D work).
    centers : ndarray of shape (K, D), float64

    Returns
    -------
    labels : ndarray of shape (P,), int64
    best : ndarray of shape (P,), float64
        Squared distance to the nearest centre.
    second : ndarray of shape (P,), float64
        Squared distance to the second nearest (inf when K == 1).
    """
    diff = X[:, None, :] - centers[None, :, :]
    d = np.einsum("ijk,ijk->ij", diff, diff)
    labels = d.argmin(axis=1)
    r = np.arange(labels.size)
    best = d[r, labels]
    if centers.shape[0] > 1:
        d[r, labels] = np.inf
        second = d.min(axis=1)
    else:
        second = np.full(labels.size, np.inf)
    return labels, best, second


class NearestCentre:
    """Exact nearest of fixed centres, for points given in one or many batches.

    The float64 pass of :func:`nearest_indices` with the centres' terms computed once,
    for callers that search many small batches against one palette (error diffusion).

    Parameters
    ----------
    centers : array_like of shape (K, D)
        Centres (e.g. a palette), K >= 1.
    points_sq_max : float, optional
        A bound on ``||x||^2`` of every point that will be searched (e.g. ``3 * 255**2`` for
        colours clipped to [0, 255]); spares measuring it on every call.
    """

    def __init__(self, centers: np.ndarray, points_sq_max: float | None = None) -> None:
        self.centers = np.ascontiguousarray(centers, dtype=np.float64)
        self._m2c = -2.0 * self.centers.T
        self._c_sq = sq_norms(self.centers)
        self._c_sq_max = float(self._c_sq.max())
        self._margin = None
        if points_sq_max is not None:
            self._margin = _F64_MARGIN * (float(points_sq_max) + self._c_sq_max) + 1e-300
        #: whole-number centres: :meth:`of_integers` can skip the rounding margin
        self.integral = bool(np.all(self.centers == np.rint(self.centers)))

    def of_integers(self, points: np.ndarray) -> np.ndarray:
        """Index of the nearest centre of whole-number points, for whole-number centres.

        ``||c||^2 - 2 x.c`` is then an exact integer in float64 (well below 2**53), so a
        plain argmin is exact, the first of equal distances as in :meth:`__call__`; a
        batch costs one product.  Requires :attr:`integral`.

        Parameters
        ----------
        points : array_like of shape (P, D), whole numbers

        Returns
        -------
        indices : ndarray of shape (P,), int64
        """
        d = matmul(np.asarray(points, np.float64).reshape(-1, self.centers.shape[1]), self._m2c)
        d += self._c_sq
        return d.argmin(axis=1)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Index of the nearest centre of each point, shape (P,), int64.

        Parameters
        ----------
        points : array_like of shape (P, D)

        Returns
        -------
        indices : ndarray of shape (P,), int64
        """
        K, D = self.centers.shape
        X = np.asarray(points, np.float64).reshape(-1, D)
        out = np.empty(X.shape[0], np.int64)
        if X.shape[0] == 0:
            return out
        margin = self._margin
        if margin is None:
            margin = _F64_MARGIN * (float(sq_norms(X).max()) + self._c_sq_max) + 1e-300
        step = max(1, _F64_CHUNK // K)
        for start in range(0, X.shape[0], step):
            block = X[start : start + step]
            # ||x - c||^2 - ||x||^2 = ||c||^2 - 2 x.c  (||x||^2 is the same for every centre)
            d = matmul(block, self._m2c)
            d += self._c_sq
            lab = d.argmin(axis=1)
            if K > 1:
                r = np.arange(lab.size)
                best = d[r, lab]
                d[r, lab] = np.inf
                amb = np.flatnonzero(d.min(axis=1) - best <= 2.0 * margin)
                if amb.size:
                    lab[amb] = decide_exactly(block[amb], self.centers)[0]
            out[start : start + step] = lab
        return out


def nearest_indices(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of each point (exact, ties to the lowest index).

    Parameters
    ----------
    points : array_like of shape (P, D)
        Points, any real dtype (e.g. colours on a 0-255 scale, or in a fitting space).
    centers : array_like of shape (K, D)
        Centres (e.g. a palette) in the same space, K >= 1.

    Returns
    -------
    indices : ndarray of shape (P,), int64
    """
    return NearestCentre(centers)(points)


def find_group_starts(group_of: np.ndarray) -> np.ndarray:
    """First centre of each group, shape (G,), for centres sorted by group (``group_of``)."""
    return np.searchsorted(group_of, np.arange(int(group_of[-1]) + 1))


def group_min(s: np.ndarray, starts: np.ndarray) -> np.ndarray:
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


class Assigner:
    """Nearest-centre search on fixed points: float32 chunks, near-ties decided exactly.

    K-means builds one per set of points and calls it every iteration with new centres.
    """

    def __init__(self, X: np.ndarray, working_memory_mib: float) -> None:
        self.X = X
        self._Xa: np.ndarray | None = None
        self.x_sq_max = float(sq_norms(X).max()) if X.shape[0] else 0.0
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
            Xa[:, d + 1] = sq_norms(X)
            self._Xa = Xa
        return self._Xa

    def _centers_aug(self, centers: np.ndarray) -> np.ndarray:
        D = centers.shape[1]
        ca = np.empty((D + 2, centers.shape[0]), dtype=np.float32)
        ca[:D] = -2.0 * centers.T
        ca[D] = sq_norms(centers)
        ca[D + 1] = 1.0
        return ca

    def margin(self, centers: np.ndarray) -> float:
        """Bound on the float32 error of a squared distance (with a safety factor)."""
        c_sq_max = float(sq_norms(centers).max())
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
            s = matmul(Xa[sl], ca)
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
                labels[ii], best[ii], second[ii] = decide_exactly(X[ii], centers)
        return labels, best, second

    def search(
        self,
        centers: np.ndarray,
        group_of: np.ndarray | None,
        should_cancel: CancelCallback | None,
        pool: Executor | None = None,
        eps: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Exact nearest centre, its exact squared distance and per-group lower bounds.

        Parameters are the centres, the group of each centre (None: no bounds wanted), the
        cancel poll and an optional thread pool that searches the chunks in parallel (numpy
        frees the interpreter lock in them; each chunk writes its own rows).  The lower
        bounds come group-major, shape (G, n), float32 (as Yinyang K-means keeps them):
        distances reduced by the float32 error margin of the search, then by ``eps``
        (computed in float64, then rounded).
        """
        X, Xa = self.X, self.Xa
        n = Xa.shape[0]
        K, D = centers.shape
        ca = self._centers_aug(centers)
        margin = self.margin(centers)
        labels = np.empty(n, dtype=np.int32)
        lower = None
        starts = None
        if group_of is not None:  # sorted: the groups are contiguous runs of centres
            starts = find_group_starts(group_of)
            lower = np.empty((starts.size, n), dtype=np.float32)
        rows = min(_MAX_CHUNK_ROWS, chunk_size(n, 4 * K * 3 + 8 * D * K, self.working_memory_mib))

        def one_chunk(sl: slice) -> None:
            s = matmul(Xa[sl], ca)
            lab = s.argmin(axis=1)
            r = np.arange(lab.size)
            best = s[r, lab].astype(np.float64)
            s[r, lab] = np.inf
            gmin = None
            if K == 1:
                second = np.full(lab.size, np.inf)
            elif starts is not None:
                gmin = group_min(s, starts)
                second = group_min(gmin, ALL_COLUMNS)[:, 0].astype(np.float64)
            else:
                second = group_min(s, ALL_COLUMNS)[:, 0].astype(np.float64)
            amb = np.flatnonzero(second - best <= 2.0 * margin)
            if amb.size:  # near-ties: decide exactly in float64
                exact = decide_exactly(X[sl][amb], centers)[0]
                moved = exact != lab[amb]
                if gmin is not None and starts is not None and moved.any():
                    rows_m = amb[moved]
                    s[rows_m, lab[rows_m]] = best[rows_m].astype(np.float32)
                    s[rows_m, exact[moved]] = np.inf
                    gmin[rows_m] = group_min(s[rows_m], starts)
                lab[amb] = exact
            labels[sl] = lab
            if lower is not None and gmin is not None:
                # approximate squared distances to the other centres, minimum per group
                dist = np.sqrt(np.maximum(gmin.astype(np.float64) - margin, 0.0))
                dist -= eps
                lower[:, sl] = dist.T
            elif lower is not None:
                lower[:, sl] = np.inf

        chunks = list(iter_chunks(n, rows))
        if pool is None or len(chunks) < 2:
            for sl in chunks:
                check_cancel(should_cancel)
                one_chunk(sl)
        else:
            check_cancel(should_cancel)
            for _ in pool.map(one_chunk, chunks):
                check_cancel(should_cancel)
        d_sq = exact_sq_dist(X, centers, labels)
        return labels, d_sq, lower
