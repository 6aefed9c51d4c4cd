"""Before/after comparison: side by side with linked zoom and pan, or a split slider."""

from __future__ import annotations

from typing import cast

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.imaging import QImageItem, alpha_qimage, qimage_from_array

__all__ = ["EMPTY_HINT", "CheckerItem", "CompareView", "veil_is_light"]

_BACKGROUND = "#2b2b2b"
#: opacity (0-255) of the veil over the pixels outside a highlighted cluster
_DIM_ALPHA = 170
#: a cluster darker than this (Rec. 601 luma, 0-255) is highlighted with a light veil: a
#: black veil would leave a dark cluster as dark as everything around it
_DARK_LUMA = 100
#: zoom limits: the whole image never smaller than this share of the view, and at least
#: this many image pixels across (a 64x zoom on a photo)
_MIN_VIEW_SHARE = 0.25
_MIN_PIXELS_ACROSS = 12
#: side length (screen pixels) of the transparency checkerboard's squares
_CHECKER_PX = 8
EMPTY_HINT = (
    "No image yet.\n\nOpen one with File → Open (Ctrl+O), drop an image file here,\n"
    "paste one with Ctrl+V, or try File → Open Sample Photo."
)


class CheckerItem(QtWidgets.QGraphicsObject):
    """A grey checkerboard under transparent pixels, its squares a constant screen size."""

    def __init__(self) -> None:
        super().__init__()
        self._rect = QtCore.QRectF()
        tile = QtGui.QPixmap(2 * _CHECKER_PX, 2 * _CHECKER_PX)
        tile.fill(QtGui.QColor("#9a9a9a"))
        painter = QtGui.QPainter(tile)
        light = QtGui.QColor("#d0d0d0")
        painter.fillRect(0, 0, _CHECKER_PX, _CHECKER_PX, light)
        painter.fillRect(_CHECKER_PX, _CHECKER_PX, _CHECKER_PX, _CHECKER_PX, light)
        painter.end()
        self._tile = tile
        self.setZValue(-1)

    def set_size(self, width: int, height: int) -> None:
        """Cover ``width`` x ``height`` image pixels (0 x 0: nothing).

        Parameters
        ----------
        width, height : int
        """
        self.prepareGeometryChange()
        self._rect = QtCore.QRectF(0, 0, width, height)
        self.update()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: D102 (Qt override)
        return self._rect

    def paint(self, painter: QtGui.QPainter, option: object, widget: object = None) -> None:  # noqa: D102
        if self._rect.isEmpty():
            return
        transform = painter.worldTransform()
        scale = max(abs(transform.m11()), abs(transform.m22()), 1e-9)
        brush = QtGui.QBrush(self._tile)
        brush.setTransform(QtGui.QTransform.fromScale(1.0 / scale, 1.0 / scale))
        painter.fillRect(self._rect, brush)


