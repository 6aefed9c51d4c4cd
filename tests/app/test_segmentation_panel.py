"""The segmentation panel: smoothing without refitting, overlay, statistics, colour models."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from apphelpers import FAST, run_and_wait
from PIL import Image
from PySide6 import QtCore

from app.tasks import map_levels
from quantize.edit import sort_order
from quantize.regions import label_regions
from quantize.segment import segment_result

COLOURS = np.array([[200, 60, 60], [60, 160, 80], [70, 90, 190]], float)


@pytest.fixture
def noisy_png(tmp_path):
    rng = np.random.default_rng(0)
    truth = np.minimum(np.arange(64) * 3 // 64, 2)[None, :].repeat(48, 0)
    img = np.clip(COLOURS[truth] + rng.normal(0, 45, (48, 64, 3)), 0, 255).astype(np.uint8)
    path = tmp_path / "noisy.png"
    Image.fromarray(img).save(path)
    return path


def show_panel(window):
    window.segmentation_dock.raise_()
    window.segmentation_dock.show()


def wait_view(qtbot, panel, timeout=20_000):
    with qtbot.waitSignal(panel.smoothed, timeout=timeout) as blocker:
        pass
    return blocker.args[0]


def test_slider_and_field_redraw_without_refitting(qtbot, window, noisy_png):
    window.open_image(noisy_png)
    window.params.set_parameters(replace(FAST, method="gmm", init="kmeans", n_init=1, n_colors=3))
    show_panel(window)
    panel = window.segmentation
    with qtbot.waitSignal(panel.smoothed, timeout=30_000):
        output = run_and_wait(qtbot, window)
    fitted = output.result
    runs = window.convergence.curve_count()
    before = panel.current()
    assert before.result.segmentation is None  # off by default: the fit's own labels
    assert before.stats.n_regions == label_regions(fitted.labels, 3).n_regions
    # the slider: mean-field smoothing of the same fit, no new run
    with qtbot.waitSignal(panel.smoothed, timeout=30_000) as blocker:
        panel.strength.setValue(15)  # 1.5
    view = blocker.args[0]
    assert view.result.unsmoothed() is fitted
    assert view.result.segmentation.settings.strength == pytest.approx(1.5)
    np.testing.assert_array_equal(view.result.labels, segment_result(fitted, 1.5, 0).labels)
    assert view.stats.n_regions < before.stats.n_regions
    assert window.convergence.curve_count() == runs  # nothing was refitted
    # the soft maps follow the smoothed responsibilities
    k = int(view.soft_maps.components[0])
    step = view.soft_maps.step
    np.testing.assert_array_equal(
        view.soft_maps.responsibilities[0],
        map_levels(view.result.responsibility_map(k)[::step, ::step]),
    )
    assert window.soft_maps.tile_count() == 2 + 3
    # the field: small regions merged
    with qtbot.waitSignal(panel.smoothed, timeout=30_000) as blocker:
        panel.min_region.setValue(40)
    view = blocker.args[0]
    assert view.stats.region_pixels.min() >= 40
    assert panel.status.text().startswith(f"{view.stats.n_regions:,} regions")
    # the export dialog exports what is shown
    dialog = window.make_export_dialog()
    assert dialog is not None and dialog.quantize_result is view.result
    dialog.deleteLater()


def test_overlay_click_selects_region_class_and_rows(qtbot, window, noisy_png):
    window.open_image(noisy_png)
    show_panel(window)
    panel = window.segmentation
    panel.set_settings(1.0, 20)
    with qtbot.waitSignal(panel.smoothed, timeout=30_000):
        run_and_wait(qtbot, window)
    view = panel.current()
    # overlay = photo and class colours at the chosen opacity, outlines drawn
    panel.outlines.setChecked(False)
    panel.opacity.setValue(100)
    np.testing.assert_array_equal(panel.image_item.image, view.result.palette[view.labels])
    panel.opacity.setValue(0)
    np.testing.assert_array_equal(panel.image_item.image, view.photo)
    # a click on a pixel of the view selects its region, class and rows
    row, col = 30, 50
    region = int(view.stats.regions.ids[row, col])
    k = int(view.result.labels[row, col])
    scene = panel.image_item.mapToScene(QtCore.QPointF(col + 0.5, row + 0.5))
    assert panel.pixel_at(scene) == (row, col)
    with qtbot.waitSignal(panel.class_selected) as blocker:
        panel.select_pixel(row, col)
    assert blocker.args == [k]
    selected = panel.class_table.selectionModel().selectedRows()
    assert [panel.class_model.key_at(i.row()) for i in selected] == [k]
    selected = panel.region_table.selectionModel().selectedRows()
    assert [panel.region_model.key_at(i.row()) for i in selected] == [region]
    # the tables sort by a column (pixels, descending) and still select by key
    panel.region_table.sortByColumn(2, QtCore.Qt.SortOrder.DescendingOrder)
    sizes = [panel.region_model._rows[i][2] for i in range(panel.region_model.rowCount())]
    assert sizes == sorted(sizes, reverse=True)
    panel.select_pixel(row, col)
    selected = panel.region_table.selectionModel().selectedRows()
    assert [panel.region_model.key_at(i.row()) for i in selected] == [region]
    # class rows hold the statistics of the engine
    row_k = panel.class_model._rows[panel.class_model.row_of(k)]
    assert row_k[2] == int(view.stats.class_pixels[k]) and row_k[4] == view.stats.class_regions[k]


def segmented_run(qtbot, window, png, strength, min_region):
    """Fit a 3-colour mixture with the panel shown and set; wait for its segmentation."""
    window.open_image(png)
    window.params.set_parameters(replace(FAST, method="gmm", init="kmeans", n_init=1, n_colors=3))
    show_panel(window)
    panel = window.segmentation
    panel.set_settings(strength, min_region)
    with qtbot.waitSignal(panel.smoothed, timeout=30_000):
        output = run_and_wait(qtbot, window)
    return panel, output


def test_save_and_apply_model(qtbot, window, noisy_png, tmp_path):
    panel, output = segmented_run(qtbot, window, noisy_png, 0.8, 12)
    path = panel.save_model(tmp_path / "m.model.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "vq-colour-model" and doc["smoothing"]["min_region"] == 12
    panel.set_settings(0.0, 0)
    wait_view(qtbot, panel)
    with qtbot.waitSignal(panel.smoothed, timeout=30_000) as blocker:
        applied = panel.apply_model(path)
    assert panel.settings() == (0.8, 12)  # the model's smoothing came with it
    np.testing.assert_array_equal(applied.labels, output.result.labels)
    view = blocker.args[0]
    np.testing.assert_array_equal(view.result.labels, segment_result(applied, 0.8, 12).labels)
    # a model from a newer version: a message box naming the file, nothing changed
    doc["version"] = 9
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(doc))
    with qtbot.waitSignal(panel.failed) as blocker:
        assert panel.apply_model(newer) is None
    assert "newer.json" in blocker.args[0] and "newer VQ Studio" in blocker.args[0]
    assert window.last_error.startswith("Segmentation") or "newer" in window.last_error


def test_soft_maps_named_by_swatch_with_the_right_bar_label(qtbot, window, small_png):
    window.open_image(small_png)
    window.soft_maps_dock.raise_()  # the user looks at the soft maps
    output = run_and_wait(qtbot, window)  # K-means
    soft = window.soft_maps
    maps = output.soft_maps
    assert maps.uncertainty_source == "distances"
    assert maps.uncertainty.max() > 0.05 * 255  # not a flat map for K-means (8-bit levels)
    k = int(maps.components[0])
    colour = "#{:02x}{:02x}{:02x}".format(*output.result.palette[k])
    tiles = {t.key: t for t in soft._tiles}
    assert tiles[k].caption.startswith(colour) and tiles[k].caption.endswith("%")
    assert tiles[k].swatch == tuple(int(v) for v in output.result.palette[k])
    soft.show_map(k)
    assert soft.colorbar.getAxis("left").labelText == f"mask (0/1) of {colour}"
    soft.show_map("uncertainty")
    assert "uncertainty" in soft.colorbar.getAxis("left").labelText
    assert "distances" in soft.detail_title.text()


def test_hidden_panel_segments_only_when_its_tab_comes_to_the_front(qtbot, window, noisy_png):
    window.convergence_dock.raise_()  # the segmentation tab behind another one
    window.open_image(noisy_png)
    run_and_wait(qtbot, window)
    panel = window.segmentation
    QtCore.QCoreApplication.processEvents()
    assert panel.current() is None and not panel.is_busy()  # put off, not started
    with qtbot.waitSignal(panel.smoothed, timeout=20_000) as blocker:
        show_panel(window)
    assert blocker.args[0].result.labels.shape == (48, 64)


def test_palette_edits_reach_the_segmentation(qtbot, window, noisy_png, tmp_path):
    """The panel segments what the palette editor shows (as the compare view does)."""
    from PySide6 import QtGui

    panel, _ = segmented_run(qtbot, window, noisy_png, 1.0, 4)
    editor = window.palette_view
    panel.opacity.setValue(100)
    panel.outlines.setChecked(False)
    # recolour: overlay, statistics and soft maps take the new colour
    k = 0
    editor.select([k])
    with qtbot.waitSignal(panel.smoothed, timeout=30_000) as blocker:
        editor.recolour_selected(QtGui.QColor(1, 2, 3))
    view = blocker.args[0]
    edited = editor.result
    assert tuple(edited.palette[k]) == (1, 2, 3)
    np.testing.assert_array_equal(view.result.palette, edited.palette)
    assert view.result.unsmoothed() is edited  # smoothed from the edited fit, not refitted
    assert view.result.segmentation.settings.strength == pytest.approx(1.0)
    np.testing.assert_array_equal(view.stats.palette, edited.palette)
    assert view.stats.class_rows()[k]["color"] == "#010203"
    overlay = panel.overlay()
    np.testing.assert_array_equal(overlay, np.asarray(edited.palette)[view.labels])
    window.soft_maps_dock.raise_()  # (a hidden view draws its maps when shown)
    labels_rgb = window.soft_maps._maps["labels"][1]
    np.testing.assert_array_equal(labels_rgb, edited.palette[view.soft_maps.labels])
    saved = panel.save_model(tmp_path / "edited.model.json")
    assert json.loads(saved.read_text())["palette"][k] == "#010203"
    # delete: the pixels move to the remaining colours, the panel follows
    editor.select([k])
    with qtbot.waitSignal(panel.smoothed, timeout=30_000) as blocker:
        editor.delete_selected()
    view = blocker.args[0]
    assert len(view.result.palette) == 2
    np.testing.assert_array_equal(view.result.palette, editor.result.palette)
    assert not np.all(view.result.palette == (1, 2, 3), axis=1).any()
    assert view.stats.class_pixels.sum() == 48 * 64
    # the palette order (which exports follow): the panel's classes in that order too
    with qtbot.waitSignal(panel.smoothed, timeout=30_000) as blocker:
        editor.sort_combo.setCurrentIndex(editor.sort_combo.findData("lightness"))
    view = blocker.args[0]
    np.testing.assert_array_equal(view.result.palette, window.controller.output().result.palette)
    np.testing.assert_array_equal(view.stats.palette, view.result.palette)
    order = sort_order(view.result.unsmoothed(), "lightness")
    np.testing.assert_array_equal(order, np.arange(len(order)))  # dark to light already


def test_a_smoothing_too_large_for_memory_is_refused_with_its_reason(
    qtbot, window, noisy_png, monkeypatch
):
    import quantize.segment as segment

    panel, output = segmented_run(qtbot, window, noisy_png, 0.0, 0)
    monkeypatch.setattr(segment, "MAX_MEMORY_MIB", 0.01)
    with qtbot.waitSignal(panel.failed, timeout=30_000) as blocker:
        panel.strength.setValue(10)
    assert "would need about" in blocker.args[0] and "allowed" in blocker.args[0]
    assert window.compare.has_result()  # the fit is still shown


def test_distance_uncertainty_is_one_minus_the_largest_soft_assignment_per_pixel():
    # the display map is computed per distinct colour, then gathered: it must equal the
    # per-pixel definition, with transparent pixels at 0
    from app.tasks import soft_maps_of
    from quantize import quantize_image
    from quantize.segment import soft_assignments

    rng = np.random.default_rng(4)
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., :3] = rng.integers(0, 256, (40, 50, 3))
    rgba[..., 3] = 255
    rgba[5:9, 10:20, 3] = 0  # transparent
    result = quantize_image(rgba, 5, seed=0)
    maps = soft_maps_of(result)
    index = np.asarray(result.table.inverse).reshape(result.table.shape)[:: maps.step, :: maps.step]
    expected = 1.0 - soft_assignments(result, index).max(axis=2)
    expected[index < 0] = 0.0
    levels = np.clip(expected * 255.0 + 0.5, 0, 255).astype(np.uint8)
    assert maps.uncertainty_source == "distances"
    np.testing.assert_array_equal(maps.uncertainty, levels)
    assert (maps.uncertainty[5:9, 10:20] == 0).all() and maps.uncertainty.max() > 0
