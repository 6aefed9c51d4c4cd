"""The VQ Studio main window: layout, menus and the wiring of panels, views and the controller.

The window builds the widgets and connects them: the parameter panel and the actions drive
the :class:`~app.controller.RunController` (which owns the image, the runs and the loads), and
its signals update the views and the status bar.  Nothing about running lives here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

import app._compat  # noqa: F401  (PySide6 6.12 emit refcount bug, see module)
from app import window_support as ws
from app.controller import RunController
from app.export_dialog import ExportDialog
from app.imaging import qimage_to_array
from app.model import (
    OpenedImage,
    RunJob,
    RunOutput,
    convergence_setup,
    describe_image,
    describe_output,
    describe_pixel,
    fit_space,
)
from app.panels import ComparePanel, RunPanel
from app.panels.editing import install_editing
from app.panels.palette_edit import PaletteEditor
from app.panels.segmentation import SegmentationPanel
from app.settings import AppSettings
from app.tasks import open_file, prepare, warm_up
from app.views.colorspace_view import ColorSpaceView
from app.views.convergence import ConvergencePlot
from app.views.metrics import MetricsView
from app.views.softmaps import SoftMapsView

__all__ = ["MainWindow", "IMAGE_FILTER", "qimage_to_array"]

IMAGE_FILTER = (
    "Images (*.png *.jpg *.jpeg *.tif *.tiff *.webp *.bmp *.gif *.ppm *.pgm *.pnm);;All files (*)"
)


class MainWindow(QtWidgets.QMainWindow):
    """VQ Studio's main window.

    Automation API: :meth:`open_image`, :meth:`open_array`, :meth:`start_run`,
    :meth:`cancel_run`, :meth:`is_running`, the ``run_finished`` signal (with the
    :class:`~app.model.RunOutput`, metrics included), ``result_shown`` (the same before the
    metrics are computed: the views show the result by then), ``run_failed`` (message) and
    ``run_cancelled``; the run control itself is :attr:`controller`.

    Parameters
    ----------
    settings : AppSettings or QSettings, optional
        Where to remember layout, folders, recent files and parameters.
    parent : QWidget, optional
        Parent widget.
    """

    run_finished = QtCore.Signal(object)
    result_shown = QtCore.Signal(object)
    run_failed = QtCore.Signal(str)
    run_cancelled = QtCore.Signal()
    run_started = QtCore.Signal(int)
    run_stage = QtCore.Signal(str)
    image_changed = QtCore.Signal(str)
    error_shown = QtCore.Signal(str, str)

    def __init__(
        self,
        settings: AppSettings | QtCore.QSettings | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if not isinstance(settings, AppSettings):
            settings = AppSettings(settings)
        self.settings = settings
        self.setObjectName("mainWindow")
        self.setWindowTitle("VQ Studio")
        self.setAcceptDrops(True)
        self.resize(1400, 900)

        self._pending_views: tuple[int, RunOutput, list[Any]] | None = None
        self._shown: tuple[int, Any] | None = None  # (generation, result) shown before metrics
        self.last_error = ""

        self._build_views()
        self._build_actions()
        self._build_menus()
        self._build_status()
        self.controller = RunController(self.params.parameters, self)
        self._connect_controller()
        self.explorer = ws.install_explorer(self)  # the "Explore K" dock

        self.params.set_parameters(self.settings.parameters())
        install_editing(self)  # palette edits, importance brush, eyedropper
        self.params.changed.connect(self._on_params_changed)
        self.auto_run_check.setChecked(self.settings.flag("autoRun", True))
        self._restore_layout()
        guard = ws.ShortcutGuard(self, [self.export_action, self.run_action])  # Ctrl+E in a field
        guard.attach(QtWidgets.QApplication.instance())  # type: ignore[arg-type]
        self._update_actions()
        # The engine both emits its warnings and records them on the result; the window
        # shows the recorded ones (status bar, metrics panel), so the emitted copies, which
        # would come from the worker thread, are not printed (or raised) as well.
        from quantize.protocol import QuantizeWarning

        warnings.filterwarnings("ignore", category=QuantizeWarning)
        warm_up()  # import the engine's dependencies now, not on the worker during a run

    # ================================================================== construction
    def _build_views(self) -> None:
        central = ComparePanel()
        self.compare = central.compare
        self.mode_combo = central.mode_combo
        self.flash_button = central.flash_button
        self.zoom_label = central.zoom_label
        self.setCentralWidget(central)
        self.compare.left.sigRangeChanged.connect(self._update_zoom_label)
        self.compare.hovered.connect(self._show_pixel)

        # parameters + run controls
        self.run_panel = RunPanel()
        self.params = self.run_panel.params
        self.run_button = self.run_panel.run_button
        self.run_button.clicked.connect(self.start_run)
        self.cancel_button = self.run_panel.cancel_button
        self.cancel_button.clicked.connect(self.cancel_run)
        self.auto_run_check = self.run_panel.auto_run_check
        self.auto_run_check.toggled.connect(self._on_auto_run_toggled)
        self.params_dock = self._dock(
            "Parameters",
            "parametersDock",
            self.run_panel,
            QtCore.Qt.DockWidgetArea.LeftDockWidgetArea,
        )

        self.palette_view = PaletteEditor()
        self.palette_view.cluster_clicked.connect(self.compare.highlight_cluster)
        self.palette_view.cluster_clicked.connect(self._show_cluster_map)
        self.palette_dock = self._dock(
            "Palette",
            "paletteDock",
            self.palette_view,
            QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
        )
        self.metrics_view = MetricsView()
        self.metrics_dock = self._dock(
            "Metrics",
            "metricsDock",
            self.metrics_view,
            QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
        )

        self.convergence = ConvergencePlot()
        self.convergence_dock = self._dock(
            "Convergence",
            "convergenceDock",
            self.convergence,
            QtCore.Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        self.soft_maps = SoftMapsView()
        self.soft_maps_dock = self._dock(
            "Soft maps",
            "softMapsDock",
            self.soft_maps,
            QtCore.Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        self.color_space = ColorSpaceView()
        self.color_space_dock = self._dock(
            "Colour space",
            "colorSpaceDock",
            self.color_space,
            QtCore.Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        self.segmentation = SegmentationPanel()  # smoothing, overlay, statistics, models
        self.segmentation_dock = self._dock(
            "Segmentation",
            "segmentationDock",
            self.segmentation,
            QtCore.Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        self.tabifyDockWidget(self.convergence_dock, self.soft_maps_dock)
        self.tabifyDockWidget(self.soft_maps_dock, self.color_space_dock)
        self.tabifyDockWidget(self.color_space_dock, self.segmentation_dock)
        self.segmentation.smoothed.connect(self._show_segmentation)
        self.segmentation_dock.visibilityChanged.connect(self._on_segmentation_visible)
        # a view in a tab behind another draws the last result when its tab comes to the front
        for dock, view in (
            (self.soft_maps_dock, self.soft_maps),
            (self.color_space_dock, self.color_space),
        ):
            dock.visibilityChanged.connect(lambda shown, view=view: shown and view.draw_pending())
        self.segmentation.failed.connect(lambda m, d: self.show_error("Segmentation", m, d))
        self.segmentation.class_selected.connect(self.compare.highlight_cluster)
        self.segmentation.class_selected.connect(self._show_cluster_map)
        self.convergence_dock.raise_()
        # side panels run the full height; the bottom views sit under the image only
        self.setCorner(
            QtCore.Qt.Corner.BottomLeftCorner, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.setCorner(
            QtCore.Qt.Corner.BottomRightCorner, QtCore.Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.resizeDocks([self.convergence_dock], [300], QtCore.Qt.Orientation.Vertical)
        self.resizeDocks([self.palette_dock], [340], QtCore.Qt.Orientation.Horizontal)

    def _dock(
        self, title: str, name: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea
    ) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(
        self,
        text: str,
        slot: Any,
        shortcuts: list[QtGui.QKeySequence | QtGui.QKeySequence.StandardKey | str] | None = None,
        tip: str = "",
    ) -> QtGui.QAction:
        action = QtGui.QAction(text, self)
        if shortcuts:
            # standard keys differ per platform and may equal the explicit ones: no
            # duplicates, which Qt would report as an ambiguous shortcut
            sequences: dict[str, QtGui.QKeySequence] = {}
            for shortcut in shortcuts:
                sequence = QtGui.QKeySequence(shortcut)
                if not sequence.isEmpty():
                    sequences.setdefault(sequence.toString(), sequence)
            action.setShortcuts(list(sequences.values()))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        keys = QtGui.QKeySequence.StandardKey
        self.open_action = self._action("&Open…", self.open_dialog, [keys.Open], "Open an image")
        self.sample_action = self._action("Open &Sample Photo", self.open_sample)
        self.paste_action = self._action(
            "&Paste Image",
            self.paste_from_clipboard,
            [keys.Paste],
            "Open the image on the clipboard",
        )
        self.export_action = self._action(
            "&Export…", self.export_dialog, ["Ctrl+E"], "Export the result"
        )
        self.batch_action = self._action(
            "&Batch…", self.open_batch_window, ["Ctrl+B"], "Quantize a folder of images"
        )
        self.quit_action = self._action("&Quit", self.close, [keys.Quit, "Ctrl+Q"])
        self.run_action = self._action("&Run", self.start_run, ["Ctrl+R", "F5"], "Quantize now")
        self.cancel_action = self._action(
            "&Cancel", self.cancel_run, ["Esc"], "Stop the running fit"
        )
        self.auto_run_action = QtGui.QAction("Re-run &Automatically", self, checkable=True)
        self.auto_run_action.toggled.connect(self.auto_run_check.setChecked)
        self.zoom_in_action = self._action(
            "Zoom &In", lambda: self.compare.zoom(1.25), [keys.ZoomIn, "Ctrl+="]
        )
        self.zoom_out_action = self._action(
            "Zoom &Out", lambda: self.compare.zoom(0.8), [keys.ZoomOut]
        )
        self.fit_action = self._action("&Fit to Window", self.compare.fit, ["Ctrl+0"])
        self.actual_action = self._action(
            "&Actual Size (100 %)", self.compare.actual_size, ["Ctrl+1"]
        )
        self.side_action = QtGui.QAction("&Side by Side", self, checkable=True, checked=True)
        self.split_action = QtGui.QAction("S&plit Slider", self, checkable=True)
        group = QtGui.QActionGroup(self)
        for action, mode in ((self.side_action, "side"), (self.split_action, "split")):
            group.addAction(action)
            action.triggered.connect(lambda _=False, m=mode: self.set_compare_mode(m))
        self.compare.mode_changed.connect(self._on_mode_changed)
        self.about_action = self._action("&About VQ Studio", lambda: ws.show_about(self))
        self.shortcuts_action = self._action("&Keyboard Shortcuts", self.show_shortcuts, ["F1"])

    def open_batch_window(self) -> None:
        """Show the Batch window (one per main window, kept between uses)."""
        from app.batch_window import BatchWindow

        if getattr(self, "batch_window", None) is None:
            self.batch_window = BatchWindow(self)
        self.batch_window.show()
        self.batch_window.raise_()
        self.batch_window.activateWindow()

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file_menu.addAction(self.sample_action)
        file_menu.addAction(self.paste_action)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addAction(self.batch_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = bar.addMenu("&Run")
        run_menu.addAction(self.run_action)
        run_menu.addAction(self.cancel_action)
        run_menu.addAction(self.auto_run_action)
        view_menu = bar.addMenu("&View")
        for action in (
            self.zoom_in_action,
            self.zoom_out_action,
            self.fit_action,
            self.actual_action,
        ):
            view_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.side_action)
        view_menu.addAction(self.split_action)
        view_menu.addSeparator()
        for dock in (
            self.params_dock,
            self.palette_dock,
            self.metrics_dock,
            self.convergence_dock,
            self.soft_maps_dock,
            self.color_space_dock,
        ):
            view_menu.addAction(dock.toggleViewAction())
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)

    def _build_status(self) -> None:
        status = self.statusBar()
        self.image_label = QtWidgets.QLabel("No image")
        self.progress = QtWidgets.QProgressBar(objectName="runProgress")
        self.progress.setMaximumWidth(160)
        self.progress.setRange(0, 100)  # determinate: a busy animation repaints constantly
        self.progress.setVisible(False)
        self.progress_label = QtWidgets.QLabel("")
        self.pixel_label = QtWidgets.QLabel("")
        self.pixel_label.setObjectName("pixelLabel")
        status.addWidget(self.progress_label, 1)
        status.addPermanentWidget(self.pixel_label)
        status.addPermanentWidget(self.image_label)
        status.addPermanentWidget(self.progress)

    def _connect_controller(self) -> None:
        c = self.controller
        c.image_set.connect(self._on_image_set)
        c.open_failed.connect(self._on_open_failed)
        c.starting.connect(self._on_run_starting)
        c.started.connect(self.run_started)
        c.record.connect(self.convergence.add_record)
        c.stage.connect(self.run_stage)
        c.progress.connect(self._show_progress)
        c.shown.connect(self._on_run_shown)
        c.finished.connect(self._on_run_finished)
        c.failed.connect(self._on_run_failed)
        c.cancelled.connect(self._on_run_cancelled)
        c.state_changed.connect(self._update_actions)

    # ================================================================== loading
    def open_dialog(self) -> None:
        """Ask for an image file and open it."""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open image", self.settings.last_folder("open"), IMAGE_FILTER
        )
        if path:
            self.open_image(path, wait=False)

    def open_sample(self) -> bool:
        """Open the bundled sample photo.

        Returns
        -------
        ok : bool
            Whether it opened.
        """
        from quantize.resources import sample_image_path

        return self.open_image(sample_image_path(), remember=False)

    def open_image(self, path: str | Path, *, remember: bool = True, wait: bool = True) -> bool:
        """Open an image file; on failure show a message and keep the current image.

        Parameters
        ----------
        path : str or Path
            Image file.
        remember : bool, optional
            Add it to the recent files and remember its folder.
        wait : bool, optional
            Decode on the GUI thread and return when done (the default, for scripting).
            With ``False`` the file is decoded on a worker thread (what the menus, drag and
            drop and the command line use) and ``image_changed`` or ``error_shown`` follows.

        Returns
        -------
        ok : bool
            Whether the image was opened (``wait=False``: whether loading started).
        """
        from quantize.io.load import LoadError

        path = Path(path)
        if not wait:
            self.controller.load(path, remember)
            self.progress_label.setText(f"Opening {path.name}…")
            return True
        self.controller.cancel_loads()
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            opened = open_file(path)
        except LoadError as exc:
            self._open_failed(path, str(exc))
            return False
        except Exception as exc:  # an unexpected decoder failure must not kill the app
            self._open_failed(path, f"{path.name}: {type(exc).__name__}: {exc}")
            return False
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self.controller.set_image(opened, remember)
        return True

    def is_loading(self) -> bool:
        """Return whether a file is being decoded on a worker thread.

        Returns
        -------
        loading : bool
            ``True`` while a loader thread runs.
        """
        return self.controller.is_loading()

    def open_array(self, pixels: np.ndarray, name: str = "pasted image") -> bool:
        """Open an in-memory image (e.g. from the clipboard).

        Parameters
        ----------
        pixels : ndarray of shape (M, N), (M, N, 3) or (M, N, 4)
            uint8/uint16/float pixels as accepted by :func:`quantize.io.load.from_array`.
        name : str, optional
            Name shown in the title bar.

        Returns
        -------
        ok : bool
            Whether the image was opened.
        """
        from quantize.io.load import LoadError, from_array, require_visible_pixels

        try:
            loaded = from_array(pixels, name=name)
            require_visible_pixels(loaded, name)
        except LoadError as exc:
            self.show_error("Cannot open image", str(exc))
            return False
        self.controller.set_image(prepare(loaded, name), False)
        return True

    def paste_from_clipboard(self) -> bool:
        """Open the image (or image file) on the clipboard.

        Returns
        -------
        ok : bool
            Whether something was opened.
        """
        mime = QtWidgets.QApplication.clipboard().mimeData()
        if mime is not None and mime.hasUrls():
            files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if files:
                return self.open_image(files[0])
        if mime is not None and mime.hasImage():
            image = QtGui.QImage(mime.imageData())
            if not image.isNull():
                return self.open_array(qimage_to_array(image), "pasted image")
        self.show_error("Nothing to paste", "The clipboard holds no image and no image file.")
        return False

    def image(self) -> np.ndarray | None:
        """Return the current image pixels.

        Returns
        -------
        pixels : ndarray of shape (M, N, 3|4) or None
            The loaded image.
        """
        return self.controller.image()

    def _open_failed(self, path: Path, message: str) -> None:
        self.settings.remove_recent_file(path)
        self.show_error("Cannot open image", message)

    def _on_open_failed(self, path: str, message: str, _remember: Any) -> None:
        self.progress_label.setText("")
        self._open_failed(Path(path), message)

    def _on_image_set(self, opened: OpenedImage, remember: Any) -> None:
        loaded, name = opened.loaded, opened.name
        if remember and loaded.path is not None:
            self.settings.add_recent_file(loaded.path)
            self.settings.set_last_folder(Path(loaded.path).resolve().parent, "open")
        self._pending_views = None
        self.compare.set_original(opened.display)
        for view in (self.convergence, self.soft_maps, self.color_space, self.metrics_view):
            view.clear()
        self.palette_view.set_result(None)
        self.params.set_grey_available(opened.grey)
        facts, notes = describe_image(loaded)
        self.image_label.setText(facts)
        self.setWindowTitle(f"{name} — VQ Studio")
        self.progress_label.setText(notes or f"Opened {name}")
        self._update_actions()
        self.image_changed.emit(name)  # the controller then starts a run if auto-run is on

    # ================================================================== running
    def is_running(self) -> bool:
        """Return whether any run thread is still alive (including cancelled ones).

        Returns
        -------
        running : bool
            ``True`` while a worker thread runs.
        """
        return self.controller.is_running()

    def output(self) -> RunOutput | None:
        """Return the last finished run's output.

        Returns
        -------
        output : RunOutput or None
            Latest result and its display data.
        """
        return self.controller.output()

    def start_run(self) -> bool:
        """Start quantizing the current image (cancelling any running fit).

        Returns
        -------
        started : bool
            ``False`` if there is no image.
        """
        if self.controller.start():
            return True
        self.progress_label.setText("Open an image first")
        return False

    def cancel_run(self) -> None:
        """Cancel the running fit; its late results are ignored."""
        self.controller.cancel()

    def _on_run_starting(self, job: RunJob) -> None:
        self._pending_views = None
        self._shown = None
        if job.previous is None:  # a re-render keeps the convergence curves of the fit it reuses
            # before the thread starts: making the plot's curves is the costliest GUI work
            self.convergence.clear(*convergence_setup(job.params))
        self.progress.setValue(0)
        self.progress.setVisible(True)

    def _show_progress(self, percent: int, text: str) -> None:
        self.progress.setValue(percent)
        self.progress_label.setText(text)

    def _on_run_cancelled(self) -> None:
        self.progress_label.setText("Cancelled")
        ws.mark_cancelled(self)  # the caption, and an earlier result that no longer fits
        self.run_cancelled.emit()

    def _on_run_failed(self, message: str, details: str) -> None:
        self.progress_label.setText("Run failed")
        self.show_error("Quantization failed", message, details)
        self.run_failed.emit(message)

    def _result_steps(self) -> list[Callable[[RunOutput], None]]:
        return [
            self._show_compare,
            self._show_palette,
            self._show_soft_maps,
            self._show_color_space,
            self._show_metrics,
            lambda out: self.segmentation.set_result(out.result),
        ]

    def _on_run_shown(self, output: RunOutput) -> None:
        """Show a run's result while its metrics are still being computed."""
        self._shown = (self.controller.generation, output.result)
        self._queue_views(output, [*self._result_steps(), self._result_shown])

    def _on_run_finished(self, output: RunOutput) -> None:
        self.progress.setValue(100)
        steps: list[Callable[[RunOutput], None]]
        if self._shown == (self.controller.generation, output.result):
            steps = [self._show_metrics, self._finish_run]  # the rest is shown already
        else:
            steps = [*self._result_steps(), self._finish_run]
        self._shown = None
        self._queue_views(output, steps)

    def _queue_views(self, output: RunOutput, steps: list[Callable[[RunOutput], None]]) -> None:
        """Update the views one step per event-loop turn, so no single slice blocks for long."""
        generation = self.controller.generation
        pending = self._pending_views
        if pending is not None and pending[0] == generation:  # after the steps still queued
            steps = [*pending[2], *(lambda _out, step=step: step(output) for step in steps)]
            self._pending_views = (generation, pending[1], steps)
            return
        self._pending_views = (generation, output, steps)
        # 1 ms, not 0: a 0 ms single shot is a posted event, and Qt delivered two steps back to
        # back before its timers got a turn (six 20 ms steps: pauses of 40 ms, not 22 ms)
        QtCore.QTimer.singleShot(1, self._next_view_update)

    def _next_view_update(self) -> None:
        if self._pending_views is None:
            return
        generation, output, steps = self._pending_views
        if generation != self.controller.generation:  # a new run or image arrived meanwhile
            self._pending_views = None
            return
        step = steps.pop(0)
        if not steps:
            self._pending_views = None
        step(output)
        if self._pending_views is not None:
            QtCore.QTimer.singleShot(1, self._next_view_update)

    def _result_shown(self, output: RunOutput) -> None:
        self._update_actions()
        self.result_shown.emit(output)

    def _show_compare(self, output: RunOutput) -> None:
        self.compare.set_result(output.quantized, output.labels, output.result.palette)

    def _show_palette(self, output: RunOutput) -> None:
        self.palette_view.set_result(output.result)

    def _show_soft_maps(self, output: RunOutput) -> None:
        result = output.result
        self.soft_maps.set_maps(output.soft_maps, result.palette, result.proportions)

    def _on_segmentation_visible(self, shown: bool) -> None:
        if shown:  # its tab came to the front: segment what was put off while hidden
            self.segmentation.show_pending()

    def _show_segmentation(self, view: Any) -> None:
        """Show the soft maps and labels of the result the segmentation panel made."""
        result = view.result
        self.soft_maps.set_maps(view.soft_maps, result.palette, result.proportions)
        # (the palette editor keeps the fit it edits; the panel's tables give the new shares)
        output = self.controller.output()
        if output is not None and result is not output.result:  # smoothed or a model applied
            labels = np.asarray(result.labels)
            image = np.asarray(result.palette, np.uint8)[labels]
            if output.quantized.shape[2] == 4:  # keep the input's alpha channel
                image = np.dstack([image, output.quantized[:, :, 3]])
            self.compare.set_result(
                np.ascontiguousarray(image),
                np.ascontiguousarray(labels) if labels.dtype == np.uint8 else None,
            )
        elif output is not None:
            self.compare.set_result(output.quantized, output.labels)

    def _show_color_space(self, output: RunOutput) -> None:
        result, sample = output.result, output.sample
        space = fit_space(result)
        self.color_space.set_data(space, sample.points, sample.labels, result.palette, sample.steps)

    def _show_metrics(self, output: RunOutput) -> None:
        self.metrics_view.set_output(output)
        result = output.result
        choice = output.extra.get("auto")
        if choice is not None:
            self.convergence.set_auto_choice(choice.k, choice.reached, choice.value)
        else:
            self.convergence.set_chosen(output.chosen_restart, result.n_iter, result.converged)

    def _finish_run(self, output: RunOutput) -> None:
        self.progress.setVisible(False)
        self.progress_label.setText(describe_output(output))
        self._update_actions()
        self.run_finished.emit(output)

    def _on_params_changed(self) -> None:
        self.settings.set_parameters(self.params.parameters())
        self.controller.schedule_run()

    def _on_auto_run_toggled(self, on: bool) -> None:
        self.settings.set_value("autoRun", on)
        if self.auto_run_action.isChecked() != on:
            self.auto_run_action.setChecked(on)
        self.controller.set_auto_run(on)

    def set_auto_run(self, on: bool) -> None:
        """Turn automatic re-runs on parameter changes (and on opening) on or off.

        Parameters
        ----------
        on : bool
            Whether to re-run automatically.
        """
        self.auto_run_check.setChecked(on)

    # ================================================================== export
    def export_dialog(self) -> ExportDialog | None:
        """Open the export dialog for the current result.

        Returns
        -------
        dialog : ExportDialog or None
            The (modeless, window-modal) dialog; ``None`` without a result, or when a run
            is coming (the dialog then opens when it finishes).
        """
        if ws.export_when_ready(self):  # "change K, then Ctrl+E" exports the new K
            return None
        dialog = self.make_export_dialog()
        if dialog is None:
            self.progress_label.setText("Run a quantization first, then export it")
            return None
        dialog.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._on_exported(dialog))
        dialog.open()
        return dialog

    def make_export_dialog(self) -> ExportDialog | None:
        """Create (without showing) an export dialog for the current result.

        Returns
        -------
        dialog : ExportDialog or None
            ``None`` when there is no result.
        """
        output, opened = self.controller.output(), self.controller.opened()
        if output is None:
            return None
        params = output.params
        stem = Path(opened.name if opened is not None else "").stem or "image"
        stem = f"{stem}_{params.method}{len(output.result.palette)}"
        shown = self.segmentation.current()  # smoothed or model-applied: export what is shown
        result, metrics, rendering = output.result, output.metrics, output.rendering
        if shown is not None and shown.result is not output.result:
            result, metrics, rendering = shown.result, None, None
        loaded = opened.loaded if opened is not None else None
        source = loaded.path if loaded is not None else None
        source_sha256 = loaded.info.get("sha256") if loaded is not None else None
        return ExportDialog(
            result,
            stem,
            ws.export_folder(self),
            kinds=ws.export_kinds(self.settings),
            dither=params.dither,
            strength=params.dither_strength,
            source_path=source,
            source_sha256=source_sha256,
            metrics=metrics,
            rendering=rendering,
            overlay=self.segmentation.overlay_settings(),
            parent=self,
        )

    def _on_exported(self, dialog: ExportDialog) -> None:
        if dialog.written:
            ws.remember_export(self.settings, dialog.selected_kinds(), dialog.written[0].parent)
            self.progress_label.setText(
                f"Exported {len(dialog.written)} file(s) to {dialog.written[0].parent}"
            )

    # ================================================================== misc UI
    def show_error(self, title: str, message: str, details: str = "") -> QtWidgets.QMessageBox:
        """Show an error without blocking the event loop.

        Parameters
        ----------
        title : str
            Window title.
        message : str
            Text naming the file and the problem.
        details : str, optional
            Technical details (e.g. a traceback), behind "Show Details".

        Returns
        -------
        box : QMessageBox
            The (window-modal) message box.
        """
        self.last_error = message
        box = QtWidgets.QMessageBox(
            QtWidgets.QMessageBox.Icon.Critical,
            title,
            message,
            QtWidgets.QMessageBox.StandardButton.Ok,
            self,
        )
        box.setObjectName("errorBox")
        if details:
            box.setDetailedText(details)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.error_shown.emit(title, message)
        return box

    def set_compare_mode(self, mode: str) -> None:
        """Switch the compare view between ``"side"`` and ``"split"``.

        Parameters
        ----------
        mode : {"side", "split"}
            Display mode.
        """
        self.compare.set_mode(mode)

    def _on_mode_changed(self, mode: str) -> None:
        self.side_action.setChecked(mode == "side")
        self.split_action.setChecked(mode == "split")

    def pixel_info(self, row: int, col: int) -> str:
        """Describe one pixel: position, original value, palette colour and cluster.

        Parameters
        ----------
        row, col : int
            Pixel position.

        Returns
        -------
        text : str
            E.g. ``"(120, 45) rgb(200, 120, 80) → #c27850 cluster 3 (12.1 %)"``.
        """
        image = self.controller.image()
        if image is None:
            return ""
        return describe_pixel(image, self.controller.output(), row, col)

    def _show_cluster_map(self, k: int | None) -> None:
        if k is not None:
            self.soft_maps.show_map(k)  # no-op when the component has no map shown

    def _show_pixel(self, row: int, col: int) -> None:
        self.pixel_label.setText(self.pixel_info(row, col) if row >= 0 else "")

    def _update_zoom_label(self) -> None:
        if self.controller.image() is not None:
            self.zoom_label.setText(f"{100 * self.compare.pixel_scale():.0f} %")

    def _update_actions(self) -> None:
        running = self.controller.is_active()
        has_image = self.controller.image() is not None
        self.run_action.setEnabled(has_image)
        self.run_button.setEnabled(has_image)
        self.cancel_action.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.export_action.setEnabled(self.controller.output() is not None)
        if not running and self._pending_views is None:  # no run, no result being shown
            self.progress.setVisible(False)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.settings.recent_files()
        for i, path in enumerate(files):
            action = self.recent_menu.addAction(f"&{(i + 1) % 10} {Path(path).name}")
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _=False, p=path: self.open_image(p, wait=False))
        if not files:
            empty = self.recent_menu.addAction("(none)")
            empty.setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear List", self.settings.clear_recent_files)

    def show_shortcuts(self) -> QtWidgets.QDialog:
        """Show Help → Keyboard Shortcuts (built from the menus' actions).

        Returns
        -------
        dialog : QDialog
        """
        return ws.show_shortcuts(self)

    # ================================================================== events
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: D102
        mime = event.mimeData()
        if (mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())) or mime.hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: D102
        mime = event.mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        if files:
            event.acceptProposedAction()
            self.open_image(files[0], wait=False)
        elif mime.hasImage():
            event.acceptProposedAction()
            self.open_array(qimage_to_array(QtGui.QImage(mime.imageData())), "dropped image")
        else:
            event.ignore()

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        self._layout_restored = False
        if isinstance(geometry, QtCore.QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QtCore.QByteArray):
            self._layout_restored = self.restoreState(state)
        mode = self.settings.value("compare/mode", "side")
        if mode in ("side", "split"):
            self.set_compare_mode(str(mode))

    def save_settings(self) -> None:
        """Write layout, parameters and compare mode to the settings."""
        self.settings.set_value("window/geometry", self.saveGeometry())
        self.settings.set_value("window/state", self.saveState())
        self.settings.set_value("compare/mode", self.compare.mode())
        self.settings.set_parameters(self.params.parameters())
        self.settings.qsettings.sync()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel every run and wait for the worker threads (and any export) to end.

        Parameters
        ----------
        timeout_ms : int, optional
            How long to wait per thread.

        Returns
        -------
        clean : bool
            ``True`` if every thread ended.
        """
        clean = self.controller.shutdown(timeout_ms) and self.explorer.shutdown(timeout_ms)
        clean &= self.segmentation.shutdown(timeout_ms)
        for dialog in self.findChildren(ExportDialog):
            if dialog.is_exporting():  # let the files be written completely
                worker = dialog._worker
                assert worker is not None, "is_exporting() means an export thread exists"
                worker.wait()
        batch = getattr(self, "batch_window", None)
        if batch is not None:
            batch.close()  # cancels a running batch and waits for its thread
        return clean

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: D102
        # Space not used by the focused widget (e.g. focus on a dock): flash the original
        if event.key() == QtCore.Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self.compare.set_flash_original(True)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: D102
        if event.key() == QtCore.Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self.compare.set_flash_original(False)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: D102
        super().showEvent(event)
        if not self._layout_restored:  # first start: size the docks for this window
            self._layout_restored = True
            height, width = self.height(), self.width()
            self.resizeDocks(
                [self.convergence_dock], [max(160, height // 3)], QtCore.Qt.Orientation.Vertical
            )
            self.resizeDocks(
                [self.params_dock, self.palette_dock],
                [300, max(260, min(360, width // 4))],
                QtCore.Qt.Orientation.Horizontal,
            )

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: D102
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)
