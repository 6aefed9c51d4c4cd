"""Mini-batch K-means: stochastic-gradient steps on weighted random batches of points."""

from __future__ import annotations

from collections.abc import Generator
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
from quantize.cluster._common import (
    count_distinct,
    greedy_kmeans_plusplus,
    random_seeds,
    relocate_empty,
    weighted_mean_var,
)
from quantize.cluster._nearest import Assigner, exact_sq_dist
from quantize.cluster.kmeans import KMeansBase
from quantize.protocol import (
    CancelCallback,
    ConvergenceWarning,
    IterationRecord,
    QuantizeWarning,
    check_cancel,
)

__all__ = ["MiniBatchKMeans"]


class MiniBatchKMeans(KMeansBase):
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
        mean, var = weighted_mean_var(X, w)
        self._offset = mean
        Xc = X - mean
        tol_abs = tol * var
        total = w.sum()
        n_distinct, distinct_rows = count_distinct(Xc, w, K_req)
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
            sample_assigner = Assigner(sample, wm)
            for _ in range(n_init):
                if init == "k-means++":
                    c, _ = greedy_kmeans_plusplus(sample, sw, K, rng, None, wm, should_cancel)
                else:
                    c = random_seeds(sample, sw, K, rng)
                _, d, _ = sample_assigner.nearest_two(c, should_cancel)
                j = float(sw @ d)
                if j < best_j:
                    best_c, best_j = c, j
            assert best_c is not None  # n_init >= 1 candidates, each with a finite J
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
            lab, d, _ = Assigner(Xb, wm).nearest_two(centers, should_cancel)
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
        assigner = Assigner(Xc, wm)
        labels, _, _ = assigner.nearest_two(centers, should_cancel)
        wsum = np.bincount(labels, weights=w, minlength=K)
        empty = np.flatnonzero(wsum == 0)
        if empty.size:
            d_sq = exact_sq_dist(Xc, centers, labels)
            moved = relocate_empty(centers, empty, Xc, w, d_sq)
            self.warnings_.append(f"{moved} empty cluster(s) relocated to far points")
            labels, _, _ = assigner.nearest_two(centers, should_cancel)
        d_sq = exact_sq_dist(Xc, centers, labels)
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
