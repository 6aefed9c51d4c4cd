import json

import numpy as np
import pytest
from PIL import Image

from quantize import QuantizeResult, iter_quantize_image, quantize_image
from quantize.cluster.gmm import GaussianMixture
from quantize.cluster.kmeans import KMeans
from quantize.pipeline import palette_labels
from quantize.protocol import Cancelled, ConvergenceWarning, IterationRecord, QuantizeWarning
from quantize.resources import sample_image_path


@pytest.fixture(scope="module")
def photo():
    with Image.open(sample_image_path()) as im:
        return np.asarray(im.convert("RGB").resize((64, 48), Image.BICUBIC))


@pytest.mark.parametrize("method", ["kmeans", "gmm", "minibatch"])
@pytest.mark.parametrize("space", ["rgb", "lab", "oklab"])
def test_contract_fields(photo, method, space):
    before = photo.copy()
    res = quantize_image(photo, 6, method=method, color_space=space, seed=3)
    np.testing.assert_array_equal(photo, before)
    assert isinstance(res, QuantizeResult)
    assert res.image is photo
    assert res.palette.shape == (6, 3) and res.palette.dtype == np.uint8
    assert res.labels.shape == (48, 64) and res.labels.dtype == np.uint8
    assert res.labels.max() < 6 and res.opaque is None
    np.testing.assert_allclose(res.proportions.sum(), 1.0)
    assert res.history.ndim == 1 and res.history.dtype == np.float64 and len(res.history) > 0
    assert res.records and all(isinstance(r, IterationRecord) for r in res.records)
    assert res.method == method and res.color_space == space and res.seed == 3
    assert res.n_colors_requested == 6 and res.elapsed_s >= 0
    img = res.to_image()
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, res.palette[res.labels])
    np.testing.assert_array_equal(res.label_image(), res.labels)
    np.testing.assert_array_equal(res.indices(), res.labels)
    maps = np.stack([res.responsibility_map(k) for k in range(6)])
    assert maps.dtype == np.float32 and maps.min() >= 0 and maps.max() <= 1
    np.testing.assert_allclose(maps.sum(0), 1.0, atol=1e-5)
    unc = res.uncertainty_map()
    assert unc.shape == (48, 64) and unc.dtype == np.float32
    if method == "gmm":
        assert unc.max() > 0
        np.testing.assert_allclose(unc, 1 - maps.max(0), atol=1e-5)
    else:
        np.testing.assert_array_equal(maps.argmax(0), res.labels)
        assert set(np.unique(maps)) <= {0.0, 1.0} and not unc.any()
    params = json.loads(json.dumps(res.parameters(), allow_nan=False))
    assert params["method"] == method and params["n_colors"] == 6
    assert params["color_space"] == space and params["seed"] == 3
    assert {"fit_options", "n_iter", "converged"} <= set(params)
    with pytest.raises(IndexError):
        res.responsibility_map(6)


