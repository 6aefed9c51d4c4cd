"""The spatial prior (mean field on a Potts field) and the small-region merge."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from quantize import quantize_image
from quantize.cli import main
from quantize.regions import STRUCTURE, label_regions
from quantize.segment import (
    SmoothingMemoryError,
    SmoothingSettings,
    class_log_likelihoods,
    free_energy,
    mean_field,
    merge_small_regions,
    segment_result,
    smoothing_bytes,
)

COLOURS = np.array([[200, 60, 60], [60, 160, 80], [70, 90, 190]], float)


def noisy_scene(seed: int = 0, shape=(48, 64), noise: float = 40.0):
    """Three vertical bands, heavy per-pixel noise: many specks without a prior."""
    rng = np.random.default_rng(seed)
    m, n = shape
    truth = np.minimum(np.arange(n) * 3 // n, 2)[None, :].repeat(m, 0)
    img = COLOURS[truth] + rng.normal(0, noise, (m, n, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), truth


def n_regions(labels):
    return sum(ndimage.label(labels == c, structure=STRUCTURE)[1] for c in np.unique(labels))


@pytest.fixture(scope="module")
def gmm_result():
    img, truth = noisy_scene()
    return quantize_image(img, 3, method="gmm", color_space="rgb", seed=0), truth


@pytest.mark.parametrize("method", ["gmm", "kmeans"])
@pytest.mark.parametrize("beta", [0.5, 1.5, 4.0])
def test_free_energy_never_increases_per_sweep(method, beta):
    img, _ = noisy_scene(1, (30, 37))
    res = quantize_image(img, 3, method=method, color_space="rgb", seed=0)
    out = segment_result(res, beta, 0, track_energy=True, tol=1e-6, max_sweeps=15)
    e = out.segmentation.energies
    assert e.size == out.segmentation.n_sweeps + 1 >= 3
    assert np.all(np.diff(e) <= 1e-6 * np.abs(e[:-1]) + 1e-6), e
    assert e[-1] < e[0]  # the prior changed something on this noisy scene


def test_mean_field_is_a_coordinate_minimiser():
    """Each site's update minimises F with the others fixed: perturbing one site raises F."""
    rng = np.random.default_rng(3)
    L = rng.normal(0, 2, (6, 3)).astype(np.float32)
    inv = rng.integers(0, 6, (9, 11))
    q, _ = mean_field(L, inv, 1.2, tol=1e-7, max_sweeps=500)
    f0 = free_energy(q, L, inv, 1.2)
    for _ in range(20):
        i, j = rng.integers(0, 9), rng.integers(0, 11)
        p = q.copy()
        v = rng.dirichlet(np.ones(3)).astype(np.float32)
        p[i, j] = 0.9 * q[i, j] + 0.1 * v
        assert free_energy(p, L, inv, 1.2) >= f0 - 1e-5


def test_beta_zero_is_the_mixture_posterior(gmm_result):
    res, _ = gmm_result
    L, _ = class_log_likelihoods(res)
    q, info = mean_field(L, np.asarray(res.table.inverse).reshape(res.table.shape), 0.0)
    assert info["n_sweeps"] == 0
    for k in range(3):
        np.testing.assert_allclose(q[:, :, k], res.responsibility_map(k), atol=1e-5)


@pytest.mark.parametrize("method", ["gmm", "kmeans"])
def test_responsibilities_sum_to_one_and_labels_follow_them(method):
    img, _ = noisy_scene(2, (32, 40))
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    rgba[5:12, 7:15, 3] = 0  # a transparent hole
    res = quantize_image(rgba, 3, method=method, color_space="oklab", seed=0)
    out = segment_result(res, 1.0, 0)
    maps = np.stack([out.responsibility_map(k) for k in range(3)], axis=2)
    opaque = rgba[:, :, 3] > 0
    np.testing.assert_allclose(maps[opaque].sum(axis=1), 1.0, atol=1e-5)
    assert np.all(maps[~opaque] == 0)
    assert np.isfinite(maps).all() and maps.min() >= 0
    assert np.array_equal(maps.argmax(axis=2)[opaque], out.labels[opaque])
    unc = out.uncertainty_map()
    np.testing.assert_allclose(unc[opaque], 1 - maps.max(axis=2)[opaque], atol=1e-6)
    np.testing.assert_allclose(out.proportions.sum(), 1.0)
    assert out.unsmoothed() is res and res.segmentation is None


