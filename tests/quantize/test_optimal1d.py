import itertools
import warnings

import numpy as np
import pytest

from quantize.cluster.kmeans import KMeans
from quantize.cluster.optimal1d import Optimal1D, optimal_1d
from quantize.protocol import ConvergenceWarning, QuantizeWarning, drain


def brute_force(x, w, k):
    """Best contiguous partition of the sorted distinct values (exhaustive)."""
    order = np.argsort(x)
    xs, ws = x[order], w[order]
    uniq, inv = np.unique(xs, return_inverse=True)
    wu = np.bincount(inv, weights=ws)
    su = np.bincount(inv, weights=ws * xs)
    qu = np.bincount(inv, weights=ws * xs * xs)
    best = np.inf
    for cuts in itertools.combinations(range(1, len(uniq)), k - 1):
        bounds = (0, *cuts, len(uniq))
        total = 0.0
        for a, b in itertools.pairwise(bounds):
            W, S, Q = wu[a:b].sum(), su[a:b].sum(), qu[a:b].sum()
            total += Q - S * S / W
        best = min(best, total)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_equals_brute_force_on_tiny_inputs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 11))
    x = rng.integers(0, 40, n).astype(float)
    w = rng.uniform(0.1, 3.0, n)
    for k in range(1, min(5, len(np.unique(x))) + 1):
        centers, labels, inertia = optimal_1d(x, w, k)
        np.testing.assert_allclose(inertia, brute_force(x, w, k), rtol=1e-9, atol=1e-9)
        direct = np.sum(w * (x - centers[labels]) ** 2)
        np.testing.assert_allclose(inertia, direct, rtol=1e-12)
        assert np.all(np.diff(centers) > 0)


def test_never_worse_than_lloyd():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(m, s, 300) for m, s in [(20, 5), (60, 15), (200, 3)]])
    w = rng.integers(1, 20, x.size).astype(float)
    for k in (2, 3, 5, 8, 16):
        exact = Optimal1D(k).fit(x, w)
        for seed in range(4):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                lloyd = KMeans(k, seed=seed, init="random").fit(x[:, None], w)
            assert exact.inertia_ <= lloyd.inertia_ * (1 + 1e-9)


def test_weights_equal_repetition_and_history():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, 200).astype(float)
    c = rng.integers(1, 4, 200)
    a = Optimal1D(6).fit(x, c)
    b = Optimal1D(6).fit(np.repeat(x, c))
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-12)
    np.testing.assert_allclose(a.inertia_, b.inertia_, rtol=1e-9)
    assert np.all(np.diff(a.history_) <= 1e-9) and len(a.history_) == 6
    np.testing.assert_array_equal(a.predict(x), a.labels_)


def test_records_and_degenerate():
    gen = Optimal1D(4).iter_fit(np.arange(100.0))
    recs = []
    while True:
        try:
            recs.append(next(gen))
        except StopIteration as stop:
            model = stop.value
            break
    assert [r.extra["k"] for r in recs] == [1, 2, 3, 4]
    assert recs[-1].centers.shape == (4, 1)
    np.testing.assert_allclose(model.cluster_centers_[:, 0], [12, 37, 62, 87])
    with pytest.warns(QuantizeWarning):
        m = Optimal1D(5).fit([3.0, 3.0, 7.0])
    assert m.n_colors_ == 2 and m.inertia_ == 0.0
    with pytest.raises(ValueError):
        Optimal1D(2).fit(np.zeros((5, 2)))
    with pytest.raises(ValueError):
        Optimal1D(2).fit([1.0, np.nan])


def test_large_grey_range_is_fast_and_exact_on_structure():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 65536, 20000).astype(float)
    model = drain(Optimal1D(32).iter_fit(x))
    assert model.n_colors_ == 32
    # global optimum of uniform data: nearly equal-width bins
    widths = np.diff(model.cluster_centers_[:, 0])
    assert widths.std() / widths.mean() < 0.1
