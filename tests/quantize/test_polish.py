"""The palette polish after K-means: a majorise-minimise descent of sum w * d ** p."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from quantize import quantize_image
from quantize.cluster._nearest import exact_sq_dist, nearest_indices
from quantize.cluster._polish import polish_objective, polish_palette, power_polish
from quantize.colorspace import rgb_to_space
from quantize.pipeline import auto_error_power, palette_labels, table_points


def heavy_tailed(n=3000, k=4, seed=0):
    """Clusters with a few far points each: where the p-norm and the mean disagree."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(30, 220, (k, 3))
    lab = rng.integers(0, k, n)
    noise = rng.standard_t(df=1.5, size=(n, 3)) * 6.0
    x = np.clip(centres[lab] + noise, 0, 255)
    w = rng.integers(1, 20, n).astype(np.float64)
    return x, w


def kmeans_start(x, w, k, seed=0):
    from quantize.cluster.kmeans import KMeans

    km = KMeans(k, seed=seed, tol=1e-6).fit(x, w)
    return km.cluster_centers_, km.labels_


@pytest.mark.parametrize("power", [1.0, 1.3, 1.5, 1.9])
def test_each_round_lowers_the_smoothed_objective(power):
    x, w = heavy_tailed()
    centers, labels = kmeans_start(x, w, 4)
    values = [polish_objective(x, w, centers, labels, power, 1.0)]
    for _ in range(6):
        centers, labels = power_polish(x, w, centers, labels, power=power, n_iter=1)
        values.append(polish_objective(x, w, centers, labels, power, 1.0))
    assert all(b <= a * (1 + 1e-12) for a, b in zip(values, values[1:], strict=False))
    assert values[-1] < values[0]  # K-means' means are not the p-optimum on heavy tails
    np.testing.assert_array_equal(labels, nearest_indices(x, centers))


def test_true_power_objective_falls_and_squared_error_rises():
    x, w = heavy_tailed(seed=3)
    c0, l0 = kmeans_start(x, w, 4, seed=3)
    c1, l1 = power_polish(x, w, c0, l0, power=1.5)

    def cost(c, lab, p):
        return float(w @ exact_sq_dist(x, c, lab) ** (p / 2))

    assert cost(c1, l1, 1.5) < cost(c0, l0, 1.5)
    assert cost(c1, l1, 2.0) >= cost(c0, l0, 2.0) * (1 - 1e-9)  # K-means' own optimum


def test_one_cluster_moves_from_the_mean_towards_the_median():
    x = np.array([[0.0, 0, 0]] * 4 + [[100.0, 0, 0]])
    w = np.ones(5)
    mean = x.mean(axis=0, keepdims=True)
    c, _ = power_polish(x, w, mean, np.zeros(5, np.int64), power=1.5, n_iter=50)
    assert 0.0 < c[0, 0] < mean[0, 0]
    # the minimiser of 4 * t ** 1.5 + (100 - t) ** 1.5: 100 / (1 + 4 ** 2) = 5.88
    assert c[0, 0] == pytest.approx(100 / 17, rel=1e-3)


def test_power_two_and_fixed_entries_do_not_move():
    x, w = heavy_tailed(seed=1)
    c0, l0 = kmeans_start(x, w, 5, seed=1)
    c2, l2 = power_polish(x, w, c0, l0, power=2.0)
    np.testing.assert_array_equal(c2, c0)
    np.testing.assert_array_equal(l2, l0)
    c1, _ = power_polish(x, w, c0, l0, power=1.2, n_fixed=2)
    np.testing.assert_array_equal(c1[:2], c0[:2])
    assert not np.allclose(c1[2:], c0[2:])


def test_auto_power_polishes_small_palettes_only():
    assert auto_error_power(2) == auto_error_power(32) == 1.5
    assert auto_error_power(33) == auto_error_power(256) == 2.0


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(7)
    x, y = np.meshgrid(np.linspace(0, 1, 80), np.linspace(0, 1, 60))
    img = np.stack([200 * x + 30, 150 * y + 50, 120 * x * y + 60], axis=2)
    img += rng.normal(0, 6, img.shape)
    img[40:44, 10:70] = (250, 240, 40)  # a bright streak: a few far colours
    return np.clip(img, 0, 255).astype(np.uint8)


def power_cost(res, p):
    pts = table_points(res.table, res.color_space)
    c = rgb_to_space(res.palette, res.color_space)
    lab = nearest_indices(pts, c)
    return float(res.table.counts @ exact_sq_dist(pts, c, lab) ** (p / 2))


def test_the_default_fit_of_a_small_palette_is_polished(photo):
    plain = quantize_image(photo, 8, color_space="wrgb", error_power=2)
    res = quantize_image(photo, 8, color_space="wrgb")
    assert res.error_power == 1.5 and plain.error_power == 2.0
    assert res.parameters()["error_power"] == 1.5
    json.dumps(res.parameters())
    assert power_cost(res, 1.5) < power_cost(plain, 1.5)
    # the model, labels and palette agree: each distinct colour has its nearest centre in
    # the model, and the result labels each with the entry it is shown with
    pts = table_points(res.table, "wrgb")
    np.testing.assert_array_equal(
        res.model.labels_, nearest_indices(pts, res.model.cluster_centers_)
    )
    np.testing.assert_array_equal(res.unique_labels, palette_labels(res.table, res.palette, "wrgb"))
    np.testing.assert_allclose(
        rgb_to_space(res.palette, "wrgb"), res.model.cluster_centers_, atol=1.0
    )


