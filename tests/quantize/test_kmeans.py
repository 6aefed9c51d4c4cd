import threading

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from threadpoolctl import threadpool_limits

from quantize.cluster.kmeans import KMeans, kmeans_plusplus
from quantize.cluster.minibatch import MiniBatchKMeans
from quantize.options import DEFAULTS
from quantize.protocol import Cancelled, ConvergenceWarning, QuantizeWarning, drain


def blobs(n=2000, k=5, d=3, seed=0, spread=12.0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 255, size=(k, d))
    lab = rng.integers(0, k, n)
    return centers[lab] + rng.normal(scale=spread, size=(n, d))


def test_agrees_with_scikit_learn_given_same_init():
    X = blobs(3000, 6)
    init = X[np.random.default_rng(3).choice(len(X), 8, replace=False)]
    ours = KMeans(8, init=init, tol=0.0, max_iter=500).fit(X)
    sk = SkKMeans(8, init=init, n_init=1, tol=0.0, max_iter=500, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=1e-9)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, atol=1e-8)
    np.testing.assert_array_equal(ours.labels_, sk.labels_)


def test_kmeanspp_quality_close_to_scikit_learn():
    X = blobs(3000, 10, spread=20)
    ours = [KMeans(10, seed=s).fit(X).inertia_ for s in range(3)]
    sk = [SkKMeans(10, n_init=1, random_state=s).fit(X).inertia_ for s in range(3)]
    assert np.median(ours) <= np.median(sk) * 1.05


def test_weighted_equals_repeated_points():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, size=(300, 3))
    counts = rng.integers(1, 5, 300)
    rep = np.repeat(pts, counts, axis=0)
    init = pts[:7]
    a = KMeans(7, init=init).fit(pts, counts)
    b = KMeans(7, init=init).fit(rep)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-9)
    np.testing.assert_allclose(a.inertia_, b.inertia_, rtol=1e-10)
    np.testing.assert_array_equal(np.repeat(a.labels_, counts), b.labels_)


@pytest.mark.parametrize("algorithm", ["lloyd", "yinyang"])
def test_chunked_equals_unchunked(algorithm):
    X = blobs(4000, 8, spread=30)
    big = KMeans(12, algorithm=algorithm, seed=2).fit(X)
    small = KMeans(12, algorithm=algorithm, seed=2, working_memory_mib=0.01).fit(X)
    np.testing.assert_array_equal(big.labels_, small.labels_)
    # cluster sums are updated incrementally: equal up to the order of float additions
    np.testing.assert_allclose(big.cluster_centers_, small.cluster_centers_, rtol=1e-12)
    np.testing.assert_allclose(big.inertia_, small.inertia_, rtol=1e-12)


def test_bounds_give_same_result_as_plain_lloyd():
    X = blobs(5000, 20, spread=25, seed=4)
    plain = KMeans(40, algorithm="lloyd", seed=5).fit(X)
    fast = KMeans(40, algorithm="yinyang", seed=5).fit(X)
    np.testing.assert_array_equal(plain.labels_, fast.labels_)
    np.testing.assert_allclose(plain.cluster_centers_, fast.cluster_centers_, atol=1e-9)
    np.testing.assert_allclose(plain.history_, fast.history_, rtol=1e-9)


def test_cell_stages_warm_start_on_many_points():
    rng = np.random.default_rng(6)
    X = rng.uniform(0, 255, size=(60_000, 3))
    w = rng.integers(1, 4, len(X))
    auto = KMeans(16, seed=1).fit(X, w)
    plain = KMeans(16, seed=1, algorithm="yinyang").fit(X, w)
    assert auto.converged_
    assert np.all(np.diff(auto.history_) <= 1e-9 * auto.history_[0])
    # a different (cell-level) start, same quality
    assert auto.inertia_ <= plain.inertia_ * 1.02
    direct = np.sum(w * ((X - auto.cluster_centers_[auto.labels_]) ** 2).sum(1))
    np.testing.assert_allclose(auto.inertia_, direct, rtol=1e-10)


