"""The "Explore K" view: sweep, plot, hover preview, click to set K, targets as lines."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
from apphelpers import FAST, RUN_TIMEOUT_MS, make_image
from PySide6 import QtCore

from app.explore import best_k_for, thumbnail

SWEEP_TIMEOUT_MS = 60_000


def sweep(qtbot, window, ks="2,4,8"):
    explorer = window.explorer
    window.explorer_dock.raise_()  # on screen, so that its plots have a size
    explorer.ks_edit.setText(ks)
    with qtbot.waitSignal(explorer.sweep_finished, timeout=SWEEP_TIMEOUT_MS):
        assert explorer.start_sweep()
    qtbot.waitUntil(lambda: explorer.plots.isVisible() and explorer.plots.height() > 100)
    QtCore.QCoreApplication.processEvents()
    return explorer


def test_sweep_plots_size_and_quality_against_k(qtbot, window, small_png):
    window.open_image(small_png)
    explorer = sweep(qtbot, window)
    points = explorer.points()
    assert [p.k for p in points] == [2, 4, 8]
    xs, ys = explorer.size_curve.getData()
    np.testing.assert_allclose(xs, [1, 2, 3])  # log2 K
    np.testing.assert_allclose(ys, [p.png_bytes / 1000 for p in points])
    _, psnr = explorer.psnr_curve.getData()
    assert list(psnr) == sorted(psnr)
    assert explorer.original_line.isVisible()
    assert math.isclose(explorer.original_line.value(), small_png.stat().st_size / 1000)
    assert "3 K in" in explorer.status.text()
    assert not explorer.is_running() or qtbot.waitUntil(lambda: not explorer.is_running())


def test_hover_shows_a_preview_and_click_sets_k(qtbot, window, small_png):
    window.open_image(small_png)
    explorer = sweep(qtbot, window)
    window.set_auto_run(False)
    QtCore.QCoreApplication.processEvents()
    # the mouse over K = 4's point in the PSNR plot
    p4 = next(p for p in explorer.points() if p.k == 4)
    box = explorer.psnr_plot.getViewBox()
    pos = box.mapViewToScene(QtCore.QPointF(2.0, p4.psnr))
    explorer.plots.scene().sigMouseMoved.emit(pos)
    assert explorer.hovered_k() == 4
    assert not explorer.preview.pixmap().isNull()
    assert "K = 4" in explorer.preview_caption.text()
    # a click there sets K = 4 (automatic K off) and runs it
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        explorer.choose_k(4)
    assert window.params.parameters().n_colors == 4
    assert window.params.parameters().auto == "off"
    assert len(blocker.args[0].result.palette) == 4
    assert all(line.isVisible() and line.value() == 2.0 for line in explorer.current_lines)


def test_mouse_click_on_a_point(qtbot, window, small_png):
    window.open_image(small_png)
    explorer = sweep(qtbot, window)
    box = explorer.size_plot.getViewBox()
    p8 = explorer.points()[-1]
    pos = box.mapViewToScene(QtCore.QPointF(3.0, p8.png_bytes / 1000))
    event = SimpleNamespace(button=lambda: QtCore.Qt.MouseButton.LeftButton, scenePos=lambda: pos)
    with qtbot.waitSignal(explorer.k_chosen) as blocker:
        explorer._on_mouse_clicked(event)
    assert blocker.args == [8]


def test_targets_live_here_and_are_drawn_as_lines(qtbot, window, small_png):
    window.open_image(small_png)
    explorer = window.explorer
    explorer.target.setValue(31.5)
    assert window.params.parameters().target_psnr == 31.5
    assert explorer.target_values()["psnr"] == 31.5
    explorer.budget.setValue(12.0)
    assert window.params.parameters().max_size_kb == 12.0
    assert explorer.target_values()["size_kb"] == 12.0
    explorer.auto.setCurrentIndex(explorer.auto.findData("size"))
    assert window.params.parameters().auto == "size"
    # and the other way: the parameter panel's fields show here
    window.params.set_parameters(replace(window.params.parameters(), target_psnr=42.0))
    window.params.changed.emit()
    assert explorer.target.value() == 42.0 and explorer.target_values()["psnr"] == 42.0
    # dragging a line sets the field
    explorer.budget_line.setValue(20.0)
    explorer.budget_line.sigPositionChangeFinished.emit(explorer.budget_line)
    assert explorer.budget.value() == 20.0 and window.params.parameters().max_size_kb == 20.0


def test_use_buttons_pick_k_from_the_sweep(qtbot, window, small_png):
    window.open_image(small_png)
    window.set_auto_run(False)
    explorer = sweep(qtbot, window, "2,3,4,6,8")
    points = explorer.points()
    sizes = {p.k: p.png_bytes for p in points}
    explorer.budget.setValue(math.floor(sizes[4] / 1000) + 0.0 if sizes[4] >= 1000 else 1)
    budget = explorer.budget.value() * 1000
    expected = max((k for k, b in sizes.items() if b <= budget), default=None)
    if expected is not None:
        with qtbot.waitSignal(explorer.k_chosen) as blocker:
            explorer.use_budget.click()
        assert blocker.args == [expected]
    target = points[2].psnr - 0.01
    explorer.target.setValue(target)
    with qtbot.waitSignal(explorer.k_chosen) as blocker:
        explorer.use_target.click()
    assert blocker.args == [min(p.k for p in points if p.psnr >= explorer.target.value())]
    window.controller.cancel()


def test_best_k_for():
    pts = [SimpleNamespace(k=k, psnr=20 + k, png_bytes=1000 * k) for k in (2, 4, 8, 16)]
    assert best_k_for(pts, min_psnr=27) == 8
    assert best_k_for(pts, max_bytes=9000) == 8
    assert best_k_for(pts, max_bytes=1000) is None
    assert best_k_for(pts, min_psnr=99) is None
    assert best_k_for(pts, min_psnr=22, max_bytes=4000) == 2


def test_thumbnail_keeps_shape_ratio_and_alpha():
    img = np.zeros((400, 1000, 4), np.uint8)
    small = thumbnail(img, side=100)
    assert small.shape == (40, 100, 4) and small.dtype == np.uint8
    assert thumbnail(np.zeros((10, 20, 3), np.uint8)).shape == (10, 20, 3)  # never enlarged


def test_cancel_and_new_image_forget_the_sweep(qtbot, window):
    window.open_array(make_image(300, 400, seed=2), "big.png")
    explorer = window.explorer
    explorer.ks_edit.setText("2-256:30")
    assert explorer.start_sweep()
    assert explorer.cancel_button.isEnabled()
    explorer.cancel()
    assert "Cancelled" in explorer.status.text()
    qtbot.waitUntil(lambda: not explorer.is_running(), timeout=5000)
    explorer.ks_edit.setText("nonsense")
    assert not explorer.start_sweep() and "K values" in explorer.status.text()
    window.open_array(make_image(), "other.png")
    assert explorer.points() == []


def test_size_budget_run_from_the_window(qtbot, window, small_png):
    window.open_image(small_png)
    window.params.set_parameters(replace(FAST, auto="size", max_size_kb=2.0, n_colors=32))
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        window.start_run()
    output = blocker.args[0]
    choice = output.extra["auto"]
    assert choice.metric == "png_bytes"
    if choice.reached:
        assert output.metrics.png_bytes <= 2000
    else:
        assert window.progress_label.text().startswith("No palette fits 2.0 kB")
