"""The one nearest-centre search: exact squared distances, ties to the lowest index."""

import numpy as np
import pytest

from quantize.cluster._nearest import Assigner, NearestCentre, decide_exactly, nearest_indices


def brute(X, C):
    d = ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1)
    return d.argmin(axis=1)


def test_exact_ties_go_to_the_lowest_index_everywhere():
    C = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0], [10.0, 0, 0]])
    X = np.array([[5.0, 5, 0], [0, 5, 5], [5, 0, 5], [10, 0, 0], [1, 1, 1]])
    expected = [0, 1, 0, 0, 0]
    assert nearest_indices(X, C).tolist() == expected
    assert NearestCentre(C)(X).tolist() == expected
    labels, _, _ = Assigner(X, 64).nearest_two(C, None)
    assert labels.tolist() == expected
    labels, _, _ = Assigner(X, 64).search(C, None, None)
    assert labels.tolist() == expected


def test_near_ties_are_decided_by_exact_distances():
    # far from the origin the expanded form ||c||^2 - 2 x.c loses the last digits: points
    # 1e-7 off the bisector of two centres must still go to the truly nearer one
    rng = np.random.default_rng(3)
    a = np.array([1e6, 2e6, 3e6])
    b = a + np.array([1.0, 0.0, 0.0])
    mid = (a + b) / 2
    X = mid + np.outer(rng.choice([-1, 1], 200) * 1e-7, [1.0, 0, 0])
    C = np.vstack([a, b])
    want = brute(X, C)
    assert len(set(want.tolist())) == 2  # both sides occur
    np.testing.assert_array_equal(nearest_indices(X, C), want)
    np.testing.assert_array_equal(decide_exactly(X, C)[0], want)
    np.testing.assert_array_equal(Assigner(X, 64).nearest_two(C, None)[0], want)


@pytest.mark.parametrize("K", [1, 2, 7, 64, 300])
def test_matches_brute_force_on_palettes(K):
    rng = np.random.default_rng(K)
    C = rng.integers(0, 256, (K, 3)).astype(float)
    X = rng.integers(0, 256, (5000, 3)).astype(float)  # integer colours: many exact ties
    np.testing.assert_array_equal(nearest_indices(X, C), brute(X, C))
    bounded = NearestCentre(C, points_sq_max=3 * 255.0**2)
    np.testing.assert_array_equal(bounded(X), brute(X, C))


def test_rendering_mapping_and_replay_use_the_one_search():
    import quantize.cluster.replay as replay
    import quantize.pipeline as pipeline
    import quantize.render as render
    from quantize.cluster import _nearest

    assert render.nearest_indices is _nearest.nearest_indices
    assert render.NearestCentre is _nearest.NearestCentre
    assert pipeline.nearest_indices is _nearest.nearest_indices
    assert replay.nearest_indices is _nearest.nearest_indices


@pytest.mark.parametrize("grouped", [True, False])
def test_search_in_parallel_chunks_equals_the_serial_search(grouped):
    from concurrent.futures import ThreadPoolExecutor

    from quantize.cluster._yinyang import centre_groups

    rng = np.random.default_rng(5)
    X = rng.integers(0, 256, (30_000, 3)).astype(np.float64)
    X[:50] = X[50:100]  # repeated points: ties between chunks too
    centers = X[rng.choice(len(X), 40, replace=False)] + 0.5
    group_of = None
    if grouped:
        group_of = centre_groups(centers, len(X), 64.0)
        order = np.argsort(group_of, kind="stable")
        group_of, centers = group_of[order], centers[order]
    assigner = Assigner(X, working_memory_mib=0.2)  # many chunks
    serial = assigner.search(centers, group_of, None)
    with ThreadPoolExecutor(2) as pool:
        parallel = assigner.search(centers, group_of, None, pool)
    np.testing.assert_array_equal(serial[0], parallel[0])
    np.testing.assert_array_equal(serial[1], parallel[1])
    if grouped:
        np.testing.assert_array_equal(serial[2], parallel[2])
    brute = ((X[:, None, :] - centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(serial[0], brute.argmin(axis=1))
