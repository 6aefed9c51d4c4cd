"""Grid cells for coarse-to-fine K-means (quantize.cluster._cells) and the stages that use them."""

import numpy as np
import pytest

from quantize import KMeans, _native
from quantize.cluster import _cells
from quantize.cluster._cells import LEVELS, CellTree
from quantize.features import unique_colors
from quantize.resources import sample_image_path


def grid_cells(X, bits):
    """Cell coordinates of every point on the 2**bits grid, computed the obvious way."""
    finest = LEVELS[-1]
    lo = X.min(axis=0)
    span = X.max(axis=0) - lo
    h = np.where(span > 0, span / (1 << finest), 1.0)
    idx = np.clip(np.floor((X - lo) / h).astype(np.int64), 0, (1 << finest) - 1)
    return idx >> (finest - bits)


@pytest.fixture(params=["numpy", "compiled"])
def tree_path(request, monkeypatch):
    """Build the cell trees of a test with numpy's sort, or with the compiled loops."""
    if request.param == "numpy":
        monkeypatch.setattr(_cells, "_compiled_loops", lambda n, D: None)
    else:
        kernels = _native.kernels()
        if kernels is None:
            pytest.skip(_native.kernels_error())
        monkeypatch.setattr(_cells, "_compiled_loops", lambda n, D: kernels if D <= 3 else None)
    return request.param


@pytest.mark.parametrize("D", [1, 2, 3, 4])
def test_cells_hold_exactly_the_points_of_their_grid_cell(D, tree_path):
    rng = np.random.default_rng(D)
    X = rng.normal(size=(4000, D)) * rng.uniform(1, 30, size=D)
    X[:7, 0] = X[:, 0].max()  # several points at a maximum (the last cell)
    w = rng.integers(1, 9, len(X)).astype(float)
    tree = CellTree(X, w)
    for bits in LEVELS:
        cell = tree.cell_of(bits)
        means, weights, scatter = tree.cells(bits)
        assert means.shape == (tree.n_cells(bits), D)
        coords = grid_cells(X, bits)
        # one cell per distinct grid coordinate, and the same coordinate within a cell
        key = np.unique(coords, axis=0, return_inverse=True)[1].reshape(-1)
        assert np.unique(key).size == tree.n_cells(bits)
        pairs = np.unique(np.stack([cell, key], axis=1), axis=0)
        assert len(pairs) == tree.n_cells(bits)
        # weights, weighted means and scatter are those of the cell's points
        np.testing.assert_allclose(weights, np.bincount(cell, w))
        sums = np.stack([np.bincount(cell, w * X[:, d]) for d in range(D)], axis=1)
        np.testing.assert_allclose(means, sums / weights[:, None], atol=1e-9)
        direct = float(np.sum(w * ((X - means[cell]) ** 2).sum(axis=1)))
        # (sums of squares minus squared sums: rounding is relative to the total energy)
        energy = float(w @ (X**2).sum(axis=1))
        np.testing.assert_allclose(scatter, direct, rtol=1e-8, atol=1e-12 * energy)


def test_finer_cells_nest_in_coarser_ones(tree_path):
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 255, size=(20_000, 3))
    tree = CellTree(X, np.ones(len(X)))
    fine, coarse = tree.cell_of(LEVELS[-1]), tree.cell_of(LEVELS[0])
    parent = np.full(tree.n_cells(LEVELS[-1]), -1)
    parent[fine] = coarse
    assert np.array_equal(parent[fine], coarse)  # each fine cell has one coarse parent
    assert tree.n_cells(LEVELS[0]) < tree.n_cells(LEVELS[-1])


def test_compiled_and_numpy_cells_agree(monkeypatch):
    kernels = _native.kernels()
    if kernels is None:
        pytest.skip(_native.kernels_error())
    rng = np.random.default_rng(5)
    # photo-like: clumps, repeated coordinates, a flat axis (one cell along it)
    X = np.round(rng.normal(size=(30_000, 3)) * [40, 15, 5] + rng.integers(0, 3, (30_000, 1)) * 60)
    X[:, 2] = 7.0
    w = rng.integers(1, 50, len(X)).astype(float)
    monkeypatch.setattr(_cells, "_compiled_loops", lambda n, D: kernels)
    compiled = CellTree(X, w)
    monkeypatch.setattr(_cells, "_compiled_loops", lambda n, D: None)
    sorted_ = CellTree(X, w)
    for bits in LEVELS:
        (m1, w1, s1), (m2, w2, s2) = compiled.cells(bits), sorted_.cells(bits)
        np.testing.assert_array_equal(w1, w2)  # integer weights: exact in any order
        np.testing.assert_allclose(m1, m2, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s1, s2, rtol=1e-9)
        np.testing.assert_array_equal(compiled.cell_of(bits), sorted_.cell_of(bits))


