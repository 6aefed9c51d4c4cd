"""The segmentation panel: spatial smoothing, overlay view, region statistics, colour models.

Changing the smoothing strength or the minimum region size re-draws without refitting: the
fitted result is kept and :func:`quantize.segment.segment_result` runs on a worker thread
(a newer setting supersedes a running one through a generation counter).  The overlay view
shows the class colours over the photo with the class outlines; clicking a region selects
its class and its row in the statistics tables.  A colour model can be saved and applied to
the open image (no refit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.workers import Worker

__all__ = ["OVERLAY_SIDE", "SegmentationPanel", "SegmentationView", "StatsModel"]

#: longest side of the overlay shown (pixels); the statistics use every pixel
OVERLAY_SIDE = 1024
#: slider steps per unit of smoothing strength
_STEPS = 10


@dataclass
class SegmentationView:
    """What a smoothing run hands to the panel (prepared off the GUI thread).

    Attributes
    ----------
    result : QuantizeResult
        The smoothed (or, with nothing to do, the fitted) result.
    stats : RegionStats
    photo : ndarray of shape (m, n, 3), uint8
        The photo at display size.
    labels : ndarray of shape (m, n)
        The labels at display size.
    step : int
        Sub-sampling step from the full image.
    soft_maps : object
        :class:`app.model.SoftMaps` of the result.
    class_rows, region_rows : list of (row, QColor)
        The statistics tables' rows (built off the GUI thread: a photo can have
        hundreds of thousands of regions).
    overlay : ndarray of shape (m, n, 3), uint8, or None
        The overlay at display size for ``overlay_settings`` (opacity, outlines), blended
        off the GUI thread too.
    overlay_settings : (float, bool)
    """

    result: Any
    stats: Any
    photo: np.ndarray
    labels: np.ndarray
    step: int
    soft_maps: Any
    class_rows: list[tuple[list[Any], QtGui.QColor]]
    region_rows: list[tuple[list[Any], QtGui.QColor]]
    overlay: np.ndarray | None = None
    overlay_settings: tuple[float, bool] = (0.5, True)


def _prepare(
    base: Any,
    strength: float,
    min_region: int,
    should_cancel: Any,
    overlay_settings: tuple[float, bool] = (0.5, True),
) -> SegmentationView:
    from app.tasks import soft_maps_of
    from quantize.io.overlay import _rgb8, overlay_image
    from quantize.io.stats_file import result_stats
    from quantize.segment import segment_result

    result = segment_result(base, strength, min_region, should_cancel=should_cancel)
    stats = result_stats(result)
    height, width = result.labels.shape
    step = max(1, int(np.ceil(max(height, width) / OVERLAY_SIDE)))
    photo = np.ascontiguousarray(_rgb8(np.asarray(result.image)[::step, ::step]))
    labels = np.ascontiguousarray(np.asarray(result.labels)[::step, ::step])
    class_rows, region_rows = _table_rows(stats)
    opacity, outlines = overlay_settings
    overlay = overlay_image(photo, labels, result.palette, opacity=opacity, outlines=outlines)
    return SegmentationView(
        result, stats, photo, labels, step, soft_maps_of(result, should_cancel),
        class_rows, region_rows, overlay, overlay_settings,
    )  # fmt: skip


def _table_rows(
    st: Any,
) -> tuple[list[tuple[list[Any], QtGui.QColor]], list[tuple[list[Any], QtGui.QColor]]]:
    swatch = [QtGui.QColor(int(c[0]), int(c[1]), int(c[2])) for c in st.palette]
    classes = []
    for r in st.class_rows():
        k = r["class"]
        row = [
            k, r["color"], r["pixels"], 100.0 * r["share"], r["regions"], r["mean_color"] or "",
            *(r["centroid"] or ["", ""]), " ".join(map(str, r["bbox"])) if r["bbox"] else "",
        ]  # fmt: skip
        classes.append((row, swatch[k]))
    regions = []
    for i in range(st.n_regions):
        bbox = st.region_bbox[i]
        mean = st.region_mean[i]
        row = [
            i + 1, int(st.region_class[i]), int(st.region_pixels[i]),
            100.0 * float(st.region_share[i]),
            "#{:02x}{:02x}{:02x}".format(*(int(round(v)) for v in mean)),
            round(float(st.region_centroid[i, 0]), 2), round(float(st.region_centroid[i, 1]), 2),
            f"{bbox[0]} {bbox[1]} {bbox[2]} {bbox[3]}",
        ]  # fmt: skip
        regions.append((row, swatch[int(st.region_class[i])]))
    return classes, regions


class StatsModel(QtCore.QAbstractTableModel):
    """A sortable table of numbers and texts (classes or regions) for a QTableView.

    Parameters
    ----------
    headers : list of str
    parent : QObject, optional
    """

    def __init__(self, headers: list[str], parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.headers = headers
        self._rows: list[list[Any]] = []
        self._colours: list[QtGui.QColor | None] = []

    def set_rows(self, rows: list[list[Any]], colours: list[QtGui.QColor | None]) -> None:
        """Replace the rows (first column: the key, class or region id).

        Parameters
        ----------
        rows : list of list
        colours : list of QColor or None
            Swatch of each row (decoration of the first column).
        """
        self.beginResetModel()
        self._rows = rows
        self._colours = colours
        self.endResetModel()

    def rowCount(self, parent: Any = None) -> int:  # noqa: D102, N802
        return len(self._rows)

    def columnCount(self, parent: Any = None) -> int:  # noqa: D102, N802
        return len(self.headers)

    def data(self, index: Any, role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: D102
        if not index.isValid():
            return None
        value = self._rows[index.row()][index.column()]
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            if isinstance(value, float):
                return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"
            return str(value)
        if role == QtCore.Qt.ItemDataRole.DecorationRole and index.column() == 0:
            return self._colours[index.row()]
        if role == QtCore.Qt.ItemDataRole.TextAlignmentRole and not isinstance(value, str):
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(  # noqa: D102, N802
        self, section: int, orientation: Any, role: int = QtCore.Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            role == QtCore.Qt.ItemDataRole.DisplayRole
            and orientation == QtCore.Qt.Orientation.Horizontal
        ):
            return self.headers[section]
        return None

    def sort(self, column: int, order: Any = QtCore.Qt.SortOrder.AscendingOrder) -> None:  # noqa: D102
        self.layoutAboutToBeChanged.emit()
        pairs = list(zip(self._rows, self._colours, strict=True))
        pairs.sort(
            key=lambda p: (isinstance(p[0][column], str), p[0][column]),
            reverse=order == QtCore.Qt.SortOrder.DescendingOrder,
        )
        self._rows = [p[0] for p in pairs]
        self._colours = [p[1] for p in pairs]
        self.layoutChanged.emit()

    def row_of(self, key: int) -> int:
        """Return the row whose first column is ``key`` (-1 if none).

        Parameters
        ----------
        key : int

        Returns
        -------
        row : int
        """
        for i, row in enumerate(self._rows):
            if row[0] == key:
                return i
        return -1

    def key_at(self, row: int) -> int:
        """Return the key (first column) of a row.

        Parameters
        ----------
        row : int

        Returns
        -------
        key : int
        """
        return int(self._rows[row][0])


_CLASS_HEADERS = [
    "class", "colour", "pixels", "share %", "regions", "mean colour",
    "centroid row", "centroid col", "bbox",
]  # fmt: skip
_REGION_HEADERS = [
    "region", "class", "pixels", "share %", "mean colour", "centroid row", "centroid col", "bbox",
]  # fmt: skip


class SegmentationPanel(QtWidgets.QWidget):
    """Smoothing controls, overlay view, statistics tables and colour models.

    Signals
    -------
    smoothed(object)
        A :class:`SegmentationView` for the current settings (the main window shows its
        soft maps and exports its result).
    class_selected(int)
        A region was clicked or a table row chosen: its class.
    failed(str, str)
        Smoothing, saving or applying a model failed (message naming the file, details).
    """

    smoothed = QtCore.Signal(object)
    class_selected = QtCore.Signal(int)
    failed = QtCore.Signal(str, str)
    model_applied = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("segmentationPanel")
        self._base: Any = None
        self._view: SegmentationView | None = None
        self._generation = 0
        self._workers: list[Worker] = []
        self._last_folder = str(Path.home())
        self._dirty = False

        self.strength = QtWidgets.QSlider(
            QtCore.Qt.Orientation.Horizontal, objectName="smoothSlider"
        )
        self.strength.setRange(0, 5 * _STEPS)
        self.strength.setToolTip(
            "Spatial prior (Potts, mean field): nats per agreeing neighbour; 0 = colour only"
        )
        self.strength_label = QtWidgets.QLabel("off")
        self.strength_label.setMinimumWidth(36)
        self.min_region = QtWidgets.QSpinBox(objectName="minRegionSpin")
        self.min_region.setRange(0, 1_000_000)
        self.min_region.setSuffix(" px")
        self.min_region.setSpecialValueText("off")
        self.min_region.setToolTip("Merge connected regions smaller than this into a neighbour")
        self.min_region.setKeyboardTracking(False)
        self.opacity = QtWidgets.QSlider(
            QtCore.Qt.Orientation.Horizontal, objectName="opacitySlider"
        )
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setToolTip("Opacity of the class colours over the photo")
        self.outlines = QtWidgets.QCheckBox("Outlines", objectName="outlinesCheck")
        self.outlines.setChecked(True)
        self.save_model_button = QtWidgets.QPushButton("Save model…", objectName="saveModelButton")
        self.apply_model_button = QtWidgets.QPushButton(
            "Apply model…", objectName="applyModelButton"
        )
        self.save_model_button.setToolTip(
            "Save the colour classes to label other images the same way"
        )
        self.apply_model_button.setToolTip(
            "Label the open image with a saved colour model (no refit)"
        )
        self.status = QtWidgets.QLabel("Run a quantization to segment the image")
        self.status.setWordWrap(True)

        def label(text: str, buddy: QtWidgets.QWidget) -> QtWidgets.QLabel:
            widget = QtWidgets.QLabel(text)
            widget.setBuddy(buddy)
            return widget

        controls = QtWidgets.QGridLayout()
        controls.addWidget(label("&Smoothing", self.strength), 0, 0)
        controls.addWidget(self.strength, 0, 1)
        controls.addWidget(self.strength_label, 0, 2)
        controls.addWidget(label("Min &region", self.min_region), 0, 3)
        controls.addWidget(self.min_region, 0, 4)
        controls.addWidget(label("&Opacity", self.opacity), 1, 0)
        controls.addWidget(self.opacity, 1, 1)
        controls.addWidget(self.outlines, 1, 2)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.save_model_button)
        buttons.addWidget(self.apply_model_button)
        controls.addLayout(buttons, 1, 3, 1, 2)
        controls.setColumnStretch(1, 1)

        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("#2b2b2b")
        self.view.setMinimumSize(320, 220)
        self.view_box = self.view.addViewBox(lockAspect=True, invertY=True)
        self.view_box.setMenuEnabled(False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.view.scene().sigMouseClicked.connect(self._on_view_clicked)

        self.class_model = StatsModel(_CLASS_HEADERS, self)
        self.region_model = StatsModel(_REGION_HEADERS, self)
        self.class_table = self._table(self.class_model, "classTable")
        self.region_table = self._table(self.region_model, "regionTable")
        self.class_table.clicked.connect(
            lambda index: self.select_class(self.class_model.key_at(index.row()))
        )
        self.region_table.clicked.connect(
            lambda index: self.select_region(self.region_model.key_at(index.row()))
        )
        tables = QtWidgets.QTabWidget()
        tables.addTab(self.class_table, "Classes")
        tables.addTab(self.region_table, "Regions")
        self.tables = tables

        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        splitter.addWidget(self.view)
        splitter.addWidget(tables)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        layout.addWidget(splitter, 1)

        self._timer = QtCore.QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self._start)
        self.strength.valueChanged.connect(self._on_settings)
        self.min_region.valueChanged.connect(self._on_settings)
        self.opacity.valueChanged.connect(self._draw)
        self.outlines.toggled.connect(self._draw)
        self.save_model_button.clicked.connect(lambda: self.save_model())
        self.apply_model_button.clicked.connect(lambda: self.apply_model())
        self._update_enabled()

    @staticmethod
    def _table(model: StatsModel, name: str) -> QtWidgets.QTableView:
        table = QtWidgets.QTableView(objectName=name)
        table.setModel(model)
        table.setSortingEnabled(True)
        table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setStretchLastSection(True)
        table.horizontalHeader().setResizeContentsPrecision(100)
        return table

    # ------------------------------------------------------------------ public API
    def settings(self) -> tuple[float, int]:
        """Return the smoothing strength and the minimum region size shown.

        Returns
        -------
        strength : float
        min_region : int
        """
        return self.strength.value() / _STEPS, int(self.min_region.value())

    def set_settings(self, strength: float, min_region: int) -> None:
        """Show smoothing settings (re-draws when a result is shown).

        Parameters
        ----------
        strength : float
        min_region : int
        """
        self.strength.setValue(int(round(strength * _STEPS)))
        self.min_region.setValue(int(min_region))

    def set_result(self, result: Any) -> None:
        """Segment a new fitted result with the current settings.

        Parameters
        ----------
        result : QuantizeResult
        """
        self._base = result.unsmoothed() if result is not None else None
        self._update_enabled()
        self._view = None  # what was shown belongs to the previous result
        if result is None:
            self._generation += 1
            self.image_item.clear()
            self.class_model.set_rows([], [])
            self.region_model.set_rows([], [])
            return
        strength, min_region = self.settings()
        if not self._shown() and strength == 0 and min_region <= 1:
            # nothing changes the labels: segment when first shown (its connected regions
            # hold the interpreter lock for about 0.1 s on a 12 MP photo)
            self._dirty = True
            return
        self._start()

    def _shown(self) -> bool:
        # a dock behind another tab can count as visible while nothing of it is on screen
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def show_pending(self) -> None:
        """Segment the current result now if that was put off while the panel was hidden."""
        if self._dirty and self._base is not None:
            self._start()

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: D102, N802
        super().showEvent(event)
        self.show_pending()

    def current(self) -> SegmentationView | None:
        """Return what the panel shows (``None`` before the first result).

        Returns
        -------
        view : SegmentationView or None
        """
        return self._view

    def is_busy(self) -> bool:
        """Return whether a smoothing run is pending or running.

        Returns
        -------
        busy : bool
        """
        return self._timer.isActive() or any(w.isRunning() for w in self._workers)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel and wait for the smoothing threads.

        Parameters
        ----------
        timeout_ms : int

        Returns
        -------
        clean : bool
        """
        self._timer.stop()
        clean = True
        for worker in list(self._workers):
            worker.request_cancel()
            clean &= worker.wait(timeout_ms)
        return clean

    # ------------------------------------------------------------------ smoothing
    def _update_enabled(self) -> None:
        has = self._base is not None
        self.save_model_button.setEnabled(has)
        self.apply_model_button.setEnabled(has)

    def _on_settings(self) -> None:
        strength, min_region = self.settings()
        self.strength_label.setText("off" if strength == 0 else f"{strength:.1f}")
        if self._base is not None:
            self.status.setText("Smoothing…")
            self._timer.start()

    def _start(self) -> None:
        self._timer.stop()
        if self._base is None:
            return
        for worker in self._workers:
            worker.request_cancel()
        self._dirty = False
        self._generation += 1
        strength, min_region = self.settings()
        base = self._base
        overlay_settings = self.overlay_settings()
        worker = Worker(
            lambda cancel: _prepare(base, strength, min_region, cancel, overlay_settings),
            self._generation,
            parent=self,
        )
        worker.succeeded.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        # a bound slot, as the run controller does: a lambda holding the thread object would
        # tie it into a reference cycle that the garbage collector may break on any thread
        worker.finished.connect(self._on_thread_finished)
        self._workers.append(worker)
        self.status.setText("Smoothing…")
        worker.start()

    def _on_thread_finished(self) -> None:
        worker = self.sender()
        if not isinstance(worker, Worker):
            return
        if worker in self._workers:
            self._workers.remove(worker)
        worker.deleteLater()

    def _on_failed(self, key: int, message: str, details: str) -> None:
        if key == self._generation:
            self.status.setText("Smoothing failed")
            self.failed.emit(f"Smoothing failed: {message}", details)

    def _on_done(self, key: int, view: SegmentationView) -> None:
        if key != self._generation:  # a newer setting is on its way
            return
        self._view = view
        st = view.stats
        seg = view.result.segmentation
        text = f"{st.n_regions:,} regions in {st.n_classes} classes"
        if seg is not None:
            text += (
                f" · smoothing {seg.settings.strength:g} ({seg.n_sweeps} sweeps)"
                f" · {seg.n_merged:,} small regions merged"
            )
        self.status.setText(text)
        self._draw()
        # the tables in an event of their own: with the overlay they would hold the GUI
        # thread for longer than a frame on a 12 MP photo
        QtCore.QTimer.singleShot(0, self._finish_done)

    def _finish_done(self) -> None:
        view = self._view
        if view is None:
            return
        self._fill_tables(view)
        self.smoothed.emit(view)

    def _fill_tables(self, view: SegmentationView) -> None:
        for model, rows in (
            (self.class_model, view.class_rows),
            (self.region_model, view.region_rows),
        ):
            model.set_rows([r for r, _ in rows], [c for _, c in rows])
        self.class_table.resizeColumnsToContents()
        self.region_table.resizeColumnsToContents()  # sizes from the first 100 rows only

    def overlay(self) -> np.ndarray | None:
        """Return the overlay shown (display size), or ``None``.

        Returns
        -------
        rgb : ndarray of shape (m, n, 3), uint8, or None
        """
        if self._view is None:
            return None
        from quantize.io.overlay import overlay_image

        v = self._view
        if v.overlay is not None and v.overlay_settings == self.overlay_settings():
            return v.overlay  # blended by the worker
        return overlay_image(
            v.photo,
            v.labels,
            v.result.palette,
            opacity=self.opacity.value() / 100.0,
            outlines=self.outlines.isChecked(),
        )

    def overlay_settings(self) -> tuple[float, bool]:
        """Return the overlay view's opacity (0-1) and whether it draws outlines.

        Returns
        -------
        opacity : float
        outlines : bool
            What an exported overlay PNG uses too.
        """
        return self.opacity.value() / 100.0, self.outlines.isChecked()

    def _draw(self) -> None:
        rgb = self.overlay()
        if rgb is None:
            return
        self.image_item.setImage(rgb, autoLevels=False, levels=(0, 255))
        self.view_box.autoRange(padding=0.02)

    # ------------------------------------------------------------------ selection
    def pixel_at(self, scene_pos: QtCore.QPointF) -> tuple[int, int] | None:
        """Return the full-image (row, col) under a scene position, or ``None``.

        Parameters
        ----------
        scene_pos : QPointF

        Returns
        -------
        pixel : (int, int) or None
        """
        if self._view is None:
            return None
        p = self.image_item.mapFromScene(scene_pos)
        r, c = int(np.floor(p.y())), int(np.floor(p.x()))
        m, n = self._view.labels.shape
        if not (0 <= r < m and 0 <= c < n):
            return None
        step = self._view.step
        h, w = self._view.result.labels.shape
        return min(r * step, h - 1), min(c * step, w - 1)

    def _on_view_clicked(self, event: Any) -> None:
        pixel = self.pixel_at(event.scenePos())
        if pixel is not None:
            self.select_pixel(*pixel)

    def select_pixel(self, row: int, col: int) -> None:
        """Select the region under a full-image pixel (its class and table rows).

        Parameters
        ----------
        row, col : int
        """
        if self._view is None:
            return
        region = int(self._view.stats.regions.ids[row, col])
        if region > 0:
            self.select_region(region)

    def select_region(self, region: int) -> None:
        """Select a region's row and its class's row; emit ``class_selected``.

        Parameters
        ----------
        region : int
            Region id (from 1).
        """
        if self._view is None:
            return
        k = int(self._view.stats.region_class[region - 1])
        self._select_row(self.region_table, self.region_model.row_of(region))
        self._select_row(self.class_table, self.class_model.row_of(k))
        self.class_selected.emit(k)

    def select_class(self, k: int) -> None:
        """Select a class's row and emit ``class_selected``.

        Parameters
        ----------
        k : int
        """
        self._select_row(self.class_table, self.class_model.row_of(k))
        self.class_selected.emit(int(k))

    @staticmethod
    def _select_row(table: QtWidgets.QTableView, row: int) -> None:
        if row < 0:
            return
        table.selectRow(row)
        table.scrollTo(table.model().index(row, 0))

    # ------------------------------------------------------------------ models
    def save_model(self, path: str | Path | None = None) -> Path | None:
        """Save the colour model of the result shown (asks for a file without ``path``).

        Parameters
        ----------
        path : str or Path, optional

        Returns
        -------
        path : Path or None
            The file written, ``None`` if cancelled or failed (``failed`` is emitted).
        """
        result = self._view.result if self._view is not None else self._base
        if result is None:
            return None
        if path is None:
            name, _ = QtWidgets.QFileDialog.getSaveFileName(
                self, "Save colour model", str(Path(self._last_folder) / "colours.model.json"),
                "Colour models (*.json)",
            )  # fmt: skip
            if not name:
                return None
            path = name
        from quantize.io.export import ExportError, export_targets

        try:  # the file dialog already asked before replacing an existing file
            written = export_targets(result, [("colour_model", Path(path))], overwrite=True)[0]
        except (ExportError, ValueError) as exc:
            self.failed.emit(str(exc), "")
            return None
        self._last_folder = str(written.parent)
        self.status.setText(f"Saved the colour model to {written}")
        return written

    def apply_model(self, path: str | Path | None = None) -> Any:
        """Label the open image with a saved colour model, without refitting.

        The model's smoothing settings are shown and used.

        Parameters
        ----------
        path : str or Path, optional
            Asks for a file without it.

        Returns
        -------
        result : QuantizeResult or None
            The applied (not yet smoothed) result; ``None`` if cancelled or refused.
        """
        if self._base is None:
            return None
        if path is None:
            name, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Apply colour model", self._last_folder, "Colour models (*.json)"
            )
            if not name:
                return None
            path = name
        from quantize.io.load import LoadError
        from quantize.io.model_file import apply_model, load_model

        try:
            model = load_model(path)
            result = apply_model(self._base.image, model)
        except (LoadError, ValueError) as exc:
            self.failed.emit(str(exc), "")
            return None
        self._last_folder = str(Path(path).parent)
        if model.smoothing is not None:
            self.strength.blockSignals(True)
            self.min_region.blockSignals(True)
            self.set_settings(model.smoothing.strength, model.smoothing.min_region)
            self.strength.blockSignals(False)
            self.min_region.blockSignals(False)
            self._on_settings()
        self.model_applied.emit(result)
        self.set_result(result)
        return result