def test_prior_removes_specks_and_improves_agreement(gmm_result):
    from sklearn.metrics import adjusted_rand_score

    res, truth = gmm_result
    before = adjusted_rand_score(truth.ravel(), res.labels.ravel())
    out = segment_result(res, 1.5, 0)
    after = adjusted_rand_score(truth.ravel(), out.labels.ravel())
    assert after > before
    assert n_regions(out.labels) < n_regions(res.labels) / 3


@pytest.mark.parametrize("n", [2, 5, 20])
def test_min_region_leaves_no_region_smaller_than_n(n):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, 4, (40, 50)).astype(np.uint8)
    labels[:, 25:] = np.where(rng.random((40, 25)) < 0.9, 3, labels[:, 25:])
    out, merged = merge_small_regions(labels, n, n_classes=4)
    reg = label_regions(out, 4)
    assert reg.sizes.min() >= n
    assert merged > 0
    assert labels.dtype == out.dtype and not np.shares_memory(out, labels)


def test_min_region_picks_the_best_neighbour_by_responsibility():
    labels = np.zeros((9, 9), np.int64)
    labels[:, 5:] = 1
    labels[4, 4] = 2  # a one-pixel speck touching class 0 (3 sides) and class 1 (one side)
    # the speck's responsibilities favour class 1 over class 0
    resp = np.zeros((81, 3))
    resp[:, 0] = 1.0
    resp[4 * 9 + 4] = [0.1, 0.6, 0.3]
    out, merged = merge_small_regions(labels, 2, n_classes=3, scores=lambda pix: resp[pix])
    assert merged == 1 and out[4, 4] == 1
    # without scores the longest shared border wins
    out, _ = merge_small_regions(labels, 2, n_classes=3)
    assert out[4, 4] == 0


def test_min_region_keeps_an_isolated_region_and_ignores_transparent_pixels():
    labels = np.zeros((10, 10), np.uint8)
    labels[2:4, 2:4] = 1
    opaque = np.ones((10, 10), bool)
    opaque[1:5, 1:5] = False
    opaque[2:4, 2:4] = True  # class 1 island surrounded by transparency
    out, merged = merge_small_regions(labels, 10, n_classes=2, opaque=opaque)
    assert merged == 0 and np.array_equal(out, labels)


def test_segment_with_min_region_sets_merged_pixels_to_their_class(gmm_result):
    res, _ = gmm_result
    out = segment_result(res, 0.0, 30)
    seg = out.segmentation
    assert seg.responsibilities is None and seg.n_merged > 0
    assert label_regions(out.labels, 3).sizes.min() >= 30
    moved = seg.reassigned
    for k in range(3):
        r = out.responsibility_map(k)
        assert np.all(r[moved] == (out.labels[moved] == k))
    both = segment_result(res, 1.0, 30)
    maps = np.stack([both.responsibility_map(k) for k in range(3)], axis=2)
    np.testing.assert_allclose(maps.sum(axis=2), 1.0, atol=1e-5)
    assert np.array_equal(maps.argmax(axis=2), both.labels)
    assert both.parameters()["smoothing"]["min_region"] == 30


def test_settings_are_validated_and_nothing_to_do_returns_the_fit(gmm_result):
    res, _ = gmm_result
    assert segment_result(res, 0.0, 0) is res
    for bad in (dict(strength=-1), dict(strength=float("nan")), dict(min_region=-3)):
        with pytest.raises(ValueError):
            SmoothingSettings(**bad)
    once = segment_result(res, 1.0, 0)
    again = segment_result(once, 1.0, 0)  # re-smoothing starts from the fit, not the last one
    assert np.array_equal(once.labels, again.labels)