def test_fewer_points_seed_on_cells_but_fit_on_the_points(monkeypatch):
    import quantize.cluster.kmeans as km

    seen = []
    original = km.greedy_kmeans_plusplus

    def spy(X, *args, **kwargs):
        seen.append(len(X))
        return original(X, *args, **kwargs)

    monkeypatch.setattr(km, "greedy_kmeans_plusplus", spy)
    rng = np.random.default_rng(8)
    X = rng.normal(128, 40, size=(30_000, 3)).round()
    w = rng.integers(1, 4, len(X))
    fit = KMeans(16, seed=1)
    # too few points for cell stages: every record is an iteration on the points ...
    assert all(r.extra["n_points"] == len(X) for r in fit.iter_fit(X, w))
    # ... but k-means++ drew from grid cells (at least 16 per cluster), not the points
    assert 16 * 16 <= seen[0] < len(X)
    plain = KMeans(16, seed=1, algorithm="yinyang").fit(X, w)
    assert len(seen) == 2 and seen[1] == len(X)
    assert fit.inertia_ <= plain.inertia_ * 1.02


def test_float32_close_to_float64():
    X = blobs(2000, 5)
    init = X[:5]
    a = KMeans(5, init=init).fit(X)
    b = KMeans(5, init=init.astype(np.float32)).fit(X.astype(np.float32))
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-3)
    np.testing.assert_allclose(a.inertia_, b.inertia_, rtol=1e-5)


def test_same_seed_identical_also_with_one_blas_thread():
    X = blobs(3000, 8, spread=25)
    a = KMeans(10, seed=7, n_init=2).fit(X)
    b = KMeans(10, seed=7, n_init=2).fit(X)
    with threadpool_limits(limits=1, user_api="blas"):
        c = KMeans(10, seed=7, n_init=2).fit(X)
        d = KMeans(10, seed=7, n_init=2).fit(X)
    for other in (b, c, d):
        np.testing.assert_array_equal(a.cluster_centers_, other.cluster_centers_)
        np.testing.assert_array_equal(a.labels_, other.labels_)
    assert not np.array_equal(a.cluster_centers_, KMeans(10, seed=8).fit(X).cluster_centers_)


def test_inputs_not_mutated():
    X = blobs(500, 4)
    w = np.arange(500, dtype=np.float64) % 3 + 1
    init = X[:4].copy()
    Xc, wc, ic = X.copy(), w.copy(), init.copy()
    KMeans(4, init=init).fit(X, w)
    KMeans(4).fit(X, w)
    np.testing.assert_array_equal(X, Xc)
    np.testing.assert_array_equal(w, wc)
    np.testing.assert_array_equal(init, ic)


def test_degenerate_inputs():
    one = np.tile([[10.0, 20.0, 30.0]], (50, 1))
    with pytest.warns(QuantizeWarning, match="K reduced to 1"):
        km = KMeans(4).fit(one)
    assert km.n_colors_ == 1 and km.inertia_ == 0.0 and km.converged_
    np.testing.assert_array_equal(km.cluster_centers_, [[10, 20, 30]])
    two = np.array([[0.0, 0, 0]] * 30 + [[255.0, 255, 255]] * 10)
    with pytest.warns(QuantizeWarning):
        km2 = KMeans(8).fit(two)
    assert km2.n_colors_ == 2 and km2.inertia_ == 0.0
    assert any("K reduced" in m for m in km2.warnings_)
    assert sorted(np.bincount(km2.labels_).tolist()) == [10, 30]
    with pytest.warns(QuantizeWarning):
        km3 = KMeans(3).fit(np.array([[1.0, 2.0, 3.0]]))
    assert km3.cluster_centers_.shape == (1, 3)
    few = blobs(5, 2)
    with pytest.warns(QuantizeWarning):
        km4 = KMeans(9).fit(few)
    assert km4.n_colors_ == 5 and km4.inertia_ == 0.0
    zero_weight = np.array([[0.0], [1.0], [2.0]])
    km5 = KMeans(2).fit(zero_weight, [1.0, 0.0, 1.0])
    assert km5.inertia_ == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected(bad):
    X = blobs(20, 2)
    X[3, 1] = bad
    with pytest.raises(ValueError):
        KMeans(2).fit(X)
    with pytest.raises(ValueError):
        KMeans(2).fit(blobs(20, 2), np.where(np.arange(20) == 2, bad, 1.0))


def test_parameter_validation():
    X = blobs(20, 2)
    for kwargs in (
        {"n_init": 0},
        {"max_iter": 0},
        {"tol": -1},
        {"init": "bogus"},
        {"algorithm": "elkan"},
        {"init": np.zeros((3, 3))},
    ):
        with pytest.raises(ValueError):
            KMeans(2, **kwargs).fit(X)
    with pytest.raises(ValueError):
        KMeans(0).fit(X)
    with pytest.raises(ValueError):
        KMeans(2).fit(X, -np.ones(20))
    with pytest.raises(RuntimeError):
        KMeans(2).predict(X)


