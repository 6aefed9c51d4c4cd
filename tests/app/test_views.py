"""Views after a real run: compare modes, highlight, replay, params, auto K."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from apphelpers import FAST, make_image, run_and_wait
from PySide6 import QtCore, QtGui, QtWidgets

from app.model import RunParameters
from app.panels import ParameterPanel


def test_compare_split_flash_zoom(qtbot, window, small_png):
    window.open_image(small_png)
    output = run_and_wait(qtbot, window)
    compare = window.compare
    assert compare.result_item.image() is not None
    # result pixels shown are the palette image
    shown = compare.result_item.image()
    assert (shown.width(), shown.height()) == (64, 48)
    assert QtGui.QColor(shown.pixel(5, 7)).getRgb()[:3] == tuple(
        int(v) for v in output.quantized[7, 5]
    )
    # split mode: one view, the result clipped to the right of the line
    window.set_compare_mode("split")
    assert window.split_action.isChecked()
    assert not compare.right_view.isVisible()
    assert compare.split_item.image() is shown
    compare.split_line.setValue(20)
    assert compare._clip.rect().left() == 20
    assert compare._clip.rect().width() == 64 - 20
    # flash the original by holding Space on the view
    compare.left_view.setFocus()
    qtbot.keyPress(compare.left_view, QtCore.Qt.Key.Key_Space)
    assert compare.flashing()
    assert compare.split_item.image() is compare.original_item.image()
    qtbot.keyRelease(compare.left_view, QtCore.Qt.Key.Key_Space)
    assert not compare.flashing()
    assert compare.split_item.image() is shown
    # Space also works when no input widget takes it (focus on the window itself)
    window.setFocus()
    qtbot.keyPress(window, QtCore.Qt.Key.Key_Space)
    assert compare.flashing()
    qtbot.keyRelease(window, QtCore.Qt.Key.Key_Space)
    assert not compare.flashing()
    # the "Show original" button flashes while held
    window.flash_button.pressed.emit()
    assert compare.flashing()
    window.flash_button.released.emit()
    assert not compare.flashing()
    window.set_compare_mode("side")
    QtWidgets.QApplication.processEvents()  # let the layout give the right view its size
    # zoom: 100 % means one image pixel per screen pixel; zoom in doubles it, both views linked
    window.actual_action.trigger()
    assert abs(compare.pixel_scale() - 1.0) < 0.02
    compare.zoom(2.0)
    assert abs(compare.pixel_scale() - 2.0) < 0.05
    # linked views: same zoom (image pixels per screen pixel) and same centre
    np.testing.assert_allclose(compare.left.viewPixelSize(), compare.right.viewPixelSize())
    left, right = compare.left.viewRect().center(), compare.right.viewRect().center()
    assert abs(left.x() - right.x()) < 1 and abs(left.y() - right.y()) < 1
    window.fit_action.trigger()
    rect = compare.left.viewRect()
    assert rect.width() >= 64 or rect.height() >= 48


def test_palette_click_highlights_cluster(qtbot, window, small_png):
    window.open_image(small_png)
    output = run_and_wait(qtbot, window)
    palette_view = window.palette_view
    k = palette_view.cluster_at(0)
    with qtbot.waitSignal(palette_view.cluster_clicked) as blocker:
        palette_view.click_row(0)
    assert blocker.args == [k]
    assert window.compare.highlighted_cluster() == k
    assert window.soft_maps.current() == k  # its map is shown too
    overlay = window.compare.right_overlay.image()
    labels = output.result.labels
    rows, cols = np.nonzero(labels == k)
    other = np.argwhere(labels != k)[0]
    assert QtGui.QColor.fromRgba(overlay.pixel(int(cols[0]), int(rows[0]))).alpha() == 0
    assert QtGui.QColor.fromRgba(overlay.pixel(int(other[1]), int(other[0]))).alpha() > 100
    palette_view.click_row(0)  # second click clears
    assert window.compare.highlighted_cluster() is None
    assert window.compare.right_overlay.image() is None


def test_colorspace_replay_moves_centres(qtbot, window, small_png):
    window.open_image(small_png)
    window.params.set_parameters(replace(FAST, init="random", n_init=1, n_colors=5))
    output = run_and_wait(qtbot, window)
    view = window.color_space
    n = view.step_count()
    assert n == len(output.result.history) and n >= 2
    final = view.shown_centers()
    view.set_step(0)
    first = view.shown_centers()
    assert first.shape == final.shape == (5, 2)
    assert not np.allclose(first, final)
    records = [r for r in output.result.records if r.restart == output.chosen_restart]
    x, y = view.x_axis.currentIndex(), view.y_axis.currentIndex()
    np.testing.assert_allclose(first, records[0].centers[:, [x, y]])
    view.x_axis.setCurrentIndex(0)
    view.set_step(n - 1)
    np.testing.assert_allclose(view.shown_centers()[:, 0], records[-1].centers[:, 0])
    # points are coloured by the E step under each replayed iteration's centres
    from quantize.cluster.replay import record_labels

    points = output.sample.points
    np.testing.assert_array_equal(view.shown_point_labels(), record_labels(points, records[-1]))
    view.set_step(0)
    at_first = view.shown_point_labels()
    np.testing.assert_array_equal(at_first, record_labels(points, records[0]))
    assert not np.array_equal(at_first, record_labels(points, records[-1]))


def test_soft_map_tiles_switch_detail(qtbot, window, small_png):
    window.open_image(small_png)
    output = run_and_wait(qtbot, window)
    soft = window.soft_maps
    soft.show_map("uncertainty")
    assert soft.current() == "uncertainty"
    assert soft.colorbar.isVisible()
    np.testing.assert_array_equal(soft.detail_image.image, output.soft_maps.uncertainty)
    soft.show_map("labels")
    assert not soft.colorbar.isVisible()
    k = int(output.soft_maps.components[0])
    soft.show_map(k)
    # K-means maps are hard masks equal to the label map
    np.testing.assert_array_equal(soft.detail_image.image, 255 * (output.soft_maps.labels == k))


def test_parameter_panel_roundtrip_and_rules(qtbot):
    panel = ParameterPanel()
    qtbot.addWidget(panel)
    params = RunParameters(
        method="gmm",
        n_colors=40,
        color_space="lab",
        covariance_type="diag",
        init="random",
        n_init=4,
        max_iter=77,
        tol=1e-5,
        seed=123,
        dither="fs",
        dither_strength=0.5,
        auto="bic",
        target_psnr=40.0,
    )
    panel.set_parameters(params)
    assert panel.parameters() == params
    assert panel.covariance.isEnabled()
    with qtbot.waitSignal(panel.changed):
        panel.method.setCurrentIndex(panel.method.findData("kmeans"))
    got = panel.parameters()
    assert got.method == "kmeans" and got.auto == "off"  # BIC needs a mixture
    assert not panel.covariance.isEnabled()
    assert got.init in ("k-means++", "random")
    assert RunParameters.from_json(params.to_json()) == params
    assert RunParameters.from_json("{not json") == RunParameters()
    assert RunParameters.from_json('{"n_colors": 9999, "method": "bogus"}').n_colors == 256


def test_auto_k_by_quality_target(qtbot, window, small_png):
    window.open_image(small_png)
    window.params.set_parameters(
        replace(FAST, auto="quality", target_psnr=20.0, n_colors=16, n_init=1)
    )
    output = run_and_wait(qtbot, window)
    choice = output.extra["auto"]
    assert choice.reached
    assert len(output.result.palette) == choice.k
    points = window.convergence.auto_points()
    assert choice.k in points and points[choice.k] >= 20.0
    assert all(v < 20.0 for k, v in points.items() if k < choice.k)
    assert "chose K=" in window.convergence.summary.text()


def test_pixel_readout_and_hex_copy(qtbot, window, small_png):
    window.open_image(small_png)
    output = run_and_wait(qtbot, window)
    result = output.result
    k = int(result.labels[10, 20])
    text = window.pixel_info(10, 20)
    r, g, b = (int(v) for v in window.image()[10, 20])
    assert f"rgb({r}, {g}, {b})" in text and f"cluster {k}" in text
    hexcode = "#" + "".join(f"{int(v):02x}" for v in result.palette[k])
    assert hexcode in text
    # a real mouse move over the middle of the image reports the middle pixel
    window.compare.fit()
    viewport = window.compare.left_view.viewport()
    with qtbot.waitSignal(window.compare.hovered) as blocker:
        qtbot.mouseMove(viewport, viewport.rect().center())
    row, col = blocker.args
    assert abs(row - 24) <= 2 and abs(col - 32) <= 2
    assert window.pixel_label.text() == window.pixel_info(row, col)
    window.compare.hovered.emit(10, 20)
    assert window.pixel_label.text() == text
    window.compare.hovered.emit(-1, -1)
    assert window.pixel_label.text() == ""
    copied = window.palette_view.copy_all()
    assert QtWidgets.QApplication.clipboard().text() == copied
    assert len(copied.splitlines()) == len(result.palette)


def test_minibatch_and_lab_axes(qtbot, window, small_png):
    window.open_image(small_png)
    window.params.set_parameters(replace(FAST, method="minibatch", color_space="lab"))
    output = run_and_wait(qtbot, window)
    assert output.result.method == "minibatch"
    assert window.palette_view.count() == len(output.result.palette)
    view = window.color_space
    names = [view.x_axis.itemText(i) for i in range(view.x_axis.count())]
    assert names == ["L*", "a*", "b*"]
    # sample points are the pixels' CIELAB coordinates
    from app.tasks import SAMPLE_SIZE
    from quantize.colorspace import rgb_to_space

    assert view.point_count() == min(SAMPLE_SIZE, 48 * 64)
    lab = rgb_to_space(window.image().reshape(-1, 3), "lab")
    assert output.sample.points.min(axis=0)[0] >= lab[:, 0].min() - 1e-9
    assert output.sample.points.max(axis=0)[0] <= lab[:, 0].max() + 1e-9


def test_auto_k_by_bic(qtbot, window, small_png):
    window.open_image(small_png)
    window.params.set_parameters(
        replace(FAST, method="gmm", init="kmeans", auto="bic", n_colors=4, n_init=1)
    )
    assert window.params.n_colors_label.text() == "Max &colours (K)"
    output = run_and_wait(qtbot, window)
    choice = output.extra["auto"]
    points = window.convergence.auto_points()
    assert set(points) <= set(range(2, 5)) and choice.k in points
    assert points[choice.k] == min(points.values())  # lowest BIC kept
    assert len(output.result.palette) == choice.k


def test_palette_hex_codes_are_the_exported_ones(qtbot):
    import app.model
    import app.views.palette
    from app.views.palette import PaletteView
    from quantize.io.palettes import encode_palette, hex_color

    # one implementation, shared by the app and the palette files
    assert app.views.palette.hex_color is hex_color
    assert app.model.hex_color is hex_color  # the pixel readout
    view = PaletteView()
    qtbot.addWidget(view)
    pal = np.array([[255, 0, 16], [1, 2, 3], [170, 187, 204]], np.uint8)
    share = np.array([0.5, 0.2, 0.3])
    view.set_palette(pal, share)
    copied = view.copy_all().splitlines()
    assert copied == encode_palette(pal[[0, 2, 1]], fmt="hex").decode("ascii").splitlines()


def test_highlight_veil_is_a_one_byte_mask_of_the_labels(qtbot):
    from app.views.compare import CompareView

    view = CompareView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (30, 41)).astype(np.uint8)  # odd width: no row padding
    rgb = np.ascontiguousarray(rng.integers(0, 256, (30, 41, 3), dtype=np.uint8))
    view.set_original(rgb)
    view.set_result(rgb, labels)
    view.highlight_cluster(3)
    overlay = view.right_overlay.image()
    assert view.left_overlay.image() is overlay
    # painted as it is: 1 byte per pixel, no 32-bit copy of the whole image
    assert overlay.format() == QtGui.QImage.Format.Format_Alpha8
    assert overlay.bytesPerLine() == 41
    alpha = np.frombuffer(overlay.constBits(), np.uint8, count=30 * 41).reshape(30, 41)
    np.testing.assert_array_equal(alpha, np.where(labels == 3, 0, 170))
    dimmed = QtGui.QColor.fromRgba(overlay.pixel(*np.argwhere(labels != 3)[0][::-1].tolist()))
    assert dimmed.getRgb() == (0, 0, 0, 170)
    view.highlight_cluster(None)
    assert view.right_overlay.image() is None and view.highlighted_cluster() is None


def test_soft_map_detail_is_large_and_fills_its_view(qtbot, window):
    from app.tasks import MAP_SIDE

    photo = make_image(900, 1200, seed=3)  # 1.1 megapixels
    assert window.open_array(photo, "photo.png")
    window.resize(1400, 900)
    window.show()
    window.soft_maps_dock.raise_()
    output = run_and_wait(qtbot, window)
    maps = output.soft_maps
    # prepared at the detail size (step 2 here), not at thumbnail size
    assert max(maps.labels.shape) > 384
    assert max(maps.labels.shape) <= MAP_SIDE
    assert maps.responsibilities.shape[1:] == maps.labels.shape
    soft = window.soft_maps
    qtbot.waitUntil(lambda: soft.detail.width() > 0)
    QtWidgets.QApplication.processEvents()
    # the map takes most of the panel's width, and fills its view box along one side
    assert soft.detail.width() > 0.6 * soft.width()
    box = soft.detail_box.sceneBoundingRect()
    shown = soft.detail_image.mapRectToScene(soft.detail_image.boundingRect())
    assert shown.width() > 0.9 * box.width() or shown.height() > 0.9 * box.height()


def test_a_replay_step_asked_of_a_hidden_colour_space_draws_the_new_run(qtbot, window, small_png):
    from quantize.cluster.replay import record_labels

    window.open_image(small_png)
    window.params.set_parameters(replace(FAST, init="random", n_init=1, n_colors=5))
    run_and_wait(qtbot, window)
    window.params.set_parameters(replace(FAST, init="random", n_init=1, n_colors=4, seed=3))
    output = run_and_wait(qtbot, window)  # a second run, given to the view while it is hidden
    view = window.color_space
    assert view.visibleRegion().isEmpty()
    view.set_step(0)  # before anything drew the new run
    records = [r for r in output.result.records if r.restart == output.chosen_restart]
    points = output.sample.points
    assert len(view.points.data) == view.point_count() == len(points)
    np.testing.assert_array_equal(view.shown_point_labels(), record_labels(points, records[0]))
