"""Weighted K-means: Lloyd with Yinyang bounds, coarse-to-fine on grid cells, k-means++.

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
did not change, while cluster sums are updated only from the points that moved.  With
``algorithm="auto"`` on three-dimensional points (every colour space) the E step runs as a
compiled loop where numba's machine code is available (:mod:`quantize.cluster._annular`):
Hamerly's two bounds and a search of the centres nearest the old one, the same labels.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from quantize._chunks import DEFAULT_WORKING_MEMORY_MIB
from quantize._validation import (
    check_points,
    check_positive_float,
    check_positive_int,
    check_seed,
    warn_and_record,
)
from quantize.cluster._annular import centre_tables, compiled_e_step, float64_margin
from quantize.cluster._cells import CellTree
from quantize.cluster._common import (
    count_distinct,
    greedy_kmeans_plusplus,
    random_seeds,
    relocate_empty,
    weighted_mean_var,
)
from quantize.cluster._locked import check_locked, drop_coinciding, seed_around_locked
from quantize.cluster._nearest import Assigner, exact_sq_dist, find_group_starts, sq_norms
from quantize.cluster._yinyang import (
    centre_groups,
    direct_update,
    group_layout,
    half_min_center_dist,
    yinyang_update,
)
from quantize.protocol import (
    CancelCallback,
    ConvergenceWarning,
    IterationRecord,
    QuantizeWarning,
    check_cancel,
    drain,
)

__all__ = [
    "KMeans",
    "KMeansBase",
    "PALETTE_REL_TOL",
    "PALETTE_REL_TOL_LARGE",
    "PALETTE_REL_TOL_LARGE_K",
    "SeedingScore",
    "kmeans_plusplus",
    "palette_rel_tol",
    "palette_seedings",
]

_ALGORITHMS = ("auto", "lloyd", "yinyang")

#: ``seeding_score(centers (K, D), points (M, D), weights (M,), labels (M,)) -> float``:
#: lower is better (see ``KMeans``'s ``n_seedings``).
SeedingScore = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]
# "auto" first converges on grid-cell means above this many points (see _celltree)
_CELLS_MIN_POINTS = 50_000
_CELLS_MAX_DIMS = 4
# cell stages (bits per axis, tolerance factor, least cells per cluster): each is cheaper
# than the next, so it runs to a tighter tolerance and the next stage starts close to its
# own minimum; a stage is used only when it has at most a third (the first) or half as
# many cells as there are points, and enough cells per cluster (at least 4)
_CELL_STAGES = ((5, 0.01, 40), (6, 0.01, 0), (7, 0.1, 0))
# initialisation draws from the coarsest of these cell levels with at least _INIT_CELLS_PER
# cluster occupied cells: on eleven 4-8 MP photos the 32**3 cells seed K = 256 two to three
# times faster than the 64**3 cells (k-means++ was 60 % of the fit) at the same or higher PSNR
_INIT_BITS = (5, 6, 7)
_INIT_CELLS_PER_CLUSTER = 8
# ... and so does a fit on fewer points, without cell stages, from this many points on when a
# level has that many cells: k-means++ on kite's 34,000 colours took 0.24 s at K = 256,
# on its 2,600 cells 0.05 s (benchmarks/README.md)
_SEED_CELLS_MIN_POINTS = 20_000
_INIT_CELLS_PER_CLUSTER_NO_STAGES = 16
_MIN_CELLS_PER_CLUSTER = 4
#: ``rel_tol`` of the palette fits the product runs (the registry's "kmeans": ``vq``, the app,
#: ``quantize_image``): on eleven 4-8 MP photos the last iterations of a K = 256 fit each
#: gained 0.001-0.005 dB and took a third of its time (benchmarks/README.md: 19-31 % less
#: CPU at 1e-4 to 3e-4, for at most 0.02-0.08 dB PSNR)
PALETTE_REL_TOL = 2e-4  # a coarser grid would leave clusters without cells
#: ... and from PALETTE_REL_TOL_LARGE_K colours on, where each iteration on the colours costs
#: most: nine camera photos at K = 256, in-process, the product's settings: fitting time
#: 4.17 -> 3.76 s in all (path 45 -> 26 iterations, 0.62 -> 0.45 s), blurred dE against
#: pngquant's within +-0.006 per photo, PSNR within 0.04 dB.  At K = 64 the iterations fell
#: too but not the time (benchmarks/README.md)
PALETTE_REL_TOL_LARGE = 6e-4
PALETTE_REL_TOL_LARGE_K = 128
#: Seedings a product palette fit tries (``n_seedings``) up to PALETTE_SEEDINGS_MAX_K colours
PALETTE_SEEDINGS = 3
PALETTE_SEEDINGS_MAX_K = 32
#: Cell stages a seeding runs before they are compared: the coarsest alone chose as well as
#: all of them on eleven photos at K = 16, at less cost
_SEEDING_STAGES = 1


def palette_rel_tol(n_colors: int) -> float:
    """Return the ``rel_tol`` of a product palette fit of ``n_colors`` colours.

    Parameters
    ----------
    n_colors : int
        Palette size K.

    Returns
    -------
    rel_tol : float
        :data:`PALETTE_REL_TOL`, or :data:`PALETTE_REL_TOL_LARGE` from
        :data:`PALETTE_REL_TOL_LARGE_K` colours on.
    """
    return PALETTE_REL_TOL_LARGE if int(n_colors) >= PALETTE_REL_TOL_LARGE_K else PALETTE_REL_TOL


def palette_seedings(n_colors: int) -> int:
    """Return the ``n_seedings`` of a product palette fit of ``n_colors`` colours.

    Parameters
    ----------
    n_colors : int
        Palette size K.

    Returns
    -------
    n_seedings : int
        :data:`PALETTE_SEEDINGS` up to :data:`PALETTE_SEEDINGS_MAX_K` colours, else 1.
    """
    return PALETTE_SEEDINGS if int(n_colors) <= PALETTE_SEEDINGS_MAX_K else 1


# centres per Yinyang group (Ding et al. suggest K / 10 groups)
_THREADS_MIN_POINTS = 100_000  # below this, one thread is faster than two
_MAX_THREADS = 8
_DIRECT_MAX_K = 16  # up to this K the bounded E step measures all centres of a candidate


# ----------------------------------------------------------------------------------------
# private kernels: inputs are validated, float64, C-contiguous, centred
# ----------------------------------------------------------------------------------------


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
    centers, idx = greedy_kmeans_plusplus(
        X - mean, w, n_clusters, rng, n_local_trials, DEFAULT_WORKING_MEMORY_MIB
    )
    return centers + mean, idx


# ----------------------------------------------------------------------------------------
# estimators
# ----------------------------------------------------------------------------------------


class KMeansBase:
    """Shared validation, prediction and attributes."""

    cluster_centers_: np.ndarray
    labels_: np.ndarray
    _offset: np.ndarray  # the weighted mean the fit centred the points on
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
        labels, _, _ = Assigner(Xc, self.working_memory_mib).nearest_two(centers, None)
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
        return float(w @ exact_sq_dist(X, self.cluster_centers_, labels))

    def fit(self, X: Any, weights: Any = None) -> KMeansBase:
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


class KMeans(KMeansBase):
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
    algorithm : {"auto", "lloyd", "yinyang"}
        ``"lloyd"`` searches every point's nearest centre each iteration; ``"yinyang"``
        skips points whose assignment provably did not change (Hamerly/Yinyang bounds) and
        gives the same result; ``"auto"`` adds, for 50 000 points or more (of at most 4
        dimensions), first stages on grid-cell means (32 for small K, 64 and 128 cells per
        axis, see the module notes), which reach a local minimum of the same quality
        faster, and the compiled E step for three dimensions (the same labels as the
        numpy form, two to three times faster).  All stop by the same rule on the full
        data.
    working_memory_mib : float
        Budget for the temporary (chunk, K) arrays.
    rel_tol : float
        Also stop a stage (a grid-cell stage or the points) as soon as one iteration
        lowered the inertia by at most ``rel_tol`` times its value (0, the default: off).
        The last iterations of a large fit each gain a few thousandths of a dB;
        :func:`palette_rel_tol` is what the product's palettes use.
    locked : array_like of shape (L, D) or None
        Locked centres (L <= K, distinct): they are the first L centres of the result,
        exactly, and never move; the other K - L are seeded around them (k-means++ goes on
        from them) and fitted.  An ``init`` array's first L rows are replaced by them.
    n_seedings : int
        Seedings tried in each run (not with an ``init`` array).  Each is refined on the
        coarsest grid-cell stage (without stages: fitted to the end), and only the best goes
        on to the finer stages and the points, so the extra seedings cost a fraction of a
        restart.
    seeding_score : callable or None
        How the seedings are compared, lower is better: ``seeding_score(centers, points,
        weights, labels)`` with the centres (K, D) and the points (M, D), weights (M,) and
        labels (M,) of the stage they are compared on, uncentred.  None: by inertia.  The
        product's palette fits compare mean OKLab errors (:mod:`quantize.pipeline`).

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
        locked: np.ndarray | None = None,
        rel_tol: float = 0.0,
        n_seedings: int = 1,
        seeding_score: SeedingScore | None = None,
    ) -> None:
        self.n_colors = n_colors
        self.rel_tol = rel_tol
        self.n_seedings = n_seedings
        self.seeding_score = seeding_score
        self.init = init
        self.locked = locked
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed
        self.algorithm = algorithm
        self.working_memory_mib = working_memory_mib

    @staticmethod
    def _seed(
        run_init: Any,
        X: np.ndarray,
        w: np.ndarray,
        locked: np.ndarray | None,
        K: int,
        rng: np.random.Generator,
        wm: float,
        should_cancel: CancelCallback | None,
    ) -> np.ndarray:
        """Return the initial centres (K, D) of one run: an init array, or drawn from ``X``."""
        if isinstance(run_init, np.ndarray):
            return np.array(run_init[:K], dtype=np.float64)
        if locked is not None:
            return seed_around_locked(
                X, w, locked, K - locked.shape[0], rng, run_init, wm, should_cancel
            )
        if run_init == "k-means++":
            return greedy_kmeans_plusplus(X, w, K, rng, None, wm, should_cancel)[0]
        return random_seeds(X, w, K, rng)

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
        locked = check_locked(self.locked, K_req, D)
        self.warnings_ = []
        self.n_features_in_ = D
        mean, var = weighted_mean_var(X, w)
        self._offset = mean
        Xc = X - mean
        tol_abs = tol * var
        rel_tol = check_positive_float(self.rel_tol, "rel_tol", allow_zero=True)

        # coarse-to-fine stages: (cell means, weights, within-cell scatter, tolerance factor)
        stages: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        init_cells = None  # the cells that k-means++ (or random) initialisation draws from
        if (
            self.algorithm == "auto"
            and n >= _SEED_CELLS_MIN_POINTS
            and D <= _CELLS_MAX_DIMS
            and bool((w > 0).all())
        ):
            tree = CellTree(Xc, w)
            for bits, factor, per_cluster in _CELL_STAGES if n >= _CELLS_MIN_POINTS else ():
                cells = tree.n_cells(bits)
                enough = max(per_cluster, _MIN_CELLS_PER_CLUSTER) * K_req
                if cells * (3 if not stages else 2) <= n and cells >= enough:
                    stages.append((*tree.cells(bits), factor))
            per = _INIT_CELLS_PER_CLUSTER if stages else _INIT_CELLS_PER_CLUSTER_NO_STAGES
            seed_bits = next(
                (b for b in _INIT_BITS if tree.n_cells(b) >= per * K_req),
                _INIT_BITS[-1] if stages else None,  # without stages: the points, if too few
            )
            if seed_bits is not None:
                init_cells = (*tree.cells(seed_bits), 0.0)
        if init_cells is not None and init_cells[0].shape[0] >= K_req:
            n_distinct, distinct_rows = n, None  # >= K occupied cells: >= K distinct points
        else:
            n_distinct, distinct_rows = count_distinct(Xc, w, K_req)
            if distinct_rows is not None:
                init_cells, stages = None, []
        if locked is not None:  # the locked centres count whatever points there are
            locked = locked - mean
            if distinct_rows is not None:
                distinct_rows = drop_coinciding(distinct_rows, locked)
                n_distinct = locked.shape[0] + distinct_rows.shape[0]
                distinct_rows = np.concatenate([locked, distinct_rows])
        if n_distinct < K_req:
            warn_and_record(
                self.warnings_,
                f"only {n_distinct} distinct point(s) for {K_req} clusters: "
                f"K reduced to {n_distinct}",
                QuantizeWarning,
            )
        K = min(K_req, n_distinct)
        self.n_colors_ = K
        use_bounds = self.algorithm in ("auto", "yinyang")
        assigner = Assigner(Xc, wm)

        if isinstance(init, np.ndarray):
            if locked is not None:
                init = np.concatenate([locked + mean, init[locked.shape[0] :]])
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
        cell_assigners = [Assigner(st[0], wm) for st in stages]
        n_locked = 0 if locked is None else locked.shape[0]
        n_seedings = check_positive_int(self.n_seedings, "n_seedings")
        # the grid-cell stages; a fit without them has only the points
        cell_plan = [
            (cm, cw, a, tol_abs * factor, scatter)
            for (cm, cw, scatter, factor), a in zip(stages, cell_assigners, strict=True)
        ]
        point_plan = [(Xc, w, assigner, tol_abs, 0.0)]

        def run_plan(
            plan: list, centers: np.ndarray, r: int, it0: int, hist: list, warn: list
        ) -> Generator[IterationRecord, None, tuple]:
            out: tuple = ()
            for Xs, ws, a, tol_s, scatter in plan:
                # Lloyd on grid-cell means = Lloyd with whole cells assigned together; its
                # J plus the within-cell scatter is the exact full-data J of that partition
                out = yield from _lloyd(
                    Xs,
                    ws,
                    centers,
                    a,
                    max_iter,
                    tol_s,
                    use_bounds,
                    should_cancel,
                    r,
                    mean,
                    stage,
                    warn,
                    objective_offset=scatter,
                    it_offset=it0,
                    n_locked=n_locked,
                    rel_tol=rel_tol,
                    compiled=self.algorithm == "auto",
                )
                centers = out[0]
                hist.append(out[3] + scatter)
                it0 += out[4]
            return out, it0

        for r, run_init in enumerate(runs):
            n_cand = 1 if isinstance(run_init, np.ndarray) else n_seedings
            first = cell_plan[:_SEEDING_STAGES] or point_plan
            rest = cell_plan[_SEEDING_STAGES:] + point_plan if cell_plan else []
            chosen: tuple | None = None  # (score, records, result, iterations, history, warnings)
            for _ in range(n_cand):
                check_cancel(should_cancel)
                centers = self._seed(run_init, Xi, wi, locked, K, rng, wm, should_cancel)
                if centers.shape[0] < K:  # hash said distinct, potential said otherwise
                    K = centers.shape[0]
                    self.n_colors_ = K
                hist_parts: list[np.ndarray] = []
                if n_cand == 1:
                    out, it0 = yield from run_plan(first, centers, r, 0, hist_parts, self.warnings_)
                    chosen = (0.0, [], out, it0, hist_parts, [])
                    break
                records: list[IterationRecord] = []
                warn: list[str] = []
                gen = run_plan(first, centers, r, 0, hist_parts, warn)
                while True:
                    try:
                        records.append(next(gen))
                    except StopIteration as done:
                        out, it0 = done.value
                        break
                Xs, ws = first[-1][:2]
                score = (
                    out[2]
                    if self.seeding_score is None
                    else float(self.seeding_score(out[0] + mean, Xs + mean, ws, out[1]))
                )
                if chosen is None or score < chosen[0]:
                    chosen = (score, records, out, it0, hist_parts, warn)
            assert chosen is not None
            _, records, out, it0, hist_parts, warn = chosen
            self.warnings_.extend(warn)
            yield from records
            if rest:  # the chosen seeding goes on to the points
                out, it0 = yield from run_plan(rest, out[0], r, it0, hist_parts, self.warnings_)
            out = (*out[:3], np.concatenate(hist_parts), it0, out[5])
            self.histories_.append(out[3])
            if best is None or out[2] < best[2]:
                best = out
        assert best is not None
        centers, labels, inertia, history, n_iter, converged = best
        self.cluster_centers_ = centers + mean
        if locked is not None:  # exactly as given, not through the centring's rounding
            self.cluster_centers_[: locked.shape[0]] = check_locked(self.locked, K_req, D)
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
    per = Q - 2.0 * np.einsum("kd,kd->k", centers, S) + W * sq_norms(centers)
    return float(np.maximum(per, 0.0).sum())


def _thread_pool() -> ThreadPoolExecutor | None:
    """Return a pool for the bounded E step (numpy releases the GIL), or None on 1 CPU.

    ``VQ_NUM_THREADS`` caps the threads (a Dask worker of ``vq batch`` gets its own thread
    count, so that N single-threaded workers do not oversubscribe N cores).
    """
    try:
        cap = int(os.environ.get("VQ_NUM_THREADS", "") or 0)
    except ValueError:
        cap = 0
    n = min(cap if cap > 0 else (os.cpu_count() or 1), _MAX_THREADS)
    if n < 2:
        return None
    return ThreadPoolExecutor(n, thread_name_prefix="vq-kmeans")


def _each_slice(
    fn: Callable[[slice], Any],
    slices: list[slice],
    pool: ThreadPoolExecutor | None,
    should_cancel: CancelCallback | None,
) -> list[Any]:
    """``fn`` on every slice, on the pool's threads when there is one; their results."""
    check_cancel(should_cancel)
    if pool is None or len(slices) < 2:
        return [fn(sl) for sl in slices]
    return list(pool.map(fn, slices))


