"""Every claim of shared/design/SEED-NOTES.md, checked on the real engine."""

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from quantize.cluster._gaussian import GaussianParams
from quantize.cluster.gmm import GaussianMixture
from quantize.cluster.kmeans import KMeans
from quantize.cluster.optimal1d import optimal_1d
from quantize.protocol import ConvergenceWarning


def blobs(n=1200, k=5, d=3, seed=0, spread=14.0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 255, size=(k, d))
    lab = rng.integers(0, k, n)
    return centers[lab] + rng.normal(scale=spread, size=(n, d))


def run(gen):
    recs = []
    while True:
        try:
            recs.append(next(gen))
        except StopIteration as stop:
            return recs, stop.value


# ---------------------------------------------------------------- K-means


@pytest.mark.parametrize("algorithm", ["lloyd", "yinyang"])
def test_j_never_increases_in_either_step(algorithm):
    X = blobs(2000, 8, spread=30)
    w = np.random.default_rng(1).integers(1, 5, len(X))
    recs, km = run(KMeans(10, algorithm=algorithm, init="random", tol=0).iter_fit(X, w))
    prev = None
    for r in recs:
        after_m, after_e = r.extra["inertia_after_m"], r.objective
        assert after_e <= after_m * (1 + 1e-12)  # E step
        if prev is not None:
            assert after_m <= prev * (1 + 1e-12)  # M step
        prev = after_e
    assert np.all(np.diff(km.history_) <= 1e-12 * km.history_[0])


def test_converges_in_finitely_many_steps_to_a_fixed_point():
    X = blobs(1500, 6, spread=25)
    recs, km = run(KMeans(6, tol=0, max_iter=10_000).iter_fit(X))
    assert km.converged_ and km.n_iter_ < 10_000
    assert recs[-1].n_changed == 0
    # fixed point: each centre is the mean of its points, each point is at its nearest centre
    for k in range(6):
        np.testing.assert_allclose(km.cluster_centers_[k], X[km.labels_ == k].mean(0), atol=1e-9)
    d = ((X[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(km.labels_, d.argmin(1))


def test_j_is_the_frobenius_norm_of_the_factorisation():
    X = blobs(500, 4)
    km = KMeans(4).fit(X)
    Z = np.zeros((4, len(X)))
    Z[km.labels_, np.arange(len(X))] = 1.0  # indicator matrix, one 1 per column
    U = km.cluster_centers_.T  # (D, K)
    frob = np.linalg.norm(X.T - U @ Z, "fro") ** 2
    direct = sum(((X[km.labels_ == k] - km.cluster_centers_[k]) ** 2).sum() for k in range(4))
    np.testing.assert_allclose(km.inertia_, frob, rtol=1e-10)
    np.testing.assert_allclose(frob, direct, rtol=1e-10)


def test_restarts_mitigate_bad_local_minima():
    X = blobs(1200, 15, spread=10, seed=4)
    single = KMeans(15, seed=0, init="random").fit(X)
    best = KMeans(15, seed=0, init="random", n_init=5).fit(X)
    finals = [h[-1] for h in best.histories_]
    np.testing.assert_allclose(finals[0], single.inertia_, rtol=1e-12)  # restart 0 = single
    assert np.ptp(finals) > 1e-6 * single.inertia_  # restarts reach different local minima
    np.testing.assert_allclose(best.inertia_, min(finals), rtol=1e-12)
    assert best.inertia_ <= single.inertia_ * (1 + 1e-12)


def test_one_dimensional_global_optimum_beats_every_local_minimum():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, 200), rng.normal(8, 1, 50), rng.normal(30, 4, 400)])
    _, _, J = optimal_1d(x, None, 4)
    locals_ = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for s in range(10):
            locals_.append(KMeans(4, seed=s, init="random").fit(x[:, None]).inertia_)
    assert J <= min(locals_) * (1 + 1e-12)


# ---------------------------------------------------------------- Gaussian mixtures


