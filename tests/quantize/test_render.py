"""Rendering onto a palette: nearest colour, Floyd–Steinberg and ordered dithering."""

from __future__ import annotations

import numpy as np
import pytest

from quantize.cluster._nearest import nearest_indices
from quantize.render import BAYER_8, dither_indices

RNG = np.random.default_rng(7)
BW = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)


def brute_nearest(img, pal):
    d = ((img[:, :, None, :3].astype(float) - pal[None, None].astype(float)) ** 2).sum(-1)
    return d.argmin(-1)


def gradient(h=24, w=48):
    x = np.linspace(0, 255, w)
    y = np.linspace(40, 220, h)
    return np.stack(
        [np.tile(x, (h, 1)), np.tile(y[:, None], (1, w)), np.full((h, w), 90.0)], 2
    ).astype(np.uint8)


def test_bayer_matrix_is_a_permutation():
    assert BAYER_8.shape == (8, 8)
    assert sorted(BAYER_8.ravel()) == list(range(64))


def test_none_is_nearest_colour():
    img = RNG.integers(0, 256, (10, 13, 3), dtype=np.uint8)
    pal = RNG.integers(0, 256, (7, 3), dtype=np.uint8)
    idx = dither_indices(img, pal, "none")
    assert idx.dtype == np.uint8 and idx.shape == (10, 13)
    np.testing.assert_array_equal(idx, brute_nearest(img, pal))
    np.testing.assert_array_equal(nearest_indices(img.reshape(-1, 3), pal), idx.ravel())


@pytest.mark.parametrize("method", ["fs", "ordered"])
def test_strength_zero_is_nearest(method):
    img = gradient()
    pal = RNG.integers(0, 256, (5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        dither_indices(img, pal, method, 0.0), dither_indices(img, pal, "none")
    )


@pytest.mark.parametrize("strength", [1.0, 0.999])  # Pillow's C path and the numpy path
def test_fs_keeps_mean_colour(strength):
    img = gradient()
    pal = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    idx = dither_indices(img, pal, "fs", strength)
    rendered = pal[idx].astype(float)
    plain = pal[dither_indices(img, pal, "none")].astype(float)
    err_fs = np.abs(rendered.mean((0, 1)) - img.mean((0, 1))).max()
    err_plain = np.abs(plain.mean((0, 1)) - img.mean((0, 1))).max()
    assert err_fs < 6 and err_fs < err_plain


@pytest.mark.parametrize("grey,share", [(128, 0.5), (64, 0.25), (191, 0.75)])
@pytest.mark.parametrize("method,strength", [("fs", 1.0), ("fs", 0.99), ("ordered", 1.0)])
def test_flat_grey_gets_right_share_of_white(grey, share, method, strength):
    img = np.full((32, 32, 3), grey, np.uint8)
    idx = dither_indices(img, BW, method, strength)
    assert abs(idx.mean() - share) < 0.03
    assert 0 < idx.mean() < 1  # a pattern, not a flat area


def test_fs_reduced_strength_diffuses_less():
    img = np.full((32, 32, 3), 100, np.uint8)
    full = dither_indices(img, BW, "fs", 1.0).mean()
    weak = dither_indices(img, BW, "fs", 0.2).mean()
    assert full > 0.3 and weak < full


def test_ordered_is_periodic():
    img = np.full((24, 24, 3), 128, np.uint8)
    idx = dither_indices(img, BW, "ordered", 1.0)
    np.testing.assert_array_equal(idx[:8, :8], idx[8:16, 16:24])


def test_uint16_input_reduced_to_8_bit():
    img8 = RNG.integers(0, 256, (9, 9, 3), dtype=np.uint8)
    img16 = img8.astype(np.uint16) * 257
    pal = RNG.integers(0, 256, (6, 3), dtype=np.uint8)
    for method in ("none", "fs", "ordered"):
        np.testing.assert_array_equal(
            dither_indices(img16, pal, method), dither_indices(img8, pal, method)
        )


def test_more_than_256_colours_gives_uint16():
    img = RNG.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    pal = RNG.integers(0, 256, (300, 3), dtype=np.uint8)
    for method in ("none", "fs", "ordered"):
        idx = dither_indices(img, pal, method)
        assert idx.dtype == np.uint16 and idx.max() < 300
    np.testing.assert_array_equal(dither_indices(img, pal, "none"), brute_nearest(img, pal))


def test_transparent_pixels_get_index_zero_and_diffuse_nothing():
    left = np.full((16, 8, 3), 128, np.uint8)
    garbage = RNG.integers(0, 256, (16, 8, 3), dtype=np.uint8)
    img = np.dstack([np.concatenate([left, garbage], 1), np.zeros((16, 16), np.uint8)])
    img[:, :8, 3] = 255
    idx = dither_indices(img, BW, "fs", 1.0)
    assert np.all(idx[:, 8:] == 0)
    np.testing.assert_array_equal(idx[:, :8], dither_indices(left, BW, "fs", 1.0 - 1e-9))


def test_input_not_modified_and_palette_of_one():
    img = gradient()
    before = img.copy()
    idx = dither_indices(img, np.array([[10, 20, 30]]), "fs")
    np.testing.assert_array_equal(img, before)
    assert np.all(idx == 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "floyd"},
        {"strength": 1.5},
        {"strength": -0.1},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        dither_indices(gradient(), BW, **kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError):
        dither_indices(np.zeros((4, 4, 5), np.uint8), BW)
    with pytest.raises(ValueError):
        dither_indices(np.zeros((4, 4, 3), np.complex64), BW)
    with pytest.raises(ValueError):
        dither_indices(np.full((4, 4, 3), np.nan), BW)
    with pytest.raises(ValueError):
        dither_indices(np.zeros((4, 4, 3), np.uint8), np.zeros((0, 3)))


def test_map_to_palette_result():
    from quantize.metrics import compute_metrics
    from quantize.pipeline import map_to_palette

    img = np.dstack([gradient(), np.full((24, 48), 255, np.uint8)])
    img[:4, :, 3] = 0
    pal = np.array([[250, 250, 250], [0, 0, 0], [255, 0, 0], [0, 200, 90]], np.uint8)
    r = map_to_palette(img, pal, color_space="lab")
    np.testing.assert_array_equal(r.palette, pal)
    assert r.method == "palette" and r.n_iter == 0 and r.converged
    assert np.all(r.labels[:4] == 0) and r.opaque is not None and not r.opaque[:4].any()
    assert r.proportions.sum() == pytest.approx(1.0)
    counts = np.bincount(r.labels[r.opaque], minlength=4) / r.opaque.sum()
    np.testing.assert_allclose(r.proportions, counts)
    np.testing.assert_array_equal(r.responsibility_map(2), (r.labels == 2) & r.opaque)
    rgb = map_to_palette(img, pal, color_space="rgb")
    np.testing.assert_array_equal(rgb.labels[4:], brute_nearest(img[4:], pal))
    assert compute_metrics(rgb).unique_after <= 4
    with pytest.raises(ValueError):
        map_to_palette(img, np.zeros((0, 3), np.uint8))


def test_grey_and_float_images_accepted():
    grey = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (4, 1))
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    for method in ("none", "fs", "ordered"):
        expected = dither_indices(rgb, BW, method)
        np.testing.assert_array_equal(dither_indices(grey, BW, method), expected)
        np.testing.assert_array_equal(dither_indices(grey[:, :, None], BW, method), expected)
    ga = np.dstack([grey, np.full_like(grey, 255)])
    ga[0, 0, 1] = 0
    idx = dither_indices(ga, BW, "none")
    assert idx[0, 0] == 0 and idx[0, -1] == 1
    np.testing.assert_array_equal(
        dither_indices(rgb / 255.0, BW, "none"), dither_indices(rgb, BW, "none")
    )