def veil_is_light(color: np.ndarray) -> bool:
    """Return whether a cluster of this colour is highlighted with a white veil.

    Parameters
    ----------
    color : ndarray of shape (3,), uint8

    Returns
    -------
    light : bool
        For dark colours (luma below 100 of 255).
    """
    r, g, b = (float(v) for v in np.asarray(color)[:3])
    return 0.299 * r + 0.587 * g + 0.114 * b < _DARK_LUMA


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
        self._stale = ""
        self._orientation = "horizontal"
        self._palette: np.ndarray | None = None
        self._light_veil = False

        self.left_view, self.left = _make_view("compareLeft")
        self.right_view, self.right = _make_view("compareRight")
        self.right.setXLink(self.left)
        self.right.setYLink(self.left)

        self.checkers = (CheckerItem(), CheckerItem())
        self.left.addItem(self.checkers[0])
        self.right.addItem(self.checkers[1])
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

        self.empty_hint = QtWidgets.QLabel(EMPTY_HINT, objectName="emptyHint")
        self.empty_hint.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setStyleSheet(
            f"background: {_BACKGROUND}; color: #d8d8d8; font-size: 15px; padding: 24px;"
        )
        self.grid = QtWidgets.QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self._arrange("horizontal")

        for view in (self.left_view, self.right_view):
            view.installEventFilter(self)
        self.left_view.scene().sigMouseMoved.connect(lambda pos: self._on_mouse(self.left, pos))
        self.right_view.scene().sigMouseMoved.connect(lambda pos: self._on_mouse(self.right, pos))
        self._apply_mode()

    # ------------------------------------------------------------------ layout
    def orientation(self) -> str:
        """Return how the two panes of "side by side" are placed.

        Returns
        -------
        orientation : {"horizontal", "vertical"}
            Left and right, or one above the other (chosen so that the image is shown as
            large as possible: a landscape photo in a wide window goes one above the other
            when that gives it more pixels).
        """
        return self._orientation

    def _arrange(self, orientation: str) -> None:
        self._orientation = orientation
        for widget in (self.left_title, self.right_title, self.left_view, self.right_view):
            self.grid.removeWidget(widget)
        self.grid.removeWidget(self.empty_hint)
        for i in range(4):
            self.grid.setRowStretch(i, 0)
            self.grid.setColumnStretch(i, 0)
        if orientation == "horizontal":
            self.grid.addWidget(self.left_title, 0, 0)
            self.grid.addWidget(self.right_title, 0, 1)
            self.grid.addWidget(self.left_view, 1, 0)
            self.grid.addWidget(self.right_view, 1, 1)
            self.grid.addWidget(self.empty_hint, 0, 0, 2, 2)
            self.grid.setRowStretch(1, 1)
            self.grid.setColumnStretch(0, 1)
            self.grid.setColumnStretch(1, 1)
        else:
            self.grid.addWidget(self.left_title, 0, 0)
            self.grid.addWidget(self.left_view, 1, 0)
            self.grid.addWidget(self.right_title, 2, 0)
            self.grid.addWidget(self.right_view, 3, 0)
            self.grid.addWidget(self.empty_hint, 0, 0, 4, 1)
            self.grid.setRowStretch(1, 1)
            self.grid.setRowStretch(3, 1)
            self.grid.setColumnStretch(0, 1)
        self.empty_hint.raise_()

    def _best_orientation(self) -> str:
        if self._original is None or self._mode != "side":
            return self._orientation
        w, h = self._original.width(), self._original.height()
        width, height = max(self.width(), 1), max(self.height(), 1)
        side = min(width / 2 / w, height / h)
        stacked = min(width / w, height / 2 / h)
        return "vertical" if stacked > side * 1.05 else "horizontal"

    def _update_orientation(self) -> None:
        orientation = self._best_orientation()
        if orientation != self._orientation:
            self._arrange(orientation)
            QtCore.QTimer.singleShot(0, self.fit)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: D102
        super().resizeEvent(event)
        self._update_orientation()
        if self._original is not None:
            self._set_limits(self._original.width(), self._original.height())

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
        self._stale = ""
        self.set_highlight_labels(None)
        transparent = rgb is not None and rgb.ndim == 3 and rgb.shape[2] == 4
        transparent = transparent and bool((rgb[:, :, 3] < 255).any())  # type: ignore[index]
        for checker in self.checkers:
            if transparent:
                checker.set_size(rgb.shape[1], rgb.shape[0])  # type: ignore[union-attr]
            else:
                checker.set_size(0, 0)
        self.empty_hint.setVisible(rgb is None)
        self._refresh_items()
        if rgb is not None:
            self.split_line.setValue(rgb.shape[1] / 2)
            self._set_limits(rgb.shape[1], rgb.shape[0])
        self.hovered.emit(-1, -1)  # the pixel read-out described the previous image
        self._update_orientation()
        self.fit()

    def set_result(
        self,
        rgb: np.ndarray | None,
        labels: np.ndarray | None = None,
        palette: np.ndarray | None = None,
    ) -> None:
        """Show the palette image (and remember labels for cluster highlighting).

        Parameters
        ----------
        rgb : ndarray of shape (M, N, 3), uint8, C-contiguous, or None
            The palette image.
        labels : ndarray of shape (M, N), uint8 or uint16, optional
            Cluster labels for :meth:`highlight_cluster`.
        palette : ndarray of shape (K, 3), uint8, optional
            The clusters' colours (a dark cluster is highlighted with a light veil).
        """
        self._palette = None if palette is None else np.asarray(palette, np.uint8)
        self._result = None if rgb is None else qimage_from_array(rgb)
        self._stale = ""
        self.set_highlight_labels(labels)
        self._refresh_items()

    def set_stale(self, reason: str) -> None:
        """Mark the shown result as not matching the parameters any more (``""`` clears).

        Parameters
        ----------
        reason : str
            E.g. ``"previous run: K-means, 16 colours"``; shown in the result's title.
        """
        self._stale = reason if self._result is not None else ""
        self._refresh_items()

    def stale(self) -> str:
        """Return why the result is marked stale (``""`` when it is current).

        Returns
        -------
        reason : str
        """
        return self._stale

    def _set_limits(self, width: int, height: int) -> None:
        """Bound the zoom: out to a quarter of the view, in to a dozen pixels across.

        A small image may still be shown at 100 % (the view may span 1.5 screens of pixels).
        """
        screen = max(self.left_view.width(), self.left_view.height(), 256)
        span = max(max(width, height) / _MIN_VIEW_SHARE, 1.5 * screen)
        self.left.setLimits(
            xMin=None,
            maxXRange=span,
            maxYRange=span,
            minXRange=min(_MIN_PIXELS_ACROSS, width),
            minYRange=min(_MIN_PIXELS_ACROSS, height),
        )

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

    def highlight_cluster(self, k: int | None, color: np.ndarray | None = None) -> None:
        """Veil every pixel not in cluster ``k`` (``None`` clears the highlight).

        The veil is a 1-byte-per-pixel opacity mask made by one comparison of the labels
        (a few ms on the GUI thread even for 12 MP), painted directly as an alpha image:
        black, or white when the cluster's colour is dark (a black veil would hide a dark
        cluster among its dimmed surroundings).

        Parameters
        ----------
        k : int or None
            Cluster index.
        color : ndarray of shape (3,), uint8, optional
            The cluster's colour (picks the veil's colour).
        """
        self._highlight = k
        palette = self._palette
        if color is None and k is not None and palette is not None and 0 <= k < len(palette):
            color = palette[k]
        if k is None or self._highlight_labels is None:
            self._highlight = None
            self.left_overlay.set_image(None)
            self.right_overlay.set_image(None)
            return
        veil = np.ascontiguousarray(np.not_equal(self._highlight_labels, k)).view(np.uint8)
        veil *= _DIM_ALPHA  # 0 inside cluster k, _DIM_ALPHA elsewhere
        overlay: QtGui.QImage = alpha_qimage(veil)
        self._light_veil = color is not None and veil_is_light(color)
        if self._light_veil:  # white with the same opacity (4 bytes a pixel, dark clusters only)
            white = np.full((*veil.shape, 4), 255, np.uint8)
            white[:, :, 3] = veil
            overlay = qimage_from_array(white)
        self.left_overlay.set_image(overlay)
        self.right_overlay.set_image(overlay)

    def veil_is_light(self) -> bool:
        """Return whether the highlight's veil is white (a dark cluster) rather than black.

        Returns
        -------
        light : bool
        """
        return self._highlight is not None and self._light_veil

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
        if split and self._orientation != "horizontal":
            self._arrange("horizontal")
        elif not split:
            self._update_orientation()
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
        title = "Original (flash)" if self._flash else "Result"
        if self._stale and not self._flash:
            title = f"Result — {self._stale}"
        self.right_title.setText(title)
        self.right_title.setStyleSheet("color: #b35c00;" if self._stale else "")
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
