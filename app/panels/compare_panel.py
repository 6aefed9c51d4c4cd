"""The central area: the compare view under its bar (mode, "Show original", zoom level)."""

from __future__ import annotations

from PySide6 import QtWidgets

from app.views.compare import CompareView

__all__ = ["ComparePanel"]


class ComparePanel(QtWidgets.QWidget):
    """The :class:`~app.views.compare.CompareView` with its bar above it.

    The bar's mode combo and "Show original" button act on the view; ``zoom_label`` is
    filled by the window.  The widgets are ``compare``, ``mode_combo``, ``flash_button`` and
    ``zoom_label``.

    Parameters
    ----------
    parent : QWidget, optional
        Parent widget.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
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
        self.compare.mode_changed.connect(self._on_mode_changed)
        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addWidget(QtWidgets.QLabel("Compare:"))
        bar.addWidget(self.mode_combo)
        bar.addWidget(self.flash_button)
        bar.addStretch(1)
        bar.addWidget(self.zoom_label)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.compare, 1)

    def _on_mode_changed(self, mode: str) -> None:
        index = self.mode_combo.findData(mode)
        if index != self.mode_combo.currentIndex():
            self.mode_combo.setCurrentIndex(index)
