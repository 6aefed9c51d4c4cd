"""Palette swatches with hex code and share of pixels; a click highlights the cluster."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from quantize.io.palettes import hex_color

__all__ = ["PaletteView"]

_INDEX_ROLE = QtCore.Qt.ItemDataRole.UserRole


def _swatch_icon(rgb: np.ndarray, size: int = 28) -> QtGui.QIcon:
    pixmap = QtGui.QPixmap(size, size)
    pixmap.fill(QtGui.QColor(int(rgb[0]), int(rgb[1]), int(rgb[2])))
    painter = QtGui.QPainter(pixmap)
    painter.setPen(QtGui.QColor(0, 0, 0, 90))
    painter.drawRect(0, 0, size - 1, size - 1)
    painter.end()
    icon = QtGui.QIcon(pixmap)
    icon.addPixmap(pixmap, QtGui.QIcon.Mode.Selected)  # keep the true colour when selected
    return icon


class PaletteView(QtWidgets.QWidget):
    """List of the palette colours sorted by share; clicking one emits ``cluster_clicked``.

    Clicking the highlighted colour again clears the highlight (emits ``None``).

    Parameters
    ----------
    parent : QWidget, optional
        Parent widget.
    """

    cluster_clicked = QtCore.Signal(object)  # int or None
    #: the text put on the clipboard by a double-click or the context menu
    copied = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("paletteView")
        self.list = QtWidgets.QListWidget()
        self.list.setIconSize(QtCore.QSize(28, 28))
        self.list.setSpacing(1)
        self.list.setUniformItemSizes(True)
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        self.list.setFont(font)
        self.list.itemClicked.connect(self._on_clicked)
        self.list.itemDoubleClicked.connect(self._copy_item)
        self.list.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.ActionsContextMenu)
        copy_one = QtGui.QAction("Copy Hex Code", self.list)
        copy_one.triggered.connect(lambda: self._copy_item(self.list.currentItem()))
        copy_all = QtGui.QAction("Copy All Hex Codes", self.list)
        copy_all.triggered.connect(self.copy_all)
        self.list.addAction(copy_one)
        self.list.addAction(copy_all)
        self.header = QtWidgets.QLabel("No palette yet")
        self.header.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.header)
        layout.addWidget(self.list, 1)
        self._selected: int | None = None
        self._header_text = "No palette yet"
        self._stale = ""
        self._feedback_timer = QtCore.QTimer(self)
        self._feedback_timer.setSingleShot(True)
        self._feedback_timer.setInterval(2500)
        self._feedback_timer.timeout.connect(self._restore_header)

    def set_palette(self, palette: np.ndarray | None, proportions: np.ndarray | None) -> None:
        """Show a palette (``None`` clears).

        Parameters
        ----------
        palette : ndarray of shape (K, 3), uint8, or None
            sRGB colours.
        proportions : ndarray of shape (K,), or None
            Share of opaque pixels of each colour (sums to 1).
        """
        self.list.clear()
        self._selected = None
        self.set_stale("")
        if palette is None or proportions is None:
            self._set_header("No palette yet")
            return
        palette = np.asarray(palette)
        proportions = np.asarray(proportions, dtype=np.float64)
        order = np.argsort(-proportions, kind="stable")
        used = int(np.count_nonzero(proportions > 0))
        self._set_header(
            f"{len(palette)} colours ({used} used) — click: highlight, double-click: copy"
        )
        for k in order:
            item = QtWidgets.QListWidgetItem(
                _swatch_icon(palette[k]), f"{hex_color(palette[k])}  {100 * proportions[k]:6.2f} %"
            )
            item.setData(_INDEX_ROLE, int(k))
            item.setToolTip(
                f"cluster {int(k)}: rgb({int(palette[k][0])}, {int(palette[k][1])}, "
                f"{int(palette[k][2])}), {100 * proportions[k]:.3f} % of pixels"
            )
            self.list.addItem(item)

    def count(self) -> int:
        """Return the number of swatches.

        Returns
        -------
        n : int
            Number of colours shown.
        """
        return self.list.count()

    def swatch_text(self, row: int) -> str:
        """Return the text of the swatch in ``row`` (hex and share).

        Parameters
        ----------
        row : int
            Row in the (share-sorted) list.

        Returns
        -------
        text : str
            E.g. ``"#a0b1c2   12.34 %"``.
        """
        return self.list.item(row).text()

    def cluster_at(self, row: int) -> int:
        """Return the cluster index shown in ``row``.

        Parameters
        ----------
        row : int
            Row in the list.

        Returns
        -------
        k : int
            Cluster index.
        """
        return int(self.list.item(row).data(_INDEX_ROLE))

    def click_row(self, row: int) -> None:
        """Act as if the user clicked the swatch in ``row``.

        Parameters
        ----------
        row : int
            Row in the list.
        """
        item = self.list.item(row)
        self.list.setCurrentItem(item)
        self._on_clicked(item)

    def copy_all(self) -> str:
        """Copy every hex code (largest share first, one per line) to the clipboard.

        Returns
        -------
        text : str
            What was copied.
        """
        text = "\n".join(self.swatch_text(r).split()[0] for r in range(self.count()))
        QtWidgets.QApplication.clipboard().setText(text)
        self._feedback(f"Copied {self.count()} hex codes to the clipboard")
        self.copied.emit(text)
        return text

    def set_stale(self, reason: str) -> None:
        """Say above the swatches that they are from an earlier run (``""`` clears).

        Parameters
        ----------
        reason : str
            E.g. ``"previous run: K-means, 16 colours"``.
        """
        self._stale = reason
        self._restore_header()

    def _set_header(self, text: str) -> None:
        self._header_text = text
        self._restore_header()

    def _restore_header(self) -> None:
        stale = self._stale
        if stale:
            self.header.setText(f"⚠ {stale}\n{self._header_text}")
            self.header.setStyleSheet("color: #b35c00;")
        else:
            self.header.setText(self._header_text)
            self.header.setStyleSheet("")

    def _feedback(self, text: str) -> None:
        """Say what was copied in the header for a moment (and near the mouse)."""
        self.header.setText(f"✓ {text}")
        self.header.setStyleSheet("color: #2e7d32; font-weight: bold;")
        QtWidgets.QToolTip.showText(QtGui.QCursor.pos(), text, self.list)
        self._feedback_timer.start()

    def _copy_item(self, item: QtWidgets.QListWidgetItem | None) -> None:
        if item is not None:
            code = item.text().split()[0]
            QtWidgets.QApplication.clipboard().setText(code)
            self._feedback(f"Copied {code} to the clipboard")
            self.copied.emit(code)

    def _on_clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        k = int(item.data(_INDEX_ROLE))
        if self._selected == k:
            self._selected = None
            self.list.clearSelection()
        else:
            self._selected = k
        self.cluster_clicked.emit(self._selected)