def test_compiled_cells_reject_what_they_cannot_hold():
    kernels = _native.kernels()
    if kernels is None:
        pytest.skip(_native.kernels_error())
    X, w = np.zeros((5, 4)), np.ones(5)
    spread = _cells._spread_bits(4, 7)
    with pytest.raises(ValueError, match="4-dimensional"):
        kernels.cell_stats(X, w, np.zeros(4), np.ones(4), spread)
    with pytest.raises(ValueError, match="sides"):
        kernels.cell_stats(X[:, :3], w, np.zeros(3), np.zeros(3), _cells._spread_bits(3, 7))


def test_too_many_dimensions_rejected():
    with pytest.raises(ValueError, match="at most 4"):
        CellTree(np.zeros((10, 5)), np.ones(10))


@pytest.fixture(scope="module")
def photo_colours():
    from PIL import Image

    with Image.open(sample_image_path()) as im:
        table = unique_colors(np.asarray(im.convert("RGB")))
    return table.colors.astype(np.float64), table.counts.astype(np.float64)


def test_photo_fit_runs_coarse_to_fine_and_ends_exact(photo_colours):
    X, w = photo_colours  # about 94 000 distinct colours
    model = KMeans(12, seed=3)
    records = list(model.iter_fit(X, w))
    sizes = [r.extra["n_points"] for r in records]
    stages = [sizes[0]] + [b for a, b in zip(sizes, sizes[1:], strict=False) if b != a]
    # grid cells (32**3 for this small K, 64**3, 128**3), then the points themselves
    Xc = X - (w @ X) / w.sum()
    tree = CellTree(Xc, w)
    assert stages == [tree.n_cells(b) for b in LEVELS] + [len(X)]
    fit64 = KMeans(64, seed=3).iter_fit(X, w)
    assert next(fit64).extra["n_points"] == tree.n_cells(6)  # few 32**3 cells per cluster
    fit64.close()
    history = np.array([r.objective for r in records])
    assert np.all(np.diff(history) <= 1e-9 * history[0])  # J never goes up across stages
    np.testing.assert_allclose(history, model.history_)
    # the labels are the exact nearest centres of the final palette, and J is exact
    d = ((X[:, None, :] - model.cluster_centers_[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(model.labels_, d.argmin(axis=1))
    np.testing.assert_allclose(model.inertia_, float(w @ d.min(axis=1)), rtol=1e-10)
    assert model.converged_
    # as good a local minimum as Lloyd on the points alone
    plain = KMeans(12, seed=3, algorithm="yinyang").fit(X, w)
    assert model.inertia_ <= plain.inertia_ * 1.02


def test_grid_with_fewer_cells_than_clusters_is_not_used():
    # 1-D: at most 128 grid cells, fewer than 4 per cluster for K = 100
    rng = np.random.default_rng(0)
    X = rng.permutation(np.arange(60_000.0))[:, None]
    w = rng.integers(1, 5, len(X)).astype(float)
    model = KMeans(100, seed=0).fit(X, w)
    assert model.n_colors_ == 100 and model.cluster_centers_.shape == (100, 1)
    assert np.unique(model.labels_).size == 100
    assert model.warnings_ == []
    small = KMeans(16, seed=0)
    sizes = {r.extra["n_points"] for r in small.iter_fit(X, w)}
    assert len(sizes) > 1  # 16 clusters: the 1-D cells are used


def test_cell_stages_do_not_use_up_the_iteration_cap(photo_colours):
    X, w = photo_colours
    model = KMeans(12, seed=3, max_iter=20)
    sizes = [r.extra["n_points"] for r in model.iter_fit(X, w)]
    # the cap counts iterations on the points; each cell stage has up to as many of its own
    assert model.converged_ and model.warnings_ == []
    assert sizes.count(len(X)) <= 20 and len(sizes) > 20
    assert all(sizes.count(n) <= 20 for n in set(sizes))
    assert model.n_iter_ == len(sizes) == len(model.history_)


def test_every_cell_stage_is_a_tree_level():
    from quantize.cluster import kmeans

    assert {bits for bits, *_ in kmeans._CELL_STAGES} <= set(LEVELS)
    assert set(kmeans._INIT_BITS) <= set(LEVELS)


def test_seeds_come_from_the_coarsest_level_with_enough_cells(photo_colours, monkeypatch):
    from quantize.cluster import _common, kmeans

    X, w = photo_colours
    seen = []
    real = _common.greedy_kmeans_plusplus

    def spy(points, *args, **kwargs):
        seen.append(points.shape[0])
        return real(points, *args, **kwargs)

    monkeypatch.setattr(kmeans, "greedy_kmeans_plusplus", spy)
    tree_sizes = {}
    for K in (4, 64):
        seen.clear()
        KMeans(K, seed=0, n_init=1).fit(X, w)
        tree_sizes[K] = seen[0]
    from quantize.cluster._cells import CellTree

    Xc = X - (w @ X) / w.sum()
    tree = CellTree(Xc, w)
    for K, used in tree_sizes.items():
        want = next(
            (b for b in kmeans._INIT_BITS if tree.n_cells(b) >= kmeans._INIT_CELLS_PER_CLUSTER * K),
            kmeans._INIT_BITS[-1],
        )
        assert used == tree.n_cells(want)
    assert tree_sizes[4] <= tree_sizes[64]  # fewer clusters: coarser (or equal) cells
