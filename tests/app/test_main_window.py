"""End-to-end behaviour of the main window: open, run, cancel, errors, settings."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from apphelpers import FAST, RUN_TIMEOUT_MS, make_image, run_and_wait
from PySide6 import QtCore, QtGui, QtWidgets

from app.main_window import MainWindow
from app.model import RunParameters
from app.tasks import map_levels


def test_object_names_for_automation(window):
    for name in (
        "runButton",
        "cancelButton",
        "convergencePlot",
        "paletteView",
        "softMapsView",
        "compareView",
        "colorSpaceView",
    ):
        assert window.findChild(QtWidgets.QWidget, name) is not None, name


def test_sample_run_populates_every_view(qtbot, window):
    assert window.open_sample()
    assert window.image().shape[:2] == (400, 600)
    assert window.findChild(QtWidgets.QPushButton, "runButton").isEnabled()
    output = run_and_wait(qtbot, window)
    result = output.result
    k = len(result.palette)
    assert k == FAST.n_colors
    # palette: one swatch per colour with hex and share, shares sum to ~100 %
    assert window.palette_view.count() == k
    shares = [float(window.palette_view.swatch_text(r).split()[-2]) for r in range(k)]
    assert shares == sorted(shares, reverse=True)
    assert abs(sum(shares) - 100.0) < 0.1
    assert window.palette_view.swatch_text(0).startswith("#")
    # convergence plot: one curve per restart, the kept one highlighted and equal to history
    # (plus the refit that keeps small distinct colours, when the run added one)
    assert window.convergence.curve_count() == FAST.n_init + (1 if result.added else 0)
    chosen = window.convergence.chosen()
    assert chosen == output.chosen_restart
    _, ys = window.convergence.curve_data(chosen)
    np.testing.assert_allclose(ys, result.history)
    # soft maps: labels + uncertainty + one per component
    assert window.soft_maps.tile_count() == 2 + k
    assert window.soft_maps.current() in set(range(k))
    # colour space: sample plotted, replay steps from the kept run
    assert window.color_space.point_count() > 0
    assert window.color_space.step_count() == len(result.history)
    # metrics
    values = window.metrics_view.values()
    assert values["PSNR"].endswith("dB")
    assert float(values["PSNR"].split()[0]) > 15
    # compare view has both images; export is possible now
    assert window.compare.has_result()
    assert window.export_action.isEnabled()
    assert not window.cancel_button.isEnabled()


def test_gmm_run_plots_log_likelihood_and_soft_maps(qtbot, window, small_png):
    window.open_image(small_png)
    window.params.set_parameters(replace(FAST, method="gmm", init="kmeans", n_init=1, n_colors=4))
    output = run_and_wait(qtbot, window)
    result = output.result
    assert result.method == "gmm"
    _, ys = window.convergence.curve_data(output.chosen_restart)
    assert len(ys) == len(result.history)
    assert np.all(np.diff(ys) >= -1e-9)  # log-likelihood never decreases
    maps = output.soft_maps
    assert maps.responsibilities.dtype == np.uint8  # 8-bit levels round(255 r)
    total = maps.responsibilities.sum(axis=0, dtype=np.float64) / 255.0
    # all components shown, sums to 1 (up to half a level of rounding per map)
    np.testing.assert_allclose(total, 1.0, atol=len(maps.components) * 0.5 / 255 + 1e-9)
    step = maps.step
    uncertainty = result.uncertainty_map()[::step, ::step]
    np.testing.assert_allclose(maps.uncertainty / 255.0, uncertainty, atol=0.5 / 255 + 1e-6)
    # the replay shows GMM covariances as ellipses (drawn when the user looks at the view)
    window.color_space_dock.raise_()
    x, y = window.color_space.ellipses.getData()
    assert x is not None and np.isfinite(np.asarray(x, dtype=float)).sum() > 0


def test_cancel_stops_within_half_a_second(qtbot, window):
    window.open_sample()
    window.params.set_parameters(
        replace(FAST, method="gmm", init="random", n_colors=24, n_init=20, max_iter=2000, tol=1e-12)
    )
    with qtbot.waitSignal(window.run_started):
        window.start_run()
    qtbot.waitUntil(lambda: window.controller.record_count > 0, timeout=RUN_TIMEOUT_MS)
    finished = []
    window.run_finished.connect(finished.append)
    start = time.perf_counter()
    with qtbot.waitSignal(window.run_cancelled, timeout=1000):
        window.cancel_run()
    qtbot.waitUntil(lambda: not window.is_running(), timeout=500)
    assert time.perf_counter() - start < 0.5
    assert window.progress_label.text() == "Cancelled"
    assert not window.cancel_button.isEnabled()
    qtbot.wait(50)  # let any late queued signal arrive: it must be dropped
    assert finished == []
    assert window.output() is None


def test_new_run_cancels_old_and_drops_its_results(qtbot, window, small_png):
    window.open_sample()
    window.params.set_parameters(
        replace(FAST, method="gmm", n_colors=16, n_init=10, max_iter=1000, tol=1e-12)
    )
    window.start_run()
    qtbot.waitUntil(lambda: window.controller.record_count > 0, timeout=RUN_TIMEOUT_MS)
    old_worker = window.controller.active_worker
    outputs, started = [], []
    window.run_finished.connect(outputs.append)
    window.run_started.connect(started.append)
    window.params.set_parameters(FAST)
    window.open_image(small_png)  # a new image cancels the old run
    assert old_worker.should_cancel()
    assert started == []  # opening does not start a run (auto-run is off)
    output = run_and_wait(qtbot, window)
    qtbot.waitUntil(lambda: not window.is_running(), timeout=2000)
    assert outputs == [output]
    assert output.result.image.shape[:2] == (48, 64)


def test_bad_file_shows_message_and_keeps_image(qtbot, window, tmp_path, small_png):
    window.open_image(small_png)
    before = window.image()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png at all")
    with qtbot.waitSignal(window.error_shown) as blocker:
        assert not window.open_image(bad)
    title, message = blocker.args
    assert "broken.png" in message
    assert window.image() is before
    boxes = [b for b in window.findChildren(QtWidgets.QMessageBox) if b.isVisible()]
    assert boxes and "broken.png" in boxes[0].text()
    # missing file: also named
    with qtbot.waitSignal(window.error_shown) as blocker:
        assert not window.open_image(tmp_path / "nope.jpg")
    assert "nope.jpg" in blocker.args[1]
    assert window.image() is before


def test_worker_exception_shows_dialog_and_app_keeps_working(qtbot, window, small_png, monkeypatch):
    import quantize.pipeline

    def explode(*args, **kwargs):
        raise RuntimeError("engine exploded on purpose")

    window.open_image(small_png)
    monkeypatch.setattr(quantize.pipeline, "iter_quantize_image", explode)
    with qtbot.waitSignal(window.run_failed, timeout=RUN_TIMEOUT_MS) as blocker:
        window.start_run()
    assert "engine exploded on purpose" in blocker.args[0]
    assert "engine exploded" in window.last_error
    qtbot.waitUntil(lambda: not window.is_running(), timeout=2000)
    monkeypatch.undo()
    output = run_and_wait(qtbot, window)
    assert len(output.result.palette) == FAST.n_colors


def test_open_array_paste_and_drop(qtbot, window, small_png):
    image = QtGui.QImage(str(small_png))
    QtWidgets.QApplication.clipboard().setImage(image)
    assert window.paste_from_clipboard()
    pasted = window.image()
    assert pasted.shape == (48, 64, 3)
    np.testing.assert_array_equal(pasted, make_image())
    # drop a file
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(small_png))])
    pos = QtCore.QPointF(100, 100)
    drop = QtGui.QDropEvent(
        pos,
        QtCore.Qt.DropAction.CopyAction,
        mime,
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.image_changed, timeout=10_000):
        window.dropEvent(drop)
    assert window.windowTitle().startswith("small.png")
    assert window.settings.recent_files()[0].endswith("small.png")


def test_settings_remember_parameters_recent_files_and_layout(qtbot, qsettings, small_png):
    first = MainWindow(qsettings)
    qtbot.addWidget(first)
    first.set_auto_run(False)
    custom = RunParameters(method="gmm", n_colors=12, color_space="lab", init="kmeans", seed=7)
    first.params.set_parameters(custom)
    first.open_image(small_png)
    first.set_compare_mode("split")
    first.close()
    second = MainWindow(qsettings)
    qtbot.addWidget(second)
    assert second.params.parameters() == custom
    assert second.settings.recent_files() == [str(small_png.resolve())]
    assert second.compare.mode() == "split"
    assert not second.auto_run_check.isChecked()
    assert second.settings.last_folder("open") == str(small_png.parent.resolve())
    second.close()


def test_auto_rerun_is_debounced(qtbot, window, small_png):
    window.open_image(small_png)
    window.set_auto_run(True)
    started = []
    window.run_started.connect(started.append)
    for k in (5, 6, 7):
        window.params.n_colors.setValue(k)
    assert started == []  # debounced: nothing yet
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        pass
    assert len(started) == 1
    assert len(blocker.args[0].result.palette) == 7


def test_shortcuts_and_menus(window):
    shortcuts = {
        a.text().replace("&", ""): {s.toString() for s in a.shortcuts()} for a in window.actions()
    }
    assert "Ctrl+O" in shortcuts["Open…"]
    assert "Ctrl+E" in shortcuts["Export…"]
    assert {"Ctrl+R", "F5"} <= shortcuts["Run"]
    assert "Esc" in shortcuts["Cancel"]
    assert "Ctrl+0" in shortcuts["Fit to Window"]
    assert "Ctrl+1" in shortcuts["Actual Size (100 %)"]
    assert shortcuts["Zoom In"] and shortcuts["Zoom Out"] and shortcuts["Quit"]
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["File", "Run", "View", "Help"]


def test_run_without_image_does_nothing(window):
    assert not window.start_run()
    assert not window.is_running()


@pytest.mark.parametrize("method", ["optimal1d"])
def test_exact_1d_only_for_grey_images(qtbot, window, tmp_path, small_png, method):
    from PIL import Image

    window.open_image(small_png)
    combo = window.params.method
    item = combo.model().item(combo.findData(method))
    assert not item.isEnabled()
    grey = tmp_path / "grey.png"
    Image.fromarray(make_image()[..., 0]).save(grey)
    window.open_image(grey)
    assert item.isEnabled()
    window.params.set_parameters(RunParameters(method=method, n_colors=5))
    output = run_and_wait(qtbot, window)
    assert output.result.method == method
    assert window.color_space.point_count() > 0


def test_closing_during_a_run_leaves_no_thread(qtbot, qsettings):
    win = MainWindow(qsettings)
    qtbot.addWidget(win)
    win.set_auto_run(False)
    win.open_sample()
    win.params.set_parameters(
        replace(FAST, method="gmm", n_colors=24, n_init=20, max_iter=2000, tol=1e-12)
    )
    win.start_run()
    qtbot.waitUntil(lambda: win.controller.record_count > 0, timeout=RUN_TIMEOUT_MS)
    threads = win.controller.threads()
    start = time.perf_counter()
    win.close()
    assert time.perf_counter() - start < 1.0
    assert all(t.isFinished() for t in threads)
    assert not win.is_running()


def test_recent_files_menu_opens_file(qtbot, window, small_png, tmp_path):
    window.open_image(small_png)
    other = tmp_path / "other.png"
    other.write_bytes(small_png.read_bytes())
    window.open_image(other)
    window._fill_recent_menu()
    names = [a.text() for a in window.recent_menu.actions() if a.text()]
    assert names[:2] == ["&1 other.png", "&2 small.png"]
    with qtbot.waitSignal(window.image_changed, timeout=10_000) as blocker:
        window.recent_menu.actions()[1].trigger()
    assert blocker.args == ["small.png"]
    # a recent file that vanished is reported and dropped from the list
    other.unlink()
    window._fill_recent_menu()
    with qtbot.waitSignal(window.error_shown, timeout=10_000):
        window.recent_menu.actions()[1].trigger()
    assert str(other.resolve()) not in window.settings.recent_files()


def test_sixteen_bit_and_transparent_images(qtbot, window, tmp_path):
    import tifffile
    from PIL import Image

    rgb8 = make_image()
    rgb16 = rgb8.astype(np.uint16) * 257
    path16 = tmp_path / "deep.tif"
    tifffile.imwrite(path16, rgb16)
    assert window.open_image(path16)
    assert window.image().dtype == np.uint16
    np.testing.assert_array_equal(window.compare.original_item.image()._array, rgb8)
    output = run_and_wait(qtbot, window)
    assert output.quantized.shape == (48, 64, 3)

    rgba = np.dstack([rgb8, np.full(rgb8.shape[:2], 255, np.uint8)])
    rgba[:, :20, 3] = 0  # a transparent band
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert window.open_image(path)
    output = run_and_wait(qtbot, window)
    assert output.quantized.shape == (48, 64, 4)
    assert np.all(output.quantized[:, :20, 3] == 0) and np.all(output.quantized[:, 20:, 3] == 255)
    assert output.result.opaque is not None and not output.result.opaque[:, :20].any()
    # soft maps equal the engine's maps (transparent pixels in no cluster)
    step = output.soft_maps.step
    for row, k in enumerate(output.soft_maps.components):
        expected = map_levels(output.result.responsibility_map(int(k))[::step, ::step])
        np.testing.assert_array_equal(output.soft_maps.responsibilities[row], expected)


def test_changing_only_dithering_rerenders_without_refitting(qtbot, window, small_png):
    window.open_image(small_png)
    first = run_and_wait(qtbot, window)
    curves = window.convergence.curve_count()
    window.params.set_parameters(replace(FAST, dither="fs", dither_strength=1.0))
    second = run_and_wait(qtbot, window)
    assert second.result is first.result  # the fit was reused ...
    assert window.controller.record_count == 0  # ... so no iteration ran
    assert window.convergence.curve_count() == curves  # and the curves are kept
    assert not np.array_equal(second.quantized, first.quantized)  # dithered pixels differ
    np.testing.assert_array_equal(
        second.quantized, first.result.to_image(dither="fs", strength=1.0)
    )
    # a model parameter change refits
    window.params.set_parameters(replace(FAST, dither="fs", seed=3))
    third = run_and_wait(qtbot, window)
    assert third.result is not first.result and window.controller.record_count > 0


def test_late_result_of_a_stale_generation_is_ignored(qtbot, window, small_png):
    window.open_image(small_png)
    generations = []
    window.run_started.connect(generations.append)
    output = run_and_wait(qtbot, window)
    window.open_image(small_png)  # new image: the old run's generation is stale
    finished = []
    window.run_finished.connect(finished.append)
    window.controller._on_succeeded(generations[0], output)  # as if its signal arrived late
    window.controller._on_item(generations[0], output.result.records[0])
    QtWidgets.QApplication.processEvents()
    assert finished == []
    assert window.output() is None
    assert not window.compare.has_result()
    assert window.convergence.curve_count() == 0


def test_open_on_a_worker_thread(qtbot, window, small_png, tmp_path):
    with qtbot.waitSignal(window.image_changed, timeout=10_000) as blocker:
        assert window.open_image(small_png, wait=False)
    assert blocker.args == ["small.png"]
    assert window.image().shape == (48, 64, 3)
    assert window.settings.recent_files()[0].endswith("small.png")
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    before = window.image()
    with qtbot.waitSignal(window.error_shown, timeout=10_000) as blocker:
        window.open_image(bad, wait=False)
    assert "empty.png" in blocker.args[1]
    assert window.image() is before
    # a newer open supersedes an older one that is still loading
    other = tmp_path / "other.png"
    other.write_bytes(small_png.read_bytes())
    names = []
    window.image_changed.connect(names.append)
    window.open_image(small_png, wait=False)
    window.open_image(other, wait=False)
    qtbot.waitUntil(lambda: not window.is_loading(), timeout=10_000)
    QtWidgets.QApplication.processEvents()
    assert names == ["other.png"]


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
@pytest.mark.parametrize(
    "shape, colors",
    [((1, 1), 1), ((16, 16), 1), ((12, 20), 2)],
    ids=["1x1", "one-colour", "two-colours"],
)
def test_degenerate_images_finish_cleanly(qtbot, window, method, shape, colors):
    rng = np.random.default_rng(1)
    palette = np.array([[200, 30, 40], [20, 90, 220]], dtype=np.uint8)[:colors]
    image = palette[rng.integers(0, colors, shape)]
    window.open_array(image, "degenerate")
    window.params.set_parameters(replace(FAST, method=method, n_colors=8, n_init=1))
    output = run_and_wait(qtbot, window)
    result = output.result
    assert 1 <= len(result.palette) <= 8
    assert window.palette_view.count() == len(result.palette)
    used = {tuple(int(v) for v in result.palette[k]) for k in np.unique(result.labels)}
    assert used == {tuple(int(v) for v in c) for c in palette}
    assert window.soft_maps.tile_count() == 2 + len(result.palette)
    # the engine's warning (fewer distinct colours than K) is shown, not raised
    assert "K reduced" in " ".join(result.warnings)
    assert "K reduced" in window.metrics_view.warnings.text()
    assert "warning" in window.progress_label.text()


def test_max_iter_one_shows_the_convergence_warning(qtbot, window, small_png):
    window.open_image(small_png)
    window.params.set_parameters(replace(FAST, max_iter=1, n_init=1, tol=1e-9))
    output = run_and_wait(qtbot, window)
    assert output.result.warnings  # recorded by the engine
    assert window.metrics_view.values()["Converged"] == "no"
    assert "max iterations" in window.convergence.summary.text()
    assert window.metrics_view.warnings.text().startswith("⚠")


def test_cancel_during_metrics_stops_quickly(qtbot, window):
    """Cancel while the metrics of a large image are computed (after the fit)."""
    from PIL import Image

    from quantize.resources import sample_image_path

    with Image.open(sample_image_path()) as im:
        big = np.asarray(im.convert("RGB").resize((2400, 1600), Image.Resampling.BICUBIC))
    window.open_array(big, "big.png")
    window.params.set_parameters(replace(FAST, n_colors=4, n_init=1, max_iter=20))
    with qtbot.waitSignal(
        window.run_stage, timeout=60_000, check_params_cb=lambda text: "metrics" in text
    ):
        window.start_run()
    start = time.perf_counter()
    window.cancel_run()
    qtbot.waitUntil(lambda: not window.is_running(), timeout=1000)
    assert time.perf_counter() - start < 0.5


def test_keyboard_shortcuts_work(qtbot, window, small_png):
    window.open_image(small_png)
    window.activateWindow()
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is window, timeout=2000)
    for action in window.actions():
        names = [s.toString() for s in action.shortcuts()]
        assert len(names) == len(set(names)), action.text()
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(window, QtCore.Qt.Key.Key_R, QtCore.Qt.KeyboardModifier.ControlModifier)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(window, QtCore.Qt.Key.Key_F5)
    window.compare.fit()
    before = window.compare.pixel_scale()
    qtbot.keyClick(window, QtCore.Qt.Key.Key_1, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert abs(window.compare.pixel_scale() - 1.0) < 0.02 and before != 1.0


def test_result_is_shown_before_its_metrics(qtbot, window, small_png):
    """The views show the palette image and its PNG size while the metrics are computed."""
    import threading

    from app.model import Shown
    from app.tasks import run_pipeline

    gate = threading.Event()

    def gated(job, should_cancel):  # the default pipeline, held after the result is shown
        gen = run_pipeline(job, should_cancel)
        try:
            while True:
                item = next(gen)
                yield item
                if isinstance(item, Shown):
                    assert gate.wait(RUN_TIMEOUT_MS / 1000)
        except StopIteration as stop:
            return stop.value

    window.open_image(small_png)
    window.controller._pipeline = gated
    try:
        with qtbot.waitSignal(window.result_shown, timeout=RUN_TIMEOUT_MS) as blocker:
            assert window.start_run()
        shown = blocker.args[0]
        assert shown.metrics is None and window.is_running()
        assert window.compare.has_result()
        assert window.palette_view.swatch_text(0).startswith("#")
        assert window.metrics_view.values()["Metrics"] == "computing…"
        assert window.metrics_view.size_label.text().startswith("PNG ")
        assert window.export_action.isEnabled()
        with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as done:
            gate.set()
        output = done.args[0]
    finally:
        gate.set()
    assert output.result is shown.result and output.metrics is not None
    values = window.metrics_view.values()
    assert "Metrics" not in values and values["PSNR"].endswith("dB")
    assert not window.is_running()


def test_hidden_views_draw_a_result_when_shown(qtbot, window, small_png):
    """The soft maps and the colour space sit in tabs behind the convergence plot: a run
    gives them its result, and they draw it when their tab comes to the front."""
    from app.views.softmaps import MapTile

    window.open_image(small_png)
    window.convergence_dock.raise_()
    output = run_and_wait(qtbot, window)
    k = len(output.result.palette)
    soft, space = window.soft_maps, window.color_space
    assert soft.visibleRegion().isEmpty() and space.visibleRegion().isEmpty()
    assert soft.findChildren(MapTile) == []  # nothing drawn while hidden
    assert len(space.points.data) == 0
    wanted = int(output.soft_maps.components[-1])
    soft.show_map(wanted)  # a cluster chosen elsewhere meanwhile: kept for later

    window.soft_maps_dock.raise_()
    qtbot.waitUntil(lambda: len(soft.findChildren(MapTile)) == 2 + k, timeout=2000)
    assert soft.current() == wanted
    window.color_space_dock.raise_()
    qtbot.waitUntil(lambda: len(space.points.data) > 0, timeout=2000)
    assert len(space.points.data) == space.point_count()
    labels = space.shown_point_labels()
    assert labels is not None and labels.max() < k

    # a new image clears what a hidden view still holds: nothing stale is drawn later
    window.convergence_dock.raise_()
    run_and_wait(qtbot, window)
    window.open_array(make_image(40, 50, seed=9), "other.png")
    window.soft_maps_dock.raise_()
    qtbot.waitUntil(lambda: not soft.visibleRegion().isEmpty(), timeout=2000)
    assert soft.tile_count() == 0
