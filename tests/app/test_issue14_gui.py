"""The desktop app never leaves the user guessing (issue 14's findings, one test each)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from apphelpers import FAST, RUN_TIMEOUT_MS, make_image, run_and_wait
from PIL import Image
from PySide6 import QtCore, QtWidgets

import app.window_support as ws
from app.export_dialog import ExportDialog
from app.model import auto_k_verdict, png_size_verdict
from app.progress import MAX_STEP, RunProgress, format_eta
from app.views.colorspace_view import ColorSpaceView
from app.views.compare import CompareView, veil_is_light
from app.views.palette import PaletteView
from quantize.metrics import Metrics
from quantize.protocol import IterationRecord


def activate(qtbot, window):
    window.activateWindow()
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is window, timeout=2000)


def export_dialogs(window):
    return [d for d in window.findChildren(ExportDialog) if d.isVisible()]


# ------------------------------------------------------------------ 1. Ctrl+E in a field


class ClaimsCtrlE(QtCore.QObject):
    """What a line edit does under X11 key bindings (Ctrl+E: end of line), on any platform.

    The offscreen platform uses other key bindings, so the field is made to claim the key
    as it does on a Linux desktop: it accepts the ``ShortcutOverride`` of Ctrl+E.
    """

    def eventFilter(self, watched, event):
        if (
            event.type() == QtCore.QEvent.Type.ShortcutOverride
            and event.key() == QtCore.Qt.Key.Key_E
            and event.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier
        ):
            event.accept()
            return True
        return False


@pytest.mark.parametrize("field", ["tol", "n_colors"])
def test_ctrl_e_exports_from_a_focused_field(qtbot, window, small_png, field):
    window.open_image(small_png)
    run_and_wait(qtbot, window)
    activate(qtbot, window)
    widget = getattr(window.params, field)
    target = widget.lineEdit() if isinstance(widget, QtWidgets.QAbstractSpinBox) else widget
    claims = ClaimsCtrlE(target)
    target.installEventFilter(claims)
    target.setFocus()
    qtbot.waitUntil(target.hasFocus, timeout=2000)
    qtbot.keyClick(target, QtCore.Qt.Key.Key_E, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(export_dialogs(window)), timeout=2000)
    for dialog in export_dialogs(window):
        dialog.reject()


def test_the_shortcut_filter_runs_only_while_a_field_has_the_focus(qtbot, window, small_png):
    """An application-wide filter costs every event of a run the interpreter lock: only a
    focused field of the window needs it."""
    window.open_image(small_png)
    activate(qtbot, window)
    guard = window.findChild(ws.ShortcutGuard)
    seen = []
    original = guard.eventFilter
    guard.eventFilter = lambda watched, event: seen.append(event.type()) or original(watched, event)
    window.run_button.setFocus()
    qtbot.waitUntil(window.run_button.hasFocus, timeout=2000)
    assert not guard.is_filtering()
    window.compare.repaint()
    window.params.tol.setFocus()
    qtbot.waitUntil(guard.is_filtering, timeout=2000)
    window.compare.repaint()
    assert seen  # while the field has the focus, every event passes the filter
    window.run_button.setFocus()
    qtbot.waitUntil(lambda: not guard.is_filtering(), timeout=2000)
    seen.clear()
    window.compare.repaint()
    QtWidgets.QApplication.processEvents()
    assert seen == []


def test_change_k_then_export_exports_the_new_k(qtbot, window, small_png):
    window.open_image(small_png)
    run_and_wait(qtbot, window)
    window.set_auto_run(True)
    window.params.n_colors.setValue(FAST.n_colors + 2)  # a change: a run comes shortly
    assert window.controller.run_pending()
    assert window.export_dialog() is None and not export_dialogs(window)
    assert window.export_dialog() is None  # pressed twice: still one dialog to come
    assert "when the run" in window.progress_label.text()
    qtbot.waitUntil(lambda: bool(export_dialogs(window)), timeout=RUN_TIMEOUT_MS)
    dialogs = export_dialogs(window)
    assert len(dialogs) == 1
    assert len(dialogs[0].quantize_result.palette) == FAST.n_colors + 2
    dialogs[0].reject()


def test_other_editing_keys_stay_with_the_field(qtbot, window, small_png):
    window.open_image(small_png)
    activate(qtbot, window)
    tol = window.params.tol
    tol.setFocus()
    qtbot.waitUntil(tol.hasFocus, timeout=2000)
    tol.deselect()
    qtbot.keyClick(tol, QtCore.Qt.Key.Key_A, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert tol.selectedText() == tol.text() != ""  # Ctrl+A still selects all
    assert not export_dialogs(window)


# ------------------------------------------------------------------ 2./3. progress


def record(iteration, restart=0, stage="", extra=None):
    return IterationRecord(
        restart=restart,
        iteration=iteration,
        objective=1.0,
        kind="inertia",
        shift=0.0,
        centers=np.zeros((2, 3)),
        stage=stage,
        extra=extra or {},
    )


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_only_grows_in_small_steps_and_estimates_time():
    clock = FakeClock()
    params = replace(FAST, n_init=2, max_iter=100)
    progress = RunProgress(params, clock=clock)
    shown = []
    events = [record(i) for i in range(1, 60)] + [record(i, restart=1) for i in range(1, 40)]
    for event in events:
        progress.record(event)
        clock.t += 0.2
        shown.append(progress.tick())
    for _ in range(3):  # rendering, soft maps, metrics
        progress.stage()
        for _ in range(5):
            clock.t += 0.2
            shown.append(progress.tick())
    percents = [p for p, _ in shown]
    assert percents == sorted(percents)
    assert max(np.diff(percents)) <= MAX_STEP
    assert percents[-1] >= 85 and percents[-1] <= 99
    assert all(eta == "" for p, eta in shown[:5])  # no estimate in the first second
    assert shown[-1][1].startswith("about ") and shown[-1][1].endswith(" left")
    # a new restart does not move the bar backwards (restart 2 starts at iteration 1)
    assert percents[60] >= percents[58]


def test_progress_moves_during_a_search_for_k():
    clock = FakeClock()
    progress = RunProgress(replace(FAST, auto="quality", n_colors=64), clock=clock)
    seen = []
    for k in (1, 2, 4, 8, 16, 32, 24, 20):
        for i in range(1, 15):
            progress.record(record(i))
            clock.t += 0.1
            seen.append(progress.tick()[0])
        progress.record(record(1, stage="auto-k", extra={"k": k}))
    assert seen[-1] > 40  # the search moved the bar (it stayed at 0 % before)
    assert seen == sorted(seen)
    assert format_eta(75) == "about 1 min left" and format_eta(4.2) == "about 4 s left"


def test_progress_signal_over_a_run_is_monotone_without_jumps(qtbot, window):
    photo = make_image(360, 480, seed=3)
    window.open_array(photo, "photo.png")
    window.params.set_parameters(replace(FAST, n_colors=24, n_init=3, max_iter=200, tol=1e-9))
    values: list[int] = []
    window.controller.progress.connect(lambda percent, text: values.append(percent))
    run_and_wait(qtbot, window)
    assert values[0] == 0
    assert values == sorted(values)
    assert max(np.diff(values), default=0) <= MAX_STEP


# ------------------------------------------------------------------ 4. after a cancel


def test_cancel_says_so_and_marks_the_older_result_stale(qtbot, window):
    window.open_array(make_image(200, 260), "photo.png")
    first = run_and_wait(qtbot, window)
    window.params.set_parameters(replace(FAST, n_colors=12, max_iter=500, tol=1e-12))
    with qtbot.waitSignal(window.run_cancelled, timeout=RUN_TIMEOUT_MS):
        window.start_run()
        window.cancel_run()
    assert window.convergence.summary.text().startswith("Cancelled")
    assert "Running" not in window.convergence.summary.text()
    stale = window.compare.stale()
    assert "previous run" in stale and f"{len(first.result.palette)} colours" in stale
    assert "previous run" in window.compare.right_title.text()
    assert "previous run" in window.palette_view.header.text()
    assert window.metrics_view.stale_label.isVisibleTo(window.metrics_view)
    assert "previous run" in window.progress_label.text()
    run_and_wait(qtbot, window)  # a new result clears every mark
    assert window.compare.stale() == ""
    assert "previous run" not in window.palette_view.header.text()
    assert not window.metrics_view.stale_label.isVisibleTo(window.metrics_view)


def test_cancel_without_change_marks_nothing(qtbot, window):
    window.open_array(make_image(), "photo.png")
    run_and_wait(qtbot, window)
    with qtbot.waitSignal(window.run_cancelled, timeout=RUN_TIMEOUT_MS):
        window.start_run()
        window.cancel_run()
    assert window.compare.stale() == ""  # the result shown still matches the parameters


# ------------------------------------------------------------------ 5. PNG larger, auto K


def fake_output(png_bytes, original_bytes, auto=None):
    metrics = Metrics(
        mse=1.0,
        psnr=30.0,
        ssim=0.9,
        delta_e_mean=2.0,
        delta_e_p95=4.0,
        unique_before=100,
        unique_after=16,
        bits_per_pixel=2.0,
        png_bytes=png_bytes,
        original_bytes=original_bytes,
        ratio=None if not original_bytes else original_bytes / png_bytes,
    )
    return SimpleNamespace(metrics=metrics, extra={} if auto is None else {"auto": auto})


def test_png_size_verdict():
    text, larger = png_size_verdict(fake_output(319_012, 185_000))
    assert larger and "319.0 kB" in text and "185.0 kB" in text and "LARGER" in text
    text, larger = png_size_verdict(fake_output(90_000, 185_000))
    assert not larger and "LARGER" not in text and "90,000 bytes" in text
    assert png_size_verdict(fake_output(1000, None)) == ("PNG 1.0 kB (1,000 bytes)", False)


def test_window_warns_when_the_png_is_larger_than_the_original(qtbot, window, tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    path = tmp_path / "tiny.jpg"
    Image.fromarray(noise).save(path, quality=5)  # a small JPEG of busy pixels
    assert window.open_image(path)
    window.params.set_parameters(replace(FAST, n_colors=32, dither="fs"))
    output = run_and_wait(qtbot, window)
    m = output.metrics
    assert m.png_bytes > m.original_bytes  # the premise
    assert window.metrics_view.png_larger()
    assert "LARGER than the original" in window.metrics_view.size_label.text()
    assert "LARGER than the original" in window.progress_label.text()
    assert "larger than the original" in window.metrics_view.warnings.text()


def test_missed_auto_k_target_is_said_clearly(qtbot, window, small_png):
    window.open_image(small_png)
    window.params.set_parameters(replace(FAST, auto="quality", target_psnr=60.0, n_colors=4))
    output = run_and_wait(qtbot, window)
    assert not output.extra["auto"].reached
    status = window.progress_label.text()
    assert status.startswith("Target 60 dB NOT reached") and "K=4" in status
    assert "raise Max colours" in status
    assert "NOT reached" in window.metrics_view.warnings.text()
    reached = SimpleNamespace(reached=True, target=30.0, metric="psnr", value=31.0, k=8)
    assert auto_k_verdict(fake_output(1, 1, reached)) == ""


# ------------------------------------------------------------------ 6. the compare view


@pytest.mark.parametrize(
    ("shape", "expected"), [((300, 900), "vertical"), ((900, 300), "horizontal")]
)
def test_side_by_side_stacks_landscape_images(qtbot, shape, expected):
    view = CompareView()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    view.set_original(np.zeros((*shape, 3), np.uint8))
    assert view.orientation() == expected
    view.set_mode("split")
    assert view.orientation() == "horizontal"
    view.set_mode("side")
    assert view.orientation() == expected


def test_zoom_limits(qtbot):
    view = CompareView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    view.set_original(np.zeros((1200, 1600, 3), np.uint8))
    QtWidgets.QApplication.processEvents()
    view.fit()
    fit = view.pixel_scale()
    for _ in range(30):
        view.zoom(0.5)
    assert view.pixel_scale() >= 0.2 * fit  # never down to 1 %
    for _ in range(30):
        view.zoom(2.0)
    assert view.pixel_scale() <= 400 / 12 + 1  # at least a dozen pixels across


def test_checkerboard_only_under_transparency_and_empty_hint(qtbot):
    view = CompareView()
    qtbot.addWidget(view)
    assert view.empty_hint.isVisibleTo(view)
    assert "Ctrl+O" in view.empty_hint.text()
    rgba = np.full((20, 30, 4), 200, np.uint8)
    rgba[5:10, 5:10, 3] = 0
    view.set_original(rgba)
    assert not view.empty_hint.isVisibleTo(view)
    assert all(c.boundingRect().width() == 30 for c in view.checkers)
    opaque = np.full((20, 30, 4), 200, np.uint8)
    opaque[:, :, 3] = 255
    view.set_original(opaque)
    assert all(c.boundingRect().isEmpty() for c in view.checkers)
    view.set_original(None)
    assert view.empty_hint.isVisibleTo(view)


def test_pixel_readout_is_cleared_by_a_new_image(qtbot, window, small_png):
    window.open_image(small_png)
    window.pixel_label.setText("(row 1, col 1) rgb(1, 2, 3)")
    with qtbot.waitSignal(window.compare.hovered) as blocker:
        window.open_array(make_image(30, 40), "other.png")
    assert blocker.args == [-1, -1]
    assert window.pixel_label.text() == ""


def test_dark_cluster_gets_a_light_veil(qtbot):
    assert veil_is_light(np.array([20, 20, 30])) and not veil_is_light(np.array([220, 200, 90]))
    view = CompareView()
    qtbot.addWidget(view)
    img = np.zeros((10, 10, 3), np.uint8)
    labels = np.zeros((10, 10), np.uint8)
    labels[:, 5:] = 1
    view.set_original(img)
    view.set_result(img, labels, np.array([[10, 10, 10], [240, 240, 240]], np.uint8))
    view.highlight_cluster(0)
    assert view.veil_is_light()
    view.highlight_cluster(1)
    assert not view.veil_is_light()


# ------------------------------------------------------------------ 6. convergence plot


def test_stage_labels_clear_of_the_legend_and_caption_per_stage(qtbot, window):
    many = make_image(300, 400, seed=1)  # 114,125 colours: K-means runs coarse to fine
    window.open_array(many, "many.png")
    window.params.set_parameters(replace(FAST, n_colors=4, n_init=2, max_iter=30))
    output = run_and_wait(qtbot, window)
    plot = window.convergence
    QtWidgets.QApplication.processEvents()
    legend = plot.plot.getPlotItem().legend.sceneBoundingRect()
    assert plot.stage_lines(), "the fit ran coarse to fine"
    labels = [line.label.sceneBoundingRect() for line in plot._stage_lines]
    for i, rect in enumerate(labels):
        assert not rect.intersects(legend)
        assert not any(rect.intersects(other) for other in labels[i + 1 :])  # nor each other
    counts = plot.stage_iterations(output.chosen_restart)
    assert sum(counts) == output.result.n_iter and len(counts) > 1
    assert all(c <= 30 for c in counts)
    assert "the limit applies to each stage" in plot.summary.text()


# ------------------------------------------------------------------ 6. colour-space replay


def test_replay_axes_are_fixed_and_equal(qtbot):
    view = ColorSpaceView()
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 255, (300, 3))
    steps = []
    centers = rng.uniform(0, 255, (3, 3))
    for i in range(6):
        centers = centers * 0.7 + 40 * i
        steps.append(IterationRecord(0, i + 1, 1.0, "inertia", 0.0, centers.copy()))
    view.set_data("rgb", points, rng.integers(0, 3, 300), np.zeros((3, 3), np.uint8), steps)
    QtWidgets.QApplication.processEvents()
    first = view.view_range()
    view.set_step(0)
    QtWidgets.QApplication.processEvents()
    assert view.view_range() == first
    view.set_step(5)
    QtWidgets.QApplication.processEvents()
    assert view.view_range() == first
    assert view.equal_axes()
    (x0, x1), (y0, y1) = first
    for s in steps:  # every replayed centre stays in view
        assert np.all((s.centers[:, 1] >= x0) & (s.centers[:, 1] <= x1))
        assert np.all((s.centers[:, 2] >= y0) & (s.centers[:, 2] <= y1))


# ------------------------------------------------------------------ 6. palette, help, export


def test_copy_gives_feedback(qtbot):
    view = PaletteView()
    qtbot.addWidget(view)
    view.set_palette(np.array([[255, 0, 0], [0, 0, 255]], np.uint8), np.array([0.3, 0.7]))
    with qtbot.waitSignal(view.copied) as blocker:
        view.list.itemDoubleClicked.emit(view.list.item(0))
    assert blocker.args == ["#0000ff"]
    assert QtWidgets.QApplication.clipboard().text() == "#0000ff"
    assert view.header.text() == "✓ Copied #0000ff to the clipboard"
    qtbot.waitUntil(lambda: view.header.text().startswith("2 colours"), timeout=5000)


def test_help_lists_the_shortcuts(qtbot, window):
    dialog = window.show_shortcuts()
    table = dialog.findChild(QtWidgets.QTableWidget, "shortcutsTable")
    rows = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert rows["Export…"] == "Ctrl+E"
    assert "F5" in rows["Run"] and "Ctrl+R" in rows["Run"]
    assert rows["Cancel"] == "Esc"
    assert "Keyboard Shortcuts" in rows
    dialog.close()


def test_export_remembers_kinds_starts_in_the_image_folder(qtbot, window, small_png, tmp_path):
    window.open_image(small_png)
    run_and_wait(qtbot, window)
    dialog = window.make_export_dialog()
    qtbot.addWidget(dialog)
    assert Path(dialog.folder.text()) == small_png.parent.resolve()
    for name, check in dialog.checks.items():
        check.setChecked(name in ("indexed_png", "label_map"))
    out = tmp_path / "exports"
    dialog.folder.setText(str(out))
    assert dialog.export()
    window._on_exported(dialog)
    again = window.make_export_dialog()
    qtbot.addWidget(again)
    assert again.selected_kinds() == ["indexed_png", "label_map"]
    assert Path(again.folder.text()) == small_png.parent.resolve()  # still the image's


def test_export_error_in_words(qtbot, window, small_png, tmp_path):
    window.open_image(small_png)
    run_and_wait(qtbot, window)
    dialog = window.make_export_dialog()
    qtbot.addWidget(dialog)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    dialog.folder.setText(str(blocker / "sub"))
    dialog.report_error = lambda message: None
    assert dialog.export() is None
    assert "is a file, not a folder" in dialog.last_error and "Errno" not in dialog.last_error


def test_method_hint_says_what_each_method_suits(qtbot, window):
    params = window.params
    params.set_parameters(replace(FAST, method="gmm"))
    assert "segmentation" in params.method_hint.text()
    params.set_parameters(replace(FAST, method="kmeans"))
    assert "palettes" in params.method_hint.text()
    assert params.method_hint.isVisibleTo(params)


def test_readme_does_not_ask_to_press_f5_to_start():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "press **F5** to\nquantize it" not in readme and "press **F5** to quantize" not in readme
    assert "runs on opening" in readme