def test_max_iter_one_gives_valid_result_and_warning():
    X = blobs(1000, 6, spread=30)
    with pytest.warns(ConvergenceWarning):
        km = KMeans(6, max_iter=1).fit(X)
    assert not km.converged_ and km.n_iter_ == 1
    assert np.isfinite(km.cluster_centers_).all() and len(km.history_) == 1
    assert any("max_iter" in m for m in km.warnings_)


def test_empty_cluster_is_relocated():
    X = blobs(500, 3)
    init = np.vstack([X[:3], [[1e4, 1e4, 1e4]]])  # a centre no point is close to
    km = KMeans(4, init=init).fit(X)
    assert np.isfinite(km.cluster_centers_).all()
    assert np.bincount(km.labels_, minlength=4).min() > 0
    assert any("relocated" in m for m in km.warnings_)


def test_best_of_n_init_not_worse_than_single_runs():
    X = blobs(1500, 12, spread=35, seed=9)
    multi = KMeans(12, n_init=6, seed=3).fit(X)
    single = KMeans(12, n_init=1, seed=3).fit(X)
    assert len(multi.histories_) == 6
    finals = [h[-1] for h in multi.histories_]
    assert multi.inertia_ <= min(finals) * (1 + 1e-12)
    assert multi.inertia_ <= single.inertia_ * (1 + 1e-12)


def test_cancel_raises_between_iterations():
    X = blobs(2000, 8, spread=40)
    calls = {"n": 0}

    def should_cancel():
        calls["n"] += 1
        return calls["n"] > 3

    gen = KMeans(8, tol=0).iter_fit(X, should_cancel=should_cancel)
    with pytest.raises(Cancelled):
        drain(gen)


def test_records_and_predict():
    X = blobs(1000, 4)
    recs = []
    gen = KMeans(4, seed=1).iter_fit(X)
    while True:
        try:
            recs.append(next(gen))
        except StopIteration as stop:
            km = stop.value
            break
    assert [r.iteration for r in recs] == list(range(1, km.n_iter_ + 1))
    assert all(r.kind == "inertia" and r.centers.shape == (4, 3) for r in recs)
    np.testing.assert_allclose([r.objective for r in recs], km.history_)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    np.testing.assert_array_equal(km.palette_, km.cluster_centers_)


def test_tolerance_is_relative_to_data_scale():
    X = blobs(1500, 6, spread=30)
    a = KMeans(6, seed=2, tol=1e-3).fit(X)
    b = KMeans(6, seed=2, tol=1e-3).fit(X * 1000.0)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.cluster_centers_ * 1000.0, b.cluster_centers_, rtol=1e-8)


def test_kmeans_plusplus_weighted():
    X = np.array([[0.0], [1.0], [100.0], [101.0], [500.0]])
    w = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    centers, idx = kmeans_plusplus(X, 2, weights=w, seed=0)
    assert 4 not in idx  # zero weight is never drawn
    assert {int(i) // 2 for i in idx} == {0, 1}  # one seed per blob
    np.testing.assert_array_equal(centers, X[idx])


def test_minibatch_close_to_full_kmeans():
    X = blobs(20000, 8, spread=15, seed=2)
    full = KMeans(8, seed=0).fit(X)
    mb = MiniBatchKMeans(8, seed=0, batch_size=1024, max_iter=300).fit(X)
    mb2 = MiniBatchKMeans(8, seed=0, batch_size=1024, max_iter=300).fit(X)
    assert mb.inertia_ <= full.inertia_ * 1.1
    np.testing.assert_array_equal(mb.cluster_centers_, mb2.cluster_centers_)
    assert mb.labels_.shape == (20000,) and len(mb.history_) == mb.n_iter_


def test_threaded_bounded_e_step_matches_plain_lloyd():
    rng = np.random.default_rng(11)
    X = rng.uniform(0, 255, size=(120_000, 3))  # above the threading threshold
    init = X[:12]
    fast = KMeans(12, init=init, algorithm="yinyang", max_iter=40, tol=1e-3).fit(X)
    plain = KMeans(12, init=init, algorithm="lloyd", max_iter=40, tol=1e-3).fit(X)
    np.testing.assert_array_equal(fast.labels_, plain.labels_)
    np.testing.assert_allclose(fast.cluster_centers_, plain.cluster_centers_, rtol=1e-10)
    # the worker threads end with the fit, also when the generator is closed early
    gen = KMeans(12, init=init, algorithm="yinyang", tol=0).iter_fit(X)
    next(gen)
    next(gen)
    gen.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("vq-kmeans")]


