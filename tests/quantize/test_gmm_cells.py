"""The mixture's grid-cell stage: same quality as EM on the points alone, monotone history."""

from __future__ import annotations

import numpy as np

from quantize.cluster.gmm import GRID_MIN_POINTS, GaussianMixture, grid_cell_features


def blobs(n=40_000, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[40, 60, 200], [200, 50, 40], [90, 180, 70], [220, 220, 120.0]])
    X = centres[rng.integers(0, 4, n)] + rng.normal(0, 14, (n, 3))
    w = rng.integers(1, 5, n).astype(float)
    return X, w


def test_cell_features_are_the_exact_weighted_moments():
    X, w = blobs(5000)
    iu, ju = np.triu_indices(3)
    Fc, Wc = grid_cell_features(X - X.mean(0), w, iu, ju, cells_per_axis=8)
    assert np.isclose(Wc.sum(), w.sum())
    Xc = X - X.mean(0)
    # first and second weighted moments of all points are kept exactly
    np.testing.assert_allclose(Wc @ Fc[:, iu.size : iu.size + 3], w @ Xc, rtol=1e-9, atol=1e-6)
    second = np.einsum("n,ni,nj->ij", w, Xc, Xc)
    np.testing.assert_allclose((Wc @ Fc[:, : iu.size]), second[iu, ju], rtol=1e-9)


def test_cells_reach_the_points_fit_and_the_history_never_decreases():
    X, w = blobs()
    assert len(X) >= GRID_MIN_POINTS
    fast = GaussianMixture(4, seed=0, tol=1e-4)
    records = list(fast.iter_fit(X, w))
    slow = GaussianMixture(4, seed=0, tol=1e-4, grid_cells=False).fit(X, w)
    stages = [r.stage for r in records if r.stage != "kmeans-init"]
    assert fast.converged_ and slow.converged_
    assert np.all(np.diff(fast.history_) >= -1e-9)
    assert abs(fast.lower_bound_ - slow.lower_bound_) < 2e-3
    order = np.argsort(fast.means_[:, 0])
    np.testing.assert_allclose(
        fast.means_[order], slow.means_[np.argsort(slow.means_[:, 0])], atol=0.5
    )
    # cells first, then the points; iterations numbered on
    assert stages[0] == "gmm-cells" and stages[-1] == "gmm"
    assert stages == sorted(stages, key=lambda s: s == "gmm")
    its = [r.iteration for r in records if r.stage != "kmeans-init"]
    assert its == list(range(1, len(its) + 1)) == list(range(1, fast.n_iter_ + 1))
    # the final log-likelihood is that of the points
    np.testing.assert_allclose(fast.lower_bound_, fast.score(X, w), rtol=1e-9)
