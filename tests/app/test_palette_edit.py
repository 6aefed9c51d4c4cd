"""Palette editing and the importance brush in the app (issue 11): lock, edit, re-run, export."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from apphelpers import FAST, RUN_TIMEOUT_MS, run_and_wait
from PIL import Image
from PySide6 import QtCore, QtGui, QtTest

from quantize.colorspace import rgb_to_space
from quantize.io.export import export_all
from quantize.io.palettes import read_palette

RED = (213, 43, 30)


def marked_image(size: int = 120) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    img = np.stack([40 + 80 * x, 90 + 100 * y, 150 - 60 * x * y], axis=2)
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).round().astype(np.uint8)
    img[10:16, 10:16] = RED
    return img


@pytest.fixture
def opened(qtbot, window):
    window.params.set_parameters(replace(FAST, n_colors=8, color_space="oklab", n_init=1))
    with qtbot.waitSignal(window.image_changed, timeout=10_000):
        assert window.open_array(marked_image(), "marked")
    run_and_wait(qtbot, window)
    return window


def wait_output(qtbot, window, action):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        action()
    return blocker.args[0]


def shown_palette(window) -> list[str]:
    editor = window.palette_view
    return [editor.swatch_text(r).split()[0] for r in range(editor.count())]


def test_the_palette_lists_in_export_order_and_sorts(qtbot, opened, tmp_path):
    editor = opened.palette_view
    result = opened.controller.output().result
    hexes = ["#{:02x}{:02x}{:02x}".format(*c) for c in result.palette]
    assert shown_palette(opened) == hexes  # shown in the palette's own order
    assert (np.diff(result.proportions) <= 0).all()  # sorted by share by default
    out = wait_output(qtbot, opened, lambda: editor.sort_combo.setCurrentIndex(1))
    light = rgb_to_space(out.result.palette, "oklab")[:, 0]
    assert (np.diff(light) >= 0).all()
    assert shown_palette(opened) == ["#{:02x}{:02x}{:02x}".format(*c) for c in out.result.palette]
    assert opened.params.parameters().palette_order == "lightness"
    # exports write that order; mask NN is the NN-th swatch shown
    export_all(out.result, tmp_path, "x", ["gpl", "binary_masks"])
    assert np.array_equal(read_palette(tmp_path / "x.gpl"), out.result.palette)
    first = "x.mask-00-{:02x}{:02x}{:02x}.png".format(*out.result.palette[0])  # carries the hex
    with Image.open(tmp_path / first) as im:
        assert np.array_equal(np.asarray(im) == 255, out.result.labels == 0)


def test_small_mark_kept_and_marked_in_the_list(opened):
    result = opened.controller.output().result
    assert RED in {tuple(c) for c in result.palette}
    (i,) = result.added
    assert opened.palette_view.swatch_marks(i) == ["small colour kept"]


def test_lock_delete_merge_recolour_add_undo_redo(qtbot, opened):
    editor = opened.palette_view
    # in the fitted order, edits keep the other entries where they are
    out = wait_output(
        qtbot,
        opened,
        lambda: editor.sort_combo.setCurrentIndex(editor.sort_combo.findData("fitted")),
    )
    base = out.result
    k = base.n_colors
    # lock the first colour
    editor.select([0])
    editor.toggle_lock()
    locked = tuple(base.palette[0])
    assert editor.swatch_marks(0)[0] == "locked"
    assert editor.swatch_text(0).split()[-1] == "%"  # the text keeps its form
    assert editor.locked_colours() == [locked]

    def free_rows(result) -> list[int]:  # neither locked nor the mark
        return [i for i, c in enumerate(result.palette) if tuple(c) not in (locked, RED)]

    # delete two: their pixels go to the nearest remaining colour
    editor.select(free_rows(base)[-2:])
    out = wait_output(qtbot, opened, editor.delete_selected)
    assert out.result.n_colors == k - 2
    assert out.result.edits[-1].startswith("delete")
    assert np.array_equal(out.quantized, out.result.palette[out.result.labels])
    # merge two
    a, b = free_rows(out.result)[:2]
    share = out.result.proportions[a] + out.result.proportions[b]
    editor.select([a, b])
    out = wait_output(qtbot, opened, editor.merge_selected)
    assert out.result.n_colors == k - 3
    assert out.result.proportions[a] == pytest.approx(share)
    # recolour (the dialog's answer given directly)
    row = free_rows(out.result)[0]
    editor.select([row])
    out = wait_output(qtbot, opened, lambda: editor.recolour_selected(QtGui.QColor(1, 2, 3)))
    assert tuple(out.result.palette[row]) == (1, 2, 3)
    # add with the eyedropper: arm it, click a pixel of the image
    editor.add_button.click()
    assert opened.image_tools._eyedropper
    view, box = opened.compare.left_view, opened.compare.left
    opened.compare.fit()
    qtbot.wait(10)
    pos = view.mapFromScene(box.mapViewToScene(QtCore.QPointF(100.5, 60.5)))
    out = wait_output(
        qtbot,
        opened,
        lambda: QtTest.QTest.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos),
    )
    picked = tuple(int(v) for v in marked_image()[60, 100])
    assert tuple(out.result.palette[-1]) == picked
    assert out.result.n_colors == k - 2
    # undo back to the recoloured palette, then redo
    out = wait_output(qtbot, opened, editor.undo)
    assert out.result.n_colors == k - 3
    out = wait_output(qtbot, opened, editor.redo)
    assert tuple(out.result.palette[-1]) == picked
    assert editor.locked_colours() == [locked]


def test_rerun_from_the_edited_palette_keeps_locks(qtbot, opened, tmp_path):
    editor = opened.palette_view
    base = opened.controller.output().result
    editor.select([1])
    out = wait_output(qtbot, opened, lambda: editor.recolour_selected(QtGui.QColor(250, 0, 250)))
    pink = (250, 0, 250)
    row = [tuple(c) for c in out.result.palette].index(pink)
    editor.select([row])
    editor.toggle_lock()
    out = wait_output(qtbot, opened, editor.request_rerun)
    result = out.result
    assert result.n_colors == base.n_colors
    assert pink in {tuple(c) for c in result.palette}  # kept exactly by the fit
    assert editor.locked_colours() == [pink]
    assert opened.params.parameters().n_colors == base.n_colors
    # export of the re-run from the dialog: the locked colour in the PNG and every palette
    dialog = opened.make_export_dialog()
    qtbot.addWidget(dialog)
    dialog.folder.setText(str(tmp_path))
    dialog.stem.setText("r")
    for kind, check in dialog.checks.items():
        check.setChecked(kind in ("indexed_png", "gpl", "palette_json", "binary_masks"))
    written = dialog.export()
    assert written
    for suffix in (".gpl", ".palette.json"):
        pal = read_palette(tmp_path / f"r{suffix}")
        assert np.array_equal(pal, result.palette)  # in the order shown
        assert pink in {tuple(c) for c in pal}
    with Image.open(tmp_path / "r.png") as im:
        flat = im.getpalette()
    assert pink in {tuple(flat[i : i + 3]) for i in range(0, len(flat), 3)}
    # undo returns to the palette before the re-run
    out = wait_output(qtbot, opened, editor.undo)
    assert pink in {tuple(c) for c in out.result.palette}


def test_rerun_with_locks_needs_a_method_that_locks(qtbot, opened):
    editor = opened.palette_view
    opened.params.set_parameters(replace(opened.params.parameters(), method="minibatch"))
    editor.select([0])
    editor.toggle_lock()
    with qtbot.waitSignal(opened.error_shown, timeout=5000) as blocker:
        editor.request_rerun()
    assert "cannot keep colours fixed" in blocker.args[1]


def test_importance_brush_paint_undo_and_rerun(qtbot, opened):
    panel = opened.importance_panel
    opened.importance_dock.raise_()
    panel.mode.setCurrentIndex(panel.mode.findData("ignore"))
    panel.radius.setValue(40)
    opened.compare.fit()
    qtbot.wait(10)
    view, box = opened.compare.left_view, opened.compare.left

    def at(col: float, row: float) -> QtCore.QPoint:
        return view.mapFromScene(box.mapViewToScene(QtCore.QPointF(col, row)))

    vp = view.viewport()
    QtTest.QTest.mousePress(vp, QtCore.Qt.MouseButton.LeftButton, pos=at(80, 80))
    QtTest.QTest.mouseMove(vp, at(90, 90))
    QtTest.QTest.mouseRelease(vp, QtCore.Qt.MouseButton.LeftButton, pos=at(90, 90))
    imp = panel.importance()
    assert imp is not None and imp[85, 85] == 0 and imp[2, 2] == 32
    assert opened.image_tools._overlay.image() is not None
    # ignoring everything but a corner: the re-run fits with the map
    panel.mode.setCurrentIndex(panel.mode.findData("protect"))
    QtTest.QTest.mousePress(vp, QtCore.Qt.MouseButton.LeftButton, pos=at(6, 6))
    QtTest.QTest.mouseRelease(vp, QtCore.Qt.MouseButton.LeftButton, pos=at(6, 6))
    assert panel.importance()[6, 6] == 255
    panel.undo()
    assert panel.importance()[6, 6] == 32
    out = wait_output(qtbot, opened, panel.rerun_button.click)
    assert out.result.importance
    # the brush off: the view pans again, nothing is painted
    panel.mode.setCurrentIndex(panel.mode.findData("off"))
    before = panel.importance().copy()
    QtTest.QTest.mouseClick(vp, QtCore.Qt.MouseButton.LeftButton, pos=at(20, 20))
    assert np.array_equal(panel.importance(), before)
    panel.clear()
    assert panel.importance() is None
