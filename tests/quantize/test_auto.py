"""Automatic choice of K: quality target by bisection, GMM size by BIC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantize.auto import AutoKResult, iter_bic, iter_quality_target, quality_of
from quantize.metrics import compute_metrics
from quantize.pipeline import quantize_image
from quantize.protocol import Cancelled, IterationRecord, QuantizeWarning, drain


def blobs(n_colors: int = 6, size: int = 24, noise: float = 6.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.integers(30, 226, (n_colors, 3))
    labels = rng.integers(0, n_colors, (size, size))
    img = centres[labels] + rng.normal(0, noise, (size, size, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def test_quality_of_matches_metrics():
    img = blobs()
    r = quantize_image(img, 4, seed=1)
    m = compute_metrics(r)
    assert quality_of(r, "psnr") == pytest.approx(m.psnr, rel=1e-9)
    assert quality_of(r, "delta_e") == pytest.approx(m.delta_e_mean, rel=1e-9)
    with pytest.raises(ValueError):
        quality_of(r, "ssim")


def run(gen):
    """Drain a generator; return (every record, its return value)."""
    records = []
    while True:
        try:
            records.append(next(gen))
        except StopIteration as stop:
            return records, stop.value


@pytest.mark.parametrize("target", [24.0, 28.0])
def test_psnr_target_picks_fewest_colours(target):
    img = blobs()
    gen = iter_quality_target(img, psnr=target, k_min=1, k_max=12, seed=0)
    records, choice = run(gen)
    assert isinstance(choice, AutoKResult) and choice.reached and choice.metric == "psnr"
    assert choice.value >= target and choice.result.n_colors_requested == choice.k
    # minimal among the K tried: every smaller K tried missed the target
    assert all(v < target for k, v in choice.scores.items() if k < choice.k)
    # the fit one colour smaller misses it (independent check)
    if choice.k > 1:
        assert quality_of(quantize_image(img, choice.k - 1, seed=0), "psnr") < target
    summaries = [r for r in records if r.stage == "auto-k"]
    assert [r.extra["k"] for r in summaries] == list(choice.scores)
    assert all(isinstance(r, IterationRecord) for r in records)
    assert len(records) > len(summaries)  # the fits' own records pass through


def test_delta_e_target_and_unreachable():
    img = blobs(noise=25.0)
    choice = drain(iter_quality_target(img, max_delta_e=0.01, k_min=2, k_max=6))
    assert not choice.reached and choice.k == 6 and list(choice.scores) == [2, 4, 6]
    choice = drain(iter_quality_target(img, max_delta_e=16.0, k_min=2, k_max=6))
    assert choice.reached and choice.value <= 16.0


def test_few_colours_image_is_lossless_early():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:5] = (250, 20, 20)
    img[:, :3] = (10, 200, 30)
    with pytest.warns(QuantizeWarning, match="K reduced to 3"):
        choice = drain(iter_quality_target(img, psnr=60, k_min=1, k_max=64))
    assert choice.reached and choice.k == 3 and math.isinf(choice.value)


def test_bad_targets():
    with pytest.raises(ValueError):
        drain(iter_quality_target(blobs(), k_max=4))
    with pytest.raises(ValueError):
        drain(iter_quality_target(blobs(), psnr=30, max_delta_e=2, k_max=4))
    with pytest.raises(ValueError):
        drain(iter_quality_target(blobs(), psnr=30, k_min=5, k_max=4))


def test_bic_finds_the_number_of_blobs():
    img = blobs(n_colors=3, size=32, noise=4.0, seed=3)
    choice = drain(iter_bic(img, k_min=1, k_max=6, patience=2, seed=0, max_iter=60))
    assert choice.metric == "bic" and choice.reached
    assert choice.k == 3
    assert choice.value == min(choice.scores.values())
    assert choice.result.method == "gmm"


def test_cancel_stops_the_search():
    calls = {"n": 0}

    def should_cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(Cancelled):
        drain(iter_quality_target(blobs(), psnr=99, k_max=8, should_cancel=should_cancel))


def test_search_uses_one_restart_then_refits_chosen_k():
    img = blobs(n_colors=5, noise=10.0)
    gen = iter_quality_target(img, psnr=26, k_min=1, k_max=8, n_init=3, seed=0)
    records, choice = run(gen)
    summaries = [r for r in records if r.stage == "auto-k"]
    final = summaries[-1]
    assert final.extra.get("final") is True and final.extra["k"] == choice.k
    assert all("final" not in r.extra for r in summaries[:-1])
    assert choice.reached and choice.value >= 26
    if final.extra["kept"]:
        assert choice.result.fit_options["n_init"] == 3
        assert choice.value == pytest.approx(final.extra["value"])
    else:
        assert choice.result.fit_options["n_init"] == 1
    # without n_init in the options: the same search, no refit
    plain = drain(iter_quality_target(img, psnr=26, k_min=1, k_max=8, seed=0))
    assert plain.k == choice.k and plain.scores == choice.scores  # same one-restart search


@pytest.mark.parametrize("search", ["quality", "bic"])
def test_search_finds_the_distinct_colours_once(monkeypatch, search):
    import quantize.auto
    import quantize.pipeline
    from quantize.features import unique_colors

    img = blobs()
    tables = []

    def counting(image):
        tables.append(unique_colors(image))
        return tables[-1]

    monkeypatch.setattr(quantize.auto, "unique_colors", counting, raising=False)
    monkeypatch.setattr(quantize.pipeline, "unique_colors", counting)
    if search == "quality":
        _, choice = run(iter_quality_target(img, psnr=28.0, k_min=1, k_max=12, seed=0))
    else:
        _, choice = run(iter_bic(img, k_min=1, k_max=4, patience=4, seed=0))
    assert len(choice.scores) >= 3  # several K were fitted ...
    assert len(tables) == 1  # ... on one colour table
    assert choice.result.table is tables[0]
    monkeypatch.undo()
    # the same answers as fitting every K from scratch
    method = "kmeans" if search == "quality" else "gmm"
    for k, value in choice.scores.items():
        alone = quantize_image(img, k, method=method, seed=0)
        if search == "quality":
            assert quality_of(alone, "psnr") == value
        else:
            assert float(alone.model.bic(alone.points, alone.table.counts)) == value
    alone = quantize_image(img, choice.k, method=method, seed=0)
    np.testing.assert_array_equal(choice.result.palette, alone.palette)
    np.testing.assert_array_equal(choice.result.labels, alone.labels)


def test_bic_search_uses_the_method_it_is_given_and_refuses_one_without_bic():
    from quantize.cluster.gmm import GaussianMixture
    from quantize.cluster.registry import MethodSpec, register_method, unregister_method

    img = np.zeros((20, 30, 3), np.uint8)
    img[:, 15:] = (200, 40, 40)
    with pytest.raises(ValueError, match="cannot choose K by BIC"):
        drain(iter_bic(img, k_min=1, k_max=3, method="kmeans"))
    made = []

    def factory(k, seed, options):
        made.append(k)
        return GaussianMixture(k, seed=seed, **options)

    register_method(
        MethodSpec(
            name="toy_mixture",
            label="Toy mixture",
            short_label="toy",
            description="a mixture under another name",
            factory=factory,
            options=frozenset({"max_iter"}),
            bic=True,
            soft=True,
            objective="log_likelihood",
        )
    )
    try:
        choice = drain(iter_bic(img, k_min=1, k_max=2, method="toy_mixture", max_iter=20))
    finally:
        unregister_method("toy_mixture")
    assert made == sorted(made) and made[0] == 1  # the search fitted the registered method
    assert choice.result.method == "toy_mixture"
