"""Gaussian mixtures fitted by EM on weighted points.

``p(x) = sum_k pi_k N(x | mu_k, Sigma_k)``.  The E step computes responsibilities
``gamma_nk`` in the log domain (log-sum-exp); the M step sets
``mu_k = sum_n w_n gamma_nk x_n / N_k``, ``Sigma_k = sum_n w_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T
/ N_k + reg_covar I`` and ``pi_k = N_k / sum_n w_n`` with ``N_k = sum_n w_n gamma_nk``.

Implementation notes.  For every covariance type the log-density is a quadratic form, so
``log pi_k + log N(x | mu_k, Sigma_k)`` for all K components is one matrix product
``F(x) @ W`` of the quadratic features ``F(x) = [x_i x_j (i <= j), x_i, 1]`` with a (F, K)
matrix built from the precisions (Cholesky of the precision matrices, as in
scikit-learn).  The same pass accumulates the M-step sufficient statistics
``sum_n w_n gamma_nk F(x_n)``, so one EM iteration reads the data once, in chunks within a
working-memory budget.  Data are centred on their weighted mean first, which keeps the
second moments well conditioned.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import numpy as np

from quantize._blas import matmul, one_blas_thread
from quantize._chunks import DEFAULT_WORKING_MEMORY_MIB, chunk_size, iter_chunks
from quantize._validation import (
    check_points,
    check_positive_float,
    check_positive_int,
    check_seed,
    warn_and_record,
)
from quantize.cluster._common import count_distinct, greedy_kmeans_plusplus
from quantize.cluster._gaussian import (
    GaussianParams,
    full_log_joint,
    full_params,
    jittered_cholesky,
    log_resp_chunk,
    quadratic_features,
)
from quantize.cluster._locked import check_locked, pin_mixture_stats, seed_around_locked
from quantize.cluster._nearest import Assigner
from quantize.cluster.kmeans import KMeans
from quantize.options import COVARIANCE_TYPES as _COVARIANCES
from quantize.protocol import (
    CancelCallback,
    ConvergenceWarning,
    IterationRecord,
    QuantizeWarning,
    check_cancel,
    drain,
)

__all__ = ["COVARIANCE_TYPES", "GaussianMixture", "full_log_joint"]

COVARIANCE_TYPES: tuple[str, ...] = _COVARIANCES.names
_MAX_CHUNK_ROWS = 32768  # cache-friendly chunks even when the budget allows more
#: fits on at least this many (distinct) points start on grid cells: a 1-megapixel photo has
#: 50 000-360 000 distinct colours, which the cells reduce to 4 000-25 000 (benchmarks/README)
GRID_MIN_POINTS = 20_000
#: cells per axis of that grid over the points' bounding box
GRID_CELLS_PER_AXIS = 32


def grid_cell_features(
    X: np.ndarray,
    w: np.ndarray,
    iu: np.ndarray,
    ju: np.ndarray,
    features: np.ndarray | None = None,
    cells_per_axis: int = GRID_CELLS_PER_AXIS,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean quadratic features of the points in each cell of a regular grid.

    The log-density of every component is linear in the quadratic features ``F(x)``, so
    EM on the rows returned here with the cells' weights is EM on the points with one
    responsibility shared by all points of a cell: the E step gives each cell
    ``softmax_k(mean_{x in cell} log pi_k N(x | k))`` (the best shared responsibilities,
    a variational E step, so the log-likelihood bound never decreases) and the M step gets
    the exact weighted first and second moments of the points, within-cell scatter
    included.  As the cells are small next to the components, the fixed point is close to
    the points' own; the fit then finishes on the points.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        Points (centred).
    w : ndarray of shape (N,)
        Weights.
    iu, ju : ndarray
        Upper-triangle indices of the quadratic features.
    features : ndarray of shape (N, F), optional
        ``quadratic_features(X)`` if already computed.
    cells_per_axis : int
        Grid resolution.

    Returns
    -------
    cell_features : ndarray of shape (C, F)
        Weighted mean features of the C occupied cells.
    cell_weights : ndarray of shape (C,)
    """
    lo = X.min(axis=0)
    span = np.maximum(X.max(axis=0) - lo, 1e-12)
    idx = np.minimum(((X - lo) / span * cells_per_axis).astype(np.int64), cells_per_axis - 1)
    code = np.zeros(X.shape[0], dtype=np.int64)
    for d in range(X.shape[1]):
        code = code * cells_per_axis + idx[:, d]
    _, inverse = np.unique(code, return_inverse=True)
    inverse = inverse.ravel()
    n_cells = int(inverse.max()) + 1
    Wc = np.bincount(inverse, weights=w, minlength=n_cells)
    F = features if features is not None else quadratic_features(X, iu, ju)
    Fc = np.empty((n_cells, F.shape[1]))
    for f in range(F.shape[1]):
        Fc[:, f] = np.bincount(inverse, weights=w * F[:, f], minlength=n_cells)
    Fc /= Wc[:, None]
    return Fc, Wc


