"""The importance brush and the eyedropper: tools that act on the image in the compare view.

:class:`ImportancePanel` holds an importance map (uint8, one value per pixel) painted with
a round brush: *Protect* paints 255, *Ignore* paints 0, unpainted pixels weigh
:data:`DEFAULT_IMPORTANCE` (so a protected pixel counts 8 times as much as an unpainted one
and an ignored pixel not at all; see :func:`quantize.pipeline.importance_weights`).  The
map is drawn over the image (green: protect, red: ignore), each stroke can be undone, and
*Re-run* fits again with it.  :class:`ImageTools` turns mouse presses on the compare view
into brush strokes or, when the palette editor's eyedropper is armed, into a picked colour.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.imaging import QImageItem, qimage_from_array

__all__ = ["DEFAULT_IMPORTANCE", "ImageTools", "ImportancePanel"]

#: Importance of an unpainted pixel (protect = 255 = 8x, ignore = 0).
DEFAULT_IMPORTANCE = 32
_MODES = {"off": "Off", "protect": "Protect", "ignore": "Ignore"}
_VALUE = {"protect": 255, "ignore": 0}
_OVERLAY = {"protect": (40, 220, 90, 120), "ignore": (235, 50, 50, 120)}
_MAX_UNDO = 20  # strokes kept for undo (one map copy each)


class ImportancePanel(QtWidgets.QWidget):
    """Brush controls and the painted importance map.

    Signals
    -------
    changed()
        The map changed (a stroke, undo, clear, or a new image).
    rerun_requested()
        The user asks for a fit with the map.

    Parameters
    ----------
    parent : QWidget, optional
    """

    changed = QtCore.Signal()
    rerun_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("importancePanel")
        self._map: np.ndarray | None = None
        self._painted = False
        self._undo: list[np.ndarray] = []
        self.mode = QtWidgets.QComboBox(objectName="brushMode")
        for key, label in _MODES.items():
            self.mode.addItem(label, key)
        self.mode.setToolTip(
            "Paint over the image: Protect makes pixels count 8x in the fit, Ignore leaves "
            "them out (they still get their nearest colour)"
        )
        self.radius = QtWidgets.QSpinBox(objectName="brushSize")
        self.radius.setRange(1, 500)
        self.radius.setValue(24)
        self.radius.setSuffix(" px")
        self.radius.setToolTip("Brush radius in image pixels")
        self.undo_button = QtWidgets.QPushButton("Undo stroke", objectName="brushUndo")
        self.undo_button.clicked.connect(self.undo)
        self.clear_button = QtWidgets.QPushButton("Clear", objectName="brushClear")
        self.clear_button.clicked.connect(self.clear)
        self.rerun_button = QtWidgets.QPushButton("Re-run with map", objectName="brushRerun")
        self.rerun_button.clicked.connect(self.rerun_requested.emit)
        self.status = QtWidgets.QLabel("Nothing painted")
        self.status.setWordWrap(True)
        form = QtWidgets.QFormLayout(self)
        form.addRow("&Brush", self.mode)
        form.addRow("&Radius", self.radius)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.undo_button)
        row.addWidget(self.clear_button)
        form.addRow(row)
        form.addRow(self.rerun_button)
        form.addRow(self.status)
        self._update()

    # ------------------------------------------------------------------ map
    def set_shape(self, shape: tuple[int, int] | None) -> None:
        """Start a new, unpainted map for an image of ``shape`` (rows, columns).

        Parameters
        ----------
        shape : tuple of int or None
        """
        self._map = None if shape is None else np.full(shape, DEFAULT_IMPORTANCE, np.uint8)
        self._painted = False
        self._undo.clear()
        self._update()
        self.changed.emit()

    def importance(self) -> np.ndarray | None:
        """Return the map when something is painted, else None (no weighting).

        Returns
        -------
        importance : ndarray of shape (M, N), uint8, or None
        """
        if self._map is None or not self._painted:
            return None
        return self._map

    def begin_stroke(self) -> bool:
        """Start a stroke (saved for undo); False when the brush is off or no image.

        Returns
        -------
        started : bool
        """
        if self._map is None or self.mode.currentData() == "off":
            return False
        self._undo.append(self._map.copy())
        del self._undo[:-_MAX_UNDO]
        return True

    def paint(self, row: float, col: float, last: tuple[float, float] | None = None) -> None:
        """Paint a disc (and the segment from ``last``) with the current mode.

        Parameters
        ----------
        row, col : float
            Image coordinates of the brush centre.
        last : tuple of float, optional
            The previous centre of this stroke.
        """
        mode = self.mode.currentData()
        if self._map is None or mode == "off":
            return
        r = float(self.radius.value())
        points = [(row, col)]
        if last is not None:
            steps = int(np.hypot(row - last[0], col - last[1]) / max(r / 2, 1)) + 1
            points = [
                (last[0] + (row - last[0]) * t, last[1] + (col - last[1]) * t)
                for t in np.linspace(0, 1, steps + 1)[1:]
            ]
        m, n = self._map.shape
        for pr, pc in points:
            r0, r1 = max(int(pr - r), 0), min(int(pr + r) + 1, m)
            c0, c1 = max(int(pc - r), 0), min(int(pc + r) + 1, n)
            if r0 >= r1 or c0 >= c1:
                continue
            yy, xx = np.ogrid[r0:r1, c0:c1]
            disc = (yy + 0.5 - pr) ** 2 + (xx + 0.5 - pc) ** 2 <= r * r
            self._map[r0:r1, c0:c1][disc] = _VALUE[mode]
        self._painted = True

    def end_stroke(self) -> None:
        """Finish a stroke: the overlay and the status follow."""
        self._update()
        self.changed.emit()

    def undo(self) -> None:
        """Undo the last stroke."""
        if not self._undo or self._map is None:
            return
        self._map = self._undo.pop()
        self._painted = bool((self._map != DEFAULT_IMPORTANCE).any())
        self._update()
        self.changed.emit()

    def clear(self) -> None:
        """Remove all painting (undoable)."""
        if self._map is None:
            return
        self._undo.append(self._map.copy())
        self._map[:] = DEFAULT_IMPORTANCE
        self._painted = False
        self._update()
        self.changed.emit()

    def overlay(self) -> np.ndarray | None:
        """Return the RGBA overlay of the painted map, or None when nothing is painted.

        Returns
        -------
        rgba : ndarray of shape (M, N, 4), uint8, or None
        """
        imp = self.importance()
        if imp is None:
            return None
        rgba = np.zeros(imp.shape + (4,), np.uint8)
        rgba[imp == 255] = _OVERLAY["protect"]
        rgba[imp == 0] = _OVERLAY["ignore"]
        return rgba

    def _update(self) -> None:
        has = self._map is not None
        self.undo_button.setEnabled(bool(self._undo))
        self.clear_button.setEnabled(has and self._painted)
        self.rerun_button.setEnabled(has)
        imp = self.importance()
        if imp is None:
            self.status.setText("Nothing painted: every pixel counts the same")
        else:
            protect = 100 * float(np.mean(imp == 255))
            ignore = 100 * float(np.mean(imp == 0))
            self.status.setText(f"Protected {protect:.1f} % of the pixels, ignored {ignore:.1f} %")


class ImageTools(QtCore.QObject):
    """Mouse tools on a compare view: the importance brush and the eyedropper.

    Parameters
    ----------
    compare : CompareView
        The view (its two graphics views and view boxes are used).
    panel : ImportancePanel
        The brush.
    pick : callable
        ``pick(row, col)`` receives the pixel clicked while the eyedropper is armed.
    """

    def __init__(self, compare: Any, panel: ImportancePanel, pick: Any) -> None:
        super().__init__(compare)
        self._compare = compare
        self._panel = panel
        self._pick = pick
        self._eyedropper = False
        self._stroke: tuple[float, float] | None = None
        self._overlay = QImageItem()
        self._overlay.setZValue(15)
        compare.left.addItem(self._overlay)
        self._overlay_right = QImageItem()
        self._overlay_right.setZValue(15)
        compare.right.addItem(self._overlay_right)
        self._timer = QtCore.QTimer(self, singleShot=True, interval=40)
        self._timer.timeout.connect(self.refresh_overlay)
        panel.changed.connect(self.refresh_overlay)
        panel.mode.currentIndexChanged.connect(self._update_cursor)
        self._views = [(compare.left_view, compare.left), (compare.right_view, compare.right)]
        for view, _ in self._views:
            view.viewport().installEventFilter(self)

    def set_eyedropper(self, on: bool) -> None:
        """Arm or disarm the eyedropper (the next click picks a colour).

        Parameters
        ----------
        on : bool
        """
        self._eyedropper = bool(on)
        self._update_cursor()

    def refresh_overlay(self) -> None:
        """Draw the painted map over both images."""
        rgba = self._panel.overlay()
        image = None if rgba is None else qimage_from_array(rgba)
        self._overlay.set_image(image)
        self._overlay_right.set_image(image)

    def _brush_on(self) -> bool:
        return self._panel.mode.currentData() != "off"

    def _update_cursor(self) -> None:
        shape = (
            QtCore.Qt.CursorShape.CrossCursor
            if self._eyedropper or self._brush_on()
            else QtCore.Qt.CursorShape.ArrowCursor
        )
        for view, _ in self._views:
            view.viewport().setCursor(shape)

    def _image_pos(self, watched: QtCore.QObject, pos: QtCore.QPointF) -> tuple[float, float]:
        for view, box in self._views:
            if watched is view.viewport():
                point = box.mapSceneToView(view.mapToScene(pos.toPoint()))
                return float(point.y()), float(point.x())
        return -1.0, -1.0

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: D102
        etype = event.type()
        if etype not in (
            QtCore.QEvent.Type.MouseButtonPress,
            QtCore.QEvent.Type.MouseMove,
            QtCore.QEvent.Type.MouseButtonRelease,
        ):
            return False
        mouse = cast(Any, event)
        left = mouse.button() == QtCore.Qt.MouseButton.LeftButton
        if etype == QtCore.QEvent.Type.MouseButtonPress and left and self._eyedropper:
            row, col = self._image_pos(watched, mouse.position())
            self._eyedropper = False
            self._update_cursor()
            self._pick(int(np.floor(row)), int(np.floor(col)))
            return True
        if not self._brush_on():
            return False
        if etype == QtCore.QEvent.Type.MouseButtonPress and left:
            if not self._panel.begin_stroke():
                return False
            self._stroke = self._image_pos(watched, mouse.position())
            self._panel.paint(*self._stroke)
            self._timer.start()
            return True
        if etype == QtCore.QEvent.Type.MouseMove and self._stroke is not None:
            here = self._image_pos(watched, mouse.position())
            self._panel.paint(*here, last=self._stroke)
            self._stroke = here
            if not self._timer.isActive():
                self._timer.start()
            return True
        if etype == QtCore.QEvent.Type.MouseButtonRelease and self._stroke is not None:
            self._stroke = None
            self._panel.end_stroke()
            return True
        return False
