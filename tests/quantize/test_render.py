"""Rendering onto a palette: nearest colour, Floyd–Steinberg and ordered dithering."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from quantize.cluster._nearest import nearest_indices
from quantize.colorspace import WRGB_WEIGHTS
from quantize.render import _DIRECT_MAX, BAYER_8, TIE_RATIO, dither_indices, nearest_entries

RNG = np.random.default_rng(7)
BW = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)


def brute_nearest(img, pal):
    d = ((img[:, :, None, :3].astype(float) - pal[None, None].astype(float)) ** 2).sum(-1)
    return d.argmin(-1)


def ref_oklab(rgb):
    """OKLab of sRGB 0-255 colours, from Ottosson's published matrices (not the engine's)."""
    c = np.asarray(rgb, float) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m1 = np.array(
        [
            [0.4122214708, 0.5363325363, 0.0514459929],
            [0.2119034982, 0.6806995451, 0.1073969566],
            [0.0883024619, 0.2817188376, 0.6299787005],
        ]
    )
    m2 = np.array(
        [
            [0.2104542553, 0.7936177850, -0.0040720468],
            [1.9779984951, -2.4285922050, 0.4505937099],
            [0.0259040371, 0.7827717662, -0.8086757660],
        ]
    )
    return np.cbrt(lin @ m1.T) @ m2.T


def brute_entry(img, pal, weights=(1.0, 1.0, 1.0)):
    """The undithered rule by brute force: the nearest entry by the weighted sRGB distance;
    of the two nearest, the nearer in OKLab when the second is within TIE_RATIO of the first."""
    x = img[..., :3].reshape(-1, 3).astype(float)
    p = np.asarray(pal, float)
    d = (((x[:, None, :] - p[None]) * np.asarray(weights)) ** 2).sum(-1)
    a, b = np.argsort(d, axis=1, kind="stable")[:, :2].T
    r = np.arange(len(x))
    tied = d[r, b] <= TIE_RATIO**2 * d[r, a]
    ok, ok_pal = ref_oklab(x), ref_oklab(p)
    b_nearer = ((ok - ok_pal[b]) ** 2).sum(1) < ((ok - ok_pal[a]) ** 2).sum(1)
    return np.where(tied & b_nearer, b, a).reshape(img.shape[:2]), tied, b_nearer


def gradient(h=24, w=48):
    x = np.linspace(0, 255, w)
    y = np.linspace(40, 220, h)
    return np.stack(
        [np.tile(x, (h, 1)), np.tile(y[:, None], (1, w)), np.full((h, w), 90.0)], 2
    ).astype(np.uint8)


def test_bayer_matrix_is_a_permutation():
    assert BAYER_8.shape == (8, 8)
    assert sorted(BAYER_8.ravel()) == list(range(64))


def test_none_is_the_nearest_entry_with_oklab_deciding_near_ties():
    img = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    pal = RNG.integers(0, 256, (7, 3), dtype=np.uint8)
    idx = dither_indices(img, pal, "none")
    assert idx.dtype == np.uint8 and idx.shape == (30, 40)
    expect, tied, b_nearer = brute_entry(img, pal)
    np.testing.assert_array_equal(idx, expect)
    plain = brute_nearest(img, pal).ravel()
    # both kinds of disagreement occur: within the ratio OKLab overrules sRGB, beyond it not
    assert (tied & b_nearer).any() and (~tied & b_nearer).any()
    np.testing.assert_array_equal(idx.ravel()[~tied], plain[~tied])
    assert (idx.ravel()[tied & b_nearer] != plain[tied & b_nearer]).all()
    np.testing.assert_array_equal(nearest_entries(img.reshape(-1, 3), pal), idx.ravel())


def test_a_colour_that_is_an_entry_keeps_it():
    pal = RNG.integers(0, 256, (40, 3), dtype=np.uint8)
    pal[1] = pal[0] + 1  # a near neighbour, which OKLab might prefer were it a tie
    np.testing.assert_array_equal(nearest_entries(pal, pal), np.arange(40))
    dup = np.concatenate([pal, pal[:3]])  # equal entries: the lower index
    np.testing.assert_array_equal(nearest_entries(pal[:3], dup), [0, 1, 2])


@pytest.mark.parametrize("method", ["fs", "ordered"])
def test_strength_zero_is_nearest(method):
    img = gradient()
    pal = RNG.integers(0, 256, (5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        dither_indices(img, pal, method, 0.0), dither_indices(img, pal, "none")
    )


@pytest.mark.parametrize("adaptive", [True, False])
def test_fs_keeps_mean_colour(adaptive):
    img = gradient()
    pal = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    idx = dither_indices(img, pal, "fs", adaptive=adaptive)
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
    np.testing.assert_array_equal(dither_indices(img, pal, "none"), brute_entry(img, pal)[0])


@pytest.mark.parametrize("adaptive", [True, False])
def test_transparent_pixels_get_index_zero_and_change_nothing(adaptive):
    rgb = np.concatenate([gradient(16, 8), RNG.integers(0, 256, (16, 8, 3), dtype=np.uint8)], 1)
    alpha = np.zeros((16, 16), np.uint8)
    alpha[:, :8] = 255
    alpha[5, 3] = 0  # a hole inside the visible part
    img = np.dstack([rgb, alpha])
    other = img.copy()
    other[alpha == 0, :3] = RNG.integers(0, 256, (int((alpha == 0).sum()), 3), dtype=np.uint8)
    idx = dither_indices(img, BW, "fs", adaptive=adaptive)
    assert np.all(idx[alpha == 0] == 0)
    # what lies under transparent pixels neither takes nor gives error nor steers the map
    np.testing.assert_array_equal(idx, dither_indices(other, BW, "fs", adaptive=adaptive))
    assert 0 < idx[:, :8].mean() < 1


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
    np.testing.assert_array_equal(rgb.labels[4:], brute_entry(img[4:], pal)[0])
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


def wavefront_reference(rgb, palette, weight, cap, drop_sq, overshoot, opaque, scale=None):
    """The error diffusion over a whole-image error buffer, one wavefront x + 2y = t at a
    time (the plain form of the ring-buffer implementation; it must match it to the bit).
    ``scale``: channel scales of the nearest-entry distance (the error stays in sRGB)."""
    s = np.ones(3) if scale is None else np.asarray(scale, np.float64)
    m, n = rgb.shape[:2]
    work = np.zeros((m + 1, n + 2, 3), np.float32)
    out = np.zeros((m, n), np.int64)
    pal32 = palette.astype(np.float32)
    ys_all = np.arange(m)
    for t in range(n + 2 * (m - 1)):
        ys = ys_all[(t - 2 * ys_all >= 0) & (t - 2 * ys_all < n)]
        xs = t - 2 * ys
        cx = xs + 1
        take = weight[ys, xs].astype(np.float32)
        if opaque is not None:
            take = take * opaque[ys, xs].astype(np.float32)
        e = work[ys, cx] * take[:, None]
        e_sq = np.einsum("ij,ij->i", e, e)
        scale = (e_sq >= drop_sq).astype(np.float32)
        big = e_sq > cap * cap
        scale[big] = np.sqrt(cap * cap / e_sq[big])
        value = np.clip(
            rgb[ys, xs].astype(np.float32) + e * scale[:, None], -overshoot, 255 + overshoot
        )
        if len(palette) <= _DIRECT_MAX:  # the value itself
            idx = nearest_indices(value.astype(np.float64) * s, palette * s)
        else:  # the rounded value
            rounded = np.clip(np.rint(value), 0, 255).astype(np.float64)
            idx = nearest_indices(rounded * s, palette * s)
        out[ys, xs] = idx
        err = value - pal32[idx]
        if opaque is not None:
            err[~opaque[ys, xs]] = 0.0
        work[ys, cx + 1] += err * np.float32(7.0 / 16.0)
        work[ys + 1, cx - 1] += err * np.float32(3.0 / 16.0)
        work[ys + 1, cx] += err * np.float32(5.0 / 16.0)
        work[ys + 1, cx + 1] += err * np.float32(1.0 / 16.0)
    return out


def diffusers():
    """The numpy wavefront form and, when numba is there, the compiled raster loop."""
    from quantize.render import _diffuse, _diffuse_compiled, compiled_diffusion

    out = [pytest.param(_diffuse, id="numpy")]
    kernel = compiled_diffusion()
    out.append(
        pytest.param(
            None if kernel is None else partial(_diffuse_compiled, kernel),
            id="compiled",
            marks=pytest.mark.skipif(kernel is None, reason="numba not available"),
        )
    )
    return out


@pytest.mark.parametrize("scale", [None, WRGB_WEIGHTS], ids=["srgb", "wrgb"])
@pytest.mark.parametrize("diffuse", diffusers())
@pytest.mark.parametrize("case", range(12))
def test_fs_error_diffusion_is_exact(case, diffuse, scale, monkeypatch):
    import quantize.render
    from quantize.render import _PaletteLookup

    # bands of a few rows: the compiled loop carries the pending error across its calls
    monkeypatch.setattr(quantize.render, "_COMPILED_BAND_PIXELS", 64)

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
    k = [2, 5, 40, 300][case % 4]  # 5, 40 and 300: the memo table instead of a direct search
    img = rng.integers(0, 256, (m, n, 3), dtype=np.uint8)
    img[: m // 2] = gradient(m, n)[: m // 2]  # smooth part: long error chains
    palette = rng.integers(0, 256, (k, 3), dtype=np.uint8).astype(np.float64)
    opaque = rng.random((m, n)) > 0.2 if case % 3 == 0 else None
    weight = rng.random((m, n)).astype(np.float32)
    # classic (no cap, no drop, no overshoot) and adaptive settings
    cap, drop_sq, overshoot = [(np.inf, 0.0, 0.0), (30.0, 2.0, 16.0)][case % 2]
    lookup = _PaletteLookup(palette, scale)
    got = diffuse(
        img,
        palette,
        weight,
        lookup,
        cap=cap,
        drop_sq=drop_sq,
        overshoot=overshoot,
        opaque=opaque,
        should_cancel=None,
    )
    ref = wavefront_reference(img, palette, weight, cap, drop_sq, overshoot, opaque, scale)
    np.testing.assert_array_equal(got, ref)


def test_fs_exact_image_comes_back_unchanged():
    pal = RNG.integers(0, 256, (200, 3), dtype=np.uint8)
    truth = RNG.integers(0, 200, (40, 50))
    img = pal[truth]
    for adaptive in (True, False):
        np.testing.assert_array_equal(dither_indices(img, pal, "fs", adaptive=adaptive), truth)


@pytest.mark.parametrize("k", [5, 64])
def test_given_nearest_rendering_gives_the_same_dithering(k):
    img = np.clip(gradient(40, 60) + RNG.normal(0, 8, (40, 60, 3)), 0, 255).astype(np.uint8)
    pal = RNG.integers(0, 256, (k, 3), dtype=np.uint8)
    near = dither_indices(img, pal, "none")
    np.testing.assert_array_equal(
        dither_indices(img, pal, "fs", nearest=near), dither_indices(img, pal, "fs")
    )


def test_dither_map_is_high_on_bands_and_low_on_texture():
    from quantize.render import dither_map

    ramp = np.repeat(np.linspace(60, 90, 64)[None, :], 64, axis=0)
    smooth = np.repeat(ramp[:, :, None], 3, axis=2).astype(np.uint8)
    pal = np.array([[60] * 3, [75] * 3, [90] * 3], np.uint8)
    w_smooth = dither_map(smooth, dither_indices(smooth, pal, "none"))
    noisy = np.clip(smooth + RNG.normal(0, 25, smooth.shape), 0, 255).astype(np.uint8)
    w_noisy = dither_map(noisy, dither_indices(noisy, pal, "none"))
    assert w_smooth.dtype == np.float32 and w_smooth.shape == (64, 64)
    assert 0 <= w_noisy.min() and w_smooth.max() <= 1
    assert np.median(w_smooth) > 0.9  # bands: dither in full
    # a coarse palette dithers texture nearly in full too (its noise cost less SSIM than
    # the colour it keeps); only where the rendering changes already it takes 90 %
    assert np.median(w_noisy) >= 0.9 - 1e-6
    # a fine palette takes less on texture: at least floor * flat_min = 72 %
    w_fine = dither_map(noisy, dither_indices(noisy, pal, "none"), n_colors=64)
    assert 0.72 - 1e-6 <= w_fine.min() and np.median(w_fine) < 0.85
    assert np.median(dither_map(smooth, dither_indices(smooth, pal, "none"), n_colors=64)) > 0.9


def test_adaptive_fs_diffuses_less_on_texture_and_still_removes_bands():
    ramp = np.repeat(np.linspace(60, 90, 128)[None, :], 64, axis=0)
    smooth = np.repeat(ramp[:, :, None], 3, axis=2).astype(np.uint8)
    pal = np.array([[60] * 3, [75] * 3, [90] * 3], np.uint8)
    near = dither_indices(smooth, pal, "none")
    fs = dither_indices(smooth, pal, "fs")
    # the band structure is broken up: column means follow the ramp far better
    col_err = lambda idx: np.abs(pal[idx][:, :, 0].mean(0) - ramp[0]).mean()  # noqa: E731
    assert col_err(fs) < 0.5 * col_err(near)
    rng = np.random.default_rng(11)
    noisy = np.clip(smooth + rng.normal(0, 25, smooth.shape), 0, 255).astype(np.uint8)
    near = dither_indices(noisy, pal, "none")
    changed_adaptive = (dither_indices(noisy, pal, "fs") != near).mean()
    changed_classic = (dither_indices(noisy, pal, "fs", adaptive=False) != near).mean()
    assert changed_adaptive < changed_classic  # the cap, the drop and the flat factor


def test_large_errors_are_capped_and_tiny_ones_dropped():
    # a saturated magenta square on grey, a palette without it: classic diffusion smears
    # the square's error into the grey around it, the cap keeps it on the square
    grey = np.full((40, 40, 3), 128, np.uint8)
    pal = np.array(
        [[128, 128, 128], [0, 0, 0], [255, 255, 255], [128, 128, 255], [255, 128, 128]], np.uint8
    )
    dot = grey.copy()
    dot[10:14, 10:14] = (255, 0, 255)
    outside = np.ones((40, 40), bool)
    outside[10:14, 10:14] = False
    assert np.any(dither_indices(dot, pal, "fs", adaptive=False)[outside] != 0)
    assert np.all(dither_indices(dot, pal, "fs")[outside] == 0)
    # a flat colour one level off a palette colour: the tiny error never builds up
    off = np.full((40, 40, 3), (128, 128, 129), np.uint8)
    assert np.all(dither_indices(off, pal, "fs") == 0)
    assert np.any(dither_indices(off, pal, "fs", adaptive=False) != 0)
    # with a coarse palette, one level off in two channels (a flat graphic's large areas
    # beside a fitted palette) stays flat too; two levels off in one channel is dithered
    near = np.vstack([pal, [[134, 128, 128], [128, 134, 128], [128, 128, 122]]]).astype(np.uint8)
    for shift, flat in (((1, 1, 0), True), ((1, 0, -1), True), ((2, 0, 0), False)):
        off = np.full((40, 40, 3), np.add((128, 128, 128), shift), np.uint8)
        off[:, 20:] = (0, 0, 0)
        assert np.all(dither_indices(off, near, "fs")[:, :20] == 0) == flat, shift


def test_fine_palettes_dither_with_their_own_search_scales():
    from quantize.render import _FINE_SEARCH, _diffusion_scale

    w = np.array([0.8, 1.0, 0.7])
    assert _diffusion_scale(w, 16) is w and _diffusion_scale(None, 8) is None
    for scale, k in ((w, 64), (None, 256)):
        np.testing.assert_allclose(_diffusion_scale(scale, k), _FINE_SEARCH)
    np.testing.assert_allclose(_diffusion_scale(w, 32), (w + _FINE_SEARCH) / 2)
    assert _FINE_SEARCH[1] == 1 and _FINE_SEARCH[2] < _FINE_SEARCH[0] < 1  # green, red, blue
    # with the same undithered rendering, a fine palette's adaptive diffusion no longer
    # depends on the caller's scales; a coarse one's and the classic diffusion's still do
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([x * 4, y * 5, 255 - x * 2 - y * 2], axis=2).astype(np.uint8)
    for k, same in ((64, True), (12, False)):
        pal = RNG.integers(0, 256, (k, 3)).astype(np.uint8)
        near = dither_indices(img, pal, "none")
        runs = [
            dither_indices(img, pal, "fs", nearest=near, channel_weights=cw, adaptive=ad)
            for ad in (True, False)
            for cw in (None, w)
        ]
        assert np.array_equal(runs[0], runs[1]) == same, k
        assert not np.array_equal(runs[2], runs[3])


def test_box_sum_matches_a_direct_window_sum():
    from scipy import ndimage as ndi

    from quantize.render import _box_sum

    a = RNG.integers(0, 511, (37, 51)).astype(np.int16)  # second differences of uint8
    a[:4, :6] = 510  # the largest sum still fits int16
    for r in (1, 2):
        direct = ndi.uniform_filter(a.astype(np.float64), 2 * r + 1, mode="nearest")
        got = _box_sum(a, r)
        assert got.dtype == np.int16
        np.testing.assert_allclose(got, direct * (2 * r + 1) ** 2, rtol=1e-12)


def test_adaptive_settings_run_from_coarse_to_fine_palettes():
    from dataclasses import astuple, replace

    from quantize.render import _CAP_RMS_64, _COARSE, _FINE, _adaptive_settings

    assert _adaptive_settings(2) == _adaptive_settings(16) == _COARSE
    assert _adaptive_settings(256) == _adaptive_settings(1024) == _FINE
    # K = 64: the fine settings, with the error cap of its own (the largest)
    assert _adaptive_settings(64) == replace(_FINE, cap_rms=_CAP_RMS_64)
    assert _CAP_RMS_64 > max(_COARSE.cap_rms, _FINE.cap_rms)
    halfway = np.add(astuple(_COARSE), astuple(_FINE)) / 2
    halfway[3] = (_COARSE.cap_rms + _CAP_RMS_64) / 2
    np.testing.assert_allclose(astuple(_adaptive_settings(32)), halfway)
    assert _adaptive_settings(128).cap_rms == (_CAP_RMS_64 + _FINE.cap_rms) / 2


@pytest.mark.parametrize("alpha", [False, True])
def test_undithered_mse_per_colour_equals_the_pixels_and_gives_the_same_dithering(alpha):
    from quantize.pipeline import quantize_image
    from quantize.render import _mean_sq_error

    img = np.clip(gradient(60, 80) + RNG.normal(0, 9, (60, 80, 3)), 0, 255).astype(np.uint8)
    if alpha:
        a = np.where(RNG.random((60, 80)) > 0.3, 255, 0).astype(np.uint8)
        img = np.dstack([img, a])
    r = quantize_image(img, 12)
    opaque = None if r.opaque is None else np.asarray(r.opaque)
    rgb = img[:, :, :3]
    pixels = _mean_sq_error(rgb, np.asarray(r.palette, np.float64), np.asarray(r.labels), opaque)
    assert r.undithered_mse() == pytest.approx(pixels, rel=1e-12) and pixels > 0
    given = dither_indices(img, r.palette, "fs", nearest=r.labels, mse=r.undithered_mse())
    measured = dither_indices(img, r.palette, "fs", nearest=r.labels)
    np.testing.assert_array_equal(given, measured)
    np.testing.assert_array_equal(r.indices("fs"), measured)


@pytest.mark.parametrize("k", [3, 16, 64, 256])
def test_compiled_dither_map_and_dithering_match_numpy(k, monkeypatch):
    import quantize.render as render

    kernel = render.compiled_diffusion()
    if kernel is None:
        pytest.skip(f"numba not available: {render.compiled_diffusion_error()}")
    rng = np.random.default_rng(k)
    img = np.clip(gradient(61, 83) + rng.normal(0, 10, (61, 83, 3)), 0, 255).astype(np.uint8)
    img[40:] = rng.integers(0, 256, (21, 83, 3))  # texture next to a smooth part
    pal = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    near = dither_indices(img, pal, "none")
    for shape in [(61, 83), (1, 1), (1, 7), (7, 1), (2, 2), (3, 3)]:
        sub, sub_near = img[: shape[0], : shape[1]], near[: shape[0], : shape[1]]
        np.testing.assert_array_equal(
            render._dither_map_compiled(kernel, sub, sub_near, k),
            render.dither_map(sub, sub_near, k),
        )
    rgba = np.dstack([img, np.where(rng.random((61, 83)) < 0.2, 0, 255).astype(np.uint8)])
    results = {}
    for mode in ("compiled", "numpy"):
        if mode == "numpy":
            monkeypatch.setattr(render._Compiled, "module", False)
        results[mode] = [
            dither_indices(im, pal, "fs", strength, adaptive=adaptive, channel_weights=w)
            for im in (img, rgba)
            for strength, adaptive in ((1.0, True), (0.6, False))
            for w in (None, WRGB_WEIGHTS)
        ]
    for a, b in zip(results["compiled"], results["numpy"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_without_numba_the_numpy_diffusion_runs(monkeypatch):
    import quantize.render as render

    monkeypatch.setattr(render._Compiled, "module", None)
    monkeypatch.setattr(render._Compiled, "error", "")
    monkeypatch.setenv("VQ_NUMBA", "0")
    assert render.compiled_diffusion() is None
    assert "VQ_NUMBA=0" in render.compiled_diffusion_error()
    img = gradient(30, 40)
    pal = np.array([[0, 0, 0], [128, 128, 128], [255, 255, 255], [255, 0, 0], [0, 0, 255]])
    out = dither_indices(img, pal, "fs")
    assert out.shape == (30, 40) and len(np.unique(out)) > 2
    monkeypatch.setattr(render._Compiled, "module", None)  # a broken install: numpy too
    monkeypatch.delenv("VQ_NUMBA")
    monkeypatch.setitem(__import__("sys").modules, "llvmlite", None)
    assert render.compiled_diffusion() is None
    assert "ModuleNotFoundError" in render.compiled_diffusion_error()
    np.testing.assert_array_equal(dither_indices(img, pal, "fs"), out)


def test_prepare_dithering_loads_once_in_the_background(monkeypatch):
    import sys
    import threading

    import quantize.render as render

    monkeypatch.setattr(render._Compiled, "module", None)
    monkeypatch.setattr(render._Compiled, "loading", False)
    interval = sys.getswitchinterval()
    render.prepare_dithering()
    render.prepare_dithering()  # a second call while loading starts nothing
    loaders = [t for t in threading.enumerate() if t.name == "vq-fs-load"]
    assert len(loaders) <= 1  # (0 if it already finished)
    for t in loaders:
        t.join(timeout=120)
    assert render._Compiled.module is not None  # the module, or False with a reason
    assert render._Compiled.module is not False or render.compiled_diffusion_error()
    assert sys.getswitchinterval() == interval  # restored after the load
    render.prepare_dithering()  # loaded: nothing to start
    assert not [t for t in threading.enumerate() if t.name == "vq-fs-load"]


def test_small_images_dither_without_loading_the_compiled_loop(monkeypatch):
    import threading

    import quantize.render as render

    monkeypatch.setattr(render._Compiled, "module", None)
    monkeypatch.setattr(render._Compiled, "loading", False)
    img = gradient(40, 50)
    pal = np.array([[0, 0, 0], [128, 128, 128], [255, 255, 255], [255, 0, 0], [0, 0, 255]])
    small = dither_indices(img, pal, "fs")
    assert render._Compiled.module is None and not render._Compiled.loading  # numpy, no load
    monkeypatch.setattr(render, "_COMPILED_MIN_PIXELS", 40 * 50)  # "large": loaded for it
    large = dither_indices(img, pal, "fs")
    for t in [t for t in threading.enumerate() if t.name == "vq-fs-load"]:
        t.join(timeout=120)
    assert render._Compiled.loading and render._Compiled.module is not None
    np.testing.assert_array_equal(small, large)


def test_memo_lookup_breaks_ties_as_the_exact_search():
    from quantize.render import _PaletteLookup

    # entries on a grid of even coordinates: every colour with an odd coordinate lies as
    # far from two or more of them (and repeats keep equal entries): the first one wins
    axis = np.arange(0, 40, 4, dtype=np.float64)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    palette = np.concatenate([grid[::-1], grid[:5]])
    values = np.stack(np.meshgrid(*[np.arange(-3, 44, dtype=np.float32)] * 3), -1)
    values = values.reshape(-1, 3)
    lookup = _PaletteLookup(palette)
    assert lookup.search.integral and not lookup.direct
    got = lookup(values) - 1
    expect = nearest_indices(np.clip(values, 0, 255).astype(np.float64), palette)
    np.testing.assert_array_equal(got, expect)
    np.testing.assert_array_equal(lookup(values) - 1, expect)  # from the memo this time


def test_channel_weights_choose_by_the_weighted_distance():
    # two entries as far from the grey in plain sRGB (30 levels, green vs blue): a tie, which
    # OKLab decides; weighted by wrgb's 1 (G) and 0.7 (B) the blue one is nearer, 21 levels
    # against 30, beyond the tie ratio
    pal = np.array([[50, 80, 50], [50, 50, 80]], np.uint8)
    img = np.full((4, 6, 3), 50, np.uint8)
    ok = ((ref_oklab(img[0, :1]) - ref_oklab(pal)) ** 2).sum(1)
    assert np.all(dither_indices(img, pal, "none") == ok.argmin())
    assert np.all(dither_indices(img, pal, "none", channel_weights=WRGB_WEIGHTS) == 1)
    # and on a busy image, as the exact search in the weighted space
    rng = np.random.default_rng(5)
    busy = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    pal = rng.integers(0, 256, (24, 3), dtype=np.uint8)
    near = dither_indices(busy, pal, "none", channel_weights=WRGB_WEIGHTS)
    np.testing.assert_array_equal(near, brute_entry(busy, pal, WRGB_WEIGHTS)[0])
    assert not np.array_equal(near, dither_indices(busy, pal, "none"))


@pytest.mark.parametrize("weights", [[1, 1], [0.8, 1.0, -0.7], [0, 1, 1], [np.nan, 1, 1]])
def test_bad_channel_weights_are_refused(weights):
    with pytest.raises(ValueError, match="channel_weights"):
        dither_indices(np.zeros((2, 2, 3), np.uint8), BW, "fs", channel_weights=weights)


@pytest.mark.parametrize("space", ["rgb", "wrgb", "lab"])
def test_results_dither_by_their_fits_distance(space):
    # the dithered rendering of a fit picks entries by the distance that labelled it: the
    # wrgb fit's weights (plain sRGB for rgb, and for lab, which is no channel scaling)
    from quantize import quantize_image
    from quantize.colorspace import search_weights
    from quantize.metrics import render_indexed

    rng = np.random.default_rng(11)
    img = np.clip(gradient(48, 64) + rng.normal(0, 12, (48, 64, 3)), 0, 255).astype(np.uint8)
    r = quantize_image(img, 12, color_space=space, seed=0)
    w = search_weights(space)
    assert np.array_equal(w, WRGB_WEIGHTS) == (space == "wrgb")
    expect = dither_indices(img, r.palette, "fs", nearest=r.labels, channel_weights=w)
    np.testing.assert_array_equal(r.indices("fs"), expect)
    np.testing.assert_array_equal(render_indexed(r, dither="fs")[0], expect)
    plain = dither_indices(img, r.palette, "fs", nearest=r.labels)
    assert np.array_equal(expect, plain) == (space != "wrgb")


def test_the_rule_trades_a_little_fit_distance_for_oklab_error():
    # on a fit of a photo: each colour's entry is never farther in OKLab than its nearest
    # by the fit's distance, and never more than TIE_RATIO times as far by that distance
    from PIL import Image

    from quantize import quantize_image
    from quantize.features import unique_colors
    from quantize.resources import sample_image_path

    with Image.open(sample_image_path()) as im:
        photo = np.asarray(im.convert("RGB").resize((160, 120), Image.BICUBIC))
    res = quantize_image(photo, 24, color_space="wrgb", seed=3)
    table = unique_colors(photo)
    x, pal = table.colors.astype(float), res.palette.astype(float)
    shown = nearest_entries(x, pal, WRGB_WEIGHTS)
    plain = nearest_indices(x * WRGB_WEIGHTS, pal * WRGB_WEIGHTS)
    moved = shown != plain
    assert moved.any()
    ok_err = ((ref_oklab(x)[:, None] - ref_oklab(pal)[None]) ** 2).sum(-1)
    r = np.arange(len(x))
    assert (ok_err[r, shown][moved] < ok_err[r, plain][moved]).all()
    fit = ((x[:, None] - pal[None]) * WRGB_WEIGHTS) ** 2
    fit = fit.sum(-1)
    assert (fit[r, shown] <= TIE_RATIO**2 * fit[r, plain] + 1e-9).all()
    np.testing.assert_array_equal(res.labels, table.gather(shown))
