"""The VQ Studio main window: loading, parameters, runs on a worker thread, views, export."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

import app._compat  # noqa: F401  (PySide6 6.12 emit refcount bug, see module)
from app.export_dialog import ExportDialog
from app.loader import LoadWorker, open_file, prepare
from app.params import ParameterPanel
from app.settings import AppSettings
from app.views.colorspace_view import ColorSpaceView
from app.views.compare import CompareView
from app.views.convergence import ConvergencePlot
from app.views.metrics import MetricsView, format_bytes
from app.views.palette import PaletteView
from app.views.softmaps import SoftMapsView
from app.worker import (
    RunJob,
    RunOutput,
    RunWorker,
    objective_kind,
    only_rendering_changed,
    warm_up,
)
from quantize.io.export import hex_color

__all__ = ["MainWindow", "IMAGE_FILTER", "qimage_to_array"]

IMAGE_FILTER = (
    "Images (*.png *.jpg *.jpeg *.tif *.tiff *.webp *.bmp *.gif *.ppm *.pgm *.pnm);;All files (*)"
)
#: Interpreter switch interval (s) while a worker runs: the GUI thread waits at most this
#: long for the GIL when the worker runs Python code (CPython's default is 5 ms).
RUN_SWITCH_INTERVAL_S = 0.001
#: Debounce delay (ms) between a parameter change and the automatic re-run.
RERUN_DELAY_MS = 400


def qimage_to_array(image: QtGui.QImage) -> np.ndarray:
    """Copy a QImage into an (M, N, 4) uint8 RGBA array (or (M, N, 3) if fully opaque).

    Parameters
    ----------
    image : QImage
        Any format (e.g. from the clipboard).

    Returns
    -------
    pixels : ndarray of shape (M, N, 3) or (M, N, 4), uint8
        Straight-alpha pixels.
    """
    rgba = image.convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
    height, width = rgba.height(), rgba.width()
    buffer = np.frombuffer(rgba.constBits(), dtype=np.uint8, count=rgba.sizeInBytes())
    pixels = buffer.reshape(height, rgba.bytesPerLine())[:, : width * 4].reshape(height, width, 4)
    pixels = pixels.copy()
    if np.all(pixels[..., 3] == 255):
        return np.ascontiguousarray(pixels[..., :3])
    return pixels


class MainWindow(QtWidgets.QMainWindow):
    """VQ Studio's main window.

    Automation API: :meth:`open_image`, :meth:`open_array`, :meth:`start_run`,
    :meth:`cancel_run`, :meth:`is_running`, the ``run_finished`` signal (with the
    :class:`~app.worker.RunOutput`), ``run_failed`` (message) and ``run_cancelled``.

    Parameters
    ----------
    settings : AppSettings or QSettings, optional
        Where to remember layout, folders, recent files and parameters.
    parent : QWidget, optional
        Parent widget.
    """

    run_finished = QtCore.Signal(object)
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

        self._loaded: Any = None
        self._image: np.ndarray | None = None
        self._name = ""
        self._generation = 0
        self._worker: RunWorker | None = None
        self._workers: list[RunWorker] = []
        self._loaders: list[QtCore.QThread] = []
        self._load_ticket = 0
        self._output: RunOutput | None = None
        self._last_record: Any = None
        self._record_count = 0
        self._pending_views: tuple[int, RunOutput, list[Any]] | None = None
        self._saved_switch_interval: float | None = None
        self.last_error = ""

        self._build_views()
        self._build_actions()
        self._build_menus()
        self._build_status()

        self._rerun_timer = QtCore.QTimer(self)
        self._rerun_timer.setSingleShot(True)
        self._rerun_timer.setInterval(RERUN_DELAY_MS)
        self._rerun_timer.timeout.connect(self._auto_rerun)
        self._status_timer = QtCore.QTimer(self)
        self._status_timer.setInterval(200)
        self._status_timer.timeout.connect(self._show_progress)

        self.params.set_parameters(self.settings.parameters())
        self.params.changed.connect(self._on_params_changed)
        self.auto_run_check.setChecked(self.settings.flag("autoRun", True))
        self._restore_layout()
        self._update_actions()
        # The engine both emits its warnings and records them on the result; the window
        # shows the recorded ones (status bar, metrics panel), so the emitted copies, which
        # would come from the worker thread, are not printed (or raised) as well.
        from quantize.protocol import QuantizeWarning

        warnings.filterwarnings("ignore", category=QuantizeWarning)
        warm_up()  # import the engine's dependencies now, not on the worker during a run

    # ================================================================== construction
    def _build_views(self) -> None:
        self.compare = CompareView()
        self.mode_combo = QtWidgets.QComboBox(objectName="compareModeCombo")
        self.mode_combo.addItem("Side by side", "side")
        self.mode_combo.addItem("Split slider", "split")
        self.mode_combo.currentIndexChanged.connect(
            lambda: self.compare.set_mode(self.mode_combo.currentData())
        )
        self.flash_button = QtWidgets.QPushButton("Show original", objectName="flashButton")
        self.flash_button.setToolTip("Hold to see the original (or hold Space over the image)")
        self.flash_button.pressed.connect(lambda: self.compare.set_flash_original(True))
        self.flash_button.released.connect(lambda: self.compare.set_flash_original(False))
        self.zoom_label = QtWidgets.QLabel("")
        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addWidget(QtWidgets.QLabel("Compare:"))
        bar.addWidget(self.mode_combo)
        bar.addWidget(self.flash_button)
        bar.addStretch(1)
        bar.addWidget(self.zoom_label)
        central = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addLayout(bar)
        cl.addWidget(self.compare, 1)
        self.setCentralWidget(central)
        self.compare.left.sigRangeChanged.connect(self._update_zoom_label)
        self.compare.hovered.connect(self._show_pixel)

        # parameters + run controls
        self.params = ParameterPanel()
        self.run_button = QtWidgets.QPushButton("Run", objectName="runButton")
        self.run_button.setToolTip("Quantize with these parameters (Ctrl+R, F5)")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start_run)
        self.cancel_button = QtWidgets.QPushButton("Cancel", objectName="cancelButton")
        self.cancel_button.setToolTip("Stop the running fit (Esc)")
        self.cancel_button.clicked.connect(self.cancel_run)
        self.auto_run_check = QtWidgets.QCheckBox("Re-run when parameters change")
        self.auto_run_check.setObjectName("autoRunCheck")
        self.auto_run_check.toggled.connect(self._on_auto_run_toggled)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        host = QtWidgets.QWidget()
        hl = QtWidgets.QVBoxLayout(host)
        hl.setContentsMargins(0, 0, 0, 0)
        hl.addWidget(self.params)
        hl.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(host)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        dock_host = QtWidgets.QWidget()
        dl = QtWidgets.QVBoxLayout(dock_host)
        dl.setContentsMargins(2, 2, 2, 2)
        dl.addWidget(scroll, 1)
        dl.addWidget(self.auto_run_check)
        dl.addLayout(buttons)
        dock_host.setMinimumWidth(300)
        self.params_dock = self._dock(
            "Parameters", "parametersDock", dock_host, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea
        )

        self.palette_view = PaletteView()
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
        self.tabifyDockWidget(self.convergence_dock, self.soft_maps_dock)
        self.tabifyDockWidget(self.soft_maps_dock, self.color_space_dock)
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
        shortcuts: list[QtGui.QKeySequence | str] | None = None,
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
        self.about_action = self._action("&About VQ Studio", self._about)

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
        self._load_ticket += 1
        ticket = self._load_ticket
        if not wait:
            loader = LoadWorker(path, ticket, parent=self)
            loader.opened.connect(lambda t, opened, r=remember: self._on_opened(t, opened, r))
            loader.failed.connect(lambda t, msg, details, p=path: self._on_open_failed(t, p, msg))
            loader.finished.connect(lambda w=loader: self._on_loader_finished(w))
            self._loaders.append(loader)
            self.progress_label.setText(f"Opening {path.name}…")
            loader.start()
            return True
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
        self._on_opened(ticket, opened, remember)
        return True

    def is_loading(self) -> bool:
        """Return whether a file is being decoded on a worker thread.

        Returns
        -------
        loading : bool
            ``True`` while a loader thread runs.
        """
        return any(w.isRunning() for w in self._loaders)

    def _on_opened(self, ticket: int, opened: Any, remember: bool) -> None:
        if ticket != self._load_ticket:  # superseded by a newer open
            return
        loaded = opened.loaded
        if remember and loaded.path is not None:
            self.settings.add_recent_file(loaded.path)
            self.settings.set_last_folder(Path(loaded.path).resolve().parent, "open")
        self._set_image(opened)

    def _on_open_failed(self, ticket: int, path: Path, message: str) -> None:
        if ticket == self._load_ticket:
            self.progress_label.setText("")
            self._open_failed(path, message)

    def _on_loader_finished(self, loader: QtCore.QThread) -> None:
        if loader in self._loaders:
            self._loaders.remove(loader)
        loader.deleteLater()

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
        from quantize.io.load import LoadError, from_array

        try:
            loaded = from_array(pixels, name=name)
        except LoadError as exc:
            self.show_error("Cannot open image", str(exc))
            return False
        self._load_ticket += 1  # supersedes any file still loading
        self._set_image(prepare(loaded, name))
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
        return self._image

    def _open_failed(self, path: Path, message: str) -> None:
        self.settings.remove_recent_file(path)
        self.show_error("Cannot open image", message)

    def _set_image(self, opened: Any) -> None:
        self._cancel_current()
        loaded, name = opened.loaded, opened.name
        self._loaded = loaded
        self._image = loaded.pixels
        self._name = name
        self._output = None
        self.compare.set_original(opened.display)
        for view in (self.convergence, self.soft_maps, self.color_space, self.metrics_view):
            view.clear()
        self.palette_view.set_palette(None, None)
        self.params.set_grey_available(opened.grey)
        size = format_bytes(loaded.file_size) if loaded.file_size else "in memory"
        frames = f" · {loaded.n_frames} frames (first shown)" if loaded.n_frames > 1 else ""
        alpha = " · alpha" if loaded.has_alpha else ""
        self.image_label.setText(
            f"{loaded.width}×{loaded.height} · {loaded.format} {loaded.mode} "
            f"{loaded.bit_depth}-bit{alpha} · {size}{frames}"
        )
        self.setWindowTitle(f"{name} — VQ Studio")
        notes = list(loaded.info.get("warnings", []) or []) + list(
            loaded.info.get("notes", []) or []
        )
        self.progress_label.setText("; ".join(str(n) for n in notes) or f"Opened {name}")
        self._update_actions()
        self.image_changed.emit(name)
        if self.auto_run_check.isChecked():
            self.start_run()

    # ================================================================== running
    def is_running(self) -> bool:
        """Return whether any worker thread is still alive (including cancelled ones).

        Returns
        -------
        running : bool
            ``True`` while a worker thread runs.
        """
        return any(w.isRunning() for w in self._workers)

    def output(self) -> RunOutput | None:
        """Return the last finished run's output.

        Returns
        -------
        output : RunOutput or None
            Latest result and its display data.
        """
        return self._output

    def start_run(self) -> bool:
        """Start quantizing the current image (cancelling any running fit).

        Returns
        -------
        started : bool
            ``False`` if there is no image.
        """
        self._rerun_timer.stop()
        if self._image is None:
            self.progress_label.setText("Open an image first")
            return False
        self._cancel_current()
        generation = self._generation
        params = self.params.parameters()
        previous = self._output
        reuse = (
            previous is not None
            and previous.result.image is self._image
            and only_rendering_changed(previous.params, params)
        )
        job = RunJob(
            image=self._image,
            params=params,
            original_bytes=(self._loaded.file_size or None) if self._loaded is not None else None,
            previous=previous.result if reuse else None,
        )
        worker = RunWorker(job, generation, parent=self)
        worker.record.connect(self._on_record)
        worker.stage.connect(self._on_stage)
        worker.succeeded.connect(self._on_succeeded)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(lambda w=worker: self._on_worker_finished(w))
        self._worker = worker
        self._workers.append(worker)
        self._last_record = None
        self._record_count = 0
        if not reuse:  # a re-render keeps the convergence curves of the fit it reuses
            auto_metric = {"quality": "psnr", "bic": "bic"}.get(params.auto)
            n_runs = 0 if auto_metric else params.fit_options().get("n_init", 1)
            self.convergence.clear(objective_kind(params.method), auto_metric, n_runs)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.progress_label.setText(
            "Re-rendering with the new dithering…" if reuse else "Starting…"
        )
        self._status_timer.start()
        if self._saved_switch_interval is None:
            self._saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._saved_switch_interval, RUN_SWITCH_INTERVAL_S))
        worker.start()
        self._update_actions()
        self.run_started.emit(generation)
        return True

    def cancel_run(self) -> None:
        """Cancel the running fit; its late results are ignored."""
        if self._worker is None:
            return
        self._cancel_current()
        self.progress_label.setText("Cancelled")
        self._update_actions()
        self.run_cancelled.emit()

    def _cancel_current(self) -> None:
        """Stop the current run (if any) and make every pending result of it stale."""
        if self._worker is not None:
            self._worker.request_cancel()
            self._worker = None
        self._generation += 1
        self._pending_views = None
        self._status_timer.stop()
        self.progress.setVisible(False)

    def _on_record(self, generation: int, record: Any) -> None:
        if generation != self._generation:
            return
        self._last_record = record
        self._record_count += 1
        self.convergence.add_record(record)

    def _on_stage(self, generation: int, text: str) -> None:
        if generation == self._generation:
            self._last_record = None
            self.progress_label.setText(text)
            self.progress.setValue(min(99, max(self.progress.value(), 80) + 5))
            self.run_stage.emit(text)

    def _show_progress(self) -> None:
        rec = self._last_record
        if rec is None or self._worker is None:
            return
        params = self._worker.job.params
        name = "J" if rec.kind == "inertia" else "mean log-likelihood"
        runs = f"run {rec.restart + 1}/{params.n_init} · " if params.n_init > 1 else ""
        k = f"K={rec.extra['k']} · " if isinstance(rec.extra, dict) and "k" in rec.extra else ""
        stage = f"{rec.stage} · " if rec.stage else ""
        if params.auto == "off" and params.method != "optimal1d":
            done = (rec.restart + min(1.0, rec.iteration / params.max_iter)) / params.n_init
            self.progress.setValue(max(self.progress.value(), int(80 * done)))
        self.progress_label.setText(
            f"{stage}{k}{runs}iteration {rec.iteration} · {name} = {rec.objective:.6g} · "
            f"shift {rec.shift:.3g}"
        )

    def _on_succeeded(self, generation: int, output: RunOutput) -> None:
        if generation != self._generation:
            return
        self._worker = None
        self._status_timer.stop()
        self.progress.setValue(100)
        self._output = output
        # update the views one per event-loop turn, so no single slice blocks for long
        self._pending_views = (
            generation,
            output,
            [
                self._show_compare,
                self._show_palette,
                self._show_soft_maps,
                self._show_color_space,
                self._show_metrics,
                self._finish_run,
            ],
        )
        QtCore.QTimer.singleShot(0, self._next_view_update)

    def _next_view_update(self) -> None:
        if self._pending_views is None:
            return
        generation, output, steps = self._pending_views
        if generation != self._generation:  # a new run or image arrived meanwhile
            self._pending_views = None
            return
        step = steps.pop(0)
        if not steps:
            self._pending_views = None
        step(output)
        if self._pending_views is not None:
            QtCore.QTimer.singleShot(0, self._next_view_update)

    def _show_compare(self, output: RunOutput) -> None:
        self.compare.set_result(output.quantized, output.labels)

    def _show_palette(self, output: RunOutput) -> None:
        self.palette_view.set_palette(output.result.palette, output.result.proportions)

    def _show_soft_maps(self, output: RunOutput) -> None:
        result = output.result
        self.soft_maps.set_maps(output.soft_maps, result.palette, result.proportions)

    def _show_color_space(self, output: RunOutput) -> None:
        result, sample = output.result, output.sample
        space = "grey" if result.method == "optimal1d" else result.color_space
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
        result = output.result
        self.progress.setVisible(False)
        psnr = getattr(output.metrics, "psnr", None)
        quality = f" · PSNR {psnr:.2f} dB" if psnr is not None else ""
        warn = f" · {len(result.warnings)} warning(s), see Metrics" if result.warnings else ""
        self.progress_label.setText(
            f"Done: {len(result.palette)} colours ({result.method}, {result.color_space}) in "
            f"{output.elapsed_s:.2f} s{quality}{warn}"
        )
        self._update_actions()
        self.run_finished.emit(output)

    def _on_failed(self, generation: int, message: str, details: str) -> None:
        if generation != self._generation:
            return
        self._worker = None
        self._status_timer.stop()
        self.progress.setVisible(False)
        self.progress_label.setText("Run failed")
        self._update_actions()
        self.show_error("Quantization failed", message, details)
        self.run_failed.emit(message)

    def _on_worker_finished(self, worker: RunWorker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if not self._workers and self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
            self._saved_switch_interval = None
        if worker is self._worker:  # finished without a result signal (should not happen)
            self._worker = None
            self.progress.setVisible(False)
        worker.deleteLater()
        self._update_actions()

    def _on_params_changed(self) -> None:
        self.settings.set_parameters(self.params.parameters())
        if self.auto_run_check.isChecked() and self._image is not None:
            self._rerun_timer.start()

    def _auto_rerun(self) -> None:
        if self.auto_run_check.isChecked() and self._image is not None:
            self.start_run()

    def _on_auto_run_toggled(self, on: bool) -> None:
        self.settings.set_value("autoRun", on)
        if self.auto_run_action.isChecked() != on:
            self.auto_run_action.setChecked(on)
        if not on:
            self._rerun_timer.stop()

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
            The (modeless, window-modal) dialog, or ``None`` without a result.
        """
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
        if self._output is None:
            return None
        output = self._output
        params = output.params
        stem = Path(self._name).stem or "image"
        stem = f"{stem}_{params.method}{len(output.result.palette)}"
        source = self._loaded.path if self._loaded is not None else None
        source_sha256 = self._loaded.info.get("sha256") if self._loaded is not None else None
        return ExportDialog(
            output.result,
            stem,
            self.settings.last_folder("export"),
            dither=params.dither,
            strength=params.dither_strength,
            source_path=source,
            source_sha256=source_sha256,
            metrics=output.metrics,
            rendering=output.rendering,
            parent=self,
        )

    def _on_exported(self, dialog: ExportDialog) -> None:
        if dialog.written:
            self.settings.set_last_folder(dialog.written[0].parent, "export")
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
        index = self.mode_combo.findData(mode)
        if index != self.mode_combo.currentIndex():
            self.mode_combo.setCurrentIndex(index)

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
        if self._image is None:
            return ""
        value = self._image[row, col]
        channels = ", ".join(str(int(v)) for v in np.atleast_1d(value))
        name = "rgba" if np.size(value) == 4 else "rgb"
        text = f"(row {row}, col {col}) {name}({channels})"
        if self._output is not None:
            result = self._output.result
            k = int(result.labels[row, col])
            opaque = result.opaque is None or bool(result.opaque[row, col])
            if opaque:
                colour = hex_color(result.palette[k])
                share = 100.0 * float(result.proportions[k])
                text += f" → {colour} cluster {k} ({share:.1f} %)"
            else:
                text += " (transparent: not clustered)"
        return text

    def _show_cluster_map(self, k: int | None) -> None:
        if k is not None:
            self.soft_maps.show_map(k)  # no-op when the component has no map shown

    def _show_pixel(self, row: int, col: int) -> None:
        self.pixel_label.setText(self.pixel_info(row, col) if row >= 0 else "")

    def _update_zoom_label(self) -> None:
        if self._image is not None:
            self.zoom_label.setText(f"{100 * self.compare.pixel_scale():.0f} %")

    def _update_actions(self) -> None:
        running = self._worker is not None
        has_image = self._image is not None
        self.run_action.setEnabled(has_image)
        self.run_button.setEnabled(has_image)
        self.cancel_action.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.export_action.setEnabled(self._output is not None)

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

    def _about(self) -> None:
        from quantize import __version__

        QtWidgets.QMessageBox.about(
            self,
            "About VQ Studio",
            f"<b>VQ Studio {__version__}</b><p>Colour vector quantization with K-means and "
            "Gaussian mixtures: palettes, soft segmentation maps, exports.</p>",
        )

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
        """Cancel every run and wait for the worker threads to end.

        Parameters
        ----------
        timeout_ms : int, optional
            How long to wait per thread.

        Returns
        -------
        clean : bool
            ``True`` if every thread ended.
        """
        self._rerun_timer.stop()
        self._status_timer.stop()
        self._cancel_current()
        clean = True
        self._load_ticket += 1
        for dialog in self.findChildren(ExportDialog):
            if dialog.is_exporting():  # let the files be written completely
                dialog._worker.wait()
        for loader in list(self._loaders):
            clean = loader.wait(timeout_ms) and clean
        for worker in list(self._workers):
            worker.request_cancel()
            clean = worker.wait(timeout_ms) and clean
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
            self._saved_switch_interval = None
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
