"""Before/after comparison: side by side with linked zoom and pan, or a split slider."""

from __future__ import annotations

from typing import cast

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.imaging import QImageItem, alpha_qimage, qimage_from_array

__all__ = ["CompareView"]

_BACKGROUND = "#2b2b2b"
#: opacity (0-255) of the black veil over the pixels outside a highlighted cluster
_DIM_ALPHA = 170


def _make_view(name: str) -> tuple[pg.GraphicsView, pg.ViewBox]:
    view = pg.GraphicsView(background=_BACKGROUND)
    view.setObjectName(name)
    view.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
    box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
    box.setDefaultPadding(0.02)
    view.setCentralItem(box)
    return view, box


class CompareView(QtWidgets.QWidget):
    """Original and palette image with synchronised zoom/pan and a split-slider mode.

    Hold Space over the view (or the "Original" button) to flash the original in place of
    the result.  Zooming in shows nearest-neighbour pixels.

    Parameters
    ----------
    parent : QWidget, optional
        Parent widget.
    """

    mode_changed = QtCore.Signal(str)
    #: (row, column) of the image pixel under the mouse, or (-1, -1) outside the image
    hovered = QtCore.Signal(int, int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self._mode = "side"
        self._flash = False
        self._original: QtGui.QImage | None = None
        self._result: QtGui.QImage | None = None
        self._highlight_labels: np.ndarray | None = None
        self._highlight: int | None = None

        self.left_view, self.left = _make_view("compareLeft")
        self.right_view, self.right = _make_view("compareRight")
        self.right.setXLink(self.left)
        self.right.setYLink(self.left)

        self.original_item = QImageItem()
        self.left.addItem(self.original_item)
        # split mode: the result is drawn on the left view, clipped to the right of a line
        self._clip = QtWidgets.QGraphicsRectItem()
        self._clip.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
        self._clip.setBrush(QtGui.QBrush(QtCore.Qt.BrushStyle.NoBrush))
        self._clip.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape)
        self.split_item = QImageItem(self._clip)
        self.left.addItem(self._clip)
        self.split_line = pg.InfiniteLine(
            angle=90,
            movable=True,
            pen=pg.mkPen("#ffcc00", width=2),
            hoverPen=pg.mkPen("#fff", width=3),
        )
        self.split_line.setZValue(20)
        self.left.addItem(self.split_line, ignoreBounds=True)
        self.split_line.sigPositionChanged.connect(self._update_clip)
        self.left_overlay = QImageItem()
        self.left_overlay.setZValue(10)
        self.left.addItem(self.left_overlay)

        self.result_item = QImageItem()
        self.right.addItem(self.result_item)
        self.right_overlay = QImageItem()
        self.right_overlay.setZValue(10)
        self.right.addItem(self.right_overlay)

        self.left_title = QtWidgets.QLabel("Original")
        self.right_title = QtWidgets.QLabel("Result")
        for title in (self.left_title, self.right_title):
            title.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)

        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        grid.addWidget(self.left_title, 0, 0)
        grid.addWidget(self.right_title, 0, 1)
        grid.addWidget(self.left_view, 1, 0)
        grid.addWidget(self.right_view, 1, 1)
        grid.setRowStretch(1, 1)

        for view in (self.left_view, self.right_view):
            view.installEventFilter(self)
        self.left_view.scene().sigMouseMoved.connect(lambda pos: self._on_mouse(self.left, pos))
        self.right_view.scene().sigMouseMoved.connect(lambda pos: self._on_mouse(self.right, pos))
        self._apply_mode()

    # ------------------------------------------------------------------ content
    def set_original(self, rgb: np.ndarray | None) -> None:
        """Show a new original (clears the result and the highlight).

        Parameters
        ----------
        rgb : ndarray of shape (M, N, 3) or (M, N, 4), uint8, C-contiguous, or None
            Display pixels of the original.
        """
        self._original = None if rgb is None else qimage_from_array(rgb)
        self._result = None
        self.set_highlight_labels(None)
        self._refresh_items()
        if rgb is not None:
            self.split_line.setValue(rgb.shape[1] / 2)
        self.fit()

    def set_result(self, rgb: np.ndarray | None, labels: np.ndarray | None = None) -> None:
        """Show the palette image (and remember labels for cluster highlighting).

        Parameters
        ----------
        rgb : ndarray of shape (M, N, 3), uint8, C-contiguous, or None
            The palette image.
        labels : ndarray of shape (M, N), uint8 or uint16, optional
            Cluster labels for :meth:`highlight_cluster`.
        """
        self._result = None if rgb is None else qimage_from_array(rgb)
        self.set_highlight_labels(labels)
        self._refresh_items()

    def has_result(self) -> bool:
        """Return whether a result image is shown.

        Returns
        -------
        shown : bool
            ``True`` after :meth:`set_result` with an image.
        """
        return self._result is not None

    def set_highlight_labels(self, labels: np.ndarray | None) -> None:
        """Set the label map used by :meth:`highlight_cluster` and clear any highlight.

        Parameters
        ----------
        labels : ndarray of shape (M, N), uint8 or uint16, or None
            Cluster of each pixel.
        """
        self._highlight_labels = labels
        self.highlight_cluster(None)

    def highlight_cluster(self, k: int | None) -> None:
        """Dim every pixel not in cluster ``k`` (``None`` clears the highlight).

        The veil is a 1-byte-per-pixel opacity mask made by one comparison of the labels
        (a few ms on the GUI thread even for 12 MP), painted directly as an alpha image.

        Parameters
        ----------
        k : int or None
            Cluster index.
        """
        self._highlight = k
        if k is None or self._highlight_labels is None:
            self._highlight = None
            self.left_overlay.set_image(None)
            self.right_overlay.set_image(None)
            return
        veil = np.ascontiguousarray(np.not_equal(self._highlight_labels, k)).view(np.uint8)
        veil *= _DIM_ALPHA  # 0 inside cluster k, _DIM_ALPHA elsewhere
        overlay = alpha_qimage(veil)
        self.left_overlay.set_image(overlay)
        self.right_overlay.set_image(overlay)

    def highlighted_cluster(self) -> int | None:
        """Return the highlighted cluster, or ``None``.

        Returns
        -------
        k : int or None
            Highlighted cluster.
        """
        return self._highlight

    # ------------------------------------------------------------------ modes
    def set_mode(self, mode: str) -> None:
        """Switch between ``"side"`` (side by side) and ``"split"`` (split slider).

        Parameters
        ----------
        mode : {"side", "split"}
            Display mode.
        """
        if mode not in ("side", "split"):
            raise ValueError(f"unknown compare mode {mode!r}")
        if mode != self._mode:
            self._mode = mode
            self._apply_mode()
            self.mode_changed.emit(mode)

    def mode(self) -> str:
        """Return the display mode.

        Returns
        -------
        mode : {"side", "split"}
            Current mode.
        """
        return self._mode

    def set_flash_original(self, on: bool) -> None:
        """Show the original in place of the result while ``on``.

        Parameters
        ----------
        on : bool
            Whether the original is flashed.
        """
        if on != self._flash:
            self._flash = on
            self._refresh_items()

    def flashing(self) -> bool:
        """Return whether the original is being flashed.

        Returns
        -------
        on : bool
            Flash state.
        """
        return self._flash

    def _apply_mode(self) -> None:
        split = self._mode == "split"
        self.right_view.setVisible(not split)
        self.right_title.setVisible(not split)
        self.left_title.setText("Original | Result (drag the line)" if split else "Original")
        self._refresh_items()

    def _refresh_items(self) -> None:
        split = self._mode == "split"
        shown = self._original if self._flash else self._result
        self.original_item.set_image(self._original)
        self.result_item.set_image(shown)
        self.split_item.set_image(shown if split else None)
        self._clip.setVisible(split and shown is not None)
        self.split_line.setVisible(split and self._original is not None)
        self.right_title.setText("Original (flash)" if self._flash else "Result")
        self._update_clip()

    def _update_clip(self) -> None:
        image = self._original
        if image is None:
            return
        x = float(np.clip(self.split_line.value(), 0, image.width()))
        self._clip.setRect(QtCore.QRectF(x, 0, image.width() - x, image.height()))

    # ------------------------------------------------------------------ zoom
    def zoom(self, factor: float) -> None:
        """Zoom both views about their centre.

        Parameters
        ----------
        factor : float
            > 1 zooms in, < 1 zooms out.
        """
        self.left.scaleBy((1.0 / factor, 1.0 / factor))

    def fit(self) -> None:
        """Fit the whole image in the view."""
        if self._original is None:
            return
        self.left.setRange(
            QtCore.QRectF(0, 0, self._original.width(), self._original.height()), padding=0.02
        )

    def actual_size(self) -> None:
        """Zoom to 100 % (one image pixel per screen pixel) about the current centre."""
        if self._original is None:
            return
        rect = self.left.viewRect()
        size = self.left.size()
        width, height = max(1.0, size.width()), max(1.0, size.height())
        center = rect.center()
        self.left.setRange(
            QtCore.QRectF(center.x() - width / 2, center.y() - height / 2, width, height),
            padding=0,
        )

    def pixel_scale(self) -> float:
        """Return screen pixels per image pixel.

        Returns
        -------
        scale : float
            Current zoom factor (1.0 at 100 %).
        """
        rect = self.left.viewRect()
        if rect.width() <= 0:
            return 1.0
        return float(self.left.size().width() / rect.width())

    def _on_mouse(self, box: pg.ViewBox, scene_pos: QtCore.QPointF) -> None:
        if self._original is None:
            return
        point = box.mapSceneToView(scene_pos)
        row, col = int(np.floor(point.y())), int(np.floor(point.x()))
        inside = 0 <= row < self._original.height() and 0 <= col < self._original.width()
        self.hovered.emit(row if inside else -1, col if inside else -1)

    # ------------------------------------------------------------------ events
    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: D102
        etype = event.type()
        if etype in (QtCore.QEvent.Type.KeyPress, QtCore.QEvent.Type.KeyRelease):
            # Qt passes key events as QEvent; the type checked above makes this one a QKeyEvent
            key_event = cast(QtGui.QKeyEvent, event)
            if key_event.key() == QtCore.Qt.Key.Key_Space:
                if not key_event.isAutoRepeat():
                    self.set_flash_original(etype == QtCore.QEvent.Type.KeyPress)
                return True
        elif etype == QtCore.QEvent.Type.FocusOut:
            self.set_flash_original(False)
        return super().eventFilter(watched, event)
