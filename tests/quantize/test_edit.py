"""Palette edits on a result: delete, merge, recolour, add, reorder, sort (quantize.edit)."""

from __future__ import annotations

import numpy as np
import pytest

from quantize import quantize_image
from quantize.cluster._nearest import nearest_indices
from quantize.colorspace import rgb_to_space
from quantize.edit import (
    add_entry,
    delete_entries,
    merge_entries,
    recolour_entry,
    reorder,
    sort_order,
)
from quantize.io.export import export_all
from quantize.io.palettes import read_palette


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(0)
    centres = np.array([[20, 20, 20], [230, 230, 230], [200, 40, 30], [30, 160, 60], [40, 60, 200]])
    labels = rng.integers(0, 5, (40, 40))
    img = np.clip(centres[labels] + rng.normal(0, 6, (40, 40, 3)), 0, 255).astype(np.uint8)
    return quantize_image(img, 5, color_space="oklab", seed=0)


def test_delete_moves_pixels_to_the_nearest_remaining(result):
    out = delete_entries(result, [2])
    assert out.n_colors == 4
    assert out.method == result.method and out.edits[-1].startswith("delete #")
    assert not out.is_soft and out.parameters()["edits"] == list(out.edits)
    kept = np.delete(result.palette, 2, axis=0)
    assert np.array_equal(out.palette, kept)
    old = result.unique_labels
    moved = old == 2
    centers = rgb_to_space(kept, "oklab")
    assert np.array_equal(out.unique_labels[moved], nearest_indices(result.points[moved], centers))
    # every other colour keeps its entry (renumbered)
    renumber = np.array([0, 1, -1, 2, 3])
    assert np.array_equal(out.unique_labels[~moved], renumber[old[~moved]])
    assert out.proportions.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="every palette entry"):
        delete_entries(result, range(5))


def test_merge_gives_the_weighted_mean(result):
    out = merge_entries(result, [3, 1])
    assert out.n_colors == 4
    assert out.proportions[1] == pytest.approx(result.proportions[1] + result.proportions[3])
    members = np.isin(result.unique_labels, [1, 3])
    assert (out.unique_labels[members] == 1).all()
    w = result.table.counts[members].astype(float)
    mean = (w @ result.points[members]) / w.sum()
    got = rgb_to_space(out.palette[1:2], "oklab")[0]
    assert np.linalg.norm(got - mean) < 0.01  # one 8-bit step
    with pytest.raises(ValueError, match="two palette entries"):
        merge_entries(result, [1])


def test_recolour_and_add(result):
    out = recolour_entry(result, 0, (1, 2, 3))
    assert tuple(out.palette[0]) == (1, 2, 3)
    assert np.array_equal(out.unique_labels, result.unique_labels)
    added = add_entry(result, (250, 120, 20))
    assert added.n_colors == 6 and tuple(added.palette[5]) == (250, 120, 20)
    # the colours nearest to the new entry moved to it, and only those
    centers = rgb_to_space(added.palette, "oklab")
    nearest = nearest_indices(result.points, centers)
    assert np.array_equal(added.unique_labels == 5, nearest == 5)
    with pytest.raises(ValueError, match="already in the palette"):
        add_entry(added, (250, 120, 20))
    with pytest.raises(ValueError, match="0-255"):
        add_entry(result, (256, 0, 0))


@pytest.mark.parametrize("key", ["share", "lightness", "hue", "fitted"])
def test_sort_and_reorder(result, key):
    order = sort_order(result, key)
    out = reorder(result, order)
    assert np.array_equal(out.palette, result.palette[order])
    assert np.array_equal(out.palette[out.labels], result.palette[result.labels])
    assert (out.n_iter, out.converged, out.method) == (result.n_iter, result.converged, "kmeans")
    assert np.allclose(out.model.cluster_centers_, result.model.cluster_centers_[order])
    if key == "share":
        assert (np.diff(out.proportions) <= 0).all()
    if key == "lightness":
        assert (np.diff(rgb_to_space(out.palette, "oklab")[:, 0]) >= 0).all()
    if key == "hue":  # the two greys first, dark then light
        assert [tuple(c) for c in out.palette[:2]] == sorted(
            [tuple(c) for c in result.palette if max(c) - min(c) < 20]
        )


def test_exports_follow_the_shown_order(result, tmp_path):
    out = reorder(result, sort_order(result, "lightness"))
    export_all(out, tmp_path, "x", ["gpl", "binary_masks"])
    assert np.array_equal(read_palette(tmp_path / "x.gpl"), out.palette)
    from PIL import Image

    first = sorted(tmp_path.glob("x.mask-*.png"))[0]
    with Image.open(first) as im:
        assert np.array_equal(np.asarray(im) == 255, out.labels == 0)


def test_soft_maps_follow_a_reordered_mixture():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (20, 20, 3)).astype(np.uint8)
    r = quantize_image(img, 3, method="gmm", max_iter=20, keep_small_colors=False)
    out = reorder(r, [2, 0, 1])
    assert out.is_soft
    assert np.allclose(out.responsibility_map(0), r.responsibility_map(2))
    assert np.allclose(out.uncertainty_map(), r.uncertainty_map())
