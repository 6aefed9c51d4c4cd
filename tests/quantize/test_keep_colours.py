"""Colours that matter: locked colours, importance maps, small distinct colours (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import deltaE_ciede2000, rgb2lab

from quantize import quantize_image
from quantize.cluster._small import find_small_groups
from quantize.cluster.gmm import GaussianMixture
from quantize.cluster.kmeans import KMeans
from quantize.colorspace import rgb_to_space
from quantize.features import unique_colors
from quantize.pipeline import importance_weights

RED = (213, 43, 30)
WHITE = (245, 245, 245)


def photo_like(size: int = 120, seed: int = 0) -> np.ndarray:
    """A smooth two-axis gradient with noise: many colours, no strong outlier."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    img = np.stack([40 + 80 * x, 90 + 100 * y, 150 - 60 * x * y], axis=2)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def with_mark(img: np.ndarray, colour=RED, side: int = 6, at=(10, 10)) -> tuple:
    out = img.copy()
    mask = np.zeros(img.shape[:2], dtype=bool)
    mask[at[0] : at[0] + side, at[1] : at[1] + side] = True
    out[mask] = colour
    return out, mask


def mark_delta_e(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    la = rgb2lab(a[mask][None] / 255.0)
    lb = rgb2lab(b[mask][None] / 255.0)
    return float(deltaE_ciede2000(la, lb).mean())


# ------------------------------------------------------------------ locked centres


@pytest.mark.parametrize("algorithm", ["lloyd", "yinyang", "auto"])
def test_kmeans_locked_centres_stay_exactly_and_j_never_increases(algorithm):
    rng = np.random.default_rng(1)
    X = rng.random((3000, 3)) * 100
    w = rng.integers(1, 6, 3000).astype(float)
    locked = np.array([[10.0, 20.0, 30.0], [99.5, 0.25, 50.0]])
    # stop only when no label changes, so that the free centres are their clusters' means
    km = KMeans(8, locked=locked, seed=2, algorithm=algorithm, tol=1e-14, max_iter=1000)
    km.fit(X, w)
    assert km.converged_
    assert np.array_equal(km.cluster_centers_[:2], locked)
    assert np.all(np.diff(km.history_) <= 1e-9 * km.history_[0])
    # the free centres are fitted: each is the weighted mean of its cluster
    for k in range(2, 8):
        members = km.labels_ == k
        mean = (w[members] @ X[members]) / w[members].sum()
        assert np.allclose(km.cluster_centers_[k], mean, atol=1e-6)
    # and the fit is worse than or equal to a free fit only through the locked centres
    free = KMeans(8, seed=2, algorithm=algorithm).fit(X, w)
    assert free.inertia_ <= km.inertia_ * 1.05


def test_kmeans_locked_centre_without_points_is_kept_and_not_relocated():
    X = np.array([[0.0, 0, 0], [1, 1, 1], [50, 50, 50], [51, 51, 51]])
    km = KMeans(3, locked=[[200.0, 0, 0]], seed=0).fit(X)
    assert np.array_equal(km.cluster_centers_[0], [200, 0, 0])
    assert not (km.labels_ == 0).any()
    assert sorted(map(tuple, km.cluster_centers_[1:].round(6))) == [(0.5,) * 3, (50.5,) * 3]


def test_kmeans_locked_with_fewer_colours_than_k():
    X = np.array([[0.0, 0, 0], [1, 1, 1], [5, 5, 5]])
    km = KMeans(4, locked=[[1.0, 1, 1], [9, 9, 9]]).fit(X)
    assert np.array_equal(km.cluster_centers_[:2], [[1, 1, 1], [9, 9, 9]])
    assert km.inertia_ == 0.0  # every colour has its own centre, the locked one included
    assert km.cluster_centers_.shape == (4, 3)


def test_kmeans_locked_validation():
    X = np.random.default_rng(0).random((50, 3))
    with pytest.raises(ValueError, match="3 locked colours for a palette of 2"):
        KMeans(2, locked=np.zeros((3, 3)) + [[0], [1], [2]]).fit(X)
    with pytest.raises(ValueError, match="distinct"):
        KMeans(4, locked=np.zeros((2, 3))).fit(X)
    with pytest.raises(ValueError, match="shape"):
        KMeans(4, locked=np.zeros((2, 2))).fit(X)


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random"])
def test_gmm_locked_means_stay_and_log_likelihood_never_decreases(init):
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(c, 2.0, (400, 3)) for c in (10, 40, 70)])
    locked = np.array([[40.0, 40.0, 40.0], [95.0, 5.0, 5.0]])  # one on a cluster, one far
    g = GaussianMixture(4, locked=locked, seed=0, init=init, max_iter=200).fit(X)
    assert np.array_equal(g.means_[:2], locked)
    assert g.means_.shape == (4, 3)  # the far locked component is kept, not dropped
    assert np.all(np.diff(g.history_) >= -1e-9)
    assert g.weights_[1] < 1e-3


