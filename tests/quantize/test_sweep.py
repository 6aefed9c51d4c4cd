"""The K explorer's engine: K lists, sizes, warm starts, sweeps, the size budget, fast SSIM."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from quantize.features import unique_colors
from quantize.metrics import SsimReference, compute_metrics, render_indexed, ssim
from quantize.pipeline import quantize_image
from quantize.protocol import Cancelled, drain
from quantize.sweep import (
    grow_centers,
    iter_size_budget,
    iter_sweep,
    parse_k_list,
    parse_size,
    seed_cells,
)


def blobs(size: int = 40, n_colors: int = 12, seed: int = 0, noise: float = 6.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.integers(10, 246, (n_colors, 3))
    # smooth regions (as in a photo) rather than salt and pepper
    yy, xx = np.mgrid[:size, :size]
    labels = ((yy // 7) * 5 + (xx // 9)) % n_colors
    img = centres[labels] + rng.normal(0, noise, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ parsing


def test_range_gives_about_twelve_log_spaced_values():
    ks = parse_k_list("2-256")
    assert ks[0] == 2 and ks[-1] == 256
    assert 11 <= len(ks) <= 13
    ratios = np.array(ks[1:]) / np.array(ks[:-1])
    assert ratios.max() / ratios.min() < 1.6  # evenly spaced on a log scale


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16,4,8,4", [4, 8, 16]),
        ("2-16:4", [2, 4, 8, 16]),
        ("5", [5]),
        ("2-4, 100", [2, 3, 4, 100]),
        ("7-7", [7]),
    ],
)
def test_k_lists(text, expected):
    assert parse_k_list(text) == expected


@pytest.mark.parametrize("text", ["", "0", "16-2", "a", "2-", "2-8:0", "70000", "-3"])
def test_bad_k_lists_name_the_part(text):
    with pytest.raises(ValueError):
        parse_k_list(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("300k", 300_000),
        ("300 kB", 300_000),
        ("300KiB", 307_200),
        ("1.5M", 1_500_000),
        ("2MiB", 2 * 1024 * 1024),
        ("12345", 12_345),
    ],
)
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "k", "0", "0.2", "300 parsecs", "-5k", "1e3"])
def test_bad_sizes(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


# ------------------------------------------------------------------ warm start


def test_grow_centers_keeps_the_fit_and_lowers_j():
    img = blobs()
    table = unique_colors(img)
    r = quantize_image(img, 4, table=table)
    X, w = r.points, table.counts.astype(float)
    centers = r.model.cluster_centers_
    cells, cell_w = seed_cells(X, w)
    assert cell_w.sum() == pytest.approx(w.sum())
    assert len(cells) <= len(X)

    def inertia(c):
        d = ((X[:, None, :] - c[None]) ** 2).sum(axis=2).min(axis=1)
        return float(w @ d)

    grown = grow_centers(cells, cell_w, centers, 7, np.random.default_rng(0))
    assert grown.shape == (7, 3)
    assert np.array_equal(grown[:4], centers)
    assert inertia(grown) < inertia(centers)
    again = grow_centers(cells, cell_w, centers, 7, np.random.default_rng(0))
    assert np.array_equal(grown, again)  # deterministic for a seed
    assert np.array_equal(
        grow_centers(cells, cell_w, centers, 3, np.random.default_rng(0)), centers[:3]
    )
    # no more cells than centres: nothing to add
    few = grow_centers(cells[:2], cell_w[:2], cells[:2], 5, np.random.default_rng(0))
    assert len(few) == 2


# ------------------------------------------------------------------ SSIM


@pytest.mark.parametrize("shape", [(37, 53), (7, 7), (120, 9)])
def test_ssim_reference_equals_scikit_image(shape):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref = SsimReference(a)
    for _ in range(3):
        b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
        expected = structural_similarity(a, b, win_size=7, channel_axis=2, data_range=255)
        assert ref(b) == pytest.approx(expected, abs=1e-6)
        assert ref(b) == pytest.approx(ssim(a, b), abs=1e-6)
    assert ref(a) == pytest.approx(1.0, abs=1e-7)


def test_ssim_reference_with_transparency_and_tiny_images():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    opaque = np.zeros((30, 30), bool)
    opaque[5:20, 3:25] = True
    assert SsimReference(a, opaque)(b) == pytest.approx(ssim(a, b, opaque), abs=1e-6)
    tiny = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    assert SsimReference(tiny)(tiny[::-1].copy()) == pytest.approx(ssim(tiny, tiny[::-1]))
    assert SsimReference(tiny[:2])(tiny[:2]) is None


# ------------------------------------------------------------------ sweeps


@pytest.mark.parametrize("dither", ["none", "fs"])
def test_cold_sweep_measures_what_quantize_writes(dither):
    img = blobs()
    ks = [2, 5, 9]
    records = []
    gen = iter_sweep(img, ks, color_space="oklab", dither=dither, warm_start=False)
    while True:
        try:
            records.append(next(gen))
        except StopIteration as stop:
            sweep = stop.value
            break
    summaries = [r for r in records if r.stage == "sweep"]
    assert [r.extra["k"] for r in summaries] == ks
    assert [r.extra["index"] for r in summaries] == [0, 1, 2]
    assert {r.extra["count"] for r in summaries} == {3}
    assert [p.k for p in sweep.points] == ks
    for p in sweep.points:
        alone = quantize_image(img, p.k, color_space="oklab")
        m = compute_metrics(alone, dither=dither)
        assert p.png_bytes == m.png_bytes
        assert p.psnr == pytest.approx(m.psnr, abs=1e-9)
        assert p.delta_e_mean == pytest.approx(m.delta_e_mean, abs=1e-9)
        assert p.ssim == pytest.approx(m.ssim, abs=1e-6)
        assert np.array_equal(p.palette, alone.palette)
        assert p.objective == pytest.approx(alone.model.inertia_)
        assert p.bic is None and p.objective_kind == "inertia"
        assert p.fit_s <= p.total_s
        row = p.to_dict()
        assert "palette" not in row and row["k"] == p.k


def sample_photo(reduce: int = 4) -> np.ndarray:
    from PIL import Image

    from quantize.resources import sample_image_path

    with Image.open(sample_image_path()) as im:
        return np.asarray(im.convert("RGB").reduce(reduce))


@pytest.mark.parametrize("seed", [0, 1])
def test_warm_sweep_quality_grows_and_stays_close_to_cold_fits(seed):
    img = sample_photo()  # 150 x 100: a photo's smooth colours, not separated blobs
    ks = [2, 4, 8, 16, 32, 64]
    # converged tightly, so that the comparison is of the starts, not of where a loose
    # tolerance stopped each fit
    opts = {"seed": seed, "color_space": "oklab", "tol": 1e-4}
    warm = drain(iter_sweep(img, ks, **opts))
    cold = drain(iter_sweep(img, ks, **opts, warm_start=False))
    psnr = [p.psnr for p in warm.points]
    assert psnr == sorted(psnr)
    j = [p.objective for p in warm.points]
    assert j == sorted(j, reverse=True)
    for w, c in zip(warm.points, cold.points, strict=True):
        # another local minimum of the same quality (fresh starts differ as much by seed)
        assert w.objective <= c.objective * 1.03
        assert w.psnr > c.psnr - 0.3


def test_sweep_skips_k_above_the_distinct_colours():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:, 5:] = (200, 10, 10)
    img[5:, :] = (10, 10, 200)
    sweep = drain(iter_sweep(img, [2, 3, 8, 16]))
    assert [p.k for p in sweep.points] == [2, 3]
    assert sweep.skipped == [8, 16] and sweep.n_distinct == 3
    assert sweep.points[-1].psnr == np.inf
    assert sweep.points[-1].to_dict()["psnr"] is None  # strict JSON


def test_mixture_sweep_reports_log_likelihood_and_bic():
    img = blobs(size=24, n_colors=4)
    sweep = drain(iter_sweep(img, [1, 2, 3], method="gmm", max_iter=30, warm_start=False))
    for p in sweep.points:
        alone = quantize_image(img, p.k, method="gmm", max_iter=30)
        assert p.objective_kind == "log_likelihood"
        assert p.bic == pytest.approx(alone.model.bic(alone.points, alone.table.counts))
    assert sweep.points[0].bic > sweep.points[-1].bic  # four blobs: more components help


def test_sweep_cancel_stops_and_leaves_no_thread():
    img = blobs()
    before = threading.active_count()
    summaries = 0

    def cancel() -> bool:
        return summaries >= 1

    gen = iter_sweep(img, [2, 4, 8, 16], should_cancel=cancel)
    with pytest.raises(Cancelled):
        for rec in gen:
            summaries += rec.stage == "sweep"
    assert summaries == 1
    assert threading.active_count() == before


def test_sweep_closed_early_leaves_no_thread():
    before = threading.active_count()
    gen = iter_sweep(blobs(), [2, 4, 8])
    next(gen)
    gen.close()  # what a KeyboardInterrupt in the consumer does
    assert threading.active_count() == before


def test_sweep_refuses_no_k():
    with pytest.raises(ValueError, match="no K"):
        drain(iter_sweep(blobs(), []))


# ------------------------------------------------------------------ size budget


def png_size(img, k, **kw):
    return len(render_indexed(quantize_image(img, k, **kw))[1])


def test_size_budget_picks_the_largest_k_that_fits():
    img = blobs(size=64, n_colors=30, noise=12)
    sizes = {k: png_size(img, k) for k in (2, 8, 9, 16)}
    budget = (sizes[8] + sizes[9]) // 2 if sizes[9] > sizes[8] else sizes[8]
    choice = drain(iter_size_budget(img, budget, k_max=16))
    assert choice.reached and choice.metric == "png_bytes"
    assert choice.value <= budget
    assert len(render_indexed(choice.result)[1]) == choice.value
    assert choice.k + 1 > 16 or choice.scores.get(choice.k + 1, np.inf) > budget
    assert all(v > budget for k, v in choice.scores.items() if k > choice.k)


def test_size_budget_none_fits():
    img = blobs(size=64, n_colors=30, noise=12)
    choice = drain(iter_size_budget(img, 10))
    assert not choice.reached and choice.k == 2 and choice.value > 10