def _lloyd(
    X: np.ndarray,
    w: np.ndarray,
    centers: np.ndarray,
    assigner: Assigner,
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
                X,
                w,
                centers,
                assigner,
                max_iter,
                tol_abs,
                use_bounds,
                *args,
                **{**kwargs, "pool": pool},
            )
        )
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _lloyd_run(
    X: np.ndarray,
    w: np.ndarray,
    centers: np.ndarray,
    assigner: Assigner,
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
    n_locked: int = 0,
    rel_tol: float = 0.0,
    compiled: bool = False,
) -> Generator[IterationRecord, None, tuple]:
    """One Lloyd run.  Returns (centers, labels, inertia, history, n_iter, converged).

    ``objective_offset`` is added to the recorded objectives (the within-cell scatter when
    the points are grid-cell means, see :mod:`quantize.cluster._cells`); ``it_offset`` to the
    recorded iteration numbers.  The first ``n_locked`` centres never move.  Besides the
    shift rule (``tol_abs``), a positive ``rel_tol`` ends the run when an iteration lowered
    the objective (offset included) by at most ``rel_tol`` times its previous value.

    With ``use_bounds`` the E step keeps Yinyang/Hamerly bounds: ``upper[n] >= ||x_n -
    c_{a_n}||`` and, for each group g of centres, ``lower[g, n] <= min ||x_n - c_j||`` over
    the centres j != a_n of that group.  After the centres move, the upper bound grows by
    the move of the point's centre and each group bound shrinks by the largest move in the
    group; a point whose upper bound stays below all its group bounds (or below half the
    distance from its centre to the nearest other centre) provably keeps its centre and
    costs no distance computation.  With ``compiled`` (and the compiled loops available,
    three dimensions) the E step is :func:`quantize._kmeans_numba.bounded_update` instead:
    one lower bound per point and a sorted search, the same labels.  Cluster sums are
    updated incrementally from the points that changed.  The labels are always the exact
    nearest centres, so the result is the same as plain Lloyd.
    """
    n = X.shape[0]
    K = centers.shape[0]
    x_sq = sq_norms(X)
    perm = None
    group_of = None
    n_parts = pool._max_workers if pool is not None else 1
    cuts = np.linspace(0, n, n_parts + 1).astype(int)
    slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(cuts)]
    # the compiled E step (Hamerly bounds and a sorted search; the same labels)
    native = compiled_e_step(n, K, X.shape[1]) if use_bounds and compiled else None
    if native is not None:
        X = np.ascontiguousarray(X, dtype=np.float64)
        centers = np.ascontiguousarray(centers, dtype=np.float64)
    if use_bounds and native is None:
        group_of = centre_groups(centers, n, assigner.working_memory_mib)
        perm = np.argsort(group_of, kind="stable")  # work with groups as contiguous runs
        group_of = group_of[perm]
        centers = centers[perm]
    movable = np.arange(K) >= n_locked
    if perm is not None:
        movable = movable[perm]
    inv_perm = np.argsort(perm) if perm is not None else None
    group_starts = None if group_of is None else find_group_starts(group_of)
    # group-major (G, N) float32 layout: the per-iteration decrement and the min over groups
    # stream half the bytes.  Every value written is lowered by ``eps`` (16 float32 ulps of
    # the largest possible distance), so rounding can never make a bound too large.
    if native is not None:
        eps = float64_margin(assigner.x_sq_max, centers)  # float64 bounds: a finer margin
        labels = np.empty(n, np.int32)
        # the loop also writes each point's second nearest centre, which Lloyd does not use
        up, low, runner = np.empty(n), np.empty(n), np.empty(n, np.int32)

        def search(sl: slice) -> None:
            native.nearest_all(X, centers, (labels, up, low, runner), sl.start, sl.stop)

        _each_slice(search, slices, pool, should_cancel)
        up += eps
        low -= eps
        upper: np.ndarray | None = up
        lower: np.ndarray | None = low
    else:
        eps = 1e-6 * (np.sqrt(assigner.x_sq_max) + float(np.sqrt(sq_norms(centers).max())) + 1e-30)
        labels, d_sq, lower = assigner.search(centers, group_of, should_cancel, pool, eps)
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
        nonempty = (Wk > 0) & movable
        centers[nonempty] = Sk[nonempty] / Wk[nonempty, None]
        empty = np.flatnonzero(~(Wk > 0) & movable)
        if empty.size:
            n_relocated_total += relocate_empty(
                centers, empty, X, w, exact_sq_dist(X, centers, labels)
            )
        inertia_after_m = _stats_inertia(Wk, Sk, Qk, centers)
        shift = np.sqrt(np.einsum("ij,ij->i", centers - old, centers - old))
        # E step
        changed = np.zeros(0, dtype=np.intp)
        a_old = np.zeros(0, dtype=np.int32)
        if native is not None:
            assert upper is not None and lower is not None
            tables = centre_tables(centers, shift, eps)

            def update(
                sl: slice, centers: np.ndarray = centers, tables: tuple = tables
            ) -> tuple[np.ndarray, np.ndarray]:
                state = (labels, upper, lower)
                return native.bounded_update(X, centers, state, tables, eps, sl.start, sl.stop)[:2]

            parts = _each_slice(update, slices, pool, should_cancel)
            changed = np.concatenate([c for c, _ in parts])
            a_old = np.concatenate([o for _, o in parts])
        elif use_bounds:
            assert upper is not None and lower is not None and group_of is not None
            group_shift = np.zeros(int(group_of[-1]) + 1)
            np.maximum.at(group_shift, group_of, shift)
            group_shift = (group_shift + eps).astype(np.float32)
            half = half_min_center_dist(centers)
            direct = K <= _DIRECT_MAX_K  # else the grouped update, on padded group blocks
            layout = None if direct else group_layout(centers, group_of)

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
                    up[cand] = np.sqrt(exact_sq_dist(X[sl][cand], centers, lab[cand]))
                    cand = cand[up[cand] > bound[cand]]
                if not cand.size:
                    return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int32)
                if layout is None:
                    assert group_starts is not None  # bounds are on: the centres have groups
                    return direct_update(
                        X,
                        cand + sl.start,
                        labels,
                        upper,
                        lower,
                        centers,
                        group_starts,
                        should_cancel,
                        assigner.working_memory_mib,
                        eps=eps,
                    )
                return yinyang_update(
                    X,
                    cand + sl.start,
                    labels,
                    upper,
                    lower,
                    layout,
                    group_of,
                    should_cancel,
                    assigner.working_memory_mib,
                    eps=eps,
                )

            parts = _each_slice(part, slices, pool, should_cancel)
            changed = np.concatenate([c for c, _ in parts])
            a_old = np.concatenate([o for _, o in parts]).astype(np.int32)
        else:
            lab_c, _, _ = assigner.search(centers, None, should_cancel, pool)
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
        if (
            rel_tol > 0.0
            and len(history) >= 2
            and history[-2] - history[-1] <= rel_tol * (history[-2] + objective_offset)
        ):
            converged = True
            break
    if n_relocated_total:
        warnings_store.append(
            f"restart {restart}: {n_relocated_total} empty cluster(s) relocated to far points"
        )
    inertia = float(w @ exact_sq_dist(X, centers, labels))
    if history:
        history[-1] = min(history[-1], inertia) if it > 1 else inertia
    if perm is not None and inv_perm is not None:
        centers = centers[inv_perm]
        labels = perm[labels].astype(np.int32)
    return centers, labels, inertia, np.asarray(history, dtype=np.float64), it, converged
