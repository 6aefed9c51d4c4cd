"""Replaying a recorded fit: E-step assignments under one iteration's parameters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from quantize import GaussianMixture, KMeans
from quantize.cluster.replay import record_labels
from quantize.protocol import IterationRecord


def _blobs(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 1.0, 0.0], [0.0, 7.0, 2.0], [5.0, 6.0, 6.0]])
    return np.concatenate([c + rng.normal(scale=1.2, size=(60, 3)) for c in centres])


def test_kmeans_records_replay_nearest_centre_and_end_at_the_fitted_labels():
    X = _blobs()
    model = KMeans(4, seed=1, algorithm="lloyd")
    records = []
    gen = model.iter_fit(X)
    while True:
        try:
            records.append(next(gen))
        except StopIteration:
            break
    assert len(records) >= 2
    for rec in records:
        brute = np.argmin(((X[:, None, :] - rec.centers[None]) ** 2).sum(-1), axis=1)
        np.testing.assert_array_equal(record_labels(X, rec), brute)
    np.testing.assert_array_equal(record_labels(X, records[-1]), model.predict(X))


def test_gmm_records_replay_posterior_argmax():
    X = _blobs(5)
    gmm = GaussianMixture(4, covariance_type="full", seed=0, init="random", max_iter=200)
    records = [r for r in gmm.iter_fit(X) if r.covariances is not None]
    assert len(records) >= 2
    mid = records[len(records) // 2]
    dens = np.stack(
        [
            w * multivariate_normal(m, c).pdf(X)
            for m, c, w in zip(mid.centers, mid.covariances, mid.weights, strict=True)
        ],
        axis=1,
    )
    np.testing.assert_array_equal(record_labels(X, mid), np.argmax(dens, axis=1))
    np.testing.assert_array_equal(record_labels(X, records[-1]), gmm.predict(X))


def test_near_singular_recorded_covariance_still_assigns():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])
    rec = IterationRecord(
        restart=0,
        iteration=1,
        objective=0.0,
        kind="log_likelihood",
        shift=0.0,
        centers=np.array([[0.05, 0.0], [5.0, 5.0]]),
        covariances=np.array([[[1e-3, 0.0], [0.0, 0.0]], np.eye(2)]),
        weights=np.array([0.5, 0.5]),
    )
    labels = record_labels(X, rec)
    assert labels.tolist() == [0, 0, 1]


def test_dimension_mismatch_and_nan_are_errors():
    rec = IterationRecord(0, 1, 0.0, "inertia", 0.0, centers=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="do not match"):
        record_labels(np.zeros((4, 2)), rec)
    with pytest.raises(ValueError, match="NaN"):
        record_labels(np.array([[np.nan, 0.0, 0.0]]), rec)
    assert record_labels(np.zeros((0, 3)), rec).shape == (0,)