class GaussianMixture:
    """Gaussian mixture model fitted by EM on weighted points.

    Parameters
    ----------
    n_colors : int
        Number of components K (``n_components`` in scikit-learn, kept as an alias).
    covariance_type : {"full", "diag", "spherical", "tied"}
        Form of the covariances (storage as in scikit-learn: (K, D, D), (K, D), (K,),
        (D, D)).
    reg_covar : float
        Added to the diagonal of every covariance, keeping them positive definite.
    init : {"kmeans", "k-means++", "random"} or array_like of shape (K, D)
        ``"kmeans"`` runs weighted K-means and starts from its partition; ``"k-means++"``
        from the partition of k-means++ seeds; ``"random"`` from random responsibilities;
        an array gives the initial means (covariances and weights then come from the
        partition of the points by nearest given mean).
    max_iter : int
        Maximum EM iterations per restart.
    tol : float
        Stop when the mean log-likelihood per (weighted) point improves by less than this.
    seed : int or numpy.random.Generator
        Randomness.
    n_init : int
        Restarts; the one with the highest final log-likelihood is kept.
    working_memory_mib : float
        Budget for the temporary (chunk, K) arrays of the E step.
    locked : array_like of shape (L, D) or None
        Locked means (L <= K, distinct): the first L components keep them exactly in every
        M step (their covariances and weights are fitted) and are never dropped; the
        initialisation seeds the others around them.
    grid_cells : bool
        With more than :data:`GRID_MIN_POINTS` points, run EM first on the cells of a
        regular grid (:func:`grid_cell_features`; E step shared by the points of a cell),
        then finish on the points.  Same fixed point, a fraction of the time.

    Attributes
    ----------
    means_ : ndarray of shape (K', D)
    covariances_ : ndarray
        (K', D, D), (K', D), (K',) or (D, D) by ``covariance_type``.
    weights_ : ndarray of shape (K',)
    precisions_cholesky_ : ndarray
        Cholesky factors of the precision matrices (same shapes as ``covariances_``).
    history_ : ndarray of shape (n_iter_,)
        Mean log-likelihood after each EM iteration of the chosen run (non-decreasing).
    initial_log_likelihood_ : float
        Mean log-likelihood of the initial parameters of the chosen run.
    lower_bound_ : float
        Final mean log-likelihood.
    labels_ : ndarray of shape (N,), int32
        Most probable component of each training point under the final parameters.
    n_iter_ : int
    converged_ : bool
    warnings_ : list of str
    n_colors_ : int
        Effective K' (components dropped after collapsing, or fewer distinct points);
        ``n_components_`` is an alias.
    """

    def __init__(
        self,
        n_colors: int = 8,
        *,
        covariance_type: str = "full",
        reg_covar: float = 1e-6,
        init: str | np.ndarray = "kmeans",
        max_iter: int = 100,
        tol: float = 1e-3,
        seed: int | np.random.Generator | None = 0,
        n_init: int = 1,
        working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
        locked: np.ndarray | None = None,
        grid_cells: bool = True,
    ) -> None:
        self.grid_cells = grid_cells
        self.n_colors = n_colors
        self.locked = locked
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed
        self.n_init = n_init
        self.working_memory_mib = working_memory_mib

    # ------------------------------------------------------------------ fitting
    @property
    def n_components(self) -> int:
        """Alias of ``n_colors`` (scikit-learn's name)."""
        return self.n_colors

    @property
    def n_components_(self) -> int:
        """Alias of ``n_colors_`` (scikit-learn's name)."""
        return self.n_colors_

    def iter_fit(
        self,
        X: Any,
        weights: Any = None,
        *,
        should_cancel: CancelCallback | None = None,
    ) -> Generator[IterationRecord, None, GaussianMixture]:
        """Fit step by step, yielding one record per EM iteration.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points (not modified).
        weights : array_like of shape (N,) or None
            Non-negative point weights (pixel counts).
        should_cancel : callable or None
            Polled between iterations and between chunks of the E step.

        Yields
        ------
        record : IterationRecord
            ``kind="log_likelihood"``; records of a K-means initialisation come first with
            ``stage="kmeans-init"``.

        Returns
        -------
        self : GaussianMixture
        """
        X, w = check_points(X, weights)
        K_req = check_positive_int(self.n_colors, "n_colors")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        n_init = check_positive_int(self.n_init, "n_init")
        tol = check_positive_float(self.tol, "tol")
        reg = check_positive_float(self.reg_covar, "reg_covar")
        check_positive_float(self.working_memory_mib, "working_memory_mib", allow_zero=False)
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {COVARIANCE_TYPES}, got {self.covariance_type!r}"
            )
        init = self.init
        n, D = X.shape
        if isinstance(init, str):
            if init not in ("kmeans", "k-means++", "random"):
                raise ValueError(
                    f"init must be 'kmeans', 'k-means++', 'random' or an array, got {init!r}"
                )
        else:
            init = np.asarray(init, dtype=np.float64)
            if init.ndim == 1 and D == 1:
                init = init[:, None]
            if init.shape != (K_req, D) or not np.isfinite(init).all():
                raise ValueError(f"init means must be a finite ({K_req}, {D}) array")
        rng = check_seed(self.seed)
        locked = check_locked(self.locked, K_req, D)
        self.warnings_: list[str] = []
        self.n_features_in_ = D
        self._reg = reg
        total = w.sum()
        offset = (w @ X) / total
        self._offset = offset
        self._locked = None if locked is None else locked - offset
        Xc = X - offset
        iu, ju = np.triu_indices(D)
        self._iu, self._ju = iu, ju
        nf = iu.size + D + 1
        # the quadratic features are reused by every EM iteration when they fit the budget
        fits = n * nf * 8 <= 2 * self.working_memory_mib * 2**20
        self._features_cache = quadratic_features(Xc, iu, ju) if fits else None

        K = K_req
        if isinstance(init, str) and init != "kmeans":  # K-means reports this itself
            n_distinct, _ = count_distinct(Xc, w, K_req)
            if n_distinct < K_req:
                warn_and_record(
                    self.warnings_,
                    f"only {n_distinct} distinct point(s) for {K_req} components: "
                    f"K reduced to {n_distinct}",
                    QuantizeWarning,
                )
                K = max(n_distinct, 0 if locked is None else locked.shape[0])
        best: dict[str, Any] | None = None
        runs = 1 if isinstance(init, np.ndarray) else n_init
        cells = None
        # (locked means: EM on the points only, the way issue 11 tested them)
        if self.grid_cells and locked is None and n >= GRID_MIN_POINTS:
            cells = grid_cell_features(Xc, w, iu, ju, self._features_cache)
            if cells[0].shape[0] < 4 * K_req:  # too few cells to tell the components apart
                cells = None
        if cells is None:
            for r in range(runs):
                check_cancel(should_cancel)
                params = yield from self._initial_params(Xc, w, K, init, rng, should_cancel)
                run = yield from self._em(Xc, w, params, r, max_iter, tol, should_cancel)
                if best is None or run["ll"] > best["ll"]:
                    best = run
        else:
            # every restart on the cells (cheap), then only the best one on the points
            Fc, Wc = cells
            Mc = np.ascontiguousarray(Fc[:, iu.size : iu.size + D])  # cell means
            points_cache, self._features_cache = self._features_cache, Fc
            try:
                for r in range(runs):
                    check_cancel(should_cancel)
                    params = yield from self._initial_params(Mc, Wc, K, init, rng, should_cancel)
                    coarse = yield from self._em(
                        Mc,
                        Wc,
                        params,
                        r,
                        max_iter,
                        tol,
                        should_cancel,
                        stage="gmm-cells",
                        final_labels=False,
                    )
                    if best is None or coarse["ll"] > best["ll"]:
                        best = coarse
            finally:
                self._features_cache = points_cache
            assert best is not None
            done = int(best["n_iter"])
            run = yield from self._em(
                Xc,
                w,
                best["params"],
                best["restart"],
                max(1, max_iter - done),
                tol,
                should_cancel,
                first_iteration=done + 1,
            )
            run["history"] = best["history"] + run["history"]
            run["n_iter"] += done
            best = run
        assert best is not None
        p: GaussianParams = best["params"]
        self.means_ = p.means + offset
        if locked is not None:  # exactly as given, not through the centring's rounding
            self.means_[: locked.shape[0]] = locked
        self.covariances_ = p.covariances
        self.weights_ = p.weights
        self.precisions_cholesky_ = p.prec_chol
        self.history_ = np.asarray(best["history"], dtype=np.float64)
        self.initial_log_likelihood_ = float(best["ll0"])
        self.lower_bound_ = float(best["ll"])
        self.labels_ = best["labels"]
        self.n_iter_ = int(best["n_iter"])
        self.converged_ = bool(best["converged"])
        self.n_colors_ = p.K
        self._params = p
        self._features_cache = None
        self._locked = None
        if not self.converged_:
            warn_and_record(
                self.warnings_,
                f"EM stopped at max_iter={max_iter} before the log-likelihood gain fell "
                f"below tol={tol}",
                ConvergenceWarning,
            )
        return self

    def fit(self, X: Any, weights: Any = None) -> GaussianMixture:
        """Fit to weighted points (drains :meth:`iter_fit`).

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.
        weights : array_like of shape (N,) or None
            Point weights.

        Returns
        -------
        self
        """
        return drain(self.iter_fit(X, weights))

    def _initial_params(
        self,
        X: np.ndarray,
        w: np.ndarray,
        K: int,
        init: str | np.ndarray,
        rng: np.random.Generator,
        should_cancel: CancelCallback | None,
    ) -> Generator[IterationRecord, None, GaussianParams]:
        wm = float(self.working_memory_mib)
        if isinstance(init, str) and init == "random":
            stats = self._random_resp_stats(X, w, K, rng, should_cancel)
            return self._m_step(stats, w.sum(), None)
        locked = self._locked
        if isinstance(init, np.ndarray):
            centers = init - self._offset
            if locked is not None:
                centers = np.concatenate([locked, centers[locked.shape[0] :]])
        elif init == "kmeans":
            km = KMeans(
                K,
                n_init=1,
                seed=int(rng.integers(2**31 - 1)),
                working_memory_mib=wm,
                locked=locked,
            )
            yield from km.iter_fit(X, w, should_cancel=should_cancel, stage="kmeans-init")
            for msg in km.warnings_:
                self.warnings_.append(f"K-means initialisation: {msg}")
            centers = km.cluster_centers_  # X is already centred
        elif locked is not None:
            centers = seed_around_locked(
                X, w, locked, K - locked.shape[0], rng, "k-means++", wm, should_cancel
            )
        else:
            centers, _ = greedy_kmeans_plusplus(X, w, K, rng, None, wm, should_cancel)
        labels, _, _ = Assigner(X, wm).nearest_two(centers, should_cancel)
        stats = self._hard_stats(X, w, labels, centers.shape[0], should_cancel)
        given = centers if isinstance(init, np.ndarray) or locked is not None else None
        return self._m_step(stats, w.sum(), given)

    def _hard_stats(
        self,
        X: np.ndarray,
        w: np.ndarray,
        labels: np.ndarray,
        K: int,
        should_cancel: CancelCallback | None,
    ) -> np.ndarray:
        nf = self._iu.size + X.shape[1] + 1
        stats = np.zeros((K, nf))
        rows = chunk_size(X.shape[0], 8 * nf * 2, self.working_memory_mib)
        for sl in iter_chunks(X.shape[0], rows):
            check_cancel(should_cancel)
            F = self._chunk_features(X, sl) * w[sl, None]
            for f in range(nf):
                stats[:, f] += np.bincount(labels[sl], weights=F[:, f], minlength=K)
        return stats

    def _random_resp_stats(
        self,
        X: np.ndarray,
        w: np.ndarray,
        K: int,
        rng: np.random.Generator,
        should_cancel: CancelCallback | None,
    ) -> np.ndarray:
        nf = self._iu.size + X.shape[1] + 1
        stats = np.zeros((K, nf))
        rows = chunk_size(X.shape[0], 8 * (nf + 2 * K), self.working_memory_mib)
        for sl in iter_chunks(X.shape[0], rows):
            check_cancel(should_cancel)
            R = rng.random((sl.stop - sl.start, K))
            R /= R.sum(axis=1, keepdims=True)
            R *= w[sl, None]
            stats += matmul(R.T, self._chunk_features(X, sl))
        return stats

    def _m_step(
        self, stats: np.ndarray, total: float, given_means: np.ndarray | None
    ) -> GaussianParams:
        """Parameters from sufficient statistics; collapsed components are dropped."""
        iu, ju = self._iu, self._ju
        D = self.n_features_in_
        locked = getattr(self, "_locked", None)
        if locked is not None:  # locked means stay, and their components stay alive
            stats, pinned = pin_mixture_stats(stats, locked, D)
            if given_means is None:
                given_means = pinned
            else:
                given_means = np.concatenate([locked, given_means[locked.shape[0] :]])
        nk = stats[:, -1]
        alive = nk > 1e-9 * total
        if not alive.all():
            if not alive.any():  # keep the heaviest one
                alive[int(np.argmax(nk))] = True
            dropped = np.flatnonzero(~alive)
            self.warnings_.append(
                f"{dropped.size} mixture component(s) collapsed (weight ~ 0) and were dropped"
            )
            stats = stats[alive]
            nk = nk[alive]
            if given_means is not None:
                given_means = given_means[alive]
        K = stats.shape[0]
        S1 = stats[:, iu.size : iu.size + D]
        S2 = np.empty((K, D, D))
        S2[:, iu, ju] = stats[:, : iu.size]
        S2[:, ju, iu] = stats[:, : iu.size]
        means = S1 / nk[:, None]
        if given_means is None:
            scatter = S2 - nk[:, None, None] * means[:, :, None] * means[:, None, :]
        else:
            g = given_means
            scatter = (
                S2
                - S1[:, :, None] * g[:, None, :]
                - g[:, :, None] * S1[:, None, :]
                + nk[:, None, None] * g[:, :, None] * g[:, None, :]
            )
            means = g.copy()
        cov_full = scatter / nk[:, None, None]
        weights = nk / nk.sum()
        return self._make_params(means, cov_full, weights, scatter, nk)

    def _make_params(
        self,
        means: np.ndarray,
        cov_full: np.ndarray,
        weights: np.ndarray,
        scatter: np.ndarray,
        nk: np.ndarray,
    ) -> GaussianParams:
        reg = self._reg
        K, D = means.shape
        ct = self.covariance_type
        diag_idx = np.arange(D)
        if ct == "full":
            cov = 0.5 * (cov_full + np.swapaxes(cov_full, 1, 2))
            cov[:, diag_idx, diag_idx] += reg
            params, jittered = full_params(means, cov, weights, reg)
            self._note_jitter(jittered)
            return params
        elif ct == "tied":
            cov = scatter.sum(axis=0) / nk.sum()
            cov = 0.5 * (cov + cov.T)
            cov[diag_idx, diag_idx] += reg
            cov1, chol, jittered = jittered_cholesky(cov[None], reg)
            self._note_jitter(jittered)
            cov = cov1[0]
            prec_chol = np.linalg.inv(chol[0]).T
        elif ct == "diag":
            cov = np.maximum(cov_full[:, diag_idx, diag_idx], 0.0) + reg
            cov = self._floor(cov)
            prec_chol = 1.0 / np.sqrt(cov)
        else:
            cov = np.maximum(cov_full[:, diag_idx, diag_idx], 0.0).mean(axis=1) + reg
            cov = self._floor(cov)
            prec_chol = 1.0 / np.sqrt(cov)
        return GaussianParams(means, cov, weights, ct, prec_chol)

    def _floor(self, var: np.ndarray) -> np.ndarray:
        if (var > 0).all():
            return var
        self.warnings_.append("a variance was zero (reg_covar=0): floored at 1e-12")
        return np.maximum(var, 1e-12)

    def _note_jitter(self, jittered: list[tuple[int, float]]) -> None:
        """Record a warning for every covariance :func:`jittered_cholesky` had to fix."""
        for k, jitter in jittered:
            self.warnings_.append(
                f"component {k}: covariance not positive definite, regularised with "
                f"{jitter:.3g} on the diagonal"
            )

    def _chunk_features(self, X: np.ndarray, sl: slice) -> np.ndarray:
        """Quadratic features of the training rows ``sl`` (from the cache when it is kept)."""
        cache = getattr(self, "_features_cache", None)
        return cache[sl] if cache is not None else quadratic_features(X[sl], self._iu, self._ju)

    def _e_pass(
        self,
        X: np.ndarray,
        w: np.ndarray,
        params: GaussianParams,
        should_cancel: CancelCallback | None,
        features: np.ndarray | None = None,
    ) -> tuple[float, np.ndarray]:
        """Weighted total log-likelihood and the M-step statistics (K, F) in one pass.

        ``features`` (rows ``F``): use these rows instead of the points' features (the grid
        cells' mean features, with ``w`` the cells' weights).
        """
        with one_blas_thread():
            return self._e_pass_body(X, w, params, should_cancel, features)

    def _e_pass_body(
        self,
        X: np.ndarray,
        w: np.ndarray,
        params: GaussianParams,
        should_cancel: CancelCallback | None,
        features: np.ndarray | None,
    ) -> tuple[float, np.ndarray]:
        W = params.score_matrix(self._iu, self._ju)
        K = params.K
        nf = W.shape[0]
        stats = np.zeros((K, nf))
        ll = 0.0
        n_rows = X.shape[0] if features is None else features.shape[0]
        rows = min(
            _MAX_CHUNK_ROWS, chunk_size(n_rows, 8 * (2 * nf + 2 * K), self.working_memory_mib)
        )
        Wt = np.ascontiguousarray(W.T)
        for sl in iter_chunks(n_rows, rows):
            check_cancel(should_cancel)
            F = self._chunk_features(X, sl) if features is None else features[sl]
            # component-major (K, rows): the max and the sum over the K components are then
            # K - 1 element-wise passes over long rows instead of one short reduction per
            # point (the E step ran 1.7x slower point-major on 170 000 colours, K = 16)
            L = matmul(Wt, F.T)
            m = L.max(axis=0)
            L -= m
            np.exp(L, out=L)
            tot = L.sum(axis=0)
            ll += float(w[sl] @ (m + np.log(tot)))
            L *= w[sl] / tot  # responsibilities times point weights
            stats += matmul(L, F)
        return ll, stats

    def _labels_pass(self, X: np.ndarray, params: GaussianParams) -> np.ndarray:
        """Most probable component (argmax of the log joint) for every point."""
        W = params.score_matrix(self._iu, self._ju)
        labels = np.empty(X.shape[0], dtype=np.int32)
        with one_blas_thread():
            self._labels_chunks(X, W, labels)
        return labels

    def _labels_chunks(self, X: np.ndarray, W: np.ndarray, labels: np.ndarray) -> None:
        rows = min(
            _MAX_CHUNK_ROWS,
            chunk_size(X.shape[0], 8 * (W.shape[0] + W.shape[1]), self.working_memory_mib),
        )
        Wt = np.ascontiguousarray(W.T)
        for sl in iter_chunks(X.shape[0], rows):
            labels[sl] = matmul(Wt, self._chunk_features(X, sl).T).argmax(axis=0)

    def _em(
        self,
        X: np.ndarray,
        w: np.ndarray,
        params: GaussianParams,
        restart: int,
        max_iter: int,
        tol: float,
        should_cancel: CancelCallback | None,
        *,
        features: np.ndarray | None = None,
        stage: str = "gmm",
        final_labels: bool = True,
        first_iteration: int = 1,
    ) -> Generator[IterationRecord, None, dict[str, Any]]:
        total = w.sum()
        ll_sum, stats = self._e_pass(X, w, params, should_cancel, features)
        ll = ll_sum / total
        ll0 = ll
        history: list[float] = []
        converged = False
        it = 0
        for it in range(1, max_iter + 1):
            check_cancel(should_cancel)
            new = self._m_step(stats, total, None)
            old_means = params.means
            params = new
            ll_sum, stats = self._e_pass(X, w, params, should_cancel, features)
            prev, ll = ll, ll_sum / total
            history.append(ll)
            shift = 0.0  # not defined when a component was dropped
            if params.means.shape == old_means.shape:
                shift = float(np.sqrt(((params.means - old_means) ** 2).sum(axis=1)).max())
            yield IterationRecord(
                restart=restart,
                iteration=first_iteration + it - 1,
                objective=ll,
                kind="log_likelihood",
                shift=shift,
                centers=params.means + self._offset,
                covariances=params.full_covariances(),
                weights=params.weights.copy(),
                stage=stage,
                extra={"initial_log_likelihood": ll0} if first_iteration + it == 2 else {},
            )
            if abs(ll - prev) < tol:
                converged = True
                break
        labels = self._labels_pass(X, params) if final_labels else np.zeros(0, np.int32)
        return {
            "restart": restart,
            "params": params,
            "ll": ll,
            "ll0": ll0,
            "history": history,
            "labels": labels,
            "n_iter": it,
            "converged": converged,
        }

    @classmethod
    def from_parameters(
        cls,
        means: Any,
        covariances: Any,
        weights: Any,
        *,
        covariance_type: str = "full",
        working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    ) -> GaussianMixture:
        """Make a fitted mixture from its parameters (a saved colour model), without fitting.

        Parameters
        ----------
        means : array_like of shape (K, D)
        covariances : array_like
            (K, D, D), (K, D), (K,) or (D, D) by ``covariance_type``; positive definite.
        weights : array_like of shape (K,)
            Positive, normalised here to sum to 1.
        covariance_type : {"full", "diag", "spherical", "tied"}
        working_memory_mib : float
            Budget of the inference's temporaries.

        Returns
        -------
        gmm : GaussianMixture
            Ready for :meth:`predict`, :meth:`responsibility`, :meth:`log_joint`...

        Raises
        ------
        ValueError
            Shapes that do not agree, non-finite values, weights not positive or a
            covariance that is not positive definite.
        """
        means = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        if means.ndim != 2 or means.shape[0] < 1:
            raise ValueError(f"means must have shape (K, D), got {means.shape}")
        K, D = means.shape
        expected = {"full": (K, D, D), "diag": (K, D), "spherical": (K,), "tied": (D, D)}
        if covariance_type not in expected:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}")
        if cov.shape != expected[covariance_type]:
            raise ValueError(
                f"{covariance_type} covariances must have shape {expected[covariance_type]}, "
                f"got {cov.shape}"
            )
        if w.shape != (K,):
            raise ValueError(f"weights must have shape ({K},), got {w.shape}")
        if not (np.isfinite(means).all() and np.isfinite(cov).all() and np.isfinite(w).all()):
            raise ValueError("means, covariances and weights must be finite")
        if not (w > 0).all():
            raise ValueError("weights must be positive")
        if covariance_type in ("full", "tied"):
            full = cov if covariance_type == "full" else cov[None]
            if not np.allclose(full, np.swapaxes(full, 1, 2), rtol=1e-6, atol=1e-12):
                raise ValueError("covariances must be symmetric")
            try:
                chol = np.linalg.cholesky(full)
            except np.linalg.LinAlgError:
                raise ValueError("a covariance is not positive definite") from None
            prec = np.swapaxes(np.linalg.inv(chol), 1, 2)
            prec_chol = prec if covariance_type == "full" else prec[0]
        else:
            if not (cov > 0).all():
                raise ValueError("variances must be positive")
            prec_chol = 1.0 / np.sqrt(cov)
        self = cls(K, covariance_type=covariance_type, working_memory_mib=working_memory_mib)
        given = w.copy()  # kept as given: a saved model writes back the same numbers
        w = w / w.sum()
        offset = w @ means
        self.n_features_in_ = D
        self._offset = offset
        self._iu, self._ju = np.triu_indices(D)
        self._params = GaussianParams(means - offset, cov, w, covariance_type, prec_chol)
        self.means_ = means.copy()
        self.covariances_ = cov.copy()
        self.weights_ = given
        self.precisions_cholesky_ = prec_chol
        self.n_colors_ = K
        self.history_ = np.zeros(0)
        self.n_iter_ = 0
        self.converged_ = True
        self.warnings_ = []
        self.labels_ = np.zeros(0, dtype=np.int32)
        return self

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "_params"):
            raise RuntimeError("this GaussianMixture is not fitted yet; call fit first")

    def _prep(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X, _ = check_points(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model {self.n_features_in_}")
        return X - self._offset

    def _iter_resp(self, Xc: np.ndarray) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        W = self._params.score_matrix(self._iu, self._ju)
        rows = chunk_size(
            Xc.shape[0], 8 * (2 * W.shape[0] + 2 * W.shape[1]), self.working_memory_mib
        )
        for sl in iter_chunks(Xc.shape[0], rows):
            R, log_p = log_resp_chunk(quadratic_features(Xc[sl], self._iu, self._ju), W)
            yield sl, R, log_p

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities (posterior component probabilities).

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.

        Returns
        -------
        resp : ndarray of shape (N, K), float64
            Rows sum to 1.
        """
        Xc = self._prep(X)
        out = np.empty((Xc.shape[0], self.n_colors_))
        for sl, R, _ in self._iter_resp(Xc):
            out[sl] = R
        return out

    def responsibility(self, X: Any, k: int, dtype: Any = np.float32) -> np.ndarray:
        """Responsibility of component ``k`` only, computed chunk by chunk.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.
        k : int
            Component index.
        dtype : dtype
            Output dtype.

        Returns
        -------
        resp_k : ndarray of shape (N,)
        """
        Xc = self._prep(X)
        if not 0 <= int(k) < self.n_colors_:
            raise IndexError(f"component {k} out of range 0..{self.n_colors_ - 1}")
        out = np.empty(Xc.shape[0], dtype=dtype)
        for sl, R, _ in self._iter_resp(Xc):
            out[sl] = R[:, int(k)]
        return out

    def max_responsibility(self, X: Any, dtype: Any = np.float32) -> np.ndarray:
        """Largest responsibility of each point.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.
        dtype : dtype
            Output dtype.

        Returns
        -------
        resp_max : ndarray of shape (N,)
        """
        Xc = self._prep(X)
        out = np.empty(Xc.shape[0], dtype=dtype)
        for sl, R, _ in self._iter_resp(Xc):
            out[sl] = R.max(axis=1)
        return out

    def log_joint(self, X: Any, dtype: Any = np.float32) -> np.ndarray:
        """``log pi_k + log N(x | mu_k, Sigma_k)`` of each point and component, chunk by chunk.

        What the E step turns into responsibilities (a softmax over k); the spatial prior
        of :mod:`quantize.segment` adds to it.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.
        dtype : dtype
            Output dtype.

        Returns
        -------
        log_joint : ndarray of shape (N, K)
        """
        Xc = self._prep(X)
        W = self._params.score_matrix(self._iu, self._ju)
        out = np.empty((Xc.shape[0], W.shape[1]), dtype=dtype)
        rows = chunk_size(Xc.shape[0], 8 * (2 * W.shape[0] + W.shape[1]), self.working_memory_mib)
        for sl in iter_chunks(Xc.shape[0], rows):
            out[sl] = matmul(quadratic_features(Xc[sl], self._iu, self._ju), W)
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of each point.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.

        Returns
        -------
        labels : ndarray of shape (N,), int32
        """
        Xc = self._prep(X)
        out = np.empty(Xc.shape[0], dtype=np.int32)
        for sl, R, _ in self._iter_resp(Xc):
            out[sl] = R.argmax(axis=1)
        return out

    def score_samples(self, X: Any) -> np.ndarray:
        """Log density ``log p(x)`` of each point.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.

        Returns
        -------
        log_p : ndarray of shape (N,)
        """
        Xc = self._prep(X)
        out = np.empty(Xc.shape[0])
        for sl, _, log_p in self._iter_resp(Xc):
            out[sl] = log_p
        return out

    def score(self, X: Any, weights: Any = None) -> float:
        """Weighted mean log-likelihood per point.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.
        weights : array_like of shape (N,) or None
            Point weights.

        Returns
        -------
        mean_log_likelihood : float
        """
        X, w = check_points(X, weights)
        return float(w @ self.score_samples(X) / w.sum())

    def n_parameters(self) -> int:
        """Count the free parameters of the fitted model.

        Returns
        -------
        n : int
        """
        self._check_fitted()
        K, D = self.n_colors_, self.n_features_in_
        cov = {
            "full": K * D * (D + 1) // 2,
            "diag": K * D,
            "spherical": K,
            "tied": D * (D + 1) // 2,
        }[self.covariance_type]
        return int(cov + K * D + K - 1)

    def bic(self, X: Any, weights: Any = None) -> float:
        """Bayesian information criterion (lower is better).

        ``-2 log L + n_params log(n)`` with ``n`` the total weight.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.
        weights : array_like of shape (N,) or None
            Point weights (pixel counts).

        Returns
        -------
        bic : float
        """
        X, w = check_points(X, weights)
        total = w.sum()
        return float(-2.0 * (w @ self.score_samples(X)) + self.n_parameters() * np.log(total))

    def aic(self, X: Any, weights: Any = None) -> float:
        """Akaike information criterion (lower is better): ``-2 log L + 2 n_params``.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Points.
        weights : array_like of shape (N,) or None
            Point weights.

        Returns
        -------
        aic : float
        """
        X, w = check_points(X, weights)
        return float(-2.0 * (w @ self.score_samples(X)) + 2.0 * self.n_parameters())

    def sample(
        self, n_samples: int = 1, seed: int | np.random.Generator | None = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples from the fitted mixture (ancestral sampling).

        A component ``k`` is drawn with probability ``weights_[k]``, then ``x`` from
        ``N(means_[k], Sigma_k)``.

        Parameters
        ----------
        n_samples : int
            Number of samples.
        seed : int or numpy.random.Generator
            Randomness.

        Returns
        -------
        X : ndarray of shape (n_samples, D)
            Samples, grouped by component.
        labels : ndarray of shape (n_samples,), int64
            Component of each sample.
        """
        self._check_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = check_seed(seed)
        counts = rng.multinomial(n_samples, self.weights_ / self.weights_.sum())
        covs = self._params.full_covariances()
        D = self.n_features_in_
        out = np.empty((n_samples, D))
        labels = np.repeat(np.arange(self.n_colors_), counts)
        start = 0
        for k, c in enumerate(counts):
            if c == 0:
                continue
            L = np.linalg.cholesky(covs[k])
            z = rng.standard_normal((int(c), D))
            out[start : start + c] = self.means_[k] + z @ L.T
            start += c
        return out, labels