# ------------------------------------------------------------------ pipeline and API


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
@pytest.mark.parametrize("space", ["rgb", "lab", "oklab"])
def test_api_locked_colours_are_exact_palette_entries(method, space):
    img = photo_like(48)
    locked = np.array([RED, WHITE], dtype=np.uint8)
    r = quantize_image(img, 6, method=method, color_space=space, locked=locked, max_iter=40)
    assert r.palette.shape == (6, 3)
    assert np.array_equal(r.palette[:2], locked)
    assert np.array_equal(r.locked, locked)
    assert r.parameters()["locked"] == ["#d52b1e", "#f5f5f5"]
    # the labels are the nearest entries of the palette shown
    assert np.array_equal(r.to_image(), r.palette[r.labels])


def test_api_locking_needs_a_method_that_can_lock():
    with pytest.raises(ValueError, match="cannot lock colours"):
        quantize_image(photo_like(16), 4, method="minibatch", locked=np.array([RED], np.uint8))


def test_api_locked_values_checked():
    with pytest.raises(ValueError, match="0-255"):
        quantize_image(photo_like(16), 4, locked=np.array([[300, 0, 0]]))
    with pytest.raises(ValueError, match="locked colours for a palette"):
        quantize_image(photo_like(16), 2, locked=np.array([RED, WHITE, (0, 0, 0)], np.uint8))


# ------------------------------------------------------------------ importance


def test_importance_weights_are_the_sum_over_pixels():
    img = photo_like(20)
    imp = np.random.default_rng(0).integers(0, 256, (20, 20)).astype(np.uint8)
    table = unique_colors(img)
    w = importance_weights(table, imp)
    # the weight of each distinct colour, summed pixel by pixel
    expected = np.zeros(table.n_colors)
    for p, u in enumerate(table.inverse):
        expected[u] += imp.ravel()[p] / 255.0
    assert np.allclose(w, expected, rtol=0, atol=1e-12)


def test_importance_fit_equals_the_per_pixel_weighted_fit():
    img = photo_like(40)
    rng = np.random.default_rng(5)
    imp = rng.integers(0, 256, (40, 40)).astype(np.uint8)
    init = np.array([[60, 100, 140], [100, 180, 100], [40, 100, 150], [110, 120, 120]], np.uint8)
    r = quantize_image(
        img,
        4,
        color_space="oklab",
        init=init,
        importance=imp,
        keep_small_colors=False,
        error_power=2,
        tol=1e-4,
    )
    # the same fit on every pixel (KMeans's own tol, 1e-4), each weighted by its importance
    pixels = rgb_to_space(img.reshape(-1, 3), "oklab")
    km = KMeans(4, init=rgb_to_space(init, "oklab"), algorithm="lloyd", max_iter=100)
    km.fit(pixels, imp.ravel() / 255.0)
    assert np.allclose(r.model.cluster_centers_, km.cluster_centers_, rtol=0, atol=1e-9)