def test_cli_smooth_and_min_region_write_the_coherent_labels(tmp_path):
    img, _ = noisy_scene(4, (36, 48))
    src = tmp_path / "scene.png"
    Image.fromarray(img).save(src)
    masks = tmp_path / "masks"
    args = ["quantize", str(src), "-k", "3", "--method", "gmm", "--space", "rgb", "-q"]
    code = main([*args, "--masks", str(masks), "--smooth", "--min-region", "16", "--no-image"])
    assert code == 0
    with Image.open(masks / "scene.labels.png") as im:
        written = np.asarray(im)
    res = quantize_image(img, 3, method="gmm", color_space="rgb", seed=0, init="kmeans")
    expected = segment_result(res, 1.0, 16).labels
    assert np.array_equal(written, expected)
    assert label_regions(written, 3).sizes.min() >= 16
    (mask1,) = masks.glob("scene.mask-01*.png")  # the name may carry the colour too
    with Image.open(mask1) as im:
        assert np.array_equal(np.asarray(im) == 255, written == 1)
    assert main([*args, "--smooth", "-1", "--no-image", "--report", str(tmp_path / "r.json")]) == 2


def test_smoothing_memory_is_estimated_bounded_and_guarded(monkeypatch):
    import tracemalloc

    import quantize.segment as segment

    # a smooth gradient with a little noise: K = 32 bands, their responsibilities dominate
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:300, 0:400] / 400.0
    grad = np.stack([255 * x, 255 * y, 128 + 100 * np.sin(6 * x)], axis=2)
    img = np.clip(np.rint(grad + rng.normal(0, 3, grad.shape)), 0, 255).astype(np.uint8) // 4 * 4
    res = quantize_image(img, 32, method="kmeans", color_space="rgb", seed=0, n_init=1)
    u, k = len(res.table.counts), res.n_colors
    need = smoothing_bytes(img.shape[:2], u, k, prior=True, working_memory_mib=1)
    assert need >= 4 * k * img.shape[0] * img.shape[1]  # the responsibilities at least
    # the estimate bounds what the prior really holds at its peak (no whole-image copies):
    # with a small working-memory budget the peak is the kept responsibilities plus a little
    tracemalloc.start()
    try:
        smoothed = segment_result(res, 1.0, 8, max_sweeps=2, working_memory_mib=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    kept = smoothed.segmentation.responsibilities
    assert kept.nbytes == 4 * k * img.shape[0] * img.shape[1]
    assert peak <= need
    assert peak < 1.6 * kept.nbytes  # was 2x and more (a copy on filling and on return)
    # above the limit: refused before allocating, with the size and what to do
    limit = need / 2**20 / 2
    tracemalloc.start()
    try:
        with pytest.raises(SmoothingMemoryError, match=r"K = 32 .* MiB allowed.*strength 0"):
            segment_result(res, 1.0, 8, max_memory_mib=limit, working_memory_mib=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * kept.nbytes
    # the small-region merge alone fits the same limit
    merged = segment_result(res, 0.0, 8, max_memory_mib=limit, working_memory_mib=1)
    assert merged.segmentation.responsibilities is None
    # the module default applies when none is given
    monkeypatch.setattr(segment, "MAX_MEMORY_MIB", limit)
    with pytest.raises(SmoothingMemoryError):
        segment_result(res, 1.0, 0, working_memory_mib=1)


def test_cli_refuses_a_smoothing_too_large_with_its_reason(tmp_path, monkeypatch, capsys):
    import quantize.segment as segment

    img, _ = noisy_scene(6, (36, 48))
    src = tmp_path / "scene.png"
    Image.fromarray(img).save(src)
    monkeypatch.setattr(segment, "MAX_MEMORY_MIB", 0.01)
    out = tmp_path / "out.png"
    assert main(["quantize", str(src), "-k", "3", "--smooth", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "smoothing a 48x36 image with K = 3 would need" in err and "nothing written" in err
    assert not out.exists()


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_assignment_uncertainty_is_one_minus_the_largest_soft_assignment(method):
    from quantize.segment import assignment_uncertainty, soft_assignments

    result = quantize_image(noisy_scene(3)[0], 4, method=method, seed=0)
    colours = np.arange(result.table.n_colors)[::-3]  # any order, a subset
    got = assignment_uncertainty(result, colours)
    expected = 1.0 - soft_assignments(result, colours).max(axis=1)
    assert got.shape == colours.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-7)
    assert got.min() >= 0.0 and got.max() <= 1.0 - 1.0 / 4 + 1e-6
    assert got.max() > 0.1  # the noise puts some colours between classes
