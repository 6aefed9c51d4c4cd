"""Quality metrics: checked against direct (unoptimised) computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from quantize.metrics import (
    Metrics,
    _ssim_in_strips,
    compute_metrics,
    delta_e_stats,
    image_metrics,
    mse_psnr,
    ssim,
    unique_color_count,
)
from quantize.pipeline import quantize_image
from quantize.png import encode_indexed_png

RNG = np.random.default_rng(11)


def pair(h=30, w=40, noise=20):
    a = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + RNG.integers(-noise, noise + 1, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_mse_psnr_by_hand():
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 12  # one error of 12 over 12 samples -> mse 12
    mse, psnr = mse_psnr(a, b)
    assert mse == pytest.approx(12.0)
    assert psnr == pytest.approx(10 * math.log10(255**2 / 12.0))
    assert mse_psnr(a, a) == (0.0, math.inf)


def test_transparent_pixels_do_not_count():
    a, b = pair()
    opaque = np.ones(a.shape[:2], bool)
    opaque[:, 20:] = False
    b2 = b.copy()
    b2[:, 20:] = 255 - a[:, 20:]  # wildly wrong where transparent
    m1 = image_metrics(a, b, None)
    m_masked = image_metrics(a, b2, opaque)
    m_left = image_metrics(a[:, :20], b[:, :20], None)
    assert m_masked["mse"] == pytest.approx(m_left["mse"])
    assert m_masked["delta_e_mean"] == pytest.approx(m_left["delta_e_mean"])
    assert m1["mse"] != pytest.approx(m_masked["mse"])


def test_ssim_strips_equal_whole_image():
    a, b = pair(41, 33)
    whole = structural_similarity(a, b, channel_axis=2, data_range=255)
    # the float32 strips (the path of large and 16-bit images) and the integer path
    assert _ssim_in_strips(a, b, strip_rows=5) == pytest.approx(whole, abs=1e-6)
    assert ssim(a, b) == pytest.approx(whole, abs=1e-6)
    assert _ssim_in_strips(a, b, strip_rows=5) == pytest.approx(_ssim_in_strips(a, b), abs=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)


def test_ssim_small_images():
    a, b = pair(5, 4)
    assert ssim(a, b) == pytest.approx(
        structural_similarity(a, b, win_size=3, channel_axis=2, data_range=255), abs=1e-6
    )
    assert ssim(a[:2, :2], b[:2, :2]) is None


def test_delta_e_matches_per_pixel_computation():
    a, b = pair(20, 25, noise=30)
    # make pairs repeat so the unique-pair weighting matters
    a[:10] = a[0, 0]
    b[:10] = b[0, 0]
    direct = deltaE_ciede2000(rgb2lab(a / 255.0), rgb2lab(b / 255.0)).ravel()
    mean, p95 = delta_e_stats(a, b)
    assert mean == pytest.approx(direct.mean(), rel=1e-9)
    assert p95 == pytest.approx(np.percentile(direct, 95, method="inverted_cdf"), rel=1e-9)
    assert delta_e_stats(a, a) == (0.0, 0.0)


def test_uint16_original_reduced_to_8_bit():
    a, b = pair()
    m8 = image_metrics(a, b)
    m16 = image_metrics(a.astype(np.uint16) * 257, b)
    assert m8 == m16


def test_unique_color_count():
    img = np.zeros((3, 3, 3), np.uint8)
    img[0, 0] = (1, 2, 3)
    img[1, 1] = (1, 2, 4)
    assert unique_color_count(img) == 3
    opaque = np.ones((3, 3), bool)
    opaque[0, 0] = False
    assert unique_color_count(img, opaque) == 2
    assert unique_color_count(img.astype(np.uint16) * 257) == 3


def test_compute_metrics_on_a_real_result():
    x = np.linspace(0, 255, 32)
    img = np.stack([*np.meshgrid(x, x[::-1]), np.full((32, 32), 77.0)], 2).astype(np.uint8)
    result = quantize_image(img, 6, seed=3)
    m = compute_metrics(result, original_bytes=10_000)
    assert isinstance(m, Metrics)
    rendered = result.palette[result.labels]
    mse, psnr = mse_psnr(img, rendered)
    assert m.mse == pytest.approx(mse) and m.psnr == pytest.approx(psnr)
    assert m.unique_before == unique_color_count(img)
    assert m.unique_after == len(np.unique(result.labels))
    png = encode_indexed_png(result.labels, result.palette, sort=True)
    assert m.png_bytes == len(png)
    assert m.bits_per_pixel == pytest.approx(8 * len(png) / 32 / 32)
    assert m.ratio == pytest.approx(10_000 / len(png))
    md = compute_metrics(result, dither="fs")
    assert md.ratio is None and md.original_bytes is None
    assert md.mse != m.mse  # a different rendering is measured
    json.dumps(m.to_dict(), allow_nan=False)


def test_lossless_result_gives_null_psnr_in_json():
    img = np.zeros((8, 8, 3), np.uint8)
    img[:4] = (200, 10, 10)
    result = quantize_image(img, 2)
    m = compute_metrics(result)
    assert m.psnr == math.inf and m.mse == 0.0 and m.delta_e_mean == 0.0
    d = m.to_dict()
    assert d["psnr"] is None
    assert json.loads(json.dumps(d, allow_nan=False))["ssim"] == pytest.approx(1.0)


def test_compute_metrics_on_grey_input():
    grey = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (6, 1))
    result = quantize_image(grey, 4, method="optimal1d")
    m = compute_metrics(result, dither="fs")
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    expected = image_metrics(rgb, result.palette[result.indices("fs")])
    assert m.mse == pytest.approx(expected["mse"]) and m.unique_before == 32


def test_compute_metrics_cancel_and_same_values():
    from quantize.protocol import Cancelled

    img = np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    result = quantize_image(img, 5, seed=0)
    ref = compute_metrics(result, dither="fs", strength=0.7)
    same = compute_metrics(result, dither="fs", strength=0.7, should_cancel=lambda: False)
    assert same == ref
    calls = {"n": 0}

    def cancel_later() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(Cancelled):
        compute_metrics(result, dither="fs", strength=0.7, should_cancel=cancel_later)


@pytest.mark.parametrize("alpha", [False, True])
def test_undithered_metrics_per_colour_equal_the_per_pixel_ones(alpha):
    from quantize.metrics import compute_metrics
    from quantize.pipeline import quantize_image

    a, _ = pair(40, 50, noise=30)
    img = np.dstack([a, np.full((40, 50), 255, np.uint8)]) if alpha else a
    if alpha:
        img[:5, :, 3] = 0
    r = quantize_image(img, 6, seed=0)
    m = compute_metrics(r)
    rendered = np.asarray(r.palette, np.uint8)[r.labels]
    direct = image_metrics(a, rendered, r.opaque)
    assert m.mse == pytest.approx(direct["mse"], rel=1e-12)
    assert m.delta_e_mean == pytest.approx(direct["delta_e_mean"], rel=1e-12)
    assert m.delta_e_p95 == pytest.approx(direct["delta_e_p95"], rel=1e-12)
    assert m.ssim == pytest.approx(direct["ssim"], abs=1e-12)
