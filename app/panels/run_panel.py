"""The left dock's content: the parameter form (scrolling), auto-run, Run and Cancel."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from app.panels.parameters import ParameterPanel

__all__ = ["RunPanel"]


class RunPanel(QtWidgets.QWidget):
    """The parameters in a scroll area above the auto-run check box and the run buttons.

    The window connects the buttons; the widgets are ``params``, ``auto_run_check``,
    ``run_button`` and ``cancel_button``.

    Parameters
    ----------
    parent : QWidget, optional
        Parent widget.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.params = ParameterPanel()
        self.run_button = QtWidgets.QPushButton("Run", objectName="runButton")
        self.run_button.setToolTip("Quantize with these parameters (Ctrl+R, F5)")
        self.run_button.setDefault(True)
        self.cancel_button = QtWidgets.QPushButton("Cancel", objectName="cancelButton")
        self.cancel_button.setToolTip("Stop the running fit (Esc)")
        self.auto_run_check = QtWidgets.QCheckBox("Re-run when parameters change")
        self.auto_run_check.setObjectName("autoRunCheck")
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
        dl = QtWidgets.QVBoxLayout(self)
        dl.setContentsMargins(2, 2, 2, 2)
        dl.addWidget(scroll, 1)
        dl.addWidget(self.auto_run_check)
        dl.addLayout(buttons)
        self.setMinimumWidth(300)
