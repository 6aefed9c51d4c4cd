"""Soft segmentation maps: per-component responsibilities, hard labels and uncertainty."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.imaging import qimage_from_array
from app.model import SoftMaps
from app.views.onscreen import on_screen

__all__ = ["SoftMapsView", "MapTile", "colorize", "TILE_SIDE"]

#: Longest side of the grid thumbnails (pixels).
TILE_SIDE = 144
_CMAP = pg.colormap.get("viridis")
_LUT = np.ascontiguousarray(_CMAP.getLookupTable(0.0, 1.0, 256, alpha=False).astype(np.uint8))


def colorize(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (or their 8-bit levels) through the viridis colour map.

    Parameters
    ----------
    values : ndarray of shape (m, n)
        Values in [0, 1] (clipped), or uint8 levels ``round(255 v)`` as
        :func:`app.tasks.map_levels` stores them.

    Returns
    -------
    rgb : ndarray of shape (m, n, 3), uint8, C-contiguous
        Colours.
    """
    values = np.asarray(values)
    if values.dtype == np.uint8:
        index = values
    else:
        index = np.clip(values.astype(np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(_LUT[index])


def thumbnail(image: np.ndarray) -> np.ndarray:
    """Sub-sample an (m, n, ...) array so its longest side is at most ``TILE_SIDE``.

    Parameters
    ----------
    image : ndarray of shape (m, n) or (m, n, C)
        Array to shrink.

    Returns
    -------
    small : ndarray
        C-contiguous strided sub-sample.
    """
    step = max(1, int(np.ceil(max(image.shape[:2]) / TILE_SIDE)))
    return np.ascontiguousarray(image[::step, ::step])


class MapTile(QtWidgets.QFrame):
    """A clickable thumbnail with a caption.

    Parameters
    ----------
    key : object
        Identifier sent by ``clicked``.
    caption : str
        Text under the image.
    rgb : ndarray of shape (m, n, 3), uint8
        Thumbnail pixels.
    parent : QWidget, optional
        Parent widget.
    swatch : (r, g, b), optional
        The palette colour the map belongs to, drawn as a square before the caption.
    """

    clicked = QtCore.Signal(object)

    def __init__(
        self,
        key: object,
        caption: str,
        rgb: np.ndarray,
        parent: QtWidgets.QWidget | None = None,
        swatch: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__(parent)
        self.key = key
        self.caption = caption
        self.swatch = swatch
        self._image = qimage_from_array(np.ascontiguousarray(rgb))
        self._selected = False
        self.setFixedSize(TILE_SIDE + 12, TILE_SIDE + 30)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        self.setToolTip(caption)

    def set_selected(self, selected: bool) -> None:
        """Draw a selection frame.

        Parameters
        ----------
        selected : bool
            Whether this tile is shown in the detail view.
        """
        self._selected = selected
        self.update()

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: D102
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.clicked.emit(self.key)
        super().mousePressEvent(event)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: D102
        painter = QtGui.QPainter(self)
        palette = self.palette()
        if self._selected:
            painter.fillRect(self.rect(), palette.color(QtGui.QPalette.ColorRole.Highlight))
        w, h = self._image.width(), self._image.height()
        scale = min(TILE_SIDE / max(w, 1), TILE_SIDE / max(h, 1))
        tw, th = w * scale, h * scale
        target = QtCore.QRectF(6 + (TILE_SIDE - tw) / 2, 6 + (TILE_SIDE - th) / 2, tw, th)
        painter.drawImage(target, self._image)
        painter.setPen(
            palette.color(
                QtGui.QPalette.ColorRole.HighlightedText
                if self._selected
                else QtGui.QPalette.ColorRole.WindowText
            )
        )
        left = 2
        if self.swatch is not None:
            box = QtCore.QRectF(6, TILE_SIDE + 11, 14, 14)
            painter.fillRect(box, QtGui.QColor(*self.swatch))
            painter.drawRect(box)
            left = 24
        text_rect = QtCore.QRectF(left, TILE_SIDE + 8, self.width() - left - 2, 20)
        metrics = QtGui.QFontMetrics(self.font())
        text = metrics.elidedText(
            self.caption, QtCore.Qt.TextElideMode.ElideRight, int(text_rect.width())
        )
        painter.drawText(text_rect, QtCore.Qt.AlignmentFlag.AlignCenter, text)
        painter.end()


class SoftMapsView(QtWidgets.QWidget):
    """A grid of map thumbnails and a detail view with a colour bar.

    The grid shows the hard label map, the uncertainty map (1 - max responsibility) and one
    responsibility map per class (largest share first), each thumbnail named by its palette
    swatch, colour and share; the colour bar says what the selected map measures.  For
    K-means the class maps are hard 0/1 masks and the uncertainty comes from the soft
    assignments derived from the distances (:func:`quantize.segment.soft_assignments`).

    Parameters
    ----------
    parent : QWidget, optional
        Parent widget.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("softMapsView")
        self._tiles: list[MapTile] = []
        self._maps: dict[object, tuple[str, np.ndarray]] = {}

        self._grid_host = QtWidgets.QWidget()
        self._grid = QtWidgets.QGridLayout(self._grid_host)
        self._grid.setSpacing(4)
        self._grid.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft
        )
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self._grid_host)
        scroll.viewport().installEventFilter(self)
        self._scroll = scroll
        self._columns = 3

        self.detail = pg.GraphicsLayoutWidget()
        self.detail.setBackground("#2b2b2b")
        self.detail_box = self.detail.addViewBox(row=0, col=0, lockAspect=True, invertY=True)
        self.detail_box.setMenuEnabled(False)
        self.detail_image = pg.ImageItem(axisOrder="row-major")
        self.detail_box.addItem(self.detail_image)
        self.colorbar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=_CMAP, interactive=False, width=18, label="responsibility"
        )
        self.detail.addItem(self.colorbar, row=0, col=1)
        self.detail_title = QtWidgets.QLabel("Run a Gaussian mixture or K-means to see maps")
        self.detail_title.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.detail_title.setWordWrap(True)
        detail_host = QtWidgets.QWidget()
        dl = QtWidgets.QVBoxLayout(detail_host)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.detail_title)
        dl.addWidget(self.detail, 1)

        self.note = QtWidgets.QLabel("")
        self.note.setWordWrap(True)
        left = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.note)
        ll.addWidget(scroll, 1)

        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(detail_host)
        # the selected map gets most of the panel; the thumbnails reflow into as many
        # columns as their share holds (one at least)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        left.setMinimumWidth(TILE_SIDE + 16 + 24)
        self.detail.setMinimumSize(360, 260)
        self._splitter = splitter
        self._bar_labels: dict[object, str] = {}
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(splitter)
        self._current: object = None
        # maps given while the view is hidden, and the map asked for meanwhile
        self._pending: tuple[SoftMaps, np.ndarray, np.ndarray] | None = None
        self._wanted: object = None

    def clear(self) -> None:
        """Remove all maps."""
        self._pending = None
        self._wanted = None
        for tile in self._tiles:
            self._grid.removeWidget(tile)
            tile.deleteLater()
        self._tiles.clear()
        self._maps.clear()
        self._bar_labels.clear()
        self._current = None
        self.detail_image.clear()
        self.note.setText("")
        self.detail_title.setText("Run a Gaussian mixture or K-means to see maps")

    def set_maps(
        self,
        soft_maps: SoftMaps,
        palette: np.ndarray,
        proportions: np.ndarray,
    ) -> None:
        """Show the maps of a finished run.

        Parameters
        ----------
        soft_maps : app.model.SoftMaps
            Display-resolution maps prepared by the worker (8-bit levels).
        palette : ndarray of shape (K, 3), uint8
            Palette (colours the label map).
        proportions : ndarray of shape (K,)
            Share of each component.

        Notes
        -----
        While the view is hidden (its tab behind another, as it is by default) the maps are
        only kept, and drawn when the view is shown or asked about: drawing them costs the GUI
        thread 15-30 ms of a run's result on two busy cores.
        """
        self.clear()
        self._pending = (soft_maps, np.asarray(palette, dtype=np.uint8), np.asarray(proportions))
        if on_screen(self):
            self.draw_pending()

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: D102, N802
        super().showEvent(event)
        self.draw_pending()

    def draw_pending(self) -> None:
        """Draw the maps given while the view was hidden.

        The window calls this when the view's tab comes to the front.
        """
        if self._pending is None:
            return
        soft_maps, palette, proportions = self._pending
        wanted = self._wanted
        self._pending = None
        self._draw(soft_maps, palette, proportions)
        if wanted is not None:
            self.show_map(wanted)

    def _draw(self, soft_maps: SoftMaps, palette: np.ndarray, proportions: np.ndarray) -> None:
        hard = not soft_maps.soft  # K-means and the 1-D method give hard 0/1 masks
        # (np.take: a third of the GUI thread's time of palette[labels] on a 1024-px map)
        labels_rgb = np.take(palette, soft_maps.labels, axis=0)
        self._maps["labels"] = ("Hard label map (palette colours)", labels_rgb)
        from_distances = soft_maps.uncertainty_source == "distances"
        self._maps["uncertainty"] = (
            "Uncertainty: 1 − max "
            + (
                "soft assignment (from the distances to the centres)"
                if from_distances
                else "responsibility"
            ),
            soft_maps.uncertainty,
        )
        self._bar_labels["uncertainty"] = "uncertainty (1 − max)"
        entries: list[tuple[object, str, np.ndarray, tuple[int, int, int] | None]] = [
            ("labels", "labels", thumbnail(labels_rgb), None),
            ("uncertainty", "uncertainty", colorize(thumbnail(soft_maps.uncertainty)), None),
        ]
        for row, k in enumerate(soft_maps.components):
            k = int(k)
            share = 100.0 * float(proportions[k])
            values = soft_maps.responsibilities[row]
            colour = "#{:02x}{:02x}{:02x}".format(*(int(v) for v in palette[k]))
            what = "mask (0/1)" if hard else "responsibility"
            title = f"Class {k}  {colour}  ({share:.1f} % of pixels): {what}"
            self._maps[k] = (title, values)
            self._bar_labels[k] = f"{what} of {colour}"
            swatch = (int(palette[k][0]), int(palette[k][1]), int(palette[k][2]))
            entries.append((k, f"{colour} {share:.1f}%", colorize(thumbnail(values)), swatch))
        for key, caption, rgb, square in entries:
            tile = MapTile(key, caption, rgb, swatch=square)
            tile.clicked.connect(self.show_map)
            self._tiles.append(tile)
        self._reflow(force=True)
        shown = len(soft_maps.components)
        n_colors = len(palette)
        self.note.setText(
            f"{shown} of {n_colors} class maps"
            + (" (largest shares)" if shown < n_colors else "")
            + (
                "; hard 0/1 masks, uncertainty from the distances to the centres"
                if hard
                else "; colour = responsibility 0…1"
            )
        )
        first = int(soft_maps.components[0]) if shown else "labels"
        self.show_map(first)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: D102
        if watched is self._scroll.viewport() and event.type() == QtCore.QEvent.Type.Resize:
            self._reflow()
        return super().eventFilter(watched, event)

    def _reflow(self, force: bool = False) -> None:
        width = self._scroll.viewport().width()
        columns = max(1, (width - 8) // (TILE_SIDE + 16))
        if columns == self._columns and not force:
            return
        self._columns = columns
        for tile in self._tiles:
            self._grid.removeWidget(tile)
        for i, tile in enumerate(self._tiles):
            self._grid.addWidget(tile, i // columns, i % columns)

    def tile_count(self) -> int:
        """Return the number of thumbnails in the grid.

        Returns
        -------
        n : int
            Labels + uncertainty + component maps.
        """
        self.draw_pending()
        return len(self._tiles)

    def current(self) -> object:
        """Return the key of the map in the detail view.

        Returns
        -------
        key : int or str or None
            Component index, ``"labels"`` or ``"uncertainty"``.
        """
        self.draw_pending()
        return self._current

    def show_map(self, key: object) -> None:
        """Show one map in the detail view.

        Parameters
        ----------
        key : int or {"labels", "uncertainty"}
            Which map.
        """
        if self._pending is not None and not on_screen(self):
            self._wanted = key  # shown with the maps, when the view is
            return
        self.draw_pending()
        if key not in self._maps:
            return
        title, values = self._maps[key]
        self._current = key
        for tile in self._tiles:
            tile.set_selected(tile.key == key)
        self.detail_title.setText(title)
        if key == "labels":
            self.detail_image.setImage(values, autoLevels=False, levels=(0, 255))
            self.detail_image.setLookupTable(None)
            self.colorbar.setVisible(False)
        else:
            levels = (0, 255) if values.dtype == np.uint8 else (0.0, 1.0)
            self.detail_image.setImage(values, autoLevels=False, levels=levels)
            self.detail_image.setColorMap(_CMAP)
            self.colorbar.setVisible(True)
            self.colorbar.setLevels((0.0, 1.0))
            # pyqtgraph puts the label of a vertical bar on its left axis
            self.colorbar.getAxis("left").setLabel(self._bar_labels.get(key, "responsibility"))
        self.detail_box.autoRange(padding=0.02)
