"""The engine's matrix products survive OpenBLAS's spurious "invalid value" flag.

Some OpenBLAS kernels raise the floating-point invalid flag on finite inputs (numpy
#24067); with warnings as errors that once failed a K-means fit in CI on another machine.
These tests make every ``np.matmul`` raise that flag after computing the right product, as
such a kernel does, and check the engine neither warns nor changes its answer.
"""

import warnings

import numpy as np
import pytest

from quantize._blas import matmul
from quantize.cluster.gmm import GaussianMixture
from quantize.cluster.kmeans import KMeans

_REAL = np.matmul


def _flagging_matmul(a, b, *args, **kwargs):
    out = _REAL(a, b, *args, **kwargs)
    np.subtract(np.array([np.inf]), np.array([np.inf]))  # sets the invalid flag, warns
    return out


@pytest.fixture
def flagging_blas(monkeypatch):
    monkeypatch.setattr(np, "matmul", _flagging_matmul)


def _points(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 255, (5, 3))
    return centres[rng.integers(0, 5, n)] + rng.normal(0, 8, (n, 3))


def test_the_fake_kernel_does_warn(flagging_blas):
    # the harness itself: a bare product with the fake kernel fails under warnings-as-errors
    a = np.ones((4, 3), np.float32)
    with pytest.raises(RuntimeWarning, match="invalid value"):
        np.matmul(a, a.T)


def test_matmul_ignores_the_flag_and_keeps_the_product(flagging_blas):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 4)).astype(np.float32)
    b = rng.normal(size=(4, 7)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = matmul(a, b)
    np.testing.assert_array_equal(got, _REAL(a, b))


@pytest.mark.parametrize("estimator", ["kmeans", "gmm"])
def test_fits_give_the_same_answer_under_a_flagging_kernel(monkeypatch, estimator):
    X = _points()
    w = np.ones(len(X))

    def fit():
        if estimator == "kmeans":
            m = KMeans(6, seed=0, algorithm="yinyang").fit(X, w)
            return m.cluster_centers_, m.labels_
        m = GaussianMixture(4, seed=0).fit(X, w)
        return m.means_, m.predict(X)

    centres, labels = fit()
    monkeypatch.setattr(np, "matmul", _flagging_matmul)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        centres2, labels2 = fit()
    np.testing.assert_array_equal(centres2, centres)
    np.testing.assert_array_equal(labels2, labels)