def test_importance_zero_ignores_pixels_but_maps_them():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:, :5] = RED
    img[:, 5:] = (20, 40, 200)
    img[0, 0] = (200, 50, 40)
    imp = np.full((10, 10), 255, np.uint8)
    imp[:, 5:] = 0  # ignore the blue half
    r = quantize_image(img, 2, importance=imp, keep_small_colors=False)
    assert r.importance
    # both entries serve the red side; the ignored blue pixels still get the nearest entry
    assert {tuple(c) for c in r.palette} == {RED, (200, 50, 40)}
    assert r.labels.shape == (10, 10)
    assert r.parameters()["importance_map"] is True


def test_importance_errors():
    img = photo_like(10)
    with pytest.raises(ValueError, match="image's size"):
        quantize_image(img, 2, importance=np.zeros((9, 10), np.uint8))
    with pytest.raises(ValueError, match="every pixel"):
        quantize_image(img, 2, importance=np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="floats in"):
        quantize_image(img, 2, importance=np.full((10, 10), 2.0))


# ------------------------------------------------------------------ small distinct colours


def test_small_mark_kept_by_default_and_lost_without():
    img, mask = with_mark(photo_like(120), RED, side=6)  # 36 pixels: 0.25 %
    plain = quantize_image(img, 8, color_space="oklab", keep_small_colors=False)
    kept = quantize_image(img, 8, color_space="oklab")
    assert mark_delta_e(img, plain.to_image(), mask) > 10  # K-means alone loses it
    assert mark_delta_e(img, kept.to_image(), mask) < 1.0
    assert len(kept.added) == 1
    (i,) = kept.added
    assert tuple(kept.palette[i]) == RED
    assert kept.palette.shape == (8, 3)  # K stays what was asked
    added = kept.parameters()["added_small_colors"]
    assert added == [{"index": i, "hex": "#d52b1e", "share": pytest.approx(36 / 120**2)}]
    assert any(r.stage == "small-colours" for r in kept.records)
    # at little cost to the whole image: at most 0.5 dB of PSNR here
    err_plain = np.mean((plain.to_image().astype(float) - img) ** 2)
    err_kept = np.mean((kept.to_image().astype(float) - img) ** 2)
    assert 10 * np.log10(err_kept / err_plain) < 0.5


def test_small_colours_rule_thresholds():
    img, mask = with_mark(photo_like(120), RED, side=2)  # 4 pixels: 0.03 %, below 0.03 %?
    share = mask.mean()
    below = quantize_image(img, 8, color_space="oklab", small_color_share=share * 1.01)
    above = quantize_image(img, 8, color_space="oklab", small_color_share=share * 0.99)
    assert below.added == ()
    assert len(above.added) == 1
    far = quantize_image(img, 8, color_space="oklab", small_color_distance=5.0, small_color_share=0)
    assert far.added == ()  # nothing is that far


def test_no_added_colour_on_a_plain_gradient():
    r = quantize_image(photo_like(100), 8, color_space="oklab")
    assert r.added == ()


def test_small_colours_keep_locks_first():
    img, _ = with_mark(photo_like(100), RED, side=3)
    locked = np.array([WHITE], np.uint8)
    lost = quantize_image(img, 8, color_space="oklab", locked=locked, keep_small_colors=False)
    assert RED not in map(tuple, lost.palette)
    r = quantize_image(img, 8, color_space="oklab", locked=locked)
    assert tuple(r.palette[0]) == WHITE
    assert r.added == (1,)
    assert tuple(r.palette[1]) == RED


def test_find_small_groups_orders_the_farthest_first():
    rng = np.random.default_rng(0)
    centers = np.zeros((1, 3))
    near = rng.normal(0.15, 0.002, (50, 3))  # heavy, just past the threshold
    far = rng.normal(0.6, 0.002, (10, 3))
    pts = np.concatenate([near, far])
    w = np.concatenate([np.full(50, 10.0), np.ones(10)])
    groups = find_small_groups(pts, w, centers, distance=0.1, min_share=0.01, max_groups=1)
    assert len(groups) == 1 and set(groups[0]) == set(range(50, 60))
    both = find_small_groups(pts, w, centers, distance=0.1, min_share=0.01, max_groups=2)
    assert [len(g) for g in both] == [10, 50]