@pytest.mark.parametrize("method,strength", [("fs", 0.5), ("ordered", 1.0)])
def test_cancel(method, strength):
    from quantize.protocol import Cancelled

    calls = {"n": 0}

    def should_cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    img = RNG.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    with pytest.raises(Cancelled):
        dither_indices(img, BW, method, strength, should_cancel=should_cancel)
    assert calls["n"] == 2
    out = dither_indices(img, BW, method, strength, should_cancel=lambda: False)
    assert out.shape == (300, 300)


def wavefront_reference(rgb, palette, strength, opaque):
    """Floyd–Steinberg over a whole-image error buffer, one wavefront x + 2y = t at a time
    (the plain form of the ring-buffer implementation; it must match it to the bit)."""
    m, n = rgb.shape[:2]
    work = np.zeros((m + 1, n + 2, 3), np.float64)
    work[:m, 1 : n + 1] = rgb
    out = np.zeros((m, n), np.int64)
    p_sq = np.einsum("kd,kd->k", palette, palette)
    ys_all = np.arange(m)
    for t in range(n + 2 * (m - 1)):
        ys = ys_all[(t - 2 * ys_all >= 0) & (t - 2 * ys_all < n)]
        xs = t - 2 * ys
        cx = xs + 1
        value = np.clip(work[ys, cx], 0.0, 255.0)
        idx = np.argmin(p_sq[None, :] - 2.0 * (value @ palette.T), axis=1)
        out[ys, xs] = idx
        err = (value - palette[idx]) * strength
        if opaque is not None:
            err[~opaque[ys, xs]] = 0.0
        work[ys, cx + 1] += err * (7.0 / 16.0)
        work[ys + 1, cx - 1] += err * (3.0 / 16.0)
        work[ys + 1, cx] += err * (5.0 / 16.0)
        work[ys + 1, cx + 1] += err * (1.0 / 16.0)
    if opaque is not None:
        out[~opaque] = 0
    return out


@pytest.mark.parametrize("case", range(12))
def test_fs_error_diffusion_is_exact(case):
    rng = np.random.default_rng(100 + case)
    shapes = [
        (1, 1),
        (1, 9),
        (9, 1),
        (2, 2),
        (5, 3),
        (3, 5),
        (17, 23),
        (40, 31),
        (31, 40),
        (64, 64),
        (8, 70),
        (70, 8),
    ]
    m, n = shapes[case]
    k = [2, 5, 16, 300][case % 4]  # 300: more than Pillow's 256
    img = rng.integers(0, 256, (m, n, 3), dtype=np.uint8)
    img[: m // 2] = gradient(m, n)[: m // 2]  # smooth part: long error chains
    palette = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    opaque = rng.random((m, n)) > 0.2 if case % 3 == 0 else None
    # full strength only where Pillow's error diffusion does not apply
    strength = 1.0 if k > 256 or opaque is not None else [0.35, 0.8][case % 2]
    got = dither_indices(img, palette, "fs", strength, opaque=opaque)
    ref = wavefront_reference(img, palette.astype(np.float64), strength, opaque)
    np.testing.assert_array_equal(got, ref)
    assert got.dtype == (np.uint8 if k <= 256 else np.uint16)