@pytest.mark.parametrize("K", [1, 5, 16, 64, 200])
def test_group_min_matches_reduceat(K):
    from quantize.cluster._nearest import group_min as _group_min

    rng = np.random.default_rng(K)
    s = rng.random((300, K), dtype=np.float32)
    cuts = np.unique(np.r_[0, rng.integers(1, K, size=K // 3)]) if K > 1 else np.zeros(1, int)
    np.testing.assert_array_equal(_group_min(s, cuts), np.minimum.reduceat(s, cuts, axis=1))
    np.testing.assert_array_equal(_group_min(s, np.zeros(1, int))[:, 0], s.min(axis=1))


@pytest.mark.parametrize("K", [3, 12])
def test_all_centre_update_follows_the_grouped_one(monkeypatch, K):
    """Small K measures every centre of a candidate; it must take the same path."""
    import quantize.cluster.kmeans as km

    X = blobs(6000, 9, spread=30, seed=8)
    w = np.random.default_rng(8).integers(1, 5, len(X)).astype(float)
    direct = KMeans(K, algorithm="yinyang", seed=4, tol=0).fit(X, w)
    monkeypatch.setattr(km, "_DIRECT_MAX_K", 0)
    grouped = KMeans(K, algorithm="yinyang", seed=4, tol=0).fit(X, w)
    np.testing.assert_array_equal(direct.labels_, grouped.labels_)
    np.testing.assert_array_equal(direct.history_, grouped.history_)
    np.testing.assert_array_equal(direct.cluster_centers_, grouped.cluster_centers_)
    plain = KMeans(K, algorithm="lloyd", seed=4, tol=0).fit(X, w)
    np.testing.assert_array_equal(direct.labels_, plain.labels_)


@pytest.mark.parametrize("algorithm", ["auto", "yinyang"])
def test_relative_gain_rule_stops_at_the_first_small_gain(algorithm):
    rng = np.random.default_rng(7)
    X = rng.uniform(0, 255, size=(60_000, 3))  # uniform: Lloyd creeps for many iterations
    w = rng.integers(1, 4, len(X))
    full = KMeans(64, seed=2, algorithm=algorithm, tol=1e-9).fit(X, w)
    rel = 1e-3
    early = KMeans(64, seed=2, algorithm=algorithm, tol=1e-9, rel_tol=rel).fit(X, w)
    assert early.converged_ and early.n_iter_ < full.n_iter_
    records = list(KMeans(64, seed=2, algorithm=algorithm, tol=1e-9, rel_tol=rel).iter_fit(X, w))
    final = [r.objective for r in records if r.extra["n_points"] == len(X)]  # the points
    gains = -np.diff(final) / np.asarray(final[:-1])
    # the points stage ended at its first iteration gaining at most rel_tol
    assert gains[-1] <= rel and np.all(gains[:-1] > rel)
    assert np.all(np.diff(early.history_) <= 1e-9 * early.history_[0])
    assert early.inertia_ <= full.inertia_ * 1.03  # uniform data: the slowest case
    direct = np.sum(w * ((X - early.cluster_centers_[early.labels_]) ** 2).sum(1))
    np.testing.assert_allclose(early.inertia_, direct, rtol=1e-10)


def test_library_fits_take_the_tolerance_vq_and_the_app_run():
    # quantize_image and the registry make what `vq` and the app make with the same options:
    # a tol not given is the method's default (K-means 1e-4, the mixture's and mini-batch's
    # 1e-3), not the bare classes' own
    from quantize.cluster.registry import METHODS, get_method
    from quantize.pipeline import quantize_image

    assert KMeans(8).tol == 1e-4
    for spec in METHODS.values():
        if "tol" in spec.options:
            assert spec.make(4, 0, {}).tol == spec.tol_default()
            assert spec.make(4, 0, {"tol": 0.5}).tol == 0.5
    assert get_method("kmeans").tol_default() == DEFAULTS["tol"] == 1e-4
    assert get_method("gmm").tol_default() == get_method("minibatch").tol_default() == 1e-3
    X = blobs()
    img = np.clip(X[: 24 * 24], 0, 255).astype(np.uint8).reshape(24, 24, 3)
    assert quantize_image(img, 4, keep_small_colors=False).model.tol == DEFAULTS["tol"]
    for method in ("gmm", "minibatch"):
        res = quantize_image(img, 4, method=method, keep_small_colors=False)
        assert res.model.tol == 1e-3


def test_palette_fits_use_the_relative_gain_rule():
    from quantize.cluster.kmeans import (
        PALETTE_REL_TOL,
        PALETTE_REL_TOL_LARGE,
        PALETTE_REL_TOL_LARGE_K,
    )
    from quantize.cluster.registry import get_method

    assert KMeans(8).rel_tol == 0.0  # the class alone keeps scikit-learn's rule
    assert get_method("kmeans").make(8, 0, {}).rel_tol == PALETTE_REL_TOL > 0
    # larger palettes stop sooner (each iteration on the colours costs most there)
    big = PALETTE_REL_TOL_LARGE_K
    assert get_method("kmeans").make(big - 1, 0, {}).rel_tol == PALETTE_REL_TOL
    assert get_method("kmeans").make(big, 0, {}).rel_tol == PALETTE_REL_TOL_LARGE > PALETTE_REL_TOL
    assert get_method("kmeans").make(8, 0, {"rel_tol": 0.0}).rel_tol == 0.0
    with pytest.raises(ValueError, match="rel_tol"):
        KMeans(4, rel_tol=-1.0).fit(blobs())


def test_seedings_keep_the_lowest_score_without_stages():
    """Without cell stages each seeding is a whole fit; the one of least score is kept."""
    X = blobs(3000, 12, spread=25, seed=5)
    seen = []

    def score(centers, points, weights, labels):
        assert points.shape == X.shape and labels.shape == (len(X),)
        d = ((points - centers[labels]) ** 2).sum(axis=1) ** 0.25  # not the inertia
        seen.append((float(weights @ d), centers.copy()))
        return seen[-1][0]

    model = KMeans(9, seed=3, n_seedings=4, seeding_score=score).fit(X)
    assert len(seen) == 4
    best = min(seen, key=lambda s: s[0])
    np.testing.assert_allclose(model.cluster_centers_, best[1], atol=1e-9)
    # the first seeding draws what a single one draws
    one = KMeans(9, seed=3).fit(X)
    np.testing.assert_allclose(seen[0][1], one.cluster_centers_, atol=1e-9)
    by_inertia = KMeans(9, seed=3, n_seedings=4).fit(X)
    assert by_inertia.inertia_ <= one.inertia_
    assert len({round(s[0], 6) for s in seen}) > 1  # the seedings differ


def test_seedings_are_compared_on_the_cells_and_only_the_best_goes_on():
    X = np.round(blobs(80_000, 20, spread=15, seed=11))
    w = np.random.default_rng(11).integers(1, 4, len(X)).astype(float)
    sizes = []

    def score(centers, points, weights, labels):
        sizes.append(len(points))
        return float(weights @ ((points - centers[labels]) ** 2).sum(axis=1))

    model = KMeans(16, seed=1, n_seedings=3, seeding_score=score)
    records = list(model.iter_fit(X, w))
    assert len(sizes) == 3 and all(s < len(X) for s in sizes)  # grid-cell means, not points
    # one run's records: consecutive iterations, restart 0, ending on the points
    assert [r.iteration for r in records] == list(range(1, len(records) + 1))
    assert {r.restart for r in records} == {0}
    assert records[-1].extra["n_points"] == len(X)
    assert len(model.history_) == model.n_iter_ == len(records)
    direct = np.sum(w * ((X - model.cluster_centers_[model.labels_]) ** 2).sum(1))
    np.testing.assert_allclose(model.inertia_, direct, rtol=1e-10)


def test_seedings_poll_cancel_and_reject_bad_counts():
    X = blobs(3000, 6)
    scored = []

    def score(centers, points, weights, labels):
        scored.append(1)
        return 0.0

    model = KMeans(6, n_seedings=5, seeding_score=score)
    with pytest.raises(Cancelled):  # asked while the second seeding runs
        drain(model.iter_fit(X, should_cancel=lambda: len(scored) >= 1))
    assert len(scored) == 1
    with pytest.raises(ValueError, match="n_seedings"):
        KMeans(4, n_seedings=0).fit(X)


def test_palette_fits_try_seedings_for_small_palettes():
    from quantize.cluster.kmeans import PALETTE_SEEDINGS, PALETTE_SEEDINGS_MAX_K
    from quantize.cluster.registry import get_method

    spec = get_method("kmeans")
    assert KMeans(8).n_seedings == 1
    assert spec.make(16, 0, {}).n_seedings == PALETTE_SEEDINGS > 1
    assert spec.make(PALETTE_SEEDINGS_MAX_K * 2, 0, {}).n_seedings == 1