def test_em_log_likelihood_never_decreases():
    X = blobs(1500, 4)
    recs, gm = run(GaussianMixture(6, init="random", tol=1e-9, max_iter=80).iter_fit(X))
    ll = [r.extra["initial_log_likelihood"] for r in recs[:1]] + [r.objective for r in recs]
    assert np.all(np.diff(ll) >= -1e-11 * np.abs(ll[:-1]))


def test_responsibilities_are_the_posterior_formula():
    X = blobs(400, 3, seed=1)
    gm = GaussianMixture(3, seed=0).fit(X)
    dens = np.column_stack(
        [
            gm.weights_[k] * multivariate_normal(gm.means_[k], gm.covariances_[k]).pdf(X)
            for k in range(3)
        ]
    )
    gamma = dens / dens.sum(1, keepdims=True)
    np.testing.assert_allclose(gm.predict_proba(X), gamma, atol=1e-10)
    np.testing.assert_allclose(gm.score_samples(X), np.log(dens.sum(1)), rtol=1e-10)


def test_m_step_formulas():
    X = blobs(500, 3, seed=2)
    w = np.random.default_rng(0).integers(1, 4, len(X)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, seed=0, max_iter=2, init="random").fit(X, w)
    dens = np.column_stack(
        [
            gm.weights_[k] * multivariate_normal(gm.means_[k], gm.covariances_[k]).pdf(X)
            for k in range(3)
        ]
    )
    gamma = dens / dens.sum(1, keepdims=True) * w[:, None]
    Nk = gamma.sum(0)
    mu = gamma.T @ X / Nk[:, None]
    sigma = np.stack([(gamma[:, k, None] * (X - mu[k])).T @ (X - mu[k]) / Nk[k] for k in range(3)])
    sigma += gm.reg_covar * np.eye(3)
    pi = Nk / w.sum()
    # one more EM step through the engine's own E pass and M step
    Xc = X - gm._offset
    _, stats = gm._e_pass(Xc, w, gm._params, None)
    new = gm._m_step(stats, w.sum(), None)
    np.testing.assert_allclose(new.means + gm._offset, mu, rtol=1e-9)
    np.testing.assert_allclose(new.covariances, sigma, rtol=1e-7)
    np.testing.assert_allclose(new.weights, pi, rtol=1e-10)


def test_kmeans_is_the_small_equal_variance_limit_of_a_mixture():
    X = blobs(800, 4, spread=20)
    km = KMeans(4, seed=0).fit(X)
    gm = GaussianMixture(4, covariance_type="spherical").fit(X)
    K, D = 4, 3
    for sigma2 in (1.0, 1e-2):
        # equal weights, equal spherical variance, means = K-means centres
        gm._params = GaussianParams(
            km.cluster_centers_ - gm._offset,
            np.full(K, sigma2),
            np.full(K, 1.0 / K),
            "spherical",
            np.full(K, 1.0 / np.sqrt(sigma2)),
        )
        R = gm.predict_proba(X)
        np.testing.assert_array_equal(R.argmax(1), km.labels_)
    # in the limit the soft assignments become hard
    assert np.quantile(R.max(1), 0.05) > 1 - 1e-9
    del D


def test_sampling_follows_the_generative_model():
    X = blobs(1000, 3, seed=5)
    gm = GaussianMixture(3, seed=0).fit(X)
    samples, labels = gm.sample(30_000, seed=1)
    freq = np.bincount(labels, minlength=3) / len(labels)
    np.testing.assert_allclose(freq, gm.weights_, atol=0.015)
    for k in range(3):
        sk = samples[labels == k]
        np.testing.assert_allclose(sk.mean(0), gm.means_[k], atol=1.0)
        cov = gm.covariances_[k]
        se = np.sqrt(np.outer(np.diag(cov), np.diag(cov)) / len(sk))  # sampling std error
        assert np.all(np.abs(np.cov(sk.T) - cov) < 5 * se)
    again, _ = gm.sample(30_000, seed=1)
    np.testing.assert_array_equal(samples, again)