def test_large_palettes_and_mixtures_are_not_polished(photo):
    assert quantize_image(photo, 40).error_power == 2.0
    assert quantize_image(photo, 6, method="gmm").error_power == 2.0
    assert quantize_image(photo, 6, method="minibatch").error_power == 1.5


def test_locked_colours_and_exact_images_survive_the_polish(photo):
    locked = np.array([[12, 200, 99], [250, 250, 250]], np.uint8)
    res = quantize_image(photo, 8, locked=locked, error_power=1.0)
    np.testing.assert_array_equal(res.palette[:2], locked)
    few = photo // 64 * 64  # at most 64 colours ...
    k = len(np.unique(few.reshape(-1, 3), axis=0))
    assert k <= 32
    res = quantize_image(few, k, error_power=1.0)
    assert res.exact
    np.testing.assert_array_equal(res.to_image("fs"), few)


@pytest.mark.parametrize("bad", [0.5, 2.5, "1.5", True, float("nan")])
def test_bad_error_power_is_refused(photo, bad):
    with pytest.raises(ValueError, match="error_power"):
        quantize_image(photo, 4, error_power=bad)


def test_cli_error_power_is_written_to_the_sidecar_and_checked(tmp_path, photo):
    src = tmp_path / "in.png"
    Image.fromarray(photo).save(src)
    out = tmp_path / "out.png"
    cmd = [sys.executable, "-m", "quantize", "quantize", str(src), "-k", "8", "-q"]
    report = tmp_path / "out.json"
    done = subprocess.run(
        [*cmd, "-o", str(out), "--error-power", "1.2", "--report", str(report)],
        text=True,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    sidecar = json.loads(report.read_text())
    assert sidecar["parameters"]["error_power"] == 1.2
    said = subprocess.run(
        [sys.executable, "-m", "quantize", "quantize", str(src), "-k", "8", "--no-image"],
        text=True,
        capture_output=True,
    )
    assert "distances^1.5" in said.stdout  # the default for K = 8, said in the summary
    summary = subprocess.run([*cmd[:-1], "--no-image", "--json"], text=True, capture_output=True)
    assert json.loads(summary.stdout)["error_power"] == 1.5
    bad = subprocess.run(
        [*cmd, "-o", str(tmp_path / "b.png"), "--error-power", "3"], text=True, capture_output=True
    )
    assert bad.returncode == 2 and "--error-power" in bad.stderr
    assert not (tmp_path / "b.png").exists()


def test_reordered_and_edited_results_say_how_the_palette_was_fitted(photo):
    from quantize.edit import delete_entries, reorder

    res = quantize_image(photo, 6, error_power=1.2)
    flipped = reorder(res, np.arange(6)[::-1])
    assert flipped.error_power == 1.2 and flipped.parameters()["error_power"] == 1.2
    np.testing.assert_array_equal(flipped.palette, res.palette[::-1])
    assert delete_entries(res, [0]).parameters()["error_power"] == 1.2


def test_cells_give_the_polish_of_the_colours_themselves(monkeypatch):
    from quantize.cluster import _polish

    rng = np.random.default_rng(4)
    rgb8 = rng.integers(0, 256, (20000, 3), dtype=np.uint8)
    rgb8[:12000] = np.clip(rgb8[:12000] // 3 + 60, 0, 255)  # a denser region
    x = rgb_to_space(rgb8, "wrgb")
    w = rng.integers(1, 50, len(x)).astype(np.float64)
    c0, _ = kmeans_start(x, w, 8)
    exact_c, exact_l = polish_palette(x, w, rgb8, c0, power=1.5, n_fixed=1)
    monkeypatch.setattr(_polish, "_CELLS_FROM", 1000)  # this set now goes through cells
    cell_c, cell_l = polish_palette(x, w, rgb8, c0, power=1.5, n_fixed=1)
    np.testing.assert_array_equal(cell_c[0], c0[0])
    np.testing.assert_array_equal(cell_l, nearest_indices(x, cell_c))
    assert np.abs(cell_c - exact_c).max() < 2.0  # within two levels of the exact polish

    def cost(c, lab):
        return float(w @ exact_sq_dist(x, c, lab) ** 0.75)

    start = cost(c0, nearest_indices(x, c0))
    assert cost(cell_c, cell_l) < start
    assert cost(cell_c, cell_l) - cost(exact_c, exact_l) < 0.05 * (start - cost(exact_c, exact_l))


def test_nearest_labels_follow_the_rule_of_nearest_indices():
    from quantize.cluster._annular import MIN_WORK, nearest_labels

    rng = np.random.default_rng(2)
    c = rng.integers(0, 256, (16, 3)).astype(np.float64)
    n = max(MIN_WORK // 16 + 1, 1000)
    x = rng.integers(0, 256, (n, 3)).astype(np.float64)  # integer points: many exact ties
    x[:16] = c  # and points on the centres
    c[5] = c[3]  # two equal centres: the lower index wins
    np.testing.assert_array_equal(nearest_labels(x, c), nearest_indices(x, c))
