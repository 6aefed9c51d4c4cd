"""The "Explore K" view: what each number of colours costs (PNG size) and buys (quality).

Two plots share one K axis (log scale): the indexed PNG's size, with the original file's size
dashed and the size budget as a line, and the PSNR, with the quality target as a line; the
current K is a vertical line in both.  Hovering a K shows a preview of that K's rendering,
clicking one sets K.  The budget and the target are also fields here (and the lines can be
dragged); "Auto K" chooses which of them a run uses.  The sweep itself
(:func:`app.explore.explore_task`) runs on a worker thread and its points appear as they come.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

import app._compat  # noqa: F401  (PySide6 6.12 emit refcount bug, see module)
from app.explore import ExplorePoint, ExploreProgress, Thumbnail, best_k_for, explore_task
from app.imaging import qimage_from_array
from app.model import AUTO_MODES, MAX_SIZE_KB_RANGE, RunParameters, format_bytes
from app.workers import Worker

__all__ = ["KExplorer"]

_SIZE_COLOR = "#4e79a7"
_PSNR_COLOR = "#e15759"
_TARGET_COLOR = "#59a14f"
_CURRENT_COLOR = "#f28e2b"
DEFAULT_KS = "2-256"


def _log2(k: float) -> float:
    return math.log2(max(k, 1e-9))


class _KAxis(pg.AxisItem):
    """Bottom axis of log2(K) values labelled with K (2, 4, 8, ...)."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[Any]:  # noqa: D102, N802, N803
        lo, hi = math.floor(minVal), math.ceil(maxVal)
        return [(1.0, [float(e) for e in range(max(lo, 0), hi + 1)])]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: D102, N802
        return [str(int(round(2**v))) for v in values]