def test_reconstruction_quality(photo):
    res = quantize_image(photo, 16)
    mse = ((res.to_image().astype(float) - photo) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 27


def test_unique_colour_fit_equals_all_pixel_fit(photo):
    pixels = photo.reshape(-1, 3).astype(np.float64)
    init = pixels[np.random.default_rng(0).choice(len(pixels), 8, replace=False)]
    # the estimator alone: no small-colour refit after it (tested in test_keep_colours.py),
    # no palette polish (test_polish.py)
    res = quantize_image(photo, 8, init=init, keep_small_colors=False, error_power=2, tol=1e-4)
    km = KMeans(8, init=init).fit(pixels)
    np.testing.assert_allclose(res.model.cluster_centers_, km.cluster_centers_, atol=1e-9)
    np.testing.assert_array_equal(res.table.gather(res.model.labels_).ravel(), km.labels_)
    # the result labels each colour with the entry it is shown with (near ties in OKLab)
    shown = palette_labels(res.table, res.palette, "rgb")
    np.testing.assert_array_equal(res.labels, res.table.gather(shown))
    np.testing.assert_allclose(res.model.inertia_, km.inertia_, rtol=1e-10)
    g_res = quantize_image(photo, 4, method="gmm", init=init[:4], keep_small_colors=False)
    gm = GaussianMixture(4, init=init[:4]).fit(pixels)
    np.testing.assert_allclose(g_res.model.means_, gm.means_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(g_res.model.lower_bound_, gm.lower_bound_, rtol=1e-10)
    np.testing.assert_array_equal(g_res.labels.ravel(), gm.labels_)


def test_transparent_pixels(photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:10, :, 3] = 0
    rgba[:10, :, :3] = (255, 0, 255)  # a colour only hidden pixels have
    res = quantize_image(rgba, 5, method="gmm")
    assert res.opaque is not None and not res.opaque[:10].any() and res.opaque[10:].all()
    assert (res.labels[:10] == 0).all()
    assert not (res.palette == [255, 0, 255]).all(1).any()
    for k in range(5):
        assert (res.responsibility_map(k)[:10] == 0).all()
    assert (res.uncertainty_map()[:10] == 0).all()
    counts = np.bincount(res.labels[10:].ravel(), minlength=5)
    np.testing.assert_allclose(res.proportions, counts / counts.sum())


def test_generator_protocol_and_cancel(photo):
    gen = iter_quantize_image(photo, 4, method="gmm")
    first = next(gen)
    assert isinstance(first, IterationRecord)
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(Cancelled):
        quantize_image(photo, 8, should_cancel=cancel)
    with pytest.raises(Cancelled):
        quantize_image(photo, 8, should_cancel=lambda: True)


def test_degenerate_images():
    one_px = np.array([[[10, 20, 30]]], np.uint8)
    with pytest.warns(QuantizeWarning):
        res = quantize_image(one_px, 4)
    assert res.palette.tolist() == [[10, 20, 30]] and res.labels.shape == (1, 1)
    flat = np.full((8, 8, 3), 77, np.uint8)
    for method in ("kmeans", "gmm"):
        with pytest.warns(QuantizeWarning):
            r = quantize_image(flat, 3, method=method)
        assert r.n_colors == 1 and r.warnings
        assert np.abs(r.palette.astype(int) - 77).max() <= 1
    two = np.zeros((6, 6, 3), np.uint8)
    two[:, 3:] = (200, 100, 50)
    with pytest.warns(QuantizeWarning):
        r2 = quantize_image(two, 8, color_space="lab")
    assert r2.n_colors == 2
    assert sorted(map(tuple, r2.palette.tolist())) == [(0, 0, 0), (200, 100, 50)]
    np.testing.assert_array_equal(r2.to_image(), two)


def test_sixteen_bit_grey_and_many_colours():
    rng = np.random.default_rng(0)
    img16 = rng.integers(0, 65536, size=(20, 20, 3), dtype=np.uint16)
    r = quantize_image(img16, 5, color_space="oklab")
    assert r.palette.dtype == np.uint8 and r.labels.dtype == np.uint8
    grey = rng.integers(0, 256, size=(30, 30), dtype=np.uint8)
    for method in ("kmeans", "optimal1d"):
        g = quantize_image(grey, 4, method=method)
        assert (g.palette[:, 0] == g.palette[:, 1]).all()
    exact = quantize_image(grey, 4, method="optimal1d")
    lloyd = quantize_image(grey, 4, method="kmeans")
    assert exact.model.inertia_ <= lloyd.model.inertia_ * (1 + 1e-9)
    # a grey fit in weighted sRGB scales the one grey axis: the same exact optimum
    weighted = quantize_image(grey, 4, method="optimal1d", color_space="wrgb")
    np.testing.assert_array_equal(weighted.palette, exact.palette)
    with pytest.raises(ValueError, match="grey"):
        quantize_image(img16, 4, method="optimal1d")
    many = rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    big_k = quantize_image(many, 300, max_iter=5, tol=0.5)
    assert big_k.labels.dtype == np.uint16 and big_k.palette.shape == (300, 3)


def test_options_and_errors(photo):
    with pytest.warns(ConvergenceWarning):
        r = quantize_image(photo, 6, max_iter=1)
    assert not r.converged and any("max_iter" in m for m in r.warnings)
    pal = np.array([[0, 0, 0], [255, 255, 255], [200, 30, 30]], np.uint8)
    r2 = quantize_image(photo, 3, init=pal, color_space="lab")
    assert r2.palette.shape == (3, 3)
    with pytest.raises(ValueError, match="unknown option"):
        quantize_image(photo, 3, bogus=1)
    with pytest.raises(ValueError):
        quantize_image(photo, 3, method="median-cut")
    with pytest.raises(ValueError):
        quantize_image(photo, 3, color_space="hsv")
    with pytest.raises(ValueError):
        quantize_image(photo, 0)
    bad = photo.astype(np.float64) / 255
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        quantize_image(bad, 3)


def test_same_seed_same_result(photo):
    a = quantize_image(photo, 7, method="gmm", seed=4)
    b = quantize_image(photo, 7, method="gmm", seed=4)
    np.testing.assert_array_equal(a.palette, b.palette)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.history, b.history)


def test_dithered_views(photo):
    res = quantize_image(photo, 4)
    for method in ("fs", "ordered"):
        idx = res.indices(dither=method)
        assert idx.shape == (48, 64) and idx.max() < 4
        img = res.to_image(dither=method, strength=0.5)
        assert img.shape == (48, 64, 3)
        assert {tuple(c) for c in img.reshape(-1, 3)} <= {tuple(c) for c in res.palette}
    np.testing.assert_array_equal(res.indices(dither="fs", strength=0.0), res.labels)


def test_precomputed_colour_table_is_used_as_given(photo):
    from quantize.features import unique_colors

    table = unique_colors(photo)
    given = quantize_image(photo, 5, seed=2, table=table)
    fresh = quantize_image(photo, 5, seed=2)
    assert given.table is table
    np.testing.assert_array_equal(given.palette, fresh.palette)
    np.testing.assert_array_equal(given.labels, fresh.labels)
    with pytest.raises(ValueError, match="colour table"):
        quantize_image(photo[:10], 5, table=table)


def test_weighted_srgb_merges_the_colours_the_eye_tells_apart_least():
    # black, a red 60 levels away and a green 50 away, one third each: two colours must
    # merge.  Plain sRGB merges black with the nearer green; weighted sRGB sees the red
    # step (0.8 * 60 = 48) as smaller than the green one (50) and merges black with red
    img = np.zeros((6, 6, 3), np.uint8)
    img[2:4, :, 0] = 60
    img[4:, :, 1] = 50

    def palette(space):
        r = quantize_image(img, 2, color_space=space, keep_small_colors=False, n_init=4)
        return sorted(map(tuple, r.palette.tolist()))

    assert palette("rgb") == [(0, 25, 0), (60, 0, 0)]
    assert palette("wrgb") == [(0, 50, 0), (30, 0, 0)]