@pytest.mark.parametrize("seed", range(4))
def test_find_small_groups_with_any_labels_finds_the_same_groups(seed):
    """Labels only spare the search of points near their entry: the groups stay the same."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 1, (12, 3))
    blobs = [rng.normal(c, 0.01, (40, 3)) for c in rng.uniform(0, 1, (6, 3))]
    pts = np.concatenate([*blobs, rng.normal(centers[rng.integers(0, 12, 400)], 0.02)])
    w = rng.integers(1, 20, len(pts)).astype(float)
    args = dict(distance=0.08, min_share=0.005, max_groups=6)
    plain = find_small_groups(pts, w, centers, **args)
    assert plain  # the case is not vacuous: some blob is far and heavy enough
    nearest = np.argmin(((pts[:, None] - centers[None]) ** 2).sum(-1), axis=1)
    for labels in (nearest, rng.integers(0, 12, len(pts))):  # exact or arbitrary entries
        got = find_small_groups(pts, w, centers, labels=labels, **args)
        assert [sorted(g) for g in got] == [sorted(g) for g in plain]


def test_small_mark_kept_by_the_mixture_too():
    img, mask = with_mark(photo_like(120), RED, side=6)
    plain = quantize_image(img, 4, method="gmm", color_space="oklab", keep_small_colors=False)
    kept = quantize_image(img, 4, method="gmm", color_space="oklab")
    assert mark_delta_e(img, plain.to_image(), mask) > 10
    assert mark_delta_e(img, kept.to_image(), mask) < 1.0
    assert len(kept.added) == 1 and kept.is_soft
    assert tuple(kept.palette[kept.added[0]]) == RED


@pytest.mark.parametrize("k", [6, 12, 48])
def test_a_search_that_finds_nothing_changes_nothing(k):
    # the polish (K <= 32) and the palette run beside the search for small colours: when the
    # search finds none, the result must be exactly the one without the search
    img = photo_like(96, seed=3)
    searched = quantize_image(img, k, color_space="wrgb", seed=1)
    plain = quantize_image(img, k, color_space="wrgb", seed=1, keep_small_colors=False)
    assert searched.added == ()
    np.testing.assert_array_equal(searched.palette, plain.palette)
    np.testing.assert_array_equal(searched.labels, plain.labels)
    assert searched.model.inertia_ == plain.model.inertia_


def test_a_cancel_during_the_search_for_small_colours_ends_the_run(monkeypatch):
    import threading

    from quantize import pipeline
    from quantize.protocol import Cancelled

    stop = threading.Event()
    search = pipeline._keep_small_colors

    def cancelled_meanwhile(*args, **kwargs):
        out = search(*args, **kwargs)
        stop.set()  # the user cancels while the search runs
        return out

    monkeypatch.setattr(pipeline, "_keep_small_colors", cancelled_meanwhile)
    img = photo_like(96, seed=3)
    with pytest.raises(Cancelled):
        quantize_image(img, 8, color_space="wrgb", should_cancel=stop.is_set)
    assert stop.is_set()


def test_a_failed_search_waits_for_the_palette_made_beside_it(monkeypatch):
    import threading

    from quantize import pipeline

    release = threading.Event()
    finished = []
    labels = pipeline.palette_labels

    def held_labels(*args, **kwargs):  # the palette's labels, made beside the search
        assert release.wait(30)
        out = labels(*args, **kwargs)
        finished.append(True)
        return out

    def failing_search(*args, **kwargs):
        release.set()
        raise RuntimeError("search failed")

    monkeypatch.setattr(pipeline, "palette_labels", held_labels)
    monkeypatch.setattr(pipeline, "_keep_small_colors", failing_search)
    with pytest.raises(RuntimeError, match="search failed"):
        quantize_image(photo_like(96, seed=3), 48, color_space="wrgb")
    assert finished == [True]  # nothing of the run goes on after it has ended
    assert not [t for t in threading.enumerate() if t.name.startswith("vq-polish")]