class KExplorer(QtWidgets.QWidget):
    """Sweep K for the current image and choose K, a size budget or a quality target.

    Signals
    -------
    k_chosen(int)
        A K was clicked (or picked with "Use …").
    targets_edited(str, float, float)
        Auto-K mode, PSNR target (dB) and size budget (kB) as edited here.

    Parameters
    ----------
    parent : QWidget, optional
    """

    k_chosen = QtCore.Signal(int)
    targets_edited = QtCore.Signal(str, float, float)
    sweep_finished = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("kExplorer")
        self._image: np.ndarray | None = None
        self._original_bytes: int | None = None
        self._params: Callable[[], RunParameters] = RunParameters
        self._points: dict[int, ExplorePoint] = {}
        self._thumb: np.ndarray | None = None
        self._current_k: int | None = None
        self._hover_k: int | None = None
        self._worker: Worker | None = None
        self._workers: list[Worker] = []
        self._generation = 0
        self._syncing = False

        # ---- controls
        self.ks_edit = QtWidgets.QLineEdit(DEFAULT_KS, objectName="ksEdit")
        self.ks_edit.setToolTip("K values: a range 2-256 (about 12, log-spaced), 2-64:8, or 4,8,16")
        self.ks_edit.setMaximumWidth(140)
        self.sweep_button = QtWidgets.QPushButton("Sweep", objectName="sweepButton")
        self.sweep_button.setToolTip("Fit every K of the list and plot its size and quality")
        self.sweep_button.clicked.connect(self.start_sweep)
        self.cancel_button = QtWidgets.QPushButton("Cancel", objectName="sweepCancelButton")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = QtWidgets.QProgressBar(objectName="sweepProgress")
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(120)
        self.progress.setVisible(False)
        self.status = QtWidgets.QLabel("Sweep to see what each number of colours costs and buys.")
        self.status.setWordWrap(True)

        self.auto = QtWidgets.QComboBox(objectName="explorerAutoCombo")
        for key, label in AUTO_MODES.items():
            self.auto.addItem(label, key)
        self.auto.setToolTip("What a run uses to choose K (Parameters → Automatic K, too)")
        self.target = QtWidgets.QDoubleSpinBox(objectName="explorerPsnrSpin")
        self.target.setRange(15.0, 60.0)
        self.target.setDecimals(1)
        self.target.setSuffix(" dB")
        self.budget = QtWidgets.QDoubleSpinBox(objectName="explorerBudgetSpin")
        self.budget.setRange(*MAX_SIZE_KB_RANGE)
        self.budget.setDecimals(0)
        self.budget.setSuffix(" kB")
        self.use_target = QtWidgets.QPushButton("Fewest K reaching it", objectName="useTarget")
        self.use_target.setToolTip("Set K to the fewest colours of the sweep reaching the target")
        self.use_target.clicked.connect(lambda: self._use("psnr"))
        self.use_budget = QtWidgets.QPushButton("Most K within it", objectName="useBudget")
        self.use_budget.setToolTip("Set K to the most colours of the sweep whose PNG fits")
        self.use_budget.clicked.connect(lambda: self._use("size"))
        self.auto.currentIndexChanged.connect(self._on_targets_edited)
        self.target.valueChanged.connect(self._on_targets_edited)
        self.budget.valueChanged.connect(self._on_targets_edited)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("K values"))
        top.addWidget(self.ks_edit)
        top.addWidget(self.sweep_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.progress)
        top.addWidget(self.status, 1)
        targets = QtWidgets.QHBoxLayout()
        targets.addWidget(QtWidgets.QLabel("Auto K"))
        targets.addWidget(self.auto)
        targets.addSpacing(8)
        targets.addWidget(QtWidgets.QLabel("Quality target"))
        targets.addWidget(self.target)
        targets.addWidget(self.use_target)
        targets.addSpacing(8)
        targets.addWidget(QtWidgets.QLabel("Size budget"))
        targets.addWidget(self.budget)
        targets.addWidget(self.use_budget)
        targets.addStretch(1)

        # ---- plots
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setObjectName("explorerPlots")
        self.plots.setMinimumHeight(260)
        self.plots.setBackground("w")
        self.size_plot = self.plots.addPlot(row=0, col=0, axisItems={"bottom": _KAxis("bottom")})
        self.psnr_plot = self.plots.addPlot(row=1, col=0, axisItems={"bottom": _KAxis("bottom")})
        self.psnr_plot.setXLink(self.size_plot)
        self.size_plot.setLabel("left", "Indexed PNG (kB)")
        self.psnr_plot.setLabel("left", "PSNR (dB)")
        self.psnr_plot.setLabel("bottom", "Number of colours K (log scale)")
        for plot in (self.size_plot, self.psnr_plot):
            plot.setMenuEnabled(False)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.getAxis("left").setWidth(56)
        self.size_curve = self.size_plot.plot(
            [], [], pen=pg.mkPen(_SIZE_COLOR, width=2), symbol="o", symbolSize=7,
            symbolBrush=_SIZE_COLOR,
        )  # fmt: skip
        self.psnr_curve = self.psnr_plot.plot(
            [], [], pen=pg.mkPen(_PSNR_COLOR, width=2), symbol="o", symbolSize=7,
            symbolBrush=_PSNR_COLOR,
        )  # fmt: skip
        self.hover_marks = [
            pg.ScatterPlotItem(size=16, pen=pg.mkPen("k", width=2), brush=None),
            pg.ScatterPlotItem(size=16, pen=pg.mkPen("k", width=2), brush=None),
        ]
        self.size_plot.addItem(self.hover_marks[0])
        self.psnr_plot.addItem(self.hover_marks[1])
        self.current_lines = []
        for plot in (self.size_plot, self.psnr_plot):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(_CURRENT_COLOR, width=2))
            line.setVisible(False)
            plot.addItem(line, ignoreBounds=True)
            self.current_lines.append(line)
        target_pen = pg.mkPen(_TARGET_COLOR, width=2, style=QtCore.Qt.PenStyle.DashLine)
        label_opts = {"position": 0.05, "color": _TARGET_COLOR, "anchors": [(0, 1), (0, 1)]}
        self.budget_line = pg.InfiniteLine(
            angle=0, movable=True, pen=target_pen, label="size budget {value:.0f} kB",
            labelOpts=label_opts,
        )  # fmt: skip
        self.target_line = pg.InfiniteLine(
            angle=0, movable=True, pen=target_pen, label="quality target {value:.1f} dB",
            labelOpts=label_opts,
        )  # fmt: skip
        self.original_line = pg.InfiniteLine(
            angle=0,
            pen=pg.mkPen("#777777", width=1, style=QtCore.Qt.PenStyle.DotLine),
            label="original file",
            labelOpts={"position": 0.95, "color": "#555555", "anchors": [(1, 0), (1, 0)]},
        )
        self.original_line.setVisible(False)
        # the lines count for the plots' ranges: a target is always in sight
        self.size_plot.addItem(self.budget_line)
        self.size_plot.addItem(self.original_line)
        self.psnr_plot.addItem(self.target_line)
        self.budget_line.sigPositionChangeFinished.connect(
            lambda line: self.budget.setValue(float(line.value()))
        )
        self.target_line.sigPositionChangeFinished.connect(
            lambda line: self.target.setValue(float(line.value()))
        )
        self.plots.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.plots.scene().sigMouseClicked.connect(self._on_mouse_clicked)

        # ---- preview
        self.preview = QtWidgets.QLabel(objectName="explorerPreview")
        self.preview.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(200, 140)
        self.preview.setStyleSheet("background: #2b2b2b; color: #d8d8d8;")
        self.preview.setText("Hover a K\nto preview it")
        self.preview_caption = QtWidgets.QLabel("", objectName="explorerCaption")
        self.preview_caption.setWordWrap(True)
        self.preview_caption.setMinimumWidth(200)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.preview)
        side.addWidget(self.preview_caption)
        side.addStretch(1)
        middle = QtWidgets.QHBoxLayout()
        middle.addWidget(self.plots, 1)
        middle.addLayout(side)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addLayout(targets)
        layout.addLayout(middle, 1)
        self.sync_parameters(RunParameters())
        self._update_buttons()

    # ------------------------------------------------------------------ inputs
    def set_parameter_source(self, source: Callable[[], RunParameters]) -> None:
        """Say where the sweep's parameters come from (method, space, dithering, ...).

        Parameters
        ----------
        source : callable
            Returns the current :class:`~app.model.RunParameters`.
        """
        self._params = source

    def set_image(self, pixels: np.ndarray | None, original_bytes: int | None = None) -> None:
        """Set the image to explore (forgets the previous sweep, stops a running one).

        Parameters
        ----------
        pixels : ndarray of shape (M, N, 3|4) or None
        original_bytes : int, optional
            Size of the image's file (drawn as a line on the size plot).
        """
        self.cancel()
        self._image = pixels
        self._original_bytes = original_bytes or None
        self._points = {}
        self._thumb = None
        self._hover_k = None
        self._redraw()
        self.preview.setPixmap(QtGui.QPixmap())
        self.preview.setText("Hover a K\nto preview it")
        self.preview_caption.setText("")
        self.status.setText(
            "Sweep to see what each number of colours costs and buys."
            if pixels is not None
            else "Open an image first."
        )
        if self._original_bytes:
            self.original_line.setValue(self._original_bytes / 1000.0)
            self.original_line.label.setFormat(f"original file {format_bytes(original_bytes)}")
        self.original_line.setVisible(bool(self._original_bytes))
        self._update_buttons()

    def sync_parameters(self, params: RunParameters) -> None:
        """Show the run parameters' auto-K mode, targets and K (without emitting).

        Parameters
        ----------
        params : RunParameters
        """
        self._syncing = True
        try:
            index = self.auto.findData(params.auto)
            if index >= 0:
                self.auto.setCurrentIndex(index)
            self.target.setValue(params.target_psnr)
            self.budget.setValue(params.max_size_kb)
        finally:
            self._syncing = False
        self.target_line.setValue(params.target_psnr)
        self.budget_line.setValue(params.max_size_kb)
        if params.auto == "off":
            self.set_current_k(params.n_colors)

    def set_current_k(self, k: int | None) -> None:
        """Mark the current K (a vertical line in both plots).

        Parameters
        ----------
        k : int or None
        """
        self._current_k = k
        for line in self.current_lines:
            line.setVisible(k is not None)
            if k is not None:
                line.setValue(_log2(k))

    # ------------------------------------------------------------------ sweeping
    def start_sweep(self) -> bool:
        """Sweep the K of the field for the current image and parameters.

        Returns
        -------
        started : bool
            ``False`` without an image or with an invalid K list (said in the status).
        """
        from quantize.sweep import parse_k_list

        if self._image is None:
            self.status.setText("Open an image first.")
            return False
        try:
            ks = parse_k_list(self.ks_edit.text())
        except ValueError as exc:
            self.status.setText(f"K values: {exc}")
            return False
        self.cancel()
        self._generation += 1
        self._points = {}
        self._redraw()
        params = self._params()
        image = self._image
        worker = Worker(
            lambda should_cancel: explore_task(image, ks, params, should_cancel),
            self._generation,
            parent=self,
        )
        worker.yielded.connect(self._on_item)
        worker.succeeded.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        worker.finished.connect(self._on_thread_finished)
        self._worker = worker
        self._workers.append(worker)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.status.setText(f"Sweeping {len(ks)} values of K…")
        worker.start()
        self._update_buttons()
        return True

    def cancel(self) -> None:
        """Stop a running sweep (the points found so far stay)."""
        if self._worker is not None:
            self._worker.request_cancel()
            self._worker = None
            self._generation += 1
            self.progress.setVisible(False)
            self.status.setText(f"Cancelled after {len(self._points)} K.")
            self._update_buttons()

    def is_running(self) -> bool:
        """Return whether a sweep thread still runs.

        Returns
        -------
        running : bool
        """
        return any(w.isRunning() for w in self._workers)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop the sweep and wait for its thread.

        Parameters
        ----------
        timeout_ms : int, optional

        Returns
        -------
        clean : bool
        """
        self.cancel()
        clean = True
        for worker in list(self._workers):
            worker.request_cancel()
            clean = worker.wait(timeout_ms) and clean
        return clean

    def _on_item(self, generation: int, item: Any) -> None:
        if generation != self._generation:
            return
        if isinstance(item, Thumbnail):
            self._thumb = item.pixels
        elif isinstance(item, ExploreProgress):
            self.progress.setValue(min(99, int(100 * item.fraction)))
            self.status.setText(f"Sweeping… fitting K={item.k}")
        elif isinstance(item, ExplorePoint):
            self._points[item.point.k] = item
            self.progress.setValue(min(99, int(100 * (item.index + 1) / item.count)))
            self._redraw()

    def _on_done(self, generation: int, sweep: Any) -> None:
        if generation != self._generation:
            return
        self._worker = None
        self.progress.setVisible(False)
        skipped = (
            f"; K above {sweep.n_distinct:,} (the image's colours) skipped" if sweep.skipped else ""
        )
        self.status.setText(
            f"{len(sweep.points)} K in {sweep.elapsed_s:.1f} s{skipped}. "
            "Hover a point to preview it, click it to use that K."
        )
        self._update_buttons()
        self.sweep_finished.emit()

    def _on_failed(self, generation: int, message: str, details: str) -> None:
        if generation != self._generation:
            return
        self._worker = None
        self.progress.setVisible(False)
        self.status.setText(f"Sweep failed: {message}")
        self._update_buttons()

    def _on_cancelled(self, generation: int) -> None:
        if generation == self._generation:
            self._worker = None
            self._update_buttons()

    def _on_thread_finished(self) -> None:
        worker = self.sender()
        if isinstance(worker, Worker) and worker in self._workers:
            self._workers.remove(worker)
            worker.deleteLater()

    def _update_buttons(self) -> None:
        running = self._worker is not None
        self.sweep_button.setEnabled(self._image is not None and not running)
        self.cancel_button.setEnabled(running)
        has_points = bool(self._points)
        self.use_target.setEnabled(has_points)
        self.use_budget.setEnabled(has_points)

    # ------------------------------------------------------------------ drawing
    def points(self) -> list[Any]:
        """Return the swept K's figures, in increasing K.

        Returns
        -------
        points : list of SweepPoint
        """
        return [self._points[k].point for k in sorted(self._points)]

    def _redraw(self) -> None:
        pts = self.points()
        xs = [_log2(p.k) for p in pts]
        self.size_curve.setData(xs, [p.png_bytes / 1000.0 for p in pts])
        psnr = [(x, p.psnr) for x, p in zip(xs, pts, strict=True) if math.isfinite(p.psnr)]
        self.psnr_curve.setData([x for x, _ in psnr], [y for _, y in psnr])
        self._update_buttons()

    # ------------------------------------------------------------------ hover and click
    def _k_at(self, scene_pos: QtCore.QPointF) -> int | None:
        if not self._points:
            return None
        for plot in (self.size_plot, self.psnr_plot):
            box = plot.getViewBox()
            if box.sceneBoundingRect().contains(scene_pos):
                x = box.mapSceneToView(scene_pos).x()
                ks = sorted(self._points)
                k = min(ks, key=lambda k: abs(_log2(k) - x))
                # within a third of the gap to the neighbours (on screen: the point's column)
                gaps = np.diff([_log2(v) for v in ks]) if len(ks) > 1 else np.array([1.0])
                if abs(_log2(k) - x) <= 0.5 * float(gaps.max()):
                    return k
        return None

    def _on_mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        k = self._k_at(scene_pos)
        if k is not None:
            self.show_preview(k)

    def _on_mouse_clicked(self, event: Any) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        k = self._k_at(event.scenePos())
        if k is not None:
            self.choose_k(k)

    def show_preview(self, k: int) -> None:
        """Show the preview and figures of a swept K (what hovering it does).

        Parameters
        ----------
        k : int
        """
        item = self._points.get(k)
        if item is None:
            return
        self._hover_k = k
        p = item.point
        image = qimage_from_array(item.preview)
        pixmap = QtGui.QPixmap.fromImage(image).scaled(
            self.preview.size(),
            QtCore.Qt.AspectRatioMode.KeepAspectRatio,
            QtCore.Qt.TransformationMode.FastTransformation,
        )
        self.preview.setPixmap(pixmap)
        ssim = f", SSIM {p.ssim:.3f}" if p.ssim is not None else ""
        psnr = f"{p.psnr:.1f} dB" if math.isfinite(p.psnr) else "lossless"
        larger = (
            " (larger than the original)"
            if self._original_bytes and p.png_bytes > self._original_bytes
            else ""
        )
        self.preview_caption.setText(
            f"<b>K = {p.k}</b>: PNG {format_bytes(p.png_bytes)}{larger}<br>"
            f"PSNR {psnr}{ssim}, ΔE00 {p.delta_e_mean:.2f}<br>"
            f"fitted in {p.fit_s:.2f} s — click to use it"
        )
        x = [_log2(k)]
        self.hover_marks[0].setData(x, [p.png_bytes / 1000.0])
        self.hover_marks[1].setData(x, [p.psnr] if math.isfinite(p.psnr) else [])

    def hovered_k(self) -> int | None:
        """Return the K whose preview is shown.

        Returns
        -------
        k : int or None
        """
        return self._hover_k

    def choose_k(self, k: int) -> None:
        """Use ``k`` (what clicking its point does): marks it and emits ``k_chosen``.

        Parameters
        ----------
        k : int
        """
        self.set_current_k(k)
        self.k_chosen.emit(int(k))

    def _use(self, what: str) -> None:
        if what == "psnr":
            k = best_k_for(self.points(), min_psnr=self.target.value())
            missing = f"no K swept reaches {self.target.value():g} dB"
        else:
            k = best_k_for(self.points(), max_bytes=self.budget.value() * 1000.0)
            missing = f"no K swept fits {self.budget.value():g} kB"
        if k is None:
            self.status.setText(f"Nothing to use: {missing}.")
            return
        self.choose_k(k)

    def _on_targets_edited(self) -> None:
        self.target_line.setValue(self.target.value())
        self.budget_line.setValue(self.budget.value())
        if not self._syncing:
            self.targets_edited.emit(
                str(self.auto.currentData()), float(self.target.value()), float(self.budget.value())
            )

    def target_values(self) -> dict[str, float]:
        """Return where the target lines are drawn.

        Returns
        -------
        values : dict
            ``{"psnr": dB, "size_kb": kB}``.
        """
        return {"psnr": float(self.target_line.value()), "size_kb": float(self.budget_line.value())}
