import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGMM
from threadpoolctl import threadpool_limits

from quantize.cluster.gmm import COVARIANCE_TYPES, GaussianMixture
from quantize.protocol import Cancelled, ConvergenceWarning, QuantizeWarning, drain


def blobs(n=1500, k=4, d=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 255, size=(k, d))
    scales = rng.uniform(4, 15, size=(k, d))
    lab = rng.integers(0, k, n)
    return centers[lab] + rng.normal(size=(n, d)) * scales[lab]


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_log_likelihood_close_to_scikit_learn(cov):
    X = blobs()
    ours = GaussianMixture(4, covariance_type=cov, seed=0, tol=1e-6, max_iter=500).fit(X)
    sk = SkGMM(4, covariance_type=cov, random_state=0, tol=1e-6, max_iter=500).fit(X)
    assert ours.score(X) >= sk.score(X) - 1e-2
    np.testing.assert_allclose(ours.score(X), ours.lower_bound_, rtol=1e-12)
    shapes = {"full": (4, 3, 3), "diag": (4, 3), "spherical": (4,), "tied": (3, 3)}
    assert ours.covariances_.shape == shapes[cov] == sk.covariances_.shape
    assert ours.precisions_cholesky_.shape == shapes[cov]


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_same_parameters_same_scores_as_scikit_learn(cov):
    X = blobs(800)
    ours = GaussianMixture(3, covariance_type=cov, seed=1).fit(X)
    sk = SkGMM(3, covariance_type=cov)
    sk.weights_, sk.means_, sk.covariances_ = ours.weights_, ours.means_, ours.covariances_
    sk.precisions_cholesky_ = ours.precisions_cholesky_
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-9)
    np.testing.assert_allclose(ours.bic(X), sk.bic(X), rtol=1e-9)
    np.testing.assert_allclose(ours.aic(X), sk.aic(X), rtol=1e-9)


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random"])
def test_log_likelihood_never_decreases(cov, init):
    X = blobs(1000, 5, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # long runs on purpose
        gm = GaussianMixture(5, covariance_type=cov, init=init, tol=1e-8, max_iter=60).fit(X)
    h = np.concatenate([[gm.initial_log_likelihood_], gm.history_])
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[:-1]))
    assert np.isfinite(h).all()


def test_weighted_equals_repeated():
    rng = np.random.default_rng(3)
    pts = blobs(300, 3, seed=3)
    counts = rng.integers(1, 4, 300)
    init = pts[:3]
    a = GaussianMixture(3, init=init).fit(pts, counts)
    b = GaussianMixture(3, init=init).fit(np.repeat(pts, counts, axis=0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=1e-10)


def test_chunked_equals_unchunked_and_deterministic():
    X = blobs(2000, 4)
    a = GaussianMixture(4, seed=5).fit(X)
    b = GaussianMixture(4, seed=5, working_memory_mib=0.01).fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    np.testing.assert_allclose(a.history_, b.history_, rtol=1e-12)
    c = GaussianMixture(4, seed=5).fit(X)
    np.testing.assert_array_equal(a.means_, c.means_)
    with threadpool_limits(limits=1, user_api="blas"):
        d = GaussianMixture(4, seed=5).fit(X)
        e = GaussianMixture(4, seed=5).fit(X)
    np.testing.assert_array_equal(d.means_, e.means_)
    np.testing.assert_allclose(a.means_, d.means_, rtol=1e-10)


def test_float32_close_to_float64():
    X = blobs(1000, 3)
    a = GaussianMixture(3, init=X[:3]).fit(X)
    b = GaussianMixture(3, init=X[:3].astype(np.float32)).fit(X.astype(np.float32))
    np.testing.assert_allclose(a.means_, b.means_, atol=1e-3)


def test_responsibilities_finite_and_normalised_far_away():
    X = blobs(600, 3)
    gm = GaussianMixture(3, seed=0).fit(X)
    far = np.array([[1e5, -1e5, 1e5], [1e7, 0, 0], [-3e3, 2e3, 5e3]])
    R = gm.predict_proba(np.vstack([X[:50], far]))
    assert np.isfinite(R).all()
    np.testing.assert_allclose(R.sum(axis=1), 1.0, atol=1e-12)
    assert np.isfinite(gm.score_samples(far)).all()
    np.testing.assert_allclose(gm.responsibility(far, 1), R[50:, 1].astype(np.float32))
    np.testing.assert_allclose(gm.max_responsibility(X[:50]), R[:50].max(1), rtol=1e-6)


def test_collapsing_component_never_breaks():
    X = np.vstack([blobs(300, 2), [[500.0, 500.0, 500.0]]])  # a lone outlier
    for reg in (1e-6, 0.0):
        gm = GaussianMixture(3, reg_covar=reg, seed=0, max_iter=200).fit(X)
        assert np.isfinite(gm.means_).all() and np.isfinite(gm.covariances_).all()
        assert np.isfinite(gm.history_).all()
    # duplicated points: a component sits on one value with zero variance
    Y = np.vstack([np.tile([[10.0, 10, 10]], (40, 1)), blobs(200, 2)])
    gm = GaussianMixture(3, reg_covar=0.0, seed=0, max_iter=100).fit(Y)
    assert np.isfinite(gm.score_samples(Y)).all()
    assert any("regularised" in m or "floored" in m for m in gm.warnings_)


def test_dropped_component_is_reported():
    X = blobs(400, 2)
    init = np.vstack([X[:2], [[1e6, 1e6, 1e6]]])  # no point is nearest to the third mean
    gm = GaussianMixture(3, init=init).fit(X)
    assert gm.n_components_ == 2 and gm.means_.shape == (2, 3)
    assert any("dropped" in m for m in gm.warnings_)


def test_fewer_distinct_points_than_components():
    X = np.array([[0.0, 0, 0]] * 20 + [[100.0, 50, 20]] * 10)
    with pytest.warns(QuantizeWarning):
        gm = GaussianMixture(6).fit(X)
    assert gm.n_components_ == 2
    assert np.isfinite(gm.score_samples(X)).all()


def test_max_iter_one_valid_with_warning():
    X = blobs(800, 4)
    with pytest.warns(ConvergenceWarning):
        gm = GaussianMixture(4, max_iter=1, init="random").fit(X)
    assert gm.n_iter_ == 1 and not gm.converged_ and len(gm.history_) == 1
    assert any("max_iter" in m for m in gm.warnings_)
    assert np.isfinite(gm.predict_proba(X)).all()


def test_cancel():
    X = blobs(800, 4)
    n = {"calls": 0}

    def cancel():
        n["calls"] += 1
        return n["calls"] > 5

    with pytest.raises(Cancelled):
        drain(GaussianMixture(4, tol=0, max_iter=50).iter_fit(X, should_cancel=cancel))


def test_records_and_api():
    X = blobs(600, 3)
    gen = GaussianMixture(3, covariance_type="diag").iter_fit(X)
    recs = []
    while True:
        try:
            recs.append(next(gen))
        except StopIteration as stop:
            gm = stop.value
            break
    gmm_recs = [r for r in recs if r.stage == "gmm"]
    kinit = [r for r in recs if r.stage == "kmeans-init"]
    assert kinit and all(r.kind == "inertia" for r in kinit)
    assert len(gmm_recs) == gm.n_iter_
    assert all(r.covariances.shape == (3, 3, 3) and r.weights.shape == (3,) for r in gmm_recs)
    np.testing.assert_allclose([r.objective for r in gmm_recs], gm.history_)
    np.testing.assert_array_equal(gm.predict(X), gm.labels_)
    np.testing.assert_array_equal(gm.predict(X), gm.predict_proba(X).argmax(1))
    n = gm.n_parameters()
    assert n == 3 * 3 + 3 * 3 + 2
    np.testing.assert_allclose(gm.bic(X), -2 * gm.score(X) * 600 + n * np.log(600))
    np.testing.assert_allclose(gm.aic(X), -2 * gm.score(X) * 600 + 2 * n)


def test_validation():
    X = blobs(50, 2)
    for kwargs in (
        {"covariance_type": "weird"},
        {"reg_covar": -1},
        {"init": "nope"},
        {"max_iter": 0},
        {"init": np.zeros((5, 3))},
    ):
        with pytest.raises(ValueError):
            GaussianMixture(2, **kwargs).fit(X)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        GaussianMixture(2).fit(bad)
    with pytest.raises(RuntimeError):
        GaussianMixture(2).predict(X)


def test_inputs_not_mutated():
    X = blobs(300, 2)
    w = np.ones(300)
    Xc, wc = X.copy(), w.copy()
    GaussianMixture(2).fit(X, w)
    np.testing.assert_array_equal(X, Xc)
    np.testing.assert_array_equal(w, wc)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_fewer_distinct_points_with_other_inits(init):
    X = np.array([[0.0, 0, 0]] * 20 + [[100.0, 50, 20]] * 10)
    with pytest.warns(QuantizeWarning, match="K reduced to 2"):
        gm = GaussianMixture(5, init=init).fit(X)
    assert gm.n_components_ == 2
    assert np.isfinite(gm.predict_proba(X)).all()


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_direct_log_joint_equals_the_feature_form(cov):
    from quantize.cluster._gaussian import quadratic_features as _features

    X = blobs(400)
    gm = GaussianMixture(4, covariance_type=cov, seed=0).fit(X)
    params, iu, ju = gm._params, gm._iu, gm._ju
    Xc = X - gm._offset
    by_features = _features(Xc, iu, ju) @ params.score_matrix(iu, ju)
    np.testing.assert_allclose(params.log_joint(Xc), by_features, rtol=1e-9, atol=1e-8)


def test_full_log_joint_is_the_weighted_gaussian_log_density():
    from scipy.stats import multivariate_normal

    from quantize.cluster._gaussian import full_log_joint
    from quantize.cluster._gaussian import jittered_cholesky as _jittered_cholesky

    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3)) * 20 + 100
    means = np.array([[90.0, 100, 110], [120.0, 80, 100]])
    A = rng.normal(size=(2, 3, 3))
    covs = A @ np.swapaxes(A, 1, 2) * 50 + np.eye(3)
    weights = np.array([0.3, 0.7])
    expected = np.stack(
        [
            np.log(w) + multivariate_normal(m, c).logpdf(X)
            for m, c, w in zip(means, covs, weights, strict=True)
        ],
        axis=1,
    )
    np.testing.assert_allclose(full_log_joint(X, means, covs, weights), expected, rtol=1e-10)
    # positive definite matrices are factorised as they are; a singular one gets jitter
    out, chol, jittered = _jittered_cholesky(covs, 0.0)
    assert out is covs and jittered == []
    singular = covs.copy()
    singular[1] = np.diag([4.0, 1.0, 0.0])
    out, chol, jittered = _jittered_cholesky(singular, 0.0)
    assert [k for k, _ in jittered] == [1] and 0 < jittered[0][1] < 1e-6
    np.testing.assert_array_equal(out[0], covs[0])
    np.testing.assert_allclose(chol[1] @ chol[1].T, out[1])
    assert np.isfinite(full_log_joint(X, means, singular, weights)).all()
